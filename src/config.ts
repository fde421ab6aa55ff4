// Flags and environment → one validated, frozen configuration. Nothing else reads the environment.
import { isIP } from 'node:net';
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
  tlsCert: v.string(),
  tlsKey: v.string(),
  trustProxy: v.string(),
});

/** Sign-in (OIDC) and session settings, all from the environment. */
export interface AuthConfig {
  readonly issuer: string | undefined;
  readonly metadataUrl: string | undefined;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly scopes: readonly string[];
  /** Allow a plain-http issuer on a loopback address (local development). */
  readonly allowHttp: boolean;
  readonly sessionSecret: string;
  /** Origin of CONSOLE_ROOM_PUBLIC_URL: redirect URI base, cookie security, Origin checks. */
  readonly publicOrigin: string;
  readonly sessionIdleSeconds: number;
  readonly sessionMaxSeconds: number;
}

type Parsed = v.InferOutput<typeof Settings>;

/** The validated settings the server runs with. */
export type Config = Readonly<
  Omit<Parsed, 'tlsCert' | 'tlsKey' | 'trustProxy'> & {
    tls: { certFile: string; keyFile: string } | undefined;
    /** Addresses/CIDRs (or "loopback") whose forwarding headers are believed. */
    trustProxy: readonly string[];
    /** Sign-in settings; undefined means dev mode. */
    auth: AuthConfig | undefined;
    limits: Limits;
    /** Settings that were given but are no longer read, said once at start-up. */
    warnings: readonly string[];
  }
>;

/** Bounds that keep one client from hurting the others; each has an environment variable. */
export interface Limits {
  readonly rateBurst: number;
  readonly ratePerSecond: number;
  readonly floodTimeoutMs: number;
  readonly maxBrowsers: number;
  readonly maxBrowsersPerIp: number;
  readonly maxConsoles: number;
  readonly maxUnsentBytes: number;
  readonly heartbeatMs: number;
  readonly helloTimeoutMs: number;
}

function parseLimits(env: Readonly<Record<string, string | undefined>>): Limits {
  const int = (name: string, fallback: number): number => {
    const text = env[name]?.trim();
    if (!text) return fallback;
    if (!/^\d{1,12}$/u.test(text) || Number(text) < 1)
      throw new ConfigError(`${name} ${JSON.stringify(text)}: expected a whole number of at least 1`);
    return Number(text);
  };
  const ms = (name: string, fallback: string): number => {
    const text = env[name]?.trim() || fallback;
    const match = /^(\d+)\s*(ms|s|m)$/u.exec(text);
    if (!match || Number(match[1]) < 1)
      throw new ConfigError(`${name} ${JSON.stringify(text)}: expected a duration such as 500ms, 25s or 2m`);
    return Number(match[1]) * { ms: 1, s: 1000, m: 60_000 }[match[2] as 'ms' | 's' | 'm'];
  };
  return Object.freeze({
    rateBurst: int('CONSOLE_ROOM_RATE_BURST', 200),
    ratePerSecond: int('CONSOLE_ROOM_RATE_PER_SECOND', 50),
    floodTimeoutMs: ms('CONSOLE_ROOM_FLOOD_TIMEOUT', '30s'),
    maxBrowsers: int('CONSOLE_ROOM_MAX_BROWSERS', 20_000),
    maxBrowsersPerIp: int('CONSOLE_ROOM_MAX_BROWSERS_PER_IP', 100),
    maxConsoles: int('CONSOLE_ROOM_MAX_CONSOLES', 20_000),
    maxUnsentBytes: int('CONSOLE_ROOM_MAX_UNSENT', 1024 * 1024),
    heartbeatMs: ms('CONSOLE_ROOM_HEARTBEAT', '25s'),
    helloTimeoutMs: ms('CONSOLE_ROOM_HELLO_TIMEOUT', '10s'),
  });
}

