// The writer thread's connection: libSQL's native database (the engine under @libsql/client), used
// directly and synchronously, since the thread does nothing else. Statements are prepared once, and
// what arrived together commits in one transaction (one fsync).
import Database from 'libsql';
import type { Appended, NewMessage, ReadMarker } from '../hub/transcript.ts';
import {
  cidKey,
  cidQuery,
  type Durability,
  type Found,
  INDEX,
  INSERT_HEAD,
  type Indexed,
  idQuery,
  KEPT_SEQS,
  keepSeqs,
  lookups,
  PRUNE,
  type Pruned,
  placeholders,
  planAppend,
  rowToMessage,
  SAVE_MARKER,
} from './append.ts';

/** One piece of work for a transaction. */
export type Write =
  | { batch: readonly NewMessage[]; retried: boolean }
  | { markers: readonly ReadMarker[] }
  | { people: readonly string[]; now: number };

/** What became of one write: a batch's outcomes, or nothing to report. */
export type Written = Appended[] | undefined;

type Statement = Database.Statement;

/**
 * Writes on one native connection, which must be the only one writing messages: each conversation's
 * next seq is kept here. Measured against @libsql/client on the same file (one message per commit,
 * WAL, synchronous=FULL): 78 instead of 127 µs of CPU per commit, most of what is left being the
 * kernel's write and fsync.
 */
export class NativeAppender {
  readonly #db: Database.Database;
  readonly #statements = new Map<string, Statement>();
  /** The newest seq of conversations written or read here, the most recent last (KEPT_SEQS). */
  readonly #last = new Map<string, number>();
  readonly #kept: number;

  constructor(path: string, kept = KEPT_SEQS) {
    this.#db = new Database(path);
    this.#kept = kept;
  }

  /** How many conversations' newest seqs are kept. */
  get seqsKept(): number {
    return this.#last.size;
  }

  /** The settings every writing connection runs with (see db.ts). */
  setPragmas(): void {
    this.#db.exec('PRAGMA synchronous = FULL');
    this.#db.exec('PRAGMA busy_timeout = 5000');
    this.#db.exec('PRAGMA foreign_keys = ON');
  }

  #statement(sql: string): Statement {
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  #rows(sql: string, args: unknown[]): unknown[][] {
    return this.#statement(sql)
      .raw(true)
      .all(...args) as unknown[][];
  }

  /**
   * Do `writes` in one transaction, in order: all are committed together or none is. Returns each
   * write's outcome, in the same order.
   */
  write(writes: readonly Write[]): Written[] {
    const next = new Map<string, number>();
    const known = (room: string): number | undefined => next.get(room) ?? this.#last.get(room);
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      const outcomes = writes.map((w): Written => {
        if ('batch' in w) {
          const plan = this.#plan(w.batch, w.retried, known);
          if (plan.count > 0) {
            this.#statement(`${INSERT_HEAD}${placeholders(plan.count, 9)}`).run(...plan.rows);
            for (const [room, seq] of plan.next) next.set(room, seq);
          }
          return plan.outcomes;
        }
        if ('markers' in w) {
          const save = this.#statement(SAVE_MARKER);
          for (const m of w.markers) save.run(m.user, m.conversation, m.seq);
          return undefined;
        }
        if (w.people.length > 0)
          this.#statement(
            `INSERT INTO people (name, first_seen) VALUES ${placeholders(w.people.length, 2)} ON CONFLICT (name) DO NOTHING`,
          ).run(...w.people.flatMap((name) => [name, w.now]));
        return undefined;
      });
      this.#db.exec('COMMIT');
      keepSeqs(this.#last, next, this.#kept);
      return outcomes;
    } catch (error) {
      if (this.#db.inTransaction) this.#db.exec('ROLLBACK');
      throw error;
    }
  }

  #plan(batch: readonly NewMessage[], retried: boolean, known: (room: string) => number | undefined) {
    const { ids, cids } = lookups(batch, retried);
    const found: Found = { byId: new Map(), byCid: new Map() };
    if (ids.length > 0) {
      const q = idQuery(ids);
      for (const [id, seq] of this.#rows(q.sql, q.args)) found.byId.set(String(id), Number(seq));
    }
    if (cids.length > 0) {
      const q = cidQuery(cids);
      for (const row of this.#rows(q.sql, q.args)) {
        const m = rowToMessage(row);
        found.byCid.set(cidKey(m), m);
      }
    }
    const last = new Map<string, number>();
    for (const m of batch) {
      if (last.has(m.room)) continue;
      let seq = known(m.room);
      if (seq === undefined) {
        const row = this.#rows('SELECT seq FROM conversations WHERE key = ?', [m.room])[0];
        seq = row ? Number(row[0]) : 0;
        this.#last.set(m.room, seq);
      }
      last.set(m.room, seq);
    }
    return planAppend(batch, found, last);
  }

  /** One retention batch (PRUNE), in a transaction of its own; timed from BEGIN to the end of COMMIT. */
  prune(before: number, limit: number): Pruned {
    const started = performance.now();
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      const { changes } = this.#statement(PRUNE).run(limit, before);
      this.#db.exec('COMMIT');
      return { deleted: Number(changes), ms: performance.now() - started };
    } catch (error) {
      if (this.#db.inTransaction) this.#db.exec('ROLLBACK');
      throw error;
    }
  }

  /** One indexing pass (INDEX), in a transaction of its own. */
  index(limit: number): Indexed {
    const started = performance.now();
    const [insert, advance, left] = INDEX as [string, string, string];
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      const { changes } = this.#statement(insert).run(limit);
      this.#statement(advance).run(limit);
      const more = Boolean(this.#rows(left, [])[0]?.[0]);
      this.#db.exec('COMMIT');
      return { indexed: Number(changes), more, ms: performance.now() - started };
    } catch (error) {
      if (this.#db.inTransaction) this.#db.exec('ROLLBACK');
      throw error;
    }
  }

  /** A real commit that changes nothing: it proves the database takes a write now. */
  probe(): void {
    const version = Number(this.#rows('PRAGMA user_version', [])[0]?.[0] ?? 0);
    this.#db.exec(`PRAGMA user_version = ${Math.trunc(version)}`);
  }

  ping(): void {
    this.#rows('SELECT 1', []);
  }

  durability(): Durability {
    const value = (pragma: string): unknown => this.#rows(`PRAGMA ${pragma}`, [])[0]?.[0];
    return {
      journalMode: String(value('journal_mode')),
      synchronous: Number(value('synchronous')),
      busyTimeout: Number(value('busy_timeout')),
      foreignKeys: Number(value('foreign_keys')),
    };
  }

  /**
   * Close, after moving everything in the write-ahead log into the database file: a stopped server
   * leaves one file that holds it all (the next start would recover a log left behind, but a copy of
   * the file alone would miss it).
   */
  close(): void {
    try {
      this.#db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
    } catch {
      // Readers still in the log keep it; the next start recovers it as usual.
    }
    this.#db.close();
  }
}
