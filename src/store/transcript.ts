// The transcript on libSQL: group-committed appends, backscroll and resume reads.
import { and, asc, desc, eq, getTableName, gt, inArray, max, sql } from 'drizzle-orm';
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

const q = (name: string): string => `"${name.replaceAll('"', '""')}"`;
const INSERT_HEAD = `INSERT INTO ${q(getTableName(messages))} (${[messages.id, messages.room, messages.sender, messages.text, messages.ts].map((c) => q(c.name)).join(', ')}) VALUES `;
const INSERT_TAIL = ` ON CONFLICT (${q(messages.id.name)}) DO NOTHING RETURNING ${q(messages.id.name)}, ${q(messages.seq.name)}`;

/** The Hub's transcript, stored in the messages table. */
export class LibsqlTranscript implements Transcript {
  readonly #database: Database;
  /** The append statement per batch size (at most the group commit's batch bound of them). */
  readonly #insertSql = new Map<number, string>();

  constructor(database: Database) {
    this.#database = database;
  }

  /**
   * One INSERT statement per batch: the batch commits (and syncs) as one transaction. This is the
   * hot path, so its SQL text is built once per batch size from the schema's names rather than by
   * the query builder on every batch.
   */
  async append(batch: readonly NewMessage[]): Promise<number[]> {
    if (batch.length === 0) return [];
    const { db, client } = this.#database;
    let text = this.#insertSql.get(batch.length);
    if (text === undefined) {
      text = `${INSERT_HEAD}${Array(batch.length).fill('(?, ?, ?, ?, ?)').join(', ')}${INSERT_TAIL}`;
      this.#insertSql.set(batch.length, text);
    }
    const args: Array<string | number> = [];
    for (const m of batch) args.push(m.id, m.room, m.sender, m.text, m.ts);
    const inserted = await client.execute({ sql: text, args });
    const seqById = new Map(inserted.rows.map((r) => [String(r[0]), Number(r[1])]));
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