/** The limits when no environment variable sets them. */
export const DEFAULT_LIMITS: Limits = parseLimits({});

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
  {
    flag: '--tls-cert FILE',
    env: 'CONSOLE_ROOM_TLS_CERT',
    default: '',
    help: 'PEM certificate (chain): serve https and wss directly',
  },
  {
    flag: '--tls-key FILE',
    env: 'CONSOLE_ROOM_TLS_KEY',
    default: '',
    help: 'PEM private key for --tls-cert',
  },
  {
    flag: '--trust-proxy LIST',
    env: 'CONSOLE_ROOM_TRUST_PROXY',
    default: 'loopback',
    help: 'proxy addresses/CIDRs whose X-Forwarded-For/-Proto are believed, or "none"',
  },
  {
    flag: '',
    env: 'CONSOLE_ROOM_OIDC_ISSUER',
    default: '',
    help: 'OpenID Provider issuer URL; the sign-in variables turn sign-in on',
  },
  {
    flag: '',
    env: 'CONSOLE_ROOM_OIDC_METADATA_URL',
    default: '',
    help: "the provider's discovery document, if not at the issuer's well-known path",
  },
  { flag: '', env: 'CONSOLE_ROOM_OIDC_CLIENT_ID', default: '', help: 'client id registered at the provider' },
  {
    flag: '',
    env: 'CONSOLE_ROOM_OIDC_CLIENT_SECRET',
    default: '',
    help: 'client secret registered at the provider',
  },
  {
    flag: '',
    env: 'CONSOLE_ROOM_OIDC_SCOPES',
    default: 'openid profile email',
    help: 'scopes to request (must include openid)',
  },
  {
    flag: '',
    env: 'CONSOLE_ROOM_SESSION_SECRET',
    default: '',
    help: 'at least 32 characters; signs cookies (openssl rand -hex 32)',
  },
  {
    flag: '',
    env: 'CONSOLE_ROOM_PUBLIC_URL',
    default: '',
    help: 'origin people use, e.g. https://room.example.com; redirect URI is this + /auth/callback',
  },
  {
    flag: '',
    env: 'CONSOLE_ROOM_SESSION_IDLE',
    default: '12h',
    help: 'a session ends after this long unused (s, m, h or d)',
  },
  {
    flag: '',
    env: 'CONSOLE_ROOM_SESSION_MAX',
    default: '7d',
    help: 'a session ends this long after sign-in, used or not',
  },
  {
    flag: '',
    env: 'CONSOLE_ROOM_OIDC_ALLOW_HTTP',
    default: 'off',
    help: '1 allows a plain-http issuer on a loopback address (local development only)',
  },
  {
    flag: '',
    env: 'CONSOLE_ROOM_RATE_BURST',
    default: '200',
    help: 'frames a connection may send at once before the rate applies',
  },
  {
    flag: '',
    env: 'CONSOLE_ROOM_RATE_PER_SECOND',
    default: '50',
    help: 'frames per second after the burst; a faster sender is slowed, never dropped',
  },
  {
    flag: '',
    env: 'CONSOLE_ROOM_FLOOD_TIMEOUT',
    default: '30s',
    help: 'a connection slowed by the rate without a break for this long is closed',
  },
  { flag: '', env: 'CONSOLE_ROOM_MAX_BROWSERS', default: '20000', help: 'open browser connections in total' },
  {
    flag: '',
    env: 'CONSOLE_ROOM_MAX_BROWSERS_PER_IP',
    default: '100',
    help: 'open browser connections per client address',
  },
  { flag: '', env: 'CONSOLE_ROOM_MAX_CONSOLES', default: '20000', help: 'open console connections in total' },
  {
    flag: '',
    env: 'CONSOLE_ROOM_MAX_UNSENT',
    default: '1048576',
    help: 'bytes of unsent data after which a slow member is disconnected',
  },
  {
    flag: '',
    env: 'CONSOLE_ROOM_HEARTBEAT',
    default: '25s',
    help: 'ping interval; a peer silent for two intervals is disconnected',
  },
  {
    flag: '',
    env: 'CONSOLE_ROOM_HELLO_TIMEOUT',
    default: '10s',
    help: 'a console that sends no valid hello by then is closed',
  },
  { flag: '--help', env: '', default: '', help: 'print this help and exit' },
  { flag: '--version', env: '', default: '', help: 'print the version and exit' },
];

