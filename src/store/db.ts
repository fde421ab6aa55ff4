// Opens the libSQL database (a local file or a remote server), applies migrations, sets durability.

import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type Client, createClient, type InValue } from '@libsql/client';
import { drizzle, type LibSQLDatabase } from 'drizzle-orm/libsql';
import { migrate } from 'drizzle-orm/libsql/migrator';
import { nativeConnection, type Rows } from './native-reads.ts';
import * as schema from './schema.ts';

export type { Rows };

/** Where the transcript's reads go: one statement, its rows. */
export interface Reads {
  query(sql: string, args: readonly InValue[]): Promise<Rows>;
  /** The first row only (cheaper where one is all there can be). */
  one(sql: string, args: readonly InValue[]): Promise<unknown[] | undefined>;
  close(): void;
}

/** The open database: the Drizzle handle, its client, and whether it is a local file. */
export interface Database {
  readonly db: LibSQLDatabase<typeof schema>;
  readonly client: Client;
  /** The transcript's reads: prepared once on a native connection of their own for a file. */
  readonly read: Reads;
  readonly local: boolean;
  /** The URL the client was opened with (a file: URL for a local database). */
  readonly url: string;
  close(): void;
}

/** Where the database is: a file path, or a libsql:// / http(s):// / ws(s):// URL. */
export function isRemote(target: string): boolean {
  return /^(libsql|https?|wss?):\/\//iu.test(target);
}

const MIGRATIONS = fileURLToPath(new URL('../../drizzle/', import.meta.url));

/** A clear, one-line reason the database could not be opened. */
export class DatabaseOpenError extends Error {
  override readonly name = 'DatabaseOpenError';
}

/**
 * Open the database and bring its schema up to date. A local file runs in WAL mode with
 * synchronous=FULL, so a committed message survives a process crash and a power loss.
 */
export async function openDatabase(target: string, authToken?: string): Promise<Database> {
  const local = !isRemote(target);
  const url = local ? pathToFileURL(resolve(target)).href : target;
  let client: Client;
  try {
    // One connection for a file: per-connection PRAGMAs (synchronous, busy_timeout) then hold for every
    // statement. A larger pool would open fresh connections without them, and so would transaction(),
    // which this project never calls for that reason.
    client = createClient(local ? { url, concurrency: 1 } : { url, authToken });
  } catch (error) {
    throw new DatabaseOpenError(`cannot open database ${target}: ${reason(error)}`, { cause: error });
  }
  try {
    if (local) await client.execute('PRAGMA journal_mode = WAL');
    const db = drizzle(client, { schema });
    await migrate(db, { migrationsFolder: MIGRATIONS });
    // The migrator turns foreign keys off on its connection; sessions rely on them (cascade).
    if (local) await setConnectionPragmas(client);
    const read = local ? nativeReads(resolve(target)) : clientReads(client);
    return {
      db,
      client,
      local,
      url,
      read,
      close: () => {
        read.close();
        client.close();
      },
    };
  } catch (error) {
    client.close();
    const what = local && writeRefused(error) ? 'cannot write to' : 'cannot use';
    throw new DatabaseOpenError(`${what} database ${target}: ${reason(error)}`, { cause: error });
  }
}

/** Reads through the client (a remote database). */
function clientReads(client: Client): Reads {
  return {
    query: async (sql, args) =>
      (await client.execute({ sql, args: [...args] })).rows.map((r) => Array.from(r)),
    one: async (sql, args) => {
      const row = (await client.execute({ sql, args: [...args] })).rows[0];
      return row ? Array.from(row) : undefined;
    },
    close: () => {},
  };
}

/** The transcript's reads on a native connection of the main thread. */
function nativeReads(path: string): Reads {
  const connection = nativeConnection(path);
  return {
    query: async (sql, args) => connection.query(sql, args),
    one: async (sql, args) => connection.one(sql, args),
    close: () => connection.close(),
  };
}

/**
 * Per-connection settings for a local file, applied to every connection that writes: a commit is
 * synced before it returns, a locked database is waited for, and foreign keys are enforced.
 */
export async function setConnectionPragmas(client: Client): Promise<void> {
  await client.execute('PRAGMA synchronous = FULL');
  await client.execute('PRAGMA busy_timeout = 5000');
  await client.execute('PRAGMA foreign_keys = ON');
}

interface SqliteCodes {
  code?: unknown;
  extendedCode?: unknown;
}

/**
 * Opening failed on a write: the file or its directory is read-only, or the disk is full. A full
 * disk shows first as SQLITE_IOERR_SHMSIZE, when the WAL's shared-memory index cannot be sized.
 */
function writeRefused(error: unknown): boolean {
  const { code, extendedCode } = error as SqliteCodes;
  return (
    String(code).startsWith('SQLITE_READONLY') ||
    code === 'SQLITE_FULL' ||
    extendedCode === 'SQLITE_IOERR_SHMSIZE' ||
    extendedCode === 'SQLITE_IOERR_WRITE'
  );
}

/** The first line of the error, naming SQLite's extended code where it says more than the base code. */
function reason(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const line = error.message.split('\n')[0] ?? error.message;
  const { code, extendedCode } = error as SqliteCodes;
  if (typeof code !== 'string' || typeof extendedCode !== 'string' || !line.startsWith(`${code}:`))
    return line;
  return `${extendedCode}${line.slice(code.length)}`;
}
