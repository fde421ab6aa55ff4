// `runspec-room keys add|list|remove`: console keys on the host, on the server's database, whether the
// server runs or not. A running server notices a removal within a second and closes that key's consoles.
import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import * as v from 'valibot';
import { ConsoleKeys } from '../auth/console-keys.ts';
import type { AuditEntry } from '../hub/admin.ts';
import { silentLog } from '../log.ts';
import { Fingerprint, nameProblem } from '../protocol/frames.ts';
import type { ConsoleKey } from '../store/keys.ts';
import { type CommandContext, CommandError, commandArgs, UsageError } from './commands.ts';
import { openCommandDatabase } from './database.ts';

const USAGE = `Usage:
  runspec-room keys add NAME KEY [--label LABEL]   enrol an OpenSSH public key for NAME
  runspec-room keys list [NAME] [--json]           list the keys (of NAME)
  runspec-room keys remove FINGERPRINT             remove a key; its consoles are closed

KEY is the public key line ("ssh-ed25519 AAAA… comment") or a .pub file holding it.
FINGERPRINT is SHA256:… as ssh-keygen -l prints it. Every command takes --db PATH|URL
(default: CONSOLE_ROOM_DB, else ./console_room.db), the server's database.
`;

/** Who acts from the host, for the audit trail. */
function hostActor(): string {
  try {
    return `host:${userInfo().username}`;
  } catch {
    return 'host';
  }
}

/** The key line an argument gives: itself, or the first key line of the file it names. */
async function keyText(argument: string): Promise<string> {
  if (/^\s*(ssh-|ecdsa-|sk-)\S+\s+\S/u.test(argument)) return argument;
  let text: string;
  try {
    text = await readFile(argument, 'utf8');
  } catch {
    throw new CommandError(`${argument} is neither a public key line nor a readable .pub file`);
  }
  const line = text.split('\n').find((l) => l.trim() !== '' && !l.trimStart().startsWith('#'));
  if (!line) throw new CommandError(`${argument} holds no public key`);
  return line;
}

const isoDate = (seconds: number): string =>
  new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/u, 'Z');

function table(keys: readonly ConsoleKey[]): string {
  if (keys.length === 0) return 'no console keys\n';
  const rows = [
    ['NAME', 'FINGERPRINT', 'TYPE', 'LABEL', 'ADDED', 'BY'],
    ...keys.map((k) => [k.user, k.fingerprint, k.algorithm, k.label, isoDate(k.createdAt), k.createdBy]),
  ];
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return `${rows
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')}\n`;
}

/** `runspec-room keys …` */
export default async function keys(context: CommandContext): Promise<number> {
  const args = commandArgs(
    context,
    'keys',
    USAGE,
    { label: { type: 'string' }, json: { type: 'boolean' } },
    true,
  );
  if (!args) return 0;
  const { values, positionals } = args;
  const [action, ...rest] = positionals;
  if (action === undefined) {
    context.stdout(USAGE);
    return 2;
  }
  const arity = { add: [2, 2], list: [0, 1], remove: [1, 1] } as const;
  const wanted = arity[action as keyof typeof arity];
  if (!wanted) throw new UsageError(`unknown keys action ${JSON.stringify(action)} (add, list or remove)`);
  if (rest.length < wanted[0] || rest.length > wanted[1])
    throw new UsageError(
      `keys ${action} takes ${wanted[0] === wanted[1] ? wanted[0] : `${wanted[0]} to ${wanted[1]}`} argument(s) (see runspec-room keys --help)`,
    );
  if (values.label !== undefined && action !== 'add') throw new UsageError('--label goes with keys add');

  const name = action === 'add' || action === 'list' ? rest[0] : undefined;
  if (name !== undefined) {
    const problem = nameProblem(name.trim());
    if (problem) throw new UsageError(`NAME ${problem}`);
  }
  const fingerprint = action === 'remove' ? v.safeParse(Fingerprint, rest[0]) : undefined;
  if (fingerprint && !fingerprint.success) throw new UsageError(fingerprint.issues[0].message);
  const text = action === 'add' ? await keyText(rest[1] as string) : undefined;

  const database = await openCommandDatabase(values, context.env);
  try {
    const store = database.keys;
    const service = new ConsoleKeys(store, { policy: 'names', log: silentLog });
    const entry: AuditEntry = { ts: Date.now() / 1000, actor: hostActor(), via: 'host', action: '' };
    if (action === 'add') {
      const user = (name as string).trim();
      const enrolled = await service.enrol(user, text as string, values.label ?? '', {
        ...entry,
        action: 'key_add',
      });
      if (!enrolled.ok) throw new CommandError(enrolled.message);
      const k = enrolled.key;
      context.stdout(
        `added ${k.fingerprint} (${k.algorithm}) for ${k.user}${k.label ? `, label ${JSON.stringify(k.label)}` : ''}\n`,
      );
      return 0;
    }
    if (action === 'list') {
      const found = await store.list(name?.trim());
      context.stdout(values.json ? `${JSON.stringify(found)}\n` : table(found));
      return 0;
    }
    const fp = (fingerprint as { output: string }).output;
    const removed = await service.remove(fp, { ...entry, action: 'key_remove' });
    if (!removed) throw new CommandError(`no key ${fp} is enrolled`);
    context.stdout(
      `removed ${removed.fingerprint} of ${removed.user}; a running server closes its consoles within a second\n`,
    );
    return 0;
  } finally {
    await database.close();
  }
}
