// Flags and environment → one validated, frozen configuration. Nothing else reads the environment.
import { parseArgs } from 'node:util';
import * as v from 'valibot';
import { LOG_LEVELS } from './log.ts';

/** A configuration problem, reported as one line before the server exits. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const Port = v.pipe(
  v.string(),
  v.regex(/^\d{1,5}$/u, 'must be a whole number from 0 to 65535'),
  v.transform(Number),
  v.maxValue(65535, 'must be a whole number from 0 to 65535'),
);

const Host = v.pipe(v.string(), v.nonEmpty('must not be empty'), v.maxLength(255, 'is too long'));

const Settings = v.object({
  host: Host,
  port: Port,
  ndjsonHost: Host,
  ndjsonPort: Port,
  db: v.pipe(v.string(), v.nonEmpty('must not be empty')),
  dbAuthToken: v.optional(v.string()),
  ndjsonOnly: v.boolean(),
  logLevel: v.picklist(LOG_LEVELS, `must be one of ${LOG_LEVELS.join(', ')}`),
});

/** The validated settings the server runs with. */
export type Config = Readonly<v.InferOutput<typeof Settings>>;

/** What the command line asks for. */
export type Command = { kind: 'run'; config: Config } | { kind: 'help' } | { kind: 'version' };

/** One row per setting: flag, environment variable, default, meaning. Drives --help and README. */
export const SETTINGS_TABLE: ReadonlyArray<{ flag: string; env: string; default: string; help: string }> = [
  {
    flag: '--host HOST',
    env: 'CONSOLE_ROOM_HOST',
    default: '127.0.0.1',
    help: 'address the browser door (HTTP/WebSocket) binds',
  },
  {
    flag: '--port PORT',
    env: 'CONSOLE_ROOM_PORT',
    default: '8080',
    help: 'browser door port (0 picks a free one)',
  },
  {
    flag: '--ndjson-port PORT',
    env: 'CONSOLE_ROOM_NDJSON_PORT',
    default: '8765',
    help: 'console door port, always on localhost (0 picks a free one)',
  },
  {
    flag: '--db PATH|URL',
    env: 'CONSOLE_ROOM_DB',
    default: './console_room.db',
    help: 'transcript: a file path, or a libsql:// or http(s):// URL',
  },
  { flag: '', env: 'CONSOLE_ROOM_DB_AUTH_TOKEN', default: '', help: 'auth token for a remote libSQL server' },
  {
    flag: '--ndjson-only',
    env: '',
    default: 'off',
    help: 'serve the console door alone; the web stack is not loaded',
  },
  {
    flag: '--log-level LEVEL',
    env: 'CONSOLE_ROOM_LOG_LEVEL',
    default: 'info',
    help: `log level: ${LOG_LEVELS.join(', ')}`,
  },
  { flag: '--help', env: '', default: '', help: 'print this help and exit' },
  { flag: '--version', env: '', default: '', help: 'print the version and exit' },
];

/** The --help text. */
export function helpText(): string {
  const lines = [
    'Usage: runspec-room [options]',
    '',
    'A chat-room server for browsers and command-line consoles.',
    'Flags win over environment variables.',
    '',
  ];
  const width = Math.max(...SETTINGS_TABLE.map((r) => r.flag.length));
  for (const row of SETTINGS_TABLE) {
    const extra = [row.env && `env ${row.env}`, row.default && `default ${row.default}`]
      .filter(Boolean)
      .join(', ');
    lines.push(`  ${(row.flag || ' ').padEnd(width)}  ${row.help}${extra ? ` (${extra})` : ''}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Parse flags and environment. Throws ConfigError with a one-line reason on bad input. */
export function parseCommand(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): Command {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        host: { type: 'string' },
        port: { type: 'string' },
        'ndjson-port': { type: 'string' },
        db: { type: 'string' },
        'ndjson-only': { type: 'boolean' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'V' },
      },
    }));
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new ConfigError(`${message} (see --help)`);
  }
  if (values.help) return { kind: 'help' };
  if (values.version) return { kind: 'version' };

  const pick = (flag: string, name: string, fallback: string): [string, string] => {
    const fromFlag = values[flag];
    if (typeof fromFlag === 'string') return [fromFlag, `--${flag}`];
    const fromEnv = env[name];
    if (fromEnv !== undefined && fromEnv !== '') return [fromEnv, name];
    return [fallback, `--${flag}`];
  };
  const sources: Record<string, string> = {};
  const input: Record<string, unknown> = {};
  for (const [key, flag, name, fallback] of [
    ['host', 'host', 'CONSOLE_ROOM_HOST', '127.0.0.1'],
    ['port', 'port', 'CONSOLE_ROOM_PORT', '8080'],
    ['ndjsonPort', 'ndjson-port', 'CONSOLE_ROOM_NDJSON_PORT', '8765'],
    ['db', 'db', 'CONSOLE_ROOM_DB', './console_room.db'],
    ['logLevel', 'log-level', 'CONSOLE_ROOM_LOG_LEVEL', 'info'],
  ] as const) {
    const [value, source] = pick(flag, name, fallback);
    input[key] = value;
    sources[key] = source;
  }
  // The console door trusts whoever can connect, so it only ever listens on the loopback interface.
  input.ndjsonHost = '127.0.0.1';
  sources.ndjsonHost = 'ndjson host';
  input.dbAuthToken = env.CONSOLE_ROOM_DB_AUTH_TOKEN || undefined;
  input.ndjsonOnly = values['ndjson-only'] === true;

  const result = v.safeParse(Settings, input);
  if (!result.success) {
    const issue = result.issues[0];
    const key = String(issue.path?.[0]?.key ?? '');
    throw new ConfigError(`${sources[key] ?? key} ${JSON.stringify(issue.input)}: ${issue.message}`);
  }
  return { kind: 'run', config: Object.freeze(result.output) };
}
