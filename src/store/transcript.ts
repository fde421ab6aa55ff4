// The transcript on libSQL: group-committed writes (see append.ts); backscroll, resume, history,
// room list, read marker and name reads.
import type { InValue } from '@libsql/client';
import { sql } from 'drizzle-orm';
import {
  type Appended,
  type Arrival,
  type ConversationHead,
  type NewMessage,
  type ReadMarker,
  type StoredMessage,
  type Transcript,
  WriteFailure,
  WritesFailing,
} from '../hub/transcript.ts';
import { type Metrics, noMetrics } from '../metrics/metrics.ts';
import type { SearchTerm } from '../protocol/search.ts';
import {
  type Appender,
  type Durability,
  MESSAGE_COLUMNS,
  type Pruned,
  rowToMessage,
  SqlAppender,
} from './append.ts';
import type { Database, Reads } from './db.ts';
import { NameFilter } from './name-filter.ts';
import { RecentRooms } from './recent-rooms.ts';
import type { SearchThread } from './search-thread.ts';

/** What a failed write means for /healthz, from the SQLite code the error carries (base or extended). */
function writeFailure(error: unknown): WriteFailure {
  const code = String((error as { code?: unknown }).code ?? '');
  if (code.startsWith('SQLITE_READONLY')) return WriteFailure.ReadOnly;
  if (code === 'SQLITE_FULL') return WriteFailure.Full;
  return WriteFailure.Error;
}

/**
 * An FTS5 MATCH expression holding every term: each quoted as a string (so nothing typed is read as
 * FTS5 syntax, such as NEAR, OR, a column filter or an unbalanced quote), a prefix marked after it.
 */
export function ftsQuery(terms: readonly SearchTerm[]): string {
  return terms.map((t) => `"${t.text.replaceAll('"', '""')}"${t.prefix ? '*' : ''}`).join(' ');
}

// The index drives the query (CROSS JOIN keeps the planner from scanning the room instead), newest
// first by rowid, which FTS5 walks in that order, so the LIMIT ends the walk. The words must be in
// the text, next to the room's token (as the indexer writes it): FTS5 walks only this room's matches,
// however common the words are elsewhere, and starts below the page's `before` (a room's seqs grow
// with the rowid), so a page deep in a busy room does not walk the newer ones again.
const SEARCH_SQL = `SELECT ${MESSAGE_COLUMNS.split(', ')
  .map((c) => `m.${c}`)
  .join(', ')} FROM messages_fts CROSS JOIN messages m ON m.n = messages_fts.rowid
  WHERE messages_fts MATCH 'room_key : r' || hex(?2) || ' AND text : (' || ?1 || ')'
    AND messages_fts.rowid < coalesce((SELECT n FROM messages WHERE room = ?2 AND seq >= ?3 ORDER BY seq LIMIT 1), ${Number.MAX_SAFE_INTEGER})
    AND m.room = ?2 AND m.seq < ?3 AND m.deleted IS NULL AND m.recipient IS NULL
  ORDER BY messages_fts.rowid DESC LIMIT ?4`;

/** Messages one pass of the indexer adds to the search index at most (a few ms of the writer). */
export const INDEX_BATCH = 1000;

/** How long after a commit the indexer runs, so the commits in between share one pass. */
export const INDEX_AFTER_MS = 250;

/** Passes a search makes at most to bring the index up to the newest message before it reads. */
const CATCH_UP_PASSES = 20;

/** Whispers to the user (?1) newer than its read marker of each whisper conversation. */
const UNREAD_WHISPERS = `(SELECT count(*) FROM messages m LEFT JOIN read_markers r ON r.user = m.recipient AND r.conversation = m.room
  WHERE m.recipient = ?1 AND m.seq > coalesce(r.seq, 0))`;

/** A welcome's questions as one statement (each read of the store costs more than answering it). */
const ARRIVAL_SQL = `SELECT coalesce((SELECT seq FROM read_markers WHERE user = ?1 AND conversation = ?2), 0), ${UNREAD_WHISPERS}`;

/** Names knowNames reads at once. */
const NAMES_PAGE = 10_000;

