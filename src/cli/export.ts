// `runspec-room export --room ROOM`: a room's transcript from the server's database (running or not),
// written to standard output a page at a time.
import { EXPORT_FORMATS, type ExportFormat, exportRoom } from '../hub/export.ts';
import { nameProblem } from '../protocol/frames.ts';
import { type CommandContext, CommandError, commandArgs, UsageError } from './commands.ts';
import { openCommandDatabase } from './database.ts';

const USAGE = `Usage: runspec-room export --room ROOM [--since SEQ] [--format ndjson|markdown] [--db PATH|URL]

Writes the room's messages after SEQ (all of them unless given), oldest first, to standard output:
ndjson (the default) as one message frame per line, exactly as a protocol-2 client receives them
(a deleted message as its tombstone, "deleted": true and no text), or markdown to read. Whispers are
never exported. Works on the server's database (default: CONSOLE_ROOM_DB, else ./console_room.db)
whether the server runs or not.
`;

/** `runspec-room export` */
export default async function exportCommand(context: CommandContext): Promise<number> {
  const args = commandArgs(context, 'export', USAGE, {
    room: { type: 'string' },
    since: { type: 'string' },
    format: { type: 'string' },
  });
  if (!args) return 0;
  const { values } = args;
  const room = values.room?.trim();
  if (room === undefined) throw new UsageError('--room is required (see runspec-room export --help)');
  const problem = nameProblem(room);
  if (problem) throw new UsageError(`--room ${problem}`);
  if (values.since !== undefined && !/^\d{1,15}$/u.test(values.since))
    throw new UsageError('--since must be a sequence number');
  const format = (values.format ?? 'ndjson') as ExportFormat;
  if (!EXPORT_FORMATS.includes(format))
    throw new UsageError(`--format must be ${EXPORT_FORMATS.join(' or ')}`);
  const store = await openCommandDatabase(values, context.env);
  try {
    const { transcript } = store;
    if ((await transcript.lastSeq(room)) === 0)
      throw new CommandError(`room ${JSON.stringify(room)} has no messages`);
    for await (const chunk of exportRoom(transcript, { room, since: Number(values.since ?? 0), format }))
      await context.write(chunk);
    return 0;
  } finally {
    await store.close();
  }
}
