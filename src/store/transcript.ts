// The transcript on libSQL: group-committed appends, backscroll and resume reads.
import { and, asc, desc, eq, gt, inArray, max, sql } from 'drizzle-orm';
import type { NewMessage, StoredMessage, Transcript } from '../hub/transcript.ts';
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

/** The Hub's transcript, stored in the messages table. */
export class LibsqlTranscript implements Transcript {
  readonly #database: Database;

  constructor(database: Database) {
    this.#database = database;
  }

  /** One INSERT statement per batch: the batch commits (and syncs) as one transaction. */
  async append(batch: readonly NewMessage[]): Promise<number[]> {
    if (batch.length === 0) return [];
    const { db } = this.#database;
    const inserted = await db
      .insert(messages)
      .values(batch.map((m) => ({ id: m.id, room: m.room, sender: m.sender, text: m.text, ts: m.ts })))
      .onConflictDoNothing({ target: messages.id })
      .returning({ id: messages.id, seq: messages.seq });
    const seqById = new Map(inserted.map((r) => [r.id, r.seq]));
    if (seqById.size < batch.length) {
      // Some ids were stored before: report the sequence numbers they already have.
      const missing = batch.filter((m) => !seqById.has(m.id)).map((m) => m.id);
      const existing = await db
        .select({ id: messages.id, seq: messages.seq })
        .from(messages)
        .where(inArray(messages.id, missing));
      for (const r of existing) seqById.set(r.id, r.seq);
    }
    return batch.map((m) => seqById.get(m.id) ?? 0);
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

  /** Answers when the database does: used by /healthz. */
  async ping(): Promise<void> {
    await this.#database.db.run(sql`SELECT 1`);
  }
}
