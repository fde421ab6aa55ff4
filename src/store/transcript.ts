// The transcript on libSQL: group-committed appends (see append.ts), backscroll and resume reads.
import { and, asc, desc, eq, gt, max, sql } from 'drizzle-orm';
import {
  type NewMessage,
  type StoredMessage,
  type Transcript,
  WriteFailure,
  WritesFailing,
} from '../hub/transcript.ts';
import { type Appender, type Durability, SqlAppender } from './append.ts';
import type { Database } from './db.ts';
import { messages } from './schema.ts';

const columns = {
  seq: messages.seq,
  id: messages.id,
  room: messages.room,
  sender: messages.sender,
  text: messages.text,
  ts: messages.ts,
};

/** What a failed write means for /healthz, from the SQLite code the error carries (base or extended). */
function writeFailure(error: unknown): WriteFailure {
  const code = String((error as { code?: unknown }).code ?? '');
  if (code.startsWith('SQLITE_READONLY')) return WriteFailure.ReadOnly;
  if (code === 'SQLITE_FULL') return WriteFailure.Full;
  return WriteFailure.Error;
}

/** The Hub's transcript, stored in the messages table: appends through an Appender, reads here. */
export class LibsqlTranscript implements Transcript {
  readonly #database: Database;
  readonly #appender: Appender;
  /** The last commit's failure (an append's or a probe's); undefined once one has succeeded. */
  #failing: WritesFailing | undefined;
  #probing: Promise<void> | undefined;

  /** Appends run on the database's own connection unless another appender (a writer thread) is given. */
  constructor(database: Database, appender: Appender = new SqlAppender(database.client)) {
    this.#database = database;
    this.#appender = appender;
  }

  append(batch: readonly NewMessage[]): Promise<number[]> {
    return this.#appender.append(batch).then(
      (seqs) => {
        this.#failing = undefined;
        return seqs;
      },
      (error: unknown) => {
        this.#failed(error);
        throw error;
      },
    );
  }

  get appendsInFlight(): number {
    return this.#appender.inFlight;
  }

  async recent(room: string, limit: number): Promise<StoredMessage[]> {
    const rows = await this.#database.db
      .select(columns)
      .from(messages)
      .where(eq(messages.room, room))
      .orderBy(desc(messages.seq))
      .limit(limit);
    return rows.reverse();
  }

  async after(room: string, seq: number, limit: number): Promise<StoredMessage[]> {
    return this.#database.db
      .select(columns)
      .from(messages)
      .where(and(eq(messages.room, room), gt(messages.seq, seq)))
      .orderBy(asc(messages.seq))
      .limit(limit);
  }

  async lastSeq(): Promise<number> {
    const [row] = await this.#database.db.select({ last: max(messages.seq) }).from(messages);
    return row?.last ?? 0;
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
    this.#failing = new WritesFailing(writeFailure(error), { cause: error });
  }

  /** The durability settings appends commit with. */
  durability(): Promise<Durability> {
    return this.#appender.durability();
  }

  /** Finish and stop the write path; the database itself is closed by its owner. */
  close(): Promise<void> {
    return this.#appender.close();
  }
}
