// Every setting, once: its flag, environment variable, default, parser and meaning. Drives parsing, --help and the README.
import type * as v from 'valibot';
import { LOG_LEVELS } from '../log.ts';
import { HEARTBEAT_MS, HELLO_TIMEOUT_MS } from '../protocol/constants.ts';
import {
  ConsoleAuth,
  Count,
  duration,
  Host,
  LogLevel,
  NameList,
  OriginList,
  Port,
  ProxyList,
  PublicOrigin,
  RedisUrl,
  Scopes,
  SessionSecret,
  Switch,
  Text,
  Url,
} from './values.ts';

/** One setting. The value comes from the flag, else the environment variable, else the default. */
export interface Setting<T = unknown> {
  /** The command-line flag, if there is one. */
  readonly flag?: `--${string}`;
  /** What the flag's value is called in --help; a flag without one is a switch. */
  readonly arg?: string;
  /** The environment variable, if there is one. */
  readonly env?: `CONSOLE_ROOM_${string}`;
  /** The value when none is given, as a user would write it; without one the setting is unset. */
  readonly default?: string;
  /** Turns the text into the value, or says what is wrong with it. */
  readonly schema: v.GenericSchema<string, T>;
  /** One line for --help. */
  readonly help: string;
  /** The README's wording (Markdown), where it says more than `help`. */
  readonly doc?: string;
  /** The README table that lists it. */
  readonly table: 'configuration' | 'limits';
  /** Never repeated in an error message. */
  readonly secret?: boolean;
}

/** The loopback address: the browser door's default, and the console door's only address (it trusts whoever can connect). */
export const LOOPBACK = '127.0.0.1';

