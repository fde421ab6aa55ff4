// The database a subcommand works on: the server's own (--db / CONSOLE_ROOM_DB), running or not.
import { readSetting } from '../config.ts';
import { DatabaseOpenError, openStore, type Store } from '../store/store.ts';
import { CommandError } from './commands.ts';

/** Open the database the flags and environment name, as the server would. */
export async function openCommandDatabase(
  flags: { db?: string | undefined },
  env: Readonly<Record<string, string | undefined>>,
): Promise<Store> {
  const db = readSetting('db', flags, env);
  try {
    return await openStore(db, { authToken: readSetting('dbAuthToken', {}, env) });
  } catch (error) {
    if (error instanceof DatabaseOpenError) throw new CommandError(error.message);
    throw error;
  }
}
