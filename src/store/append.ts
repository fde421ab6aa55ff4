// The transcript's write path, run on the connection it is given (a writer thread's, or the main one for
// a remote database): group-commit batches of messages, read markers and the names seen.
import type { Client, InStatement } from '@libsql/client';
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

/** Fields of one message in a flat batch: id, room, sender, text, ts, cid, via, recipient. */
const FIELDS = 8;
type Flat = Array<string | number | null>;

/** A batch flattened for the statement (and for a postMessage to the writer thread). */
export function flatten(batch: readonly NewMessage[]): Flat {
  const args: Flat = [];
  for (const m of batch)
    args.push(m.id, m.room, m.sender, m.text, m.ts, m.cid ?? null, m.via, m.recipient ?? null);
  return args;
}

function unflatten(args: Flat, i: number): NewMessage {
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
export const MESSAGE_COLUMNS = 'id, room, seq, sender, text, ts, cid, via, recipient';

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
  return message;
}

const INSERT_HEAD = 'INSERT INTO messages (id, room, seq, sender, text, ts, cid, via, recipient) VALUES ';
const placeholders = (rows: number, columns: number): string =>
  Array(rows)
    .fill(`(${Array(columns).fill('?').join(', ')})`)
    .join(', ');

/**
 * Appends on one libSQL connection, which must be the only one writing messages: each conversation's
 * next seq is kept here and handed out without asking the database, so a batch is one INSERT (the
 * conversations table follows by a trigger). This is the hot path, so SQL text is built once per
 * batch size rather than by the query builder on every batch.
 */
export class SqlAppender implements Appender {
  /** A remote server may run concurrent requests in any order, so one at a time. */
  readonly inFlight = 1;
  readonly #client: Client;
  readonly #insertSql = new Map<number, string>();
  /** The newest seq of each conversation written or read here. */
  readonly #last = new Map<string, number>();

  constructor(client: Client) {
    this.#client = client;
  }

  append(batch: readonly NewMessage[]): Promise<Appended[]> {
    return this.appendFlat(flatten(batch), false);
  }

  /**
   * `args` as made by `flatten`. `retried`: the batch was sent before to a writer that died, so some
   * of it may be stored already and is looked up by id first.
   */
  async appendFlat(args: Flat, retried: boolean): Promise<Appended[]> {
    const count = args.length / FIELDS;
    const outcomes: Array<Appended | undefined> = new Array(count);
    if (count === 0) return [];
    const batch = Array.from({ length: count }, (_, i) => unflatten(args, i));
    if (retried) await this.#alreadyStored(batch, outcomes);
    await this.#resent(batch, outcomes);

    // In-batch resends (the same cid twice) are the first one's duplicates, once it has its seq.
    const firstByCid = new Map<string, number>();
    const sameAs = new Map<number, number>();
    const fresh: number[] = [];
    for (let i = 0; i < count; i++) {
      if (outcomes[i]) continue;
      const m = batch[i] as NewMessage;
      if (m.cid !== undefined) {
        const key = cidKey(m);
        const first = firstByCid.get(key);
        if (first !== undefined) {
          sameAs.set(i, first);
          continue;
        }
        firstByCid.set(key, i);
      }
      fresh.push(i);
    }
    if (fresh.length > 0) {
      await this.#loadLast(fresh.map((i) => (batch[i] as NewMessage).room));
      const next = new Map<string, number>();
      const rows: Flat = [];
      for (const i of fresh) {
        const m = batch[i] as NewMessage;
        const seq = (next.get(m.room) ?? this.#last.get(m.room) ?? 0) + 1;
        next.set(m.room, seq);
        outcomes[i] = { seq };
        rows.push(m.id, m.room, seq, m.sender, m.text, m.ts, m.cid ?? null, m.via, m.recipient ?? null);
      }
      try {
        await this.#client.execute({ sql: this.#insertStatement(fresh.length), args: rows });
      } catch (error) {
        // Whatever this connection thought it knew may be wrong now: ask the database next time.
        for (const room of next.keys()) this.#last.delete(room);
        throw error;
      }
      for (const [room, seq] of next) this.#last.set(room, seq);
    }
    for (const [i, first] of sameAs) {
      const stored = outcomes[first] as { seq: number };
      outcomes[i] = { duplicate: { ...(batch[first] as NewMessage), seq: stored.seq } };
    }
    return outcomes as Appended[];
  }

  #insertStatement(rows: number): string {
    let text = this.#insertSql.get(rows);
    if (text === undefined) {
      text = `${INSERT_HEAD}${placeholders(rows, 9)}`;
      this.#insertSql.set(rows, text);
    }
    return text;
  }

  /** Messages of a retried batch that the dead writer had stored: their seqs as stored. */
  async #alreadyStored(batch: NewMessage[], outcomes: Array<Appended | undefined>): Promise<void> {
    const ids = batch.map((m) => m.id);
    const found = await this.#client.execute({
      sql: `SELECT id, seq FROM messages WHERE id IN (${ids.map(() => '?').join(', ')})`,
      args: ids,
    });
    const seqById = new Map(found.rows.map((r) => [String(r[0]), Number(r[1])]));
    batch.forEach((m, i) => {
      const seq = seqById.get(m.id);
      if (seq !== undefined) outcomes[i] = { seq };
    });
  }

  /** Messages whose sender already stored one with the same cid in the same conversation. */
  async #resent(batch: NewMessage[], outcomes: Array<Appended | undefined>): Promise<void> {
    const asked = batch.flatMap((m, i) => (m.cid !== undefined && !outcomes[i] ? [m] : []));
    if (asked.length === 0) return;
    const found = await this.#client.execute({
      sql: `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE cid IS NOT NULL AND (room, sender, cid) IN (VALUES ${placeholders(asked.length, 3)})`,
      args: asked.flatMap((m) => [m.room, m.sender, m.cid ?? '']),
    });
    const stored = new Map(found.rows.map((r) => rowToMessage(r)).map((m) => [cidKey(m), m]));
    batch.forEach((m, i) => {
      const original = m.cid === undefined ? undefined : stored.get(cidKey(m));
      if (original && !outcomes[i]) outcomes[i] = { duplicate: original };
    });
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
      sql: 'INSERT INTO read_markers (user, conversation, seq) VALUES (?, ?, ?) ON CONFLICT (user, conversation) DO UPDATE SET seq = excluded.seq WHERE excluded.seq > read_markers.seq',
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

  async close(): Promise<void> {}
}

const cidKey = (m: { room: string; sender: string; cid?: string | undefined }): string =>
  `${m.room}\u0000${m.sender}\u0000${m.cid ?? ''}`;