/** The Hub's transcript, stored in the messages table: appends through an Appender, reads here. */
export class LibsqlTranscript implements Transcript {
  readonly #database: Database;
  readonly #appender: Appender;
  readonly #metrics: Metrics;
  /** The database's reads, each failure counted. */
  readonly #read: Reads;
  /** Where searches run: a thread of their own for a file the server serves, else #read. */
  readonly #searches: Pick<SearchThread, 'query' | 'close'> | undefined;
  /** The last commit's failure (an append's or a probe's); undefined once one has succeeded. */
  #failing: WritesFailing | undefined;
  #probing: Promise<void> | undefined;
  /** The indexer: its next pass, the pass running, and whether the transcript is closed. */
  #indexTimer: ReturnType<typeof setTimeout> | undefined;
  #indexing: Promise<boolean> | undefined;
  #closed = false;
  /**
   * Appends answered so far, and how many of them the index is known to hold (-1 at start: the
   * last run may have left messages unindexed). A search catches up only when the two differ.
   */
  #appends = 0;
  #indexedAt = -1;
  /** The backlog found at open is being indexed and has more than one pass's worth left. */
  #rebuilding = false;
  /** The room list, kept from the appends, for a file (this process is its one writer). */
  readonly #recentRooms: RecentRooms | undefined;
  /**
   * Only where knowNames was asked (the file's one writer): everyone who may have a read marker or a
   * whisper stored, and the conversations (rooms, whisper pairs) that may have a row. Made before the
   * file is read, and kept up by the writes made here from then on.
   */
  #names: { marked: NameFilter; conversations: NameFilter } | undefined;
  /** knowNames has read the file: the filters answer for everything stored. */
  #namesKnown = false;

