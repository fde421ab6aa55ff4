// The transcript on PostgreSQL. An append is one transaction: it locks the counter rows of its
// conversations (in key order, so nodes never deadlock), reads what the batch depends on, inserts the
// messages with the next seqs and moves the counters, then commits; the Hub broadcasts only after that.
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
} from '../../hub/transcript.ts';
import { type Metrics, noMetrics } from '../../metrics/metrics.ts';
import type { SearchTerm } from '../../protocol/search.ts';
import { cidKey, type Found, type Pruned, planAppend, rowToMessage } from '../append.ts';
import type { Sql } from './db.ts';

const COLUMNS = 'id, room, seq, sender, text, ts, cid, via, recipient, deleted';

/** What a failed write means for /healthz, from PostgreSQL's SQLSTATE. */
function writeFailure(error: unknown): WriteFailure {
  const code = String((error as { code?: unknown }).code ?? '');
  if (code === '25006') return WriteFailure.ReadOnly;
  if (code === '53100') return WriteFailure.Full;
  return WriteFailure.Error;
}

type Row = Record<string, unknown>;

const toMessage = (r: Row): StoredMessage =>
  rowToMessage([r.id, r.room, r.seq, r.sender, r.text, r.ts, r.cid, r.via, r.recipient, r.deleted]);

/** A word as a tsquery lexeme: quoted, so nothing typed is read as tsquery syntax (&, |, !, <->, :). */
const lexeme = (word: string): string => `'${word.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`;

/**
 * One search term as a tsquery and its parameter: a phrase through phraseto_tsquery (which quotes for
 * itself); a prefix as its words in order, the last marked `:*`.
 */
export function tsqueryTerm(term: SearchTerm, n: number): { sql: string; arg: string } {
  if (!term.prefix) return { sql: `phraseto_tsquery('runspec_room', $${n})`, arg: term.text };
  const words = term.text.split(' ').map(lexeme);
  return { sql: `to_tsquery('runspec_room', $${n})`, arg: `${words.join(' <-> ')}:*` };
}

/** One retention batch, as on the embedded store: of the `limit` stored first, those older than `before`. */
const PRUNE = `DELETE FROM messages WHERE n IN
  (SELECT n FROM (SELECT n, ts FROM messages ORDER BY n LIMIT $1) AS first WHERE ts < $2)`;

/** The Hub's transcript in PostgreSQL, shared by every node of a cluster. */
export class PgTranscript implements Transcript {
  readonly #sql: Sql;
  readonly #metrics: Metrics;
  #failing: WritesFailing | undefined;

  constructor(sql: Sql, metrics: Metrics = noMetrics) {
    this.#sql = sql;
    this.#metrics = metrics;
  }

