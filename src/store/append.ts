// The transcript's write path: deciding each batch (planAppend), and the appender for a remote database
// (SqlAppender); a local file is written by NativeAppender on the writer thread.
import type { Client, InStatement } from '@libsql/client';
import { dropOldest } from '../bounded.ts';
import type { Appended, NewMessage, ReadMarker, StoredMessage } from '../hub/transcript.ts';

/** Stores what the Hub writes; the transcript's reads stay elsewhere. */
export interface Appender {
  /** How many appends may be outstanding at once; more than one only if they commit in order. */
  readonly inFlight: number;
  /**
   * Store the batch in one transaction, in order. Each message gets the next seq of its conversation,
   * or, when its sender already stored a message there with the same `cid`, is not stored and comes
   * back as that message. Idempotent on `id`.
   */
  append(batch: readonly NewMessage[]): Promise<Appended[]>;
  /** Move read markers forward (never back). */
  saveMarkers(markers: readonly ReadMarker[]): Promise<void>;
  /** Record names as seen (a whisper to one of them is not to a stranger). */
  remember(names: readonly string[], now: number): Promise<void>;
  /** Resolves when the write path answers: used by /healthz. */
  ping(): Promise<void>;
  /** A real commit that changes nothing: resolves only if the database takes a write now. */
  probe(): Promise<void>;
  /** The write connection's durability settings, as SQLite reports them now. */
  durability(): Promise<Durability>;
  /**
   * Delete messages stamped before `before` (float seconds) among the `limit` stored first, in one
   * transaction; how many went, and how long the transaction held the writer.
   */
  prune(before: number, limit: number): Promise<Pruned>;
  /**
   * Add at most `limit` of the messages stored after the search index's progress to it, in one
   * transaction (INDEX); how many, whether more are waiting, and how long it held the writer.
   */
  index(limit: number): Promise<Indexed>;
  /** Stop: resolves when no write is in flight any more. */
  close(): Promise<void>;
}

/** PRAGMA values of a write connection: synchronous 2 is FULL. */
export interface Durability {
  journalMode: string;
  synchronous: number;
  busyTimeout: number;
  foreignKeys: number;
}

/** What one retention batch did: messages deleted, and how long it held the writer (ms). */
export interface Pruned {
  deleted: number;
  ms: number;
}

/** What one indexing pass did: messages added to the search index, whether more wait, its time (ms). */
export interface Indexed {
  indexed: number;
  more: boolean;
  ms: number;
}

/**
 * One indexing pass, three statements in one transaction, each taking the pass's `limit`: of the next
 * `limit` messages after the progress (by rowid, which AUTOINCREMENT never reuses), the room messages
 * (not whispers, not deleted) go into the FTS5 index as one segment, each with its room's token
 * (migration 0006); the progress moves to the last of those `limit` (never back); then whether any
 * message is stored after it.
 */
const NEXT = `SELECT max(n) FROM (SELECT n FROM messages WHERE n > (SELECT indexed FROM search_progress) ORDER BY n LIMIT ?)`;
export const INDEX: readonly string[] = [
  `INSERT INTO messages_fts (rowid, text, room_key) SELECT n, text, 'r' || hex(room) FROM messages
     WHERE n > (SELECT indexed FROM search_progress) AND n <= coalesce((${NEXT}), 0)
       AND recipient IS NULL AND deleted IS NULL`,
  `UPDATE search_progress SET indexed = coalesce((${NEXT}), indexed)`,
  'SELECT EXISTS (SELECT 1 FROM messages WHERE n > (SELECT indexed FROM search_progress))',
];

/**
 * One retention batch: of the `limit` messages stored first (cheap to find: the rowid's order), those
 * stamped before the horizon. Conversations keep their newest seq, read markers stay as they are.
 */
export const PRUNE =
  'DELETE FROM messages WHERE n IN (SELECT n FROM (SELECT n, ts FROM messages ORDER BY n LIMIT ?) WHERE ts < ?)';

