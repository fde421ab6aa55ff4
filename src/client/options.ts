// The clients' flags and environment, validated at the door into a frozen object: the only place the
// console and MCP commands read their arguments or environment.
import { accessSync, constants } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { UsageError } from '../cli/commands.ts';
import { nameProblem } from '../protocol/frames.ts';
import type { Destination } from './link.ts';

/** The console door's port unless told otherwise (the server's default). */
export const DEFAULT_PORT = 8765;

/** What both clients are told: who, where, how to reach the server. */
export interface ClientSettings {
  readonly rooms: readonly string[];
  readonly user: string;
  readonly destination: Destination;
  readonly keyFile: string | undefined;
}

/** The console client's settings. */
export interface ConsoleSettings extends ClientSettings {
  readonly json: boolean;
  /** Colour on a terminal, never with NO_COLOR. */
  readonly noColor: boolean;
}

/** The MCP server's settings. */
export interface McpSettings extends ClientSettings {
  readonly mentionsOnly: boolean;
  readonly maxPerMinute: number;
  readonly maxAgentRun: number;
}

type Env = Readonly<Record<string, string | undefined>>;

const COMMON = {
  room: { type: 'string', multiple: true },
  user: { type: 'string' },
  ssh: { type: 'string' },
  connect: { type: 'string' },
  port: { type: 'string' },
  key: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The flags both clients take, for their --help. */
export const COMMON_HELP = `  --room ROOM          the room to join (repeat for more rooms; the first is where you start)
  --user NAME          your name in the room (default: your login@host); a key's owner when --key is given
  --connect HOST:PORT  reach the console door over TCP (default 127.0.0.1:8765)
  --ssh HOST           reach it through SSH: ssh -W localhost:PORT HOST (no port forwarding needed)
  --port PORT          the console door's port on the far side (default CONSOLE_ROOM_NDJSON_PORT or 8765)
  --key FILE           sign in with this SSH key (a private key, or a public key whose private half is in ssh-agent)`;

/** The environment both clients read, for their --help. */
export const ENV_HELP = `Environment: CONSOLE_ROOM_NDJSON_PORT (the port), CONSOLE_ROOM_SSH_COMMAND (the ssh program and its
options for --ssh, split at spaces; default "ssh"), NO_COLOR (the console: no colour).`;

function parse<T extends Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }>>(
  argv: readonly string[],
  options: T,
) {
  try {
    return parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    throw new UsageError(error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error));
  }
}

function port(text: string, what: string): number {
  const value = Number(text);
  if (!/^\d+$/u.test(text) || value < 1 || value > 65_535)
    throw new UsageError(`${what} must be a port, 1 to 65535`);
  return value;
}

function name(text: string, what: string): string {
  const trimmed = text.trim();
  const problem = nameProblem(trimmed);
  if (problem) throw new UsageError(`${what} ${problem}`);
  return trimmed;
}

/** A whole number from 1 to `max`. */
export function count(text: string | undefined, fallback: number, what: string, max = 100_000): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!/^\d+$/u.test(text) || value < 1 || value > max)
    throw new UsageError(`${what} must be a whole number, 1 to ${max}`);
  return value;
}

function defaultUser(): string {
  let login = 'console';
  try {
    login = userInfo().username || login;
  } catch {
    // No entry for this uid (a container): keep the fallback.
  }
  return `${login}@${hostname()}`;
}

function common(values: Record<string, unknown>, env: Env): ClientSettings {
  const rooms = ((values.room as string[] | undefined) ?? []).map((r) => name(r, '--room'));
  if (rooms.length === 0) throw new UsageError('--room ROOM is required');
  const user = name((values.user as string | undefined) ?? defaultUser(), '--user');
  const ssh = values.ssh as string | undefined;
  const target = values.connect as string | undefined;
  if (ssh !== undefined && target !== undefined) throw new UsageError('give --ssh or --connect, not both');
  const envPort = env.CONSOLE_ROOM_NDJSON_PORT;
  const farPort =
    values.port !== undefined
      ? port(values.port as string, '--port')
      : envPort
        ? port(envPort, 'CONSOLE_ROOM_NDJSON_PORT')
        : DEFAULT_PORT;
  let destination: Destination;
  if (ssh !== undefined) {
    if (!ssh.trim() || ssh.startsWith('-')) throw new UsageError('--ssh needs a host');
    const command = (env.CONSOLE_ROOM_SSH_COMMAND ?? 'ssh').split(/\s+/u).filter(Boolean);
    if (command.length === 0) throw new UsageError('CONSOLE_ROOM_SSH_COMMAND must name a program');
    destination = { kind: 'ssh', host: ssh.trim(), port: farPort, command };
  } else if (target !== undefined) {
    const match = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/u.exec(target.trim());
    if (!match?.[1]) throw new UsageError('--connect must be HOST:PORT');
    const host = match[1].replace(/^\[|\]$/gu, '');
    destination = { kind: 'tcp', host, port: match[2] === undefined ? farPort : port(match[2], '--connect') };
  } else destination = { kind: 'tcp', host: '127.0.0.1', port: farPort };
  const keyFile = values.key as string | undefined;
  if (keyFile !== undefined) {
    try {
      accessSync(keyFile, constants.R_OK);
    } catch {
      throw new UsageError(`--key: cannot read ${keyFile}`);
    }
  }
  return { rooms, user, destination, keyFile };
}

/** `runspec-room console` arguments; undefined for --help. */
export function consoleSettings(argv: readonly string[], env: Env): ConsoleSettings | undefined {
  const values = parse(argv, { ...COMMON, json: { type: 'boolean' } });
  if (values.help) return undefined;
  return Object.freeze({
    ...common(values, env),
    json: values.json === true,
    noColor: env.NO_COLOR !== undefined && env.NO_COLOR !== '',
  });
}

/** `runspec-room mcp` arguments; undefined for --help. */
export function mcpSettings(argv: readonly string[], env: Env): McpSettings | undefined {
  const values = parse(argv, {
    ...COMMON,
    'mentions-only': { type: 'boolean' },
    'max-per-minute': { type: 'string' },
    'max-agent-run': { type: 'string' },
  });
  if (values.help) return undefined;
  return Object.freeze({
    ...common(values, env),
    mentionsOnly: values['mentions-only'] === true,
    maxPerMinute: count(values['max-per-minute'], 30, '--max-per-minute'),
    maxAgentRun: count(values['max-agent-run'], 20, '--max-agent-run'),
  });
}