/** The settings, in the order --help and the README list them; a limit's key is its field in Config.limits. */
export const SETTINGS = {
  host: {
    flag: '--host',
    arg: 'HOST',
    env: 'CONSOLE_ROOM_HOST',
    default: LOOPBACK,
    schema: Host,
    help: 'address the browser door (HTTP/WebSocket) binds',
    table: 'configuration',
  },
  port: {
    flag: '--port',
    arg: 'PORT',
    env: 'CONSOLE_ROOM_PORT',
    default: '8080',
    schema: Port,
    help: 'browser door port (0 picks a free one)',
    doc: 'browser door port (`0` picks a free one)',
    table: 'configuration',
  },
  ndjsonPort: {
    flag: '--ndjson-port',
    arg: 'PORT',
    env: 'CONSOLE_ROOM_NDJSON_PORT',
    default: '8765',
    schema: Port,
    help: `console door port, always on ${LOOPBACK} (0 picks a free one)`,
    doc: `console door port; always bound to \`${LOOPBACK}\``,
    table: 'configuration',
  },
  db: {
    flag: '--db',
    arg: 'PATH|URL',
    env: 'CONSOLE_ROOM_DB',
    default: './console_room.db',
    schema: Text,
    help: 'database: a file path, a libsql:// or http(s):// URL, or a postgres:// URL (several nodes)',
    doc: 'database: a file path, a `libsql://` / `http(s)://` URL of a libSQL server, or a `postgres://` URL of a PostgreSQL server, which several nodes can share ([Several nodes](#several-nodes))',
    table: 'configuration',
  },
  dbAuthToken: {
    env: 'CONSOLE_ROOM_DB_AUTH_TOKEN',
    schema: Text,
    help: 'auth token for a remote libSQL server',
    table: 'configuration',
    secret: true,
  },
  dbStatementTimeoutMs: {
    env: 'CONSOLE_ROOM_DB_STATEMENT_TIMEOUT',
    default: '10s',
    schema: duration('100ms', '1h'),
    help: 'PostgreSQL only: a statement running longer is cancelled, and answered as the store being unavailable',
    doc: 'PostgreSQL only: a read or write that runs longer (waiting on a lock another client holds, say) is cancelled and answered as `store_unavailable`, so it does not hold a turn of the history reads or a connection of the pool; a transaction left idle that long is ended too. Migrations at start are not timed',
    table: 'configuration',
  },
  redis: {
    flag: '--redis',
    arg: 'URL',
    env: 'CONSOLE_ROOM_REDIS_URL',
    schema: RedisUrl,
    help: 'redis:// URL: run as one node of several (needs --db postgres://…)',
    doc: 'a `redis://` (or `rediss://`) URL: run as one node of several, which share messages, presence and admin actions through it; needs a `postgres://` `--db` ([Several nodes](#several-nodes))',
    table: 'configuration',
    secret: true,
  },
  ndjsonOnly: {
    flag: '--ndjson-only',
    default: 'off',
    schema: Switch,
    help: 'serve the console door alone; the web stack is not loaded',
    table: 'configuration',
  },
  logLevel: {
    flag: '--log-level',
    arg: 'LEVEL',
    env: 'CONSOLE_ROOM_LOG_LEVEL',
    default: 'info',
    schema: LogLevel,
    help: `log level: ${LOG_LEVELS.join(', ')}`,
    doc: `${LOG_LEVELS.slice(0, -1)
      .map((level) => `\`${level}\``)
      .join(', ')} or \`${LOG_LEVELS.at(-1)}\``,
    table: 'configuration',
  },
  tlsCert: {
    flag: '--tls-cert',
    arg: 'FILE',
    env: 'CONSOLE_ROOM_TLS_CERT',
    schema: Text,
    help: 'PEM certificate (with chain): serve https and wss directly',
    table: 'configuration',
  },
  tlsKey: {
    flag: '--tls-key',
    arg: 'FILE',
    env: 'CONSOLE_ROOM_TLS_KEY',
    schema: Text,
    help: 'PEM private key for --tls-cert',
    doc: 'PEM private key for `--tls-cert`',
    table: 'configuration',
  },
  trustProxy: {
    flag: '--trust-proxy',
    arg: 'LIST',
    env: 'CONSOLE_ROOM_TRUST_PROXY',
    default: 'loopback',
    schema: ProxyList,
    help: 'proxy addresses/CIDRs whose X-Forwarded-For/-Proto are believed, or "none"',
    doc: 'comma-separated addresses or CIDRs whose `X-Forwarded-For` / `X-Forwarded-Proto` are believed; `none` trusts nobody',
    table: 'configuration',
  },
  allowedOrigins: {
    env: 'CONSOLE_ROOM_ALLOWED_ORIGINS',
    schema: OriginList,
    help: 'dev mode: origins whose pages may use the browser door besides its own (a proxy in front)',
    doc: "dev mode only: comma-separated origins, such as a proxy's `https://room.example.com`, whose pages may open `/ws` besides the server's own; their host names are answered too. Signed in, only `CONSOLE_ROOM_PUBLIC_URL` counts",
    table: 'configuration',
  },
  issuer: {
    env: 'CONSOLE_ROOM_OIDC_ISSUER',
    schema: Url,
    help: 'OpenID Provider issuer URL; setting the sign-in variables turns sign-in on',
    table: 'configuration',
  },
  metadataUrl: {
    env: 'CONSOLE_ROOM_OIDC_METADATA_URL',
    schema: Url,
    help: "the provider's discovery document, if not at the issuer's well-known path",
    doc: "the provider's discovery document, if it is not at the issuer's well-known path (instead of, or with, the issuer)",
    table: 'configuration',
  },
  clientId: {
    env: 'CONSOLE_ROOM_OIDC_CLIENT_ID',
    schema: Text,
    help: 'client id registered at the provider',
    table: 'configuration',
  },
  clientSecret: {
    env: 'CONSOLE_ROOM_OIDC_CLIENT_SECRET',
    schema: Text,
    help: 'client secret registered at the provider',
    table: 'configuration',
    secret: true,
  },
  scopes: {
    env: 'CONSOLE_ROOM_OIDC_SCOPES',
    default: 'openid profile email',
    schema: Scopes,
    help: 'scopes to request (must include openid)',
    doc: 'scopes to request (must include `openid`)',
    table: 'configuration',
  },
  sessionSecret: {
    env: 'CONSOLE_ROOM_SESSION_SECRET',
    schema: SessionSecret,
    help: 'at least 32 characters; signs cookies (openssl rand -hex 32)',
    doc: 'at least 32 characters; signs the session cookie and encrypts the login cookie (`openssl rand -hex 32`)',
    table: 'configuration',
    secret: true,
  },
  publicOrigin: {
    env: 'CONSOLE_ROOM_PUBLIC_URL',
    schema: PublicOrigin,
    help: 'origin people use, e.g. https://room.example.com; redirect URI is this + /auth/callback',
    doc: 'the origin people use, e.g. `https://room.example.com`; the redirect URI is this plus `/auth/callback`',
    table: 'configuration',
  },
  // Hono's setCookie throws past 400 days (RFC 6265bis caps cookie lifetimes there), which would
  // fail every sign-in; sessions are counted in whole seconds.
  sessionIdleSeconds: {
    env: 'CONSOLE_ROOM_SESSION_IDLE',
    default: '12h',
    schema: duration('1s', '400d', 's'),
    help: 'a session ends after this long unused',
    doc: 'a session ends after this long unused (an open page counts as use)',
    table: 'configuration',
  },
  sessionMaxSeconds: {
    env: 'CONSOLE_ROOM_SESSION_MAX',
    default: '7d',
    schema: duration('1s', '400d', 's'),
    help: 'a session ends this long after sign-in, used or not',
    doc: 'a session ends this long after sign-in, whatever the use',
    table: 'configuration',
  },
  consoleAuth: {
    flag: '--console-auth',
    arg: 'POLICY',
    env: 'CONSOLE_ROOM_CONSOLE_AUTH',
    default: 'names',
    schema: ConsoleAuth,
    help: 'consoles prove an SSH key: off, names (for names that have a key) or required',
    doc: 'whether consoles prove an SSH key (`runspec-room keys add`): `off`, never; `names`, a name that has an enrolled key can only be used by proving it, other names work as before, so plain consoles keep working; `required`, every console proves a key and plain hellos are refused',
    table: 'configuration',
  },
  admins: {
    env: 'CONSOLE_ROOM_ADMINS',
    schema: NameList,
    help: 'comma-separated admin names (signed-in or key-proven only) who may kick, ban, mute, delete, revoke',
    doc: 'comma-separated names that may kick, ban, mute, delete messages and revoke keys: a signed-in browser, or a console that proved a key, with that name. A dev-mode or unproven name is never an admin',
    table: 'configuration',
  },
  metricsPort: {
    flag: '--metrics-port',
    arg: 'PORT',
    env: 'CONSOLE_ROOM_METRICS_PORT',
    schema: Port,
    help: 'serve Prometheus metrics at /metrics on this port (off unless set; 0 picks a free one)',
    doc: 'serve Prometheus metrics at `/metrics` on this port, a listener of its own (off unless set; `0` picks a free one)',
    table: 'configuration',
  },
  metricsHost: {
    env: 'CONSOLE_ROOM_METRICS_HOST',
    default: LOOPBACK,
    schema: Host,
    help: 'address the metrics listener binds',
    doc: 'address the metrics listener binds; keep it off the public network (the metrics name no one, but show traffic)',
    table: 'configuration',
  },
  retentionSeconds: {
    env: 'CONSOLE_ROOM_RETENTION',
    schema: duration('1h', '36500d', 's'),
    help: 'delete messages (whispers too) older than this, such as 90d (off unless set)',
    doc: 'delete messages, whispers included, older than this, such as `90d` (off unless set): a few hundred at a time, every ten minutes. Sequence numbers never go back; a resume from before what is kept gets `complete: false`',
    table: 'configuration',
  },
  commitDelayMs: {
    env: 'CONSOLE_ROOM_COMMIT_DELAY',
    default: '0ms',
    schema: duration('0ms', '100ms'),
    help: 'least time between two commits, so more messages share one fsync (CPU for latency)',
    doc: 'the least time between the starts of two commits of messages, such as `2ms`: what arrives meanwhile shares the next commit and its fsync, and 16 messages waiting commit at once. Each commit costs the server about as much CPU as the rest of a message, so a quiet server spends less CPU per message, and each message may wait up to this long more for its echo ([Performance](#performance))',
    table: 'configuration',
  },
  allowHttp: {
    env: 'CONSOLE_ROOM_OIDC_ALLOW_HTTP',
    default: 'off',
    schema: Switch,
    help: '1 allows a plain-http issuer on a loopback address (local development only)',
    doc: '`1` allows a plain-http issuer on a loopback address, for local development only',
    table: 'configuration',
  },
  rateBurst: {
    env: 'CONSOLE_ROOM_RATE_BURST',
    default: '200',
    schema: Count,
    help: 'frames a connection may send at once before the rate applies',
    doc: 'frames (messages, presence changes, anything else, refused frames included) a connection may send at once',
    table: 'limits',
  },
  ratePerSecond: {
    env: 'CONSOLE_ROOM_RATE_PER_SECOND',
    default: '50',
    schema: Count,
    help: 'frames per second after the burst; a faster sender is slowed, never dropped',
    doc: "the rate after the burst. A faster sender is **slowed, never dropped**: the server stops reading that connection until its tokens refill, so the excess waits in the client's and the kernel's buffers and then arrives, in order. An opted-in client gets one `notice` frame (`rate_limited`, `retry_after_ms`) when slowing starts",
    table: 'limits',
  },
  // Under a second a slowed sender that pauses briefly is still the same flood (throttle.ts), so
  // the rate would drop senders it should only slow. Past 24 days Node's timers overflow.
  floodTimeoutMs: {
    env: 'CONSOLE_ROOM_FLOOD_TIMEOUT',
    default: '30s',
    schema: duration('1s', '24d'),
    help: 'a connection slowed by the rate without a break for this long is closed',
    doc: 'a connection slowed without a break (a second with nothing waiting) for this long is closed: WebSocket close 4429, a console with a log line. What it was echoed stays stored',
    table: 'limits',
  },
  personRateBurst: {
    env: 'CONSOLE_ROOM_PERSON_RATE_BURST',
    default: '1000',
    schema: Count,
    help: "frames all of one person's connections (unsigned browsers: one address's) may send at once",
    doc: "frames all of one person's connections to a node together may send at once, besides each connection's own rate: a browser not signed in counts with the others from its address (IPv6: its /64), a console without a key by its name apart from the person. Many connections opened at once cannot put their whole bursts in together. Slowed the same way, never dropped; waiting connections take turns, a frame each, and one waiting only for this rate is not closed as a flood",
    table: 'limits',
  },
  personRatePerSecond: {
    env: 'CONSOLE_ROOM_PERSON_RATE_PER_SECOND',
    default: '200',
    schema: Count,
    help: "frames per second all of one person's (or address's) connections may send after that burst",
    doc: "the rate of all of one person's connections together (an unsigned browser's: its address's) after that burst",
    table: 'limits',
  },
  apiBurst: {
    env: 'CONSOLE_ROOM_API_BURST',
    default: '60',
    schema: Count,
    help: 'HTTP API requests one person or address may make at once before the rate applies',
    doc: 'requests to `/api/` (history, search, export, keys) one person may make at once; without sign-in, one client address (through trusted proxies; an IPv6 address counts with its /64)',
    table: 'limits',
  },
  apiPerSecond: {
    env: 'CONSOLE_ROOM_API_PER_SECOND',
    default: '10',
    schema: Count,
    help: 'HTTP API requests per second after the burst; past it, 429 with Retry-After',
    doc: 'the rate after the burst. A request past it is answered 429 `rate_limited` with `Retry-After` (seconds) and nothing it asked for is done; a WebSocket is not counted, and `/healthz` and the page are not `/api/`',
    table: 'limits',
  },
  maxBrowsers: {
    env: 'CONSOLE_ROOM_MAX_BROWSERS',
    default: '20000',
    schema: Count,
    help: 'open browser connections in total',
    doc: 'open browser connections; more are refused with HTTP 503. On Node the door also holds at most 1,024 connections more than this of any kind (pages, requests, connections yet to send one); past that a new connection is closed as it comes',
    table: 'limits',
  },
  maxBrowsersPerIp: {
    env: 'CONSOLE_ROOM_MAX_BROWSERS_PER_IP',
    default: '100',
    schema: Count,
    help: 'open browser connections per client address',
    doc: 'open browser connections per client address (through trusted proxies; an IPv6 address counts with its /64); more get 503. On Node an address connected directly (not a `--trust-proxy` one) may also hold at most this many connections that are not WebSockets (waiting for a request, in one, or kept alive), and at least 64; past that its longest idle one is closed to make room, or with none idle the new one as it comes',
    table: 'limits',
  },
  maxConsoles: {
    env: 'CONSOLE_ROOM_MAX_CONSOLES',
    default: '20000',
    schema: Count,
    help: 'open console connections in total',
    doc: 'open console connections; more are closed at once, before their hello is read, with a log line (then one each 10 s while it lasts, saying how many more)',
    table: 'limits',
  },
  maxRooms: {
    env: 'CONSOLE_ROOM_MAX_ROOMS',
    default: '100',
    schema: Count,
    help: 'rooms one connection may be in at once',
    doc: 'rooms one connection may be in at once (protocol 2); a join past it is refused with `too_many_rooms`',
    table: 'limits',
  },
  maxUnsentBytes: {
    env: 'CONSOLE_ROOM_MAX_UNSENT',
    default: '1048576',
    schema: Count,
    help: 'bytes of unsent data after which a slow member is disconnected',
    doc: 'bytes of unsent data a member may hold; a member past it when a new batch arrives is disconnected (WebSocket close 4008)',
    table: 'limits',
  },
  // A heartbeat or hello deadline near zero would spin the server; past 24 days Node's timers
  // overflow and fire at once.
  heartbeatMs: {
    env: 'CONSOLE_ROOM_HEARTBEAT',
    default: `${HEARTBEAT_MS / 1000}s`,
    schema: duration('100ms', '24d'),
    help: 'ping interval; a peer silent for two intervals is disconnected',
    doc: 'browsers are pinged (WebSocket ping), opted-in consoles get a `ping` frame; a peer that has not answered by the next ping is disconnected, so a dead peer leaves within two intervals. Seed consoles are not pinged: one leaves when its connection closes (over `ssh -W`, when sshd ends the session)',
    table: 'limits',
  },
  helloTimeoutMs: {
    env: 'CONSOLE_ROOM_HELLO_TIMEOUT',
    default: `${HELLO_TIMEOUT_MS / 1000}s`,
    schema: duration('100ms', '24d'),
    help: 'a console that sends no valid hello by then is closed',
    table: 'limits',
  },
} as const satisfies Record<string, Setting>;

/** The settings as rows, in table order. */
export const SETTING_ROWS: readonly Setting[] = Object.values(SETTINGS);

/** Flags that are not settings: they print something and exit. */
export const ACTIONS = [
  {
    flag: '--help',
    short: '-h',
    help: 'print this help and exit',
    doc: 'list flags and environment variables',
  },
  { flag: '--version', short: '-V', help: 'print the version and exit', doc: 'print the version' },
] as const;

/** Environment variables earlier versions read, and what took their place. */
export const RETIRED: ReadonlyArray<readonly [string, string]> = [
  [
    'CONSOLE_ROOM_FLOOD_DISCONNECT',
    `a sender over its rate is now slowed, never dropped; ${SETTINGS.floodTimeoutMs.env} says when one that never slows down is closed`,
  ],
];
