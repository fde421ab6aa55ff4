// A consistent copy of a live local database: VACUUM INTO on a connection of its own. In WAL mode it
// reads one snapshot while the server's writer goes on committing (a reader never blocks the writer),
// and the copy is written compact, as one file in rollback-journal mode that opens on its own.
import { randomBytes } from 'node:crypto';
import { link, open, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import NativeDatabase from 'libsql';
import { isRemote } from './db.ts';
import { isPostgres } from './store.ts';

/** A backup that could not be made; the message is one line for the operator. */
export class BackupError extends Error {
  override readonly name = 'BackupError';
}

/** What a backup made. */
export interface BackupResult {
  /** Messages in the copy. */
  messages: number;
  bytes: number;
  /** How long the copy took, in milliseconds. */
  ms: number;
}

/** Flush a file (or a directory's entries) to the disk. */
async function sync(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Copy the database at `source` (a file) to `target`, which must not exist. The copy is written
 * beside the target under another name, checked, flushed, and then linked to the target's name, so a
 * target that appears meanwhile is never overwritten and a failed backup leaves nothing behind.
 */
export async function backupDatabase(source: string, target: string): Promise<BackupResult> {
  if (isPostgres(source))
    throw new BackupError(
      'a PostgreSQL database is backed up with its own tools (pg_dump, or base backups with WAL archiving); this copies local database files only',
    );
  if (isRemote(source))
    throw new BackupError(
      `${source} is a remote libSQL server: back it up where it runs (its own snapshots or replicas); this copies local database files only`,
    );
  const from = resolve(source);
  const to = resolve(target);
  await stat(from).catch(() => {
    throw new BackupError(`no database at ${source}`);
  });
  if (
    await stat(to).then(
      () => true,
      () => false,
    )
  )
    throw new BackupError(`${target} exists; a backup never overwrites a file`);
  const partial = join(dirname(to), `.${basename(to)}.partial-${randomBytes(6).toString('hex')}`);
  const started = performance.now();
  try {
    const db = new NativeDatabase(from);
    try {
      db.exec('PRAGMA busy_timeout = 5000');
      const tables = db.prepare(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'messages'",
      );
      if (Number((tables.raw(true).get() as unknown[] | undefined)?.[0] ?? 0) === 0)
        throw new BackupError(`${source} is not a runspec-room database (it has no messages table)`);
      db.prepare('VACUUM INTO ?').run(partial);
    } catch (error) {
      if (error instanceof BackupError) throw error;
      throw new BackupError(`cannot copy ${source}: ${(error as Error).message.split('\n')[0]}`);
    } finally {
      db.close();
    }
    const ms = performance.now() - started;
    const copy = new NativeDatabase(partial);
    let messages: number;
    try {
      copy.exec('PRAGMA journal_mode = DELETE');
      const check = String((copy.prepare('PRAGMA quick_check').raw(true).get() as unknown[])[0]);
      if (check !== 'ok') throw new BackupError(`the copy of ${source} failed its check: ${check}`);
      messages = Number((copy.prepare('SELECT count(*) FROM messages').raw(true).get() as unknown[])[0]);
    } finally {
      copy.close();
    }
    await sync(partial);
    try {
      await link(partial, to);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw new BackupError(`${target} exists; a backup never overwrites a file`);
      throw new BackupError(`cannot write ${target}: ${(error as Error).message}`);
    }
    await sync(dirname(to)).catch(() => {});
    return { messages, bytes: (await stat(to)).size, ms };
  } finally {
    await unlink(partial).catch(() => {});
  }
}
