// The transcript's write path: one INSERT per group-commit batch, run on the connection it is given.
import type { Client } from '@libsql/client';
import { getTableName } from 'drizzle-orm';
import type { NewMessage } from '../hub/transcript.ts';
import { messages } from './schema.ts';

/** Stores batches of messages; the transcript's reads stay elsewhere. */
export interface Appender {
  /** How many appends may be outstanding at once; more than one only if they commit in order. */
  readonly inFlight: number;
  /** Store the batch in one transaction, in order; returns each message's seq. Idempotent on `id`. */
  append(batch: readonly NewMessage[]): Promise<number[]>;
  /** Resolves when the write path answers: used by /healthz. */
  ping(): Promise<void>;
  /** A real commit that changes nothing: resolves only if the database takes a write now. */
  probe(): Promise<void>;
  /** The write connection's durability settings, as SQLite reports them now. */
  durability(): Promise<Durability>;
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

const FIELDS = 5;
const q = (name: string): string => `"${name.replaceAll('"', '""')}"`;
const TABLE = q(getTableName(messages));
const ID = q(messages.id.name);
const SEQ = q(messages.seq.name);
const INSERT_HEAD = `INSERT INTO ${TABLE} (${[messages.id, messages.room, messages.sender, messages.text, messages.ts].map((c) => q(c.name)).join(', ')}) VALUES `;
const INSERT_TAIL = ` ON CONFLICT (${ID}) DO NOTHING`;

/** A batch flattened for the statement (and for a postMessage): id, room, sender, text, ts per message. */
export function flatten(batch: readonly NewMessage[]): Array<string | number> {
  const args: Array<string | number> = [];
  for (const m of batch) args.push(m.id, m.room, m.sender, m.text, m.ts);
  return args;
}

/**
 * Appends on one libSQL connection. This is the hot path, so the SQL text is built once per batch
 * size from the schema's names rather than by the query builder on every batch.
 */
export class SqlAppender implements Appender {
  /** A remote server may run concurrent requests in any order, so one at a time. */
  readonly inFlight = 1;
  readonly #client: Client;
  /** The append statement per batch size (at most the group commit's batch bound of them). */
  readonly #insertSql = new Map<number, string>();

  constructor(client: Client) {
    this.#client = client;
  }

  append(batch: readonly NewMessage[]): Promise<number[]> {
    return this.appendFlat(flatten(batch));
  }

  /** `args` as made by `flatten`. */
  async appendFlat(args: Array<string | number>): Promise<number[]> {
    const count = args.length / FIELDS;
    if (count === 0) return [];
    let text = this.#insertSql.get(count);
    if (text === undefined) {
      text = `${INSERT_HEAD}${Array(count).fill('(?, ?, ?, ?, ?)').join(', ')}${INSERT_TAIL}`;
      this.#insertSql.set(count, text);
    }
    const inserted = await this.#client.execute({ sql: text, args });
    const last = inserted.lastInsertRowid;
    if (inserted.rowsAffected === count && last !== undefined) {
      // Every row is new. One statement under the write lock numbers its rows one after another,
      // so the seqs are the `count` numbers ending at the last one: no row needs to come back.
      const first = Number(last) - count + 1;
      return Array.from({ length: count }, (_, i) => first + i);
    }
    // Some ids were stored before (a retried batch): read back the seq each id has.
    const ids = Array.from({ length: count }, (_, i) => String(args[i * FIELDS]));
    const unique = [...new Set(ids)];
    const stored = await this.#client.execute({
      sql: `SELECT ${ID}, ${SEQ} FROM ${TABLE} WHERE ${ID} IN (${unique.map(() => '?').join(', ')})`,
      args: unique,
    });
    const seqById = new Map(stored.rows.map((r) => [String(r[0]), Number(r[1])]));
    return ids.map((id) => seqById.get(id) ?? 0);
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

  async close(): Promise<void> {}
}