  /**
   * Appends run on the database's own connection unless another appender (a writer thread) is given;
   * searches on the main thread's reads unless a search thread is given (closed with the transcript).
   */
  constructor(
    database: Database,
    appender: Appender = new SqlAppender(database.client),
    metrics: Metrics = noMetrics,
    searches?: SearchThread,
  ) {
    this.#database = database;
    this.#appender = appender;
    this.#metrics = metrics;
    const counted = <T>(read: Promise<T>): Promise<T> =>
      read.catch((error: unknown) => {
        metrics.databaseError('read');
        throw error;
      });
    this.#searches = searches && {
      query: (sql, args) => counted(searches.query(sql, args)),
      close: () => searches.close(),
    };
    const { read } = database;
    this.#read = {
      query: (sql, args) => counted(read.query(sql, args)),
      one: (sql, args) => counted(read.one(sql, args)),
      close: () => read.close(),
    };
    this.#recentRooms = database.local ? new RecentRooms((limit) => this.#storedRooms(limit)) : undefined;
  }

  append(batch: readonly NewMessage[]): Promise<Appended[]> {
    const names = this.#names;
    if (names)
      for (const m of batch) {
        names.conversations.add(m.room);
        if (m.recipient !== undefined) names.marked.add(m.recipient);
      }
    return this.#appender.append(batch).then(
      (appended) => {
        this.#failing = undefined;
        this.#appends += 1;
        this.#indexSoon(INDEX_AFTER_MS);
        this.#recentRooms?.appended(batch, appended);
        return appended;
      },
      (error: unknown) => {
        this.#recentRooms?.forget();
        this.#failed(error);
        throw error;
      },
    );
  }

  get appendsInFlight(): number {
    return this.#appender.inFlight;
  }

  /** A remote server's reads wait on the network, several at once; a file's run on the event loop. */
  get readsAtOnce(): number | undefined {
    return this.#database.local ? undefined : 8;
  }

  async #messages(
    where: string,
    args: InValue[],
    order: 'ASC' | 'DESC',
    limit: number,
  ): Promise<StoredMessage[]> {
    const rows = await this.#read.query(
      `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE ${where} ORDER BY seq ${order} LIMIT ?`,
      [...args, limit],
    );
    const found = rows.map((r) => rowToMessage(r));
    return order === 'DESC' ? found.reverse() : found;
  }

  recent(room: string, limit: number): Promise<StoredMessage[]> {
    return this.#messages('room = ?', [room], 'DESC', limit);
  }

  after(room: string, seq: number, limit: number): Promise<StoredMessage[]> {
    return this.#messages('room = ? AND seq > ?', [room, seq], 'ASC', limit);
  }

  before(room: string, seq: number, limit: number): Promise<StoredMessage[]> {
    return this.#messages('room = ? AND seq < ?', [room, seq], 'DESC', limit);
  }

  async search(
    room: string,
    terms: readonly SearchTerm[],
    before: number | undefined,
    limit: number,
  ): Promise<StoredMessage[]> {
    if (terms.length === 0) return [];
    await this.#catchUp();
    const rows = await (this.#searches ?? this.#read).query(SEARCH_SQL, [
      ftsQuery(terms),
      room,
      before ?? Number.MAX_SAFE_INTEGER,
      limit,
    ]);
    return rows.map((r) => rowToMessage(r));
  }

  lastSeqKnown(room: string): number | undefined {
    return this.#namesKnown && !this.#names?.conversations.mayHold(room) ? 0 : undefined;
  }

  async lastSeq(room: string): Promise<number> {
    const known = this.lastSeqKnown(room);
    if (known !== undefined) return known;
    const row = await this.#read.one('SELECT seq FROM conversations WHERE key = ?', [room]);
    return Number(row?.[0] ?? 0);
  }

  rooms(limit: number): Promise<ConversationHead[]> {
    return this.#recentRooms ? this.#recentRooms.top(limit) : this.#storedRooms(limit);
  }

  async #storedRooms(limit: number): Promise<ConversationHead[]> {
    // Whisper pairs' keys start with U+0001, which no room name can.
    const rows = await this.#read.query(
      'SELECT key, seq, ts FROM conversations WHERE unicode(key) > 1 ORDER BY ts DESC LIMIT ?',
      [limit],
    );
    return rows.map((r) => ({ key: String(r[0]), seq: Number(r[1]), ts: Number(r[2]) }));
  }

  async markers(user: string, conversations?: readonly string[]): Promise<Map<string, number>> {
    if (conversations?.length === 0 || this.#unmarked(user)) return new Map();
    if (conversations?.length === 1) {
      const [conversation] = conversations as [string];
      const row = await this.#read.one('SELECT seq FROM read_markers WHERE user = ? AND conversation = ?', [
        user,
        conversation,
      ]);
      return row ? new Map([[conversation, Number(row[0])]]) : new Map();
    }
    const only = conversations ? ` AND conversation IN (${conversations.map(() => '?').join(', ')})` : '';
    const rows = await this.#read.query(`SELECT conversation, seq FROM read_markers WHERE user = ?${only}`, [
      user,
      ...(conversations ?? []),
    ]);
    return new Map(rows.map((r) => [String(r[0]), Number(r[1])]));
  }

  saveMarkers(markers: readonly ReadMarker[]): Promise<void> {
    if (this.#names) for (const m of markers) this.#names.marked.add(m.user);
    return this.#appender.saveMarkers(markers);
  }

  /**
   * Learn who has a read marker or a whisper in the file, and which conversations it holds, so that a
   * welcome for anyone else, and the opening of a new room, read nothing: most people arriving have
   * neither, and each read costs more than the rest of the welcome (a profile of console opens: 33 µs
   * of their 290 on the event loop). Only for the process that is the file's one writer, which sees
   * every marker, whisper and conversation written after this.
   */
  async knowNames(): Promise<void> {
    const names = { marked: new NameFilter(), conversations: new NameFilter() };
    this.#names = names;
    // In pages, each along an index, so a file with millions of them is never held in memory at once.
    const learn = async (filter: NameFilter, column: string, from: string): Promise<void> => {
      for (let after = ''; ; ) {
        const rows = await this.#read.query(
          `SELECT DISTINCT ${column} FROM ${from} WHERE ${column} > ? ORDER BY ${column} LIMIT ${NAMES_PAGE}`,
          [after],
        );
        for (const [name] of rows) filter.add(String(name));
        if (rows.length < NAMES_PAGE) return;
        after = String(rows[rows.length - 1]?.[0]);
      }
    };
    await learn(names.marked, 'user', 'read_markers');
    // Every whisper has a recipient, and its index holds only those (migration 0002).
    await learn(names.marked, 'recipient', 'messages');
    await learn(names.conversations, 'key', 'conversations');
    this.#namesKnown = true;
  }

  /** Whether `user` certainly has neither a read marker nor a whisper stored. */
  #unmarked(user: string): boolean {
    return this.#namesKnown && !this.#names?.marked.mayHold(user);
  }

  async unreadWhispers(user: string): Promise<number> {
    if (this.#unmarked(user)) return 0;
    const row = await this.#read.one(`SELECT ${UNREAD_WHISPERS}`, [user]);
    return Number(row?.[0] ?? 0);
  }

  arrivalKnown(user: string, _conversation: string): Arrival | undefined {
    return this.#unmarked(user) ? { read: 0, whispers: 0 } : undefined;
  }

  async arrival(user: string, conversation: string): Promise<Arrival> {
    const known = this.arrivalKnown(user, conversation);
    if (known) return known;
    const row = await this.#read.one(ARRIVAL_SQL, [user, conversation]);
    return { read: Number(row?.[0] ?? 0), whispers: Number(row?.[1] ?? 0) };
  }

  async knows(name: string): Promise<boolean> {
    return (await this.#read.one('SELECT 1 FROM people WHERE name = ?', [name])) !== undefined;
  }

  remember(names: readonly string[]): Promise<void> {
    return this.#appender.remember(names, Math.floor(Date.now() / 1000));
  }

  /**
   * Answers when the database does, for reads and for writes: used by /healthz. After a failed commit
   * it writes (a probe) instead, so health recovers without a message; rejects with WritesFailing
   * while writes still fail. A healthy write path is only asked to answer: a write costs an fsync.
   */
  async ping(): Promise<void> {
    const writes = this.#failing ? this.#probe() : this.#appender.ping();
    await Promise.all([this.#database.db.run(sql`SELECT 1`), writes]);
    if (this.#failing) throw this.#failing;
  }

  /** One probe at a time, however many health checks wait for it. */
  #probe(): Promise<void> {
    this.#probing ??= this.#appender
      .probe()
      .then(
        () => {
          this.#failing = undefined;
        },
        (error: unknown) => this.#failed(error),
      )
      .finally(() => {
        this.#probing = undefined;
      });
    return this.#probing;
  }

  #failed(error: unknown): void {
    this.#metrics.databaseError('write');
    this.#failing = new WritesFailing(writeFailure(error), { cause: error });
  }

  /** One retention batch, on the write path (so it queues with the appends instead of locking them out). */
  prune(before: number, limit: number): Promise<Pruned> {
    return this.#appender.prune(before, limit).catch((error: unknown) => {
      this.#metrics.databaseError('write');
      throw error;
    });
  }

  /** The durability settings appends commit with. */
  durability(): Promise<Durability> {
    return this.#appender.durability();
  }

  /**
   * One pass of the indexer: the search index is filled behind the commits, on the write path, many
   * messages to a transaction. Resolves whether more messages wait; one pass runs at a time.
   */
  #indexPass(): Promise<boolean> {
    this.#indexing ??= this.#runPass().finally(() => {
      this.#indexing = undefined;
    });
    return this.#indexing;
  }

  async #runPass(): Promise<boolean> {
    // Every append answered by now was committed before this pass (the write path keeps order).
    const at = this.#appends;
    const pass = await this.#appender.index(INDEX_BATCH).catch((error: unknown) => {
      this.#metrics.databaseError('write');
      throw error;
    });
    if (!pass.more) {
      this.#indexedAt = at;
      this.#rebuilding = false;
    }
    return pass.more;
  }

  /**
   * Index what the database holds unindexed when it is opened (what a crash left, or all of it after
   * migration 0006 rebuilt the index): passes follow each other, behind the commits, until none wait.
   */
  indexBacklog(): void {
    this.#rebuilding = true;
    this.#indexSoon(0);
  }

  /** Run a pass in `ms` unless one is already due; passes follow each other while more wait. */
  #indexSoon(ms: number): void {
    if (this.#indexTimer !== undefined || this.#closed) return;
    this.#indexTimer = setTimeout(() => {
      this.#indexTimer = undefined;
      // A failed pass is counted; the next commit schedules another, and a search catches up.
      this.#indexPass().then(
        (more) => {
          if (more) this.#indexSoon(0);
        },
        () => {},
      );
    }, ms);
  }

  /** Bring the index up to the newest message, so a search finds everything echoed before it. */
  async #catchUp(): Promise<void> {
    try {
      // A pass already running may have begun before the newest append: passes follow until one
      // began after it. Nothing appended since the last complete pass: no write at all.
      for (
        let pass = 0;
        pass < CATCH_UP_PASSES && !this.#closed && this.#indexedAt !== this.#appends;
        pass++
      ) {
        const more = await this.#indexPass();
        // A rebuild of the whole index (after an upgrade) goes on behind; a search answers from what
        // it has reached rather than wait for passes of it (and hold its place meanwhile).
        if (more && this.#rebuilding) return;
      }
    } catch {
      // Counted by the pass; the search answers from what the index holds.
    }
  }

  /** Finish and stop the write path; the database itself is closed by its owner. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#indexTimer);
    this.#indexTimer = undefined;
    await this.#indexing?.catch(() => {});
    await Promise.all([this.#appender.close(), this.#searches?.close()]);
  }
}
