// `runspec-room audit`: the admin actions and key changes, oldest first, from the server's database.
import type { AuditRecord } from '../store/moderation.ts';
import { type CommandContext, commandArgs, UsageError } from './commands.ts';
import { openCommandDatabase } from './database.ts';

const USAGE = `Usage: runspec-room audit [--limit N] [--after N] [--json] [--db PATH|URL]

Lists admin actions (kick, ban, unban, mute, unmute, delete, revoke) and console key changes,
oldest first: the newest N (default 100), or those after line number N.
`;

function line(r: AuditRecord): string {
  const when = new Date(r.ts * 1000).toISOString().replace(/\.\d{3}Z$/u, 'Z');
  const details = [
    r.room === undefined ? undefined : `room=${JSON.stringify(r.room)}`,
    r.user === undefined ? undefined : `user=${JSON.stringify(r.user)}`,
    r.message === undefined ? undefined : `message=${r.message}`,
    r.fingerprint === undefined ? undefined : `key=${r.fingerprint}`,
    r.until === undefined ? undefined : `until=${new Date(r.until * 1000).toISOString()}`,
    r.reason === undefined ? undefined : `reason=${JSON.stringify(r.reason)}`,
  ].filter((d) => d !== undefined);
  return `${String(r.n).padStart(5)}  ${when}  ${r.actor} (${r.via})  ${r.action}${details.length ? `  ${details.join(' ')}` : ''}`;
}

/** `runspec-room audit` */
export default async function audit(context: CommandContext): Promise<number> {
  const args = commandArgs(context, 'audit', USAGE, {
    limit: { type: 'string' },
    after: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (!args) return 0;
  const { values } = args;
  const count = (flag: string, text: string | undefined, fallback: number): number => {
    if (text === undefined) return fallback;
    if (!/^\d{1,9}$/u.test(text)) throw new UsageError(`--${flag} must be a whole number`);
    return Number(text);
  };
  const limit = count('limit', values.limit, 100);
  if (limit < 1) throw new UsageError('--limit must be at least 1');
  const after = values.after === undefined ? undefined : count('after', values.after, 0);
  const database = await openCommandDatabase(values, context.env);
  try {
    const records = await database.moderation.auditTrail({ limit, after });
    if (values.json)
      context.stdout(`${records.map((r) => JSON.stringify(r)).join('\n')}${records.length ? '\n' : ''}`);
    else
      context.stdout(
        records.length === 0 ? 'no admin actions recorded\n' : `${records.map(line).join('\n')}\n`,
      );
    return 0;
  } finally {
    await database.close();
  }
}
