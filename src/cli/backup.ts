// `runspec-room backup FILE`: a consistent copy of the server's database while it runs (or not).
import { readSetting } from '../config.ts';
import { BackupError, backupDatabase } from '../store/backup.ts';
import { type CommandContext, CommandError, commandArgs, UsageError } from './commands.ts';

const USAGE = `Usage: runspec-room backup FILE [--db PATH]

Copies the server's database (default: CONSOLE_ROOM_DB, else ./console_room.db) to FILE, which must
not exist: one consistent snapshot, taken while the server keeps storing messages (it is not stopped
or slowed down). The copy is one file; to restore it, stop the server, put it in the database's
place (removing any -wal and -shm files beside it), and start the server.
A remote libSQL server (libsql://…) is backed up where it runs, and PostgreSQL with pg_dump, not
with this command.
`;

/** `runspec-room backup` */
export default async function backup(context: CommandContext): Promise<number> {
  const args = commandArgs(context, 'backup', USAGE, {}, true);
  if (!args) return 0;
  const { values, positionals } = args;
  const [target, ...extra] = positionals;
  if (target === undefined || extra.length > 0)
    throw new UsageError('name one FILE to write the backup to (see runspec-room backup --help)');
  const source = readSetting('db', values, context.env);
  try {
    const made = await backupDatabase(source, target);
    context.stdout(
      `backed up ${source} to ${target}: ${made.messages} messages, ${(made.bytes / 1048576).toFixed(1)} MiB in ${Math.round(made.ms)} ms\n`,
    );
    return 0;
  } catch (error) {
    if (error instanceof BackupError) throw new CommandError(error.message);
    throw error;
  }
}