/** The --help text: flags (with the environment variable each one can come from), then the rest. */
export function helpText(): string {
  const flags = SETTINGS_TABLE.filter((r) => r.flag);
  const envOnly = SETTINGS_TABLE.filter((r) => !r.flag);
  const width = Math.max(...SETTINGS_TABLE.map((r) => (r.flag || r.env).length));
  const line = (name: string, help: string, extra: string) =>
    `  ${name.padEnd(width)}  ${help}${extra ? ` (${extra})` : ''}`;
  const lines = [
    'Usage: runspec-room [options]',
    '',
    'A chat-room server for browsers and command-line consoles.',
    '',
    'Options (flags win over the environment variable named with each):',
    ...flags.map((r) =>
      line(
        r.flag,
        r.help,
        [r.env && `env ${r.env}`, r.default && `default ${r.default}`].filter(Boolean).join(', '),
      ),
    ),
    '',
    'Environment only (secrets and tuning):',
    ...envOnly.map((r) => line(r.env, r.help, r.default && `default ${r.default}`)),
  ];
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
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'trust-proxy': { type: 'string' },
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
    ['tlsCert', 'tls-cert', 'CONSOLE_ROOM_TLS_CERT', ''],
    ['tlsKey', 'tls-key', 'CONSOLE_ROOM_TLS_KEY', ''],
    ['trustProxy', 'trust-proxy', 'CONSOLE_ROOM_TRUST_PROXY', 'loopback'],
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
  const { tlsCert, tlsKey, trustProxy, ...rest } = result.output;
  if (Boolean(tlsCert) !== Boolean(tlsKey)) {
    throw new ConfigError(
      '--tls-cert and --tls-key (CONSOLE_ROOM_TLS_CERT / CONSOLE_ROOM_TLS_KEY) go together',
    );
  }
  const config: Config = {
    ...rest,
    tls: tlsCert && tlsKey ? { certFile: tlsCert, keyFile: tlsKey } : undefined,
    trustProxy: parseTrustProxy(trustProxy),
    auth: parseAuth(env),
    limits: parseLimits(env),
    warnings: RETIRED.filter(([name]) => env[name]).map(([name, why]) => `${name} is no longer read: ${why}`),
  };
  return { kind: 'run', config: Object.freeze(config) };
}

/** Environment variables earlier versions read, and what took their place. */
const RETIRED: ReadonlyArray<readonly [string, string]> = [
  [
    'CONSOLE_ROOM_FLOOD_DISCONNECT',
    'a sender over its rate is now slowed, never dropped; CONSOLE_ROOM_FLOOD_TIMEOUT says when one that never slows down is closed',
  ],
];

function parseTrustProxy(list: string): string[] {
  const items = list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (items.length === 1 && items[0] === 'none') return [];
  for (const item of items) {
    if (item === 'loopback') continue;
    const [address = '', bits, extra] = item.split('/');
    const family = isIP(address);
    const maxBits = family === 4 ? 32 : 128;
    const okBits = bits === undefined || (/^\d{1,3}$/u.test(bits) && Number(bits) <= maxBits);
    if (family === 0 || !okBits || extra !== undefined) {
      throw new ConfigError(
        `--trust-proxy ${JSON.stringify(item)}: expected an IP address, a CIDR, "loopback" or "none"`,
      );
    }
  }
  return items;
}

const DURATION = /^(\d+)\s*([smhd])$/u;
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

function parseDuration(name: string, text: string): number {
  const match = DURATION.exec(text.trim());
  const seconds = match ? Number(match[1]) * (UNIT_SECONDS[match[2] ?? 's'] ?? 1) : Number.NaN;
  if (!(seconds > 0))
    throw new ConfigError(`${name} ${JSON.stringify(text)}: expected a duration such as 90s, 30m, 12h or 7d`);
  return seconds;
}

const AUTH_VARS = [
  'CONSOLE_ROOM_OIDC_ISSUER',
  'CONSOLE_ROOM_OIDC_METADATA_URL',
  'CONSOLE_ROOM_OIDC_CLIENT_ID',
  'CONSOLE_ROOM_OIDC_CLIENT_SECRET',
  'CONSOLE_ROOM_SESSION_SECRET',
  'CONSOLE_ROOM_PUBLIC_URL',
] as const;

const isLoopback = (host: string): boolean =>
  host === 'localhost' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/u.test(host);