  /** A query whose failure is counted as the database's, a read or a write. */
  #counted<T>(operation: 'read' | 'write', query: PromiseLike<T>): Promise<T> {
    return Promise.resolve(query).catch((error: unknown) => {
      this.#metrics.databaseError(operation);
      throw error;
    });
  }

  /**
   * Two transactions in flight: the next one locks its counters only once the last one holds its
   * own, so where they share a conversation the next waits for the last to commit, and seqs follow
   * the order the appends were made (a sender's messages stay in the order sent).
   */
  readonly appendsInFlight = 2;
  /** Searches run side by side on the pool's connections: at most half of them, the rest for the others. */
  readonly searchesAtOnce = 4;
  /** History reads run side by side on the pool's connections, leaving some for appends and the rest. */
  readonly readsAtOnce = 8;
  /** Resolves once the latest append holds its counter locks (or has failed). */
  #locked: Promise<void> = Promise.resolve();

  async append(batch: readonly NewMessage[]): Promise<Appended[]> {
    if (batch.length === 0) return [];
    let tx: Awaited<ReturnType<Sql['reserve']>> | undefined;
    const before = this.#locked;
    let locked = (): void => {};
    this.#locked = new Promise((resolve) => {
      locked = resolve;
    });
    try {
      tx = await this.#sql.reserve();
      await before;
      const outcomes = await this.#transaction(tx, batch, locked);
      this.#failing = undefined;
      return outcomes;
    } catch (error) {
      await tx?.unsafe('ROLLBACK').catch(() => {});
      this.#metrics.databaseError('write');
      this.#failing = new WritesFailing(writeFailure(error), { cause: error });
      throw error;
    } finally {
      locked();
      tx?.release();
    }
  }

  /**
   * The append's transaction in two round trips on one connection, each a pipeline the server runs
   * in order: BEGIN, lock the counters, look up the cids; then insert, move the counters, COMMIT.
   */
  async #transaction(
    tx: Awaited<ReturnType<Sql['reserve']>>,
    batch: readonly NewMessage[],
    locked: () => void,
  ): Promise<Appended[]> {
    const keys = [...new Set(batch.map((m) => m.room))].sort();
    const cids = batch.filter((m) => m.cid !== undefined);
    // The lookups run after the counters are locked, so they see everything committed before, and
    // nobody can add to these conversations until this commits. A batch is never sent twice (unlike
    // the writer thread's, which is retried after a crash), so only cids are looked up; a repeated
    // id would fail on the unique index, never store twice.
    const [, , counters, stored] = await Promise.all([
      tx.unsafe('BEGIN'),
      tx.unsafe(
        'INSERT INTO conversations (key, seq, ts) SELECT k, 0, 0 FROM unnest($1::text[]) AS k ON CONFLICT (key) DO NOTHING',
        [keys],
      ),
      tx.unsafe('SELECT key, seq FROM conversations WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE', [
        keys,
      ]),
      cids.length === 0
        ? []
        : tx.unsafe(
            `SELECT ${COLUMNS} FROM messages WHERE cid IS NOT NULL AND (room, sender, cid) IN
               (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))`,
            [cids.map((m) => m.room), cids.map((m) => m.sender), cids.map((m) => m.cid ?? '')],
          ),
    ]);
    locked();
    const last = new Map<string, number>();
    for (const row of counters) last.set(String(row.key), Number(row.seq));
    const found: Found = { byId: new Map(), byCid: new Map() };
    for (const row of stored) {
      const m = toMessage(row);
      found.byCid.set(cidKey(m), m);
    }
    const plan = planAppend(batch, found, last);
    if (plan.count === 0) {
      await tx.unsafe('COMMIT');
      return plan.outcomes;
    }
    const columns: unknown[][] = Array.from({ length: 9 }, () => []);
    plan.rows.forEach((value, i) => {
      columns[i % 9]?.push(value);
    });
    const heads = [...plan.next];
    const tsOf = new Map<string, number>();
    for (let i = 0; i < plan.count; i++) {
      const room = String(columns[1]?.[i]);
      tsOf.set(room, Math.max(tsOf.get(room) ?? 0, Number(columns[5]?.[i])));
    }
    // COMMIT after a failed statement only rolls back (PostgreSQL answers it with ROLLBACK, not an
    // error): the insert's own rejection is what reports the failure.
    await Promise.all([
      tx.unsafe(
        `WITH stored AS (
           INSERT INTO messages (id, room, seq, sender, text, ts, cid, via, recipient)
           SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::float8[], $7::text[], $8::text[], $9::text[])
         )
         UPDATE conversations AS c SET seq = v.seq, ts = greatest(c.ts, v.ts)
         FROM unnest($10::text[], $11::int[], $12::float8[]) AS v(key, seq, ts) WHERE c.key = v.key`,
        [
          ...(columns as never[]),
          heads.map(([key]) => key),
          heads.map(([, seq]) => seq),
          heads.map(([key]) => tsOf.get(key) ?? 0),
        ],
      ),
      tx.unsafe('COMMIT'),
    ]);
    return plan.outcomes;
  }

  async #messages(
    where: string,
    args: unknown[],
    order: 'ASC' | 'DESC',
    limit: number,
  ): Promise<StoredMessage[]> {
    const rows = await this.#counted(
      'read',
      this.#sql.unsafe(
        `SELECT ${COLUMNS} FROM messages WHERE ${where} ORDER BY seq ${order} LIMIT $${args.length + 1}`,
        [...args, limit] as never[],
      ),
    );
    const found = rows.map(toMessage);
    return order === 'DESC' ? found.reverse() : found;
  }

  recent(room: string, limit: number): Promise<StoredMessage[]> {
    return this.#messages('room = $1', [room], 'DESC', limit);
  }

  after(room: string, seq: number, limit: number): Promise<StoredMessage[]> {
    return this.#messages('room = $1 AND seq > $2', [room, seq], 'ASC', limit);
  }

  before(room: string, seq: number, limit: number): Promise<StoredMessage[]> {
    return this.#messages('room = $1 AND seq < $2', [room, seq], 'DESC', limit);
  }

  /** Newest first by commit order; the partial GIN index finds the candidates. */
  async search(
    room: string,
    terms: readonly SearchTerm[],
    before: number | undefined,
    limit: number,
  ): Promise<StoredMessage[]> {
    if (terms.length === 0) return [];
    const parts = terms.map((term, i) => tsqueryTerm(term, i + 4));
    const rows = await this.#counted(
      'read',
      this.#sql.unsafe(
        // The expression and predicate of the partial index (migration 0001), so the planner uses it.
        `SELECT ${COLUMNS} FROM messages
         WHERE to_tsvector('runspec_room', text) @@ (${parts.map((p) => p.sql).join(' && ')})
           AND recipient IS NULL AND deleted IS NULL AND room = $1 AND seq < $2
         ORDER BY n DESC LIMIT $3`,
        [room, before ?? 2 ** 31 - 1, limit, ...parts.map((p) => p.arg)],
      ),
    );
    return rows.map(toMessage);
  }

  /** One retention batch; several nodes may run theirs at once (a row is deleted once). */
  async prune(before: number, limit: number): Promise<Pruned> {
    const started = performance.now();
    const result = await this.#counted('write', this.#sql.unsafe(PRUNE, [limit, before]));
    return { deleted: result.count, ms: performance.now() - started };
  }

  async lastSeq(room: string): Promise<number> {
    const [row] = await this.#counted('read', this.#sql`SELECT seq FROM conversations WHERE key = ${room}`);
    return Number(row?.seq ?? 0);
  }

  async rooms(limit: number): Promise<ConversationHead[]> {
    // Whisper pairs' keys start with U+0001, which no room name can; a counter row with seq 0 was
    // locked by an append that stored nothing.
    const rows = await this.#counted(
      'read',
      this.#sql`SELECT key, seq, ts FROM conversations WHERE ascii(key) > 1 AND seq > 0
        ORDER BY ts DESC LIMIT ${limit}`,
    );
    return rows.map((r) => ({ key: String(r.key), seq: Number(r.seq), ts: Number(r.ts) }));
  }

  async markers(user: string, conversations?: readonly string[]): Promise<Map<string, number>> {
    if (conversations?.length === 0) return new Map();
    const rows = await this.#counted(
      'read',
      conversations
        ? this
            .#sql`SELECT conversation, seq FROM read_markers WHERE "user" = ${user} AND conversation = ANY(${[...conversations]}::text[])`
        : this.#sql`SELECT conversation, seq FROM read_markers WHERE "user" = ${user}`,
    );
    return new Map(rows.map((r) => [String(r.conversation), Number(r.seq)]));
  }

  async saveMarkers(markers: readonly ReadMarker[]): Promise<void> {
    if (markers.length === 0) return;
    await this.#counted(
      'write',
      this.#sql`INSERT INTO read_markers ("user", conversation, seq)
      SELECT * FROM unnest(${markers.map((m) => m.user)}::text[], ${markers.map((m) => m.conversation)}::text[], ${markers.map((m) => m.seq)}::int[])
      ON CONFLICT ("user", conversation) DO UPDATE SET seq = excluded.seq WHERE excluded.seq > read_markers.seq`,
    );
  }

  /** Whispers to `user` newer than its read marker of each whisper conversation, as a subquery. */
  #unreadWhispersOf(user: string) {
    return this.#sql`(SELECT count(*) FROM messages m
      LEFT JOIN read_markers r ON r."user" = m.recipient AND r.conversation = m.room
      WHERE m.recipient = ${user} AND m.seq > coalesce(r.seq, 0))`;
  }

  async unreadWhispers(user: string): Promise<number> {
    const [row] = await this.#counted('read', this.#sql`SELECT ${this.#unreadWhispersOf(user)} AS n`);
    return Number(row?.n ?? 0);
  }

  async arrival(user: string, conversation: string): Promise<Arrival> {
    const [row] = await this.#counted(
      'read',
      this.#sql`SELECT
        coalesce((SELECT seq FROM read_markers WHERE "user" = ${user} AND conversation = ${conversation}), 0) AS read,
        ${this.#unreadWhispersOf(user)} AS whispers`,
    );
    return { read: Number(row?.read ?? 0), whispers: Number(row?.whispers ?? 0) };
  }

  async knows(name: string): Promise<boolean> {
    return (await this.#counted('read', this.#sql`SELECT 1 FROM people WHERE name = ${name}`)).length > 0;
  }

  async remember(names: readonly string[]): Promise<void> {
    if (names.length === 0) return;
    const now = Math.floor(Date.now() / 1000);
    await this.#counted(
      'write',
      this.#sql`INSERT INTO people (name, first_seen) SELECT n, ${now} FROM unnest(${[...names]}::text[]) AS n
        ON CONFLICT (name) DO NOTHING`,
    );
  }

  /** Answers when the database does; after a failed commit it commits a write that changes nothing. */
  async ping(): Promise<void> {
    if (!this.#failing) {
      await this.#sql`SELECT 1`;
      return;
    }
    try {
      await this.#sql.begin((tx) => tx`UPDATE key_changes SET revision = revision WHERE id = 1`);
      this.#failing = undefined;
    } catch (error) {
      this.#failing = new WritesFailing(writeFailure(error), { cause: error });
      throw this.#failing;
    }
  }

  async close(): Promise<void> {}
}
