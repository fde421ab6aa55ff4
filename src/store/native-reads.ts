// A native libSQL connection that only reads, with its statements prepared once: the transcript's
// reads on the main thread (src/store/db.ts) and the search thread's (src/store/search-worker.ts),
// which loads nothing else.
import type { InValue } from '@libsql/client';
import NativeDatabase from 'libsql';

/** Rows of a read: each row its columns' values, in order. */
export type Rows = unknown[][];

/** A native connection's reads as they run: synchronously, on the calling thread. */
export interface NativeReads {
  query(sql: string, args: readonly InValue[]): Rows;
  one(sql: string, args: readonly InValue[]): unknown[] | undefined;
  close(): void;
}

/**
 * Reads of a local file on a native connection of their own (libSQL's engine, as under the client),
 * each statement prepared once: a join asks several small questions, and preparing each one anew
 * cost more than answering it. The connection never writes (query_only).
 */
export function nativeConnection(path: string): NativeReads {
  const connection = new NativeDatabase(path);
  connection.exec('PRAGMA busy_timeout = 5000');
  connection.exec('PRAGMA query_only = ON');
  const statements = new Map<string, NativeDatabase.Statement>();
  const statement = (sql: string): NativeDatabase.Statement => {
    let prepared = statements.get(sql);
    if (!prepared) {
      prepared = connection.prepare(sql).raw(true);
      statements.set(sql, prepared);
    }
    return prepared;
  };
  return {
    query: (sql, args) => statement(sql).all(...args) as Rows,
    one: (sql, args) => (statement(sql).get(...args) as unknown[] | undefined) ?? undefined,
    close: () => connection.close(),
  };
}