/** Fields of one message in a flat batch: id, room, sender, text, ts, cid, via, recipient. */
const FIELDS = 8;
/** Values as they cross to the writer thread and into statements. */
export type Flat = Array<string | number | null>;

/** A batch flattened for the statement (and for a postMessage to the writer thread). */
export function flatten(batch: readonly NewMessage[]): Flat {
  const args: Flat = [];
  for (const m of batch)
    args.push(m.id, m.room, m.sender, m.text, m.ts, m.cid ?? null, m.via, m.recipient ?? null);
  return args;
}

/** The `i`th message of a flattened batch. */
export function unflatten(args: Flat, i: number): NewMessage {
  const at = i * FIELDS;
  const message: NewMessage = {
    id: String(args[at]),
    room: String(args[at + 1]),
    sender: String(args[at + 2]),
    text: String(args[at + 3]),
    ts: Number(args[at + 4]),
    via: String(args[at + 6]) as NewMessage['via'],
  };
  if (args[at + 5] !== null) message.cid = String(args[at + 5]);
  if (args[at + 7] !== null) message.recipient = String(args[at + 7]);
  return message;
}

/** The columns a stored message is read back with, in `rowToMessage`'s order. */
export const MESSAGE_COLUMNS = 'id, room, seq, sender, text, ts, cid, via, recipient, deleted';

/** A row of MESSAGE_COLUMNS as a stored message. */
export function rowToMessage(row: ArrayLike<unknown>): StoredMessage {
  const message: StoredMessage = {
    id: String(row[0]),
    room: String(row[1]),
    seq: Number(row[2]),
    sender: String(row[3]),
    text: String(row[4]),
    ts: Number(row[5]),
    via: (row[7] ?? undefined) as StoredMessage['via'],
  };
  if (row[6] !== null && row[6] !== undefined) message.cid = String(row[6]);
  if (row[8] !== null && row[8] !== undefined) message.recipient = String(row[8]);
  if (row[9] !== null && row[9] !== undefined) message.deleted = Number(row[9]);
  return message;
}

/** Appending N messages: one INSERT (the conversations table follows by a trigger). */
export const INSERT_HEAD =
  'INSERT INTO messages (id, room, seq, sender, text, ts, cid, via, recipient) VALUES ';
/** `(?, ?, …)` for `rows` rows of `columns` values. */
export const placeholders = (rows: number, columns: number): string =>
  Array(rows)
    .fill(`(${Array(columns).fill('?').join(', ')})`)
    .join(', ');
/** Moving a read marker forward, never back. */
export const SAVE_MARKER =
  'INSERT INTO read_markers (user, conversation, seq) VALUES (?, ?, ?) ON CONFLICT (user, conversation) DO UPDATE SET seq = excluded.seq WHERE excluded.seq > read_markers.seq';

/** What the store already holds that a batch depends on. */
export interface Found {
  /** Seqs of ids already stored (a retried batch). */
  byId: Map<string, number>;
  /** Messages stored before under the same room, sender and cid. */
  byCid: Map<string, StoredMessage>;
}

/** What to write for a batch, and what each message becomes. */
export interface AppendPlan {
  outcomes: Appended[];
  /** The INSERT's values (9 per new message), and how many messages they are. */
  rows: Flat;
  count: number;
  /** Each conversation's newest seq once this batch is stored. */
  next: Map<string, number>;
}

/** The batch's lookups: ids (only for a retried batch) and (room, sender, cid) triples. */
export function lookups(
  batch: readonly NewMessage[],
  retried: boolean,
): { ids: string[]; cids: NewMessage[] } {
  return { ids: retried ? batch.map((m) => m.id) : [], cids: batch.filter((m) => m.cid !== undefined) };
}

/** The SELECT for stored messages with these (room, sender, cid) triples. */
export function cidQuery(cids: readonly NewMessage[]): { sql: string; args: string[] } {
  return {
    sql: `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE cid IS NOT NULL AND (room, sender, cid) IN (VALUES ${placeholders(cids.length, 3)})`,
    args: cids.flatMap((m) => [m.room, m.sender, m.cid ?? '']),
  };
}