function httpUrl(name: string, text: string, allowHttpOnLoopback: boolean): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(`${name} ${JSON.stringify(text)}: not a URL`);
  }
  if (url.protocol === 'https:') return url;
  if (url.protocol === 'http:' && allowHttpOnLoopback && isLoopback(url.hostname)) return url;
  if (url.protocol === 'http:' && allowHttpOnLoopback) {
    throw new ConfigError(
      `${name} ${JSON.stringify(text)}: plain http is only allowed for a loopback address`,
    );
  }
  throw new ConfigError(`${name} ${JSON.stringify(text)}: must be an https URL`);
}

/** Sign-in settings: undefined in dev mode (none set); a ConfigError when only some are set. */
function parseAuth(env: Readonly<Record<string, string | undefined>>): AuthConfig | undefined {
  const get = (name: (typeof AUTH_VARS)[number] | string): string | undefined =>
    env[name]?.trim() || undefined;
  const present = AUTH_VARS.filter((name) => get(name));
  if (present.length === 0) return undefined;
  const missing: string[] = [];
  if (!get('CONSOLE_ROOM_OIDC_ISSUER') && !get('CONSOLE_ROOM_OIDC_METADATA_URL')) {
    missing.push('CONSOLE_ROOM_OIDC_ISSUER (or CONSOLE_ROOM_OIDC_METADATA_URL)');
  }
  for (const name of AUTH_VARS.slice(2)) if (!get(name)) missing.push(name);
  if (missing.length > 0) {
    throw new ConfigError(
      `sign-in is half configured (${present.join(', ')} set); missing: ${missing.join(', ')}`,
    );
  }
  const allowHttp = ['1', 'true', 'yes', 'on'].includes(
    (get('CONSOLE_ROOM_OIDC_ALLOW_HTTP') ?? '').toLowerCase(),
  );
  const issuer = get('CONSOLE_ROOM_OIDC_ISSUER');
  const metadataUrl = get('CONSOLE_ROOM_OIDC_METADATA_URL');
  if (issuer) httpUrl('CONSOLE_ROOM_OIDC_ISSUER', issuer, allowHttp);
  if (metadataUrl) httpUrl('CONSOLE_ROOM_OIDC_METADATA_URL', metadataUrl, allowHttp);
  const publicUrl = httpUrl('CONSOLE_ROOM_PUBLIC_URL', get('CONSOLE_ROOM_PUBLIC_URL') ?? '', true);
  if (publicUrl.protocol === 'http:' && !isLoopback(publicUrl.hostname)) {
    throw new ConfigError('CONSOLE_ROOM_PUBLIC_URL must be https unless it is a loopback address');
  }
  if ((publicUrl.pathname !== '/' && publicUrl.pathname !== '') || publicUrl.search || publicUrl.hash) {
    throw new ConfigError(
      'CONSOLE_ROOM_PUBLIC_URL must be an origin such as https://room.example.com, without a path',
    );
  }
  const secret = get('CONSOLE_ROOM_SESSION_SECRET') ?? '';
  if (secret.length < 32)
    throw new ConfigError(
      'CONSOLE_ROOM_SESSION_SECRET must be at least 32 characters (openssl rand -hex 32)',
    );
  const scopes = (get('CONSOLE_ROOM_OIDC_SCOPES') ?? 'openid profile email').split(/[\s,]+/u).filter(Boolean);
  if (!scopes.includes('openid')) throw new ConfigError('CONSOLE_ROOM_OIDC_SCOPES must include openid');
  return Object.freeze({
    issuer,
    metadataUrl,
    clientId: get('CONSOLE_ROOM_OIDC_CLIENT_ID') ?? '',
    clientSecret: get('CONSOLE_ROOM_OIDC_CLIENT_SECRET') ?? '',
    scopes,
    allowHttp,
    sessionSecret: secret,
    publicOrigin: publicUrl.origin,
    sessionIdleSeconds: parseDuration('CONSOLE_ROOM_SESSION_IDLE', get('CONSOLE_ROOM_SESSION_IDLE') ?? '12h'),
    sessionMaxSeconds: parseDuration('CONSOLE_ROOM_SESSION_MAX', get('CONSOLE_ROOM_SESSION_MAX') ?? '7d'),
  });
}