/** The SELECT for the seqs of ids already stored. */
export function idQuery(ids: readonly string[]): { sql: string; args: string[] } {
  return {
    sql: `SELECT id, seq FROM messages WHERE id IN (${ids.map(() => '?').join(', ')})`,
    args: [...ids],
  };
}

/**
 * Decide a batch: a message already stored (by id) keeps its seq; one whose sender stored one with
 * the same cid in the conversation (before, or earlier in this batch) comes back as that one; every
 * other one takes its conversation's next seq, from `last`.
 */
export function planAppend(
  batch: readonly NewMessage[],
  found: Found,
  last: ReadonlyMap<string, number>,
): AppendPlan {
  const outcomes: Array<Appended | undefined> = new Array(batch.length);
  const firstByCid = new Map<string, number>();
  const sameAs = new Map<number, number>();
  const next = new Map<string, number>();
  const rows: Flat = [];
  let count = 0;
  batch.forEach((m, i) => {
    const stored = found.byId.get(m.id);
    if (stored !== undefined) {
      outcomes[i] = { seq: stored };
      return;
    }
    if (m.cid !== undefined) {
      const key = cidKey(m);
      const original = found.byCid.get(key);
      if (original) {
        outcomes[i] = { duplicate: original };
        return;
      }
      const first = firstByCid.get(key);
      if (first !== undefined) {
        sameAs.set(i, first);
        return;
      }
      firstByCid.set(key, i);
    }
    const seq = (next.get(m.room) ?? last.get(m.room) ?? 0) + 1;
    next.set(m.room, seq);
    outcomes[i] = { seq };
    rows.push(m.id, m.room, seq, m.sender, m.text, m.ts, m.cid ?? null, m.via, m.recipient ?? null);
    count += 1;
  });
  for (const [i, first] of sameAs) {
    const stored = outcomes[first] as { seq: number };
    outcomes[i] = { duplicate: { ...(batch[first] as NewMessage), seq: stored.seq } };
  }
  return { outcomes: outcomes as Appended[], rows, count, next };
}

/** The key of a (room, sender, cid) triple. */
export const cidKey = (m: { room: string; sender: string; cid?: string | undefined }): string =>
  `${m.room}\u0000${m.sender}\u0000${m.cid ?? ''}`;

/**
 * How many conversations' newest seqs an appender keeps (about 100 bytes each): the busy ones. A
 * conversation not kept is read from the database at its next message, so rooms and whisper pairs
 * used once do not stay in memory for the life of the server.
 */
export const KEPT_SEQS = 10_000;

/** Record conversations' new newest seqs in `last` as the most recent, then forget the least recent beyond `cap`. */
export function keepSeqs(
  last: Map<string, number>,
  seqs: Iterable<readonly [string, number]>,
  cap: number,
): void {
  for (const [room, seq] of seqs) {
    last.delete(room);
    last.set(room, seq);
  }
  dropOldest(last, cap);
}

/**
 * Appends on one libSQL client connection (the path for a remote database), which must be the only
 * one writing messages: each conversation's next seq is kept here and handed out without asking the
 * database, so a batch is one INSERT. SQL text is built once per batch size.
 */
export class SqlAppender implements Appender {
  /** A remote server may run concurrent requests in any order, so one at a time. */
  readonly inFlight = 1;
  readonly #client: Client;
  readonly #insertSql = new Map<number, string>();
  /** The newest seq of conversations written or read here, the most recent last (KEPT_SEQS). */
  readonly #last = new Map<string, number>();
  readonly #kept: number;

  constructor(client: Client, kept = KEPT_SEQS) {
    this.#client = client;
    this.#kept = kept;
  }

  /** How many conversations' newest seqs are kept. */
  get seqsKept(): number {
    return this.#last.size;
  }

  async append(batch: readonly NewMessage[]): Promise<Appended[]> {
    if (batch.length === 0) return [];
    const { cids } = lookups(batch, false);
    const found: Found = { byId: new Map(), byCid: new Map() };
    if (cids.length > 0) {
      const rows = (await this.#client.execute(cidQuery(cids))).rows.map((r) => rowToMessage(r));
      for (const m of rows) found.byCid.set(cidKey(m), m);
    }
    await this.#loadLast(batch.map((m) => m.room));
    const plan = planAppend(batch, found, this.#last);
    if (plan.count > 0) {
      let sql = this.#insertSql.get(plan.count);
      if (sql === undefined) {
        sql = `${INSERT_HEAD}${placeholders(plan.count, 9)}`;
        this.#insertSql.set(plan.count, sql);
      }
      try {
        await this.#client.execute({ sql, args: plan.rows });
      } catch (error) {
        // Whatever this connection thought it knew may be wrong now: ask the database next time.
        for (const room of plan.next.keys()) this.#last.delete(room);
        throw error;
      }
    }
    keepSeqs(this.#last, plan.next, this.#kept);
    return plan.outcomes;
  }

  /** Learn the newest seq of conversations not yet known here. */
  async #loadLast(rooms: string[]): Promise<void> {
    const unknown = [...new Set(rooms)].filter((room) => !this.#last.has(room));
    if (unknown.length === 0) return;
    const found = await this.#client.execute({
      sql: `SELECT key, seq FROM conversations WHERE key IN (${unknown.map(() => '?').join(', ')})`,
      args: unknown,
    });
    for (const room of unknown) this.#last.set(room, 0);
    for (const row of found.rows) this.#last.set(String(row[0]), Number(row[1]));
  }

  async saveMarkers(markers: readonly ReadMarker[]): Promise<void> {
    if (markers.length === 0) return;
    const statements: InStatement[] = markers.map((m) => ({
      sql: SAVE_MARKER,
      args: [m.user, m.conversation, m.seq],
    }));
    await this.#client.batch(statements, 'write');
  }

  async remember(names: readonly string[], now: number): Promise<void> {
    if (names.length === 0) return;
    await this.#client.execute({
      sql: `INSERT INTO people (name, first_seen) VALUES ${placeholders(names.length, 2)} ON CONFLICT (name) DO NOTHING`,
      args: names.flatMap((name) => [name, now]),
    });
  }

  async ping(): Promise<void> {
    await this.#client.execute('SELECT 1');
  }

  async probe(): Promise<void> {
    // Writing user_version back as it is commits page 1 through the WAL with its fsync, as an append
    // does, and leaves nothing behind. A rolled-back write would prove nothing: WAL mode writes a
    // transaction's pages only when it commits.
    const version = Number((await this.#client.execute('PRAGMA user_version')).rows[0]?.[0] ?? 0);
    await this.#client.execute(`PRAGMA user_version = ${Math.trunc(version)}`);
  }

  async durability(): Promise<Durability> {
    const value = async (pragma: string): Promise<unknown> =>
      (await this.#client.execute(`PRAGMA ${pragma}`)).rows[0]?.[0];
    return {
      journalMode: String(await value('journal_mode')),
      synchronous: Number(await value('synchronous')),
      busyTimeout: Number(await value('busy_timeout')),
      foreignKeys: Number(await value('foreign_keys')),
    };
  }

  async prune(before: number, limit: number): Promise<Pruned> {
    const started = performance.now();
    const result = await this.#client.execute({ sql: PRUNE, args: [limit, before] });
    return { deleted: result.rowsAffected, ms: performance.now() - started };
  }

  async index(limit: number): Promise<Indexed> {
    const started = performance.now();
    const [inserted, , left] = await this.#client.batch(
      INDEX.map((sql, i) => ({ sql, args: i < 2 ? [limit] : [] })),
      'write',
    );
    return {
      indexed: inserted?.rowsAffected ?? 0,
      more: Boolean(left?.rows[0]?.[0]),
      ms: performance.now() - started,
    };
  }

  async close(): Promise<void> {}
}
