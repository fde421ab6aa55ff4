// Flags and environment become one validated configuration; mistakes are one clear ConfigError.
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { README, withSettingsTables } from '../scripts/config-docs.ts';
import { type Config, ConfigError, DEFAULT_LIMITS, parseCommand, SETTING_ROWS } from '../src/config.ts';

const run = (argv: string[], env: Record<string, string> = {}): Config => {
  const command = parseCommand(argv, env);
  if (command.kind !== 'run') throw new Error('expected a run command');
  return command.config;
};

const signIn = {
  CONSOLE_ROOM_OIDC_ISSUER: 'https://idp.example.com',
  CONSOLE_ROOM_OIDC_CLIENT_ID: 'room',
  CONSOLE_ROOM_OIDC_CLIENT_SECRET: 'secret',
  CONSOLE_ROOM_SESSION_SECRET: 'k'.repeat(32),
  CONSOLE_ROOM_PUBLIC_URL: 'https://room.example.com',
};

describe('configuration', () => {
  it('uses the original defaults', () => {
    const config = run([]);
    expect(config).toMatchObject({
      host: '127.0.0.1',
      port: 8080,
      ndjsonPort: 8765,
      db: './console_room.db',
      ndjsonOnly: false,
    });
    expect(config.auth).toBeUndefined();
    expect(config.trustProxy).toEqual(['loopback']);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('lets flags win over the environment', () => {
    expect(run(['--port', '9000'], { CONSOLE_ROOM_PORT: '7000' }).port).toBe(9000);
    expect(run([], { CONSOLE_ROOM_PORT: '7000' }).port).toBe(7000);
  });

  it('turns on sign-in when every setting is there, with session lifetimes', () => {
    const config = run([], { ...signIn, CONSOLE_ROOM_SESSION_IDLE: '30m', CONSOLE_ROOM_SESSION_MAX: '2d' });
    expect(config.auth).toMatchObject({
      publicOrigin: 'https://room.example.com',
      scopes: ['openid', 'profile', 'email'],
      sessionIdleSeconds: 1800,
      sessionMaxSeconds: 172800,
    });
  });

  it.each([
    [{ CONSOLE_ROOM_OIDC_CLIENT_ID: 'room' }, 'missing'],
    [{ ...signIn, CONSOLE_ROOM_SESSION_SECRET: 'short' }, 'at least 32'],
    [{ ...signIn, CONSOLE_ROOM_PUBLIC_URL: 'https://room.example.com/chat' }, 'without a path'],
    [{ ...signIn, CONSOLE_ROOM_PUBLIC_URL: 'http://room.example.com' }, 'loopback'],
    [{ ...signIn, CONSOLE_ROOM_OIDC_SCOPES: 'profile email' }, 'openid'],
    [{ ...signIn, CONSOLE_ROOM_SESSION_IDLE: 'forever' }, 'duration'],
  ])('refuses bad sign-in settings (%#)', (env, words) => {
    expect(() => run([], env)).toThrow(ConfigError);
    expect(() => run([], env)).toThrow(words);
  });

  it('takes TLS files only as a pair', () => {
    expect(() => run(['--tls-cert', 'a.pem'])).toThrow('go together');
    expect(run(['--tls-cert', 'a.pem', '--tls-key', 'k.pem']).tls).toEqual({
      certFile: 'a.pem',
      keyFile: 'k.pem',
    });
  });

  it('parses the trusted proxy list and refuses anything that is not an address', () => {
    expect(run(['--trust-proxy', '10.0.0.0/8, 192.168.1.10,::1']).trustProxy).toEqual([
      '10.0.0.0/8',
      '192.168.1.10',
      '::1',
    ]);
    expect(run(['--trust-proxy', 'none']).trustProxy).toEqual([]);
    expect(() => run(['--trust-proxy', 'proxy.example.com'])).toThrow(ConfigError);
    for (const bad of ['10.0.0.0/99', '999.1.1.1', '10.0.0.0/33', 'fe80::/129', '1.2.3', '::g'])
      expect(() => run(['--trust-proxy', bad])).toThrow('--trust-proxy');
    expect(run(['--trust-proxy', '10.0.0.0/32,fe80::/10']).trustProxy).toEqual(['10.0.0.0/32', 'fe80::/10']);
  });

  it('names a retired variable once instead of silently ignoring it', () => {
    expect(run([]).warnings).toEqual([]);
    const { warnings } = run([], { CONSOLE_ROOM_FLOOD_DISCONNECT: '50' });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('CONSOLE_ROOM_FLOOD_DISCONNECT');
    expect(warnings[0]).toContain('CONSOLE_ROOM_FLOOD_TIMEOUT');
  });

  it('reads the origins allowed in dev mode, and refuses anything that is not an origin', () => {
    expect(run([]).allowedOrigins).toEqual([]);
    expect(
      run([], { CONSOLE_ROOM_ALLOWED_ORIGINS: 'https://room.example.com, http://10.0.0.5:8080/' })
        .allowedOrigins,
    ).toEqual(['https://room.example.com', 'http://10.0.0.5:8080']);
    for (const bad of [
      'room.example.com',
      'https://room.example.com/chat',
      'ftp://x.example',
      'https://a@b.example',
    ])
      expect(() => run([], { CONSOLE_ROOM_ALLOWED_ORIGINS: bad })).toThrow('CONSOLE_ROOM_ALLOWED_ORIGINS');
  });

  it('refuses unknown flags and bad ports with the flag named', () => {
    expect(() => run(['--prot', '1'])).toThrow('--prot');
    expect(() => run(['--ndjson-port', '99999'])).toThrow('--ndjson-port');
  });

  it('reads every duration in ms, s, m, h or d', () => {
    const config = run([], {
      ...signIn,
      CONSOLE_ROOM_HEARTBEAT: '1h',
      CONSOLE_ROOM_HELLO_TIMEOUT: '500ms',
      CONSOLE_ROOM_FLOOD_TIMEOUT: '2m',
      CONSOLE_ROOM_SESSION_IDLE: '90s',
      CONSOLE_ROOM_SESSION_MAX: '1d',
    });
    expect(config.limits).toMatchObject({
      heartbeatMs: 3_600_000,
      helloTimeoutMs: 500,
      floodTimeoutMs: 120_000,
    });
    expect(config.auth).toMatchObject({ sessionIdleSeconds: 90, sessionMaxSeconds: 86_400 });
    expect(run([], { CONSOLE_ROOM_HEARTBEAT: '500ms' }).limits.heartbeatMs).toBe(500);
    expect(run([], { CONSOLE_ROOM_HELLO_TIMEOUT: '2d' }).limits.helloTimeoutMs).toBe(172_800_000);
    expect(run([], { ...signIn, CONSOLE_ROOM_SESSION_IDLE: '3000ms' }).auth?.sessionIdleSeconds).toBe(3);
    expect(run([], { CONSOLE_ROOM_COMMIT_DELAY: '2ms' }).commitDelayMs).toBe(2);
    expect(run([]).commitDelayMs).toBe(0);
    expect(run([]).dbStatementTimeoutMs).toBe(10_000);
    expect(run([], { CONSOLE_ROOM_DB_STATEMENT_TIMEOUT: '2m' }).dbStatementTimeoutMs).toBe(120_000);
  });

  it.each([
    'CONSOLE_ROOM_HEARTBEAT',
    'CONSOLE_ROOM_HELLO_TIMEOUT',
    'CONSOLE_ROOM_FLOOD_TIMEOUT',
    'CONSOLE_ROOM_SESSION_IDLE',
    'CONSOLE_ROOM_SESSION_MAX',
    'CONSOLE_ROOM_COMMIT_DELAY',
    'CONSOLE_ROOM_DB_STATEMENT_TIMEOUT',
  ])('refuses a duration that is not one, naming %s, with or without sign-in', (name) => {
    for (const bad of ['soon', '25', '-5s', '1.5h', '10 years', 's'])
      for (const env of [{ [name]: bad }, { ...signIn, [name]: bad }]) {
        expect(() => run([], env)).toThrow(ConfigError);
        expect(() => run([], env)).toThrow(`${name} ${JSON.stringify(bad)}: expected a duration`);
      }
  });

  it.each([
    ['CONSOLE_ROOM_HEARTBEAT', '0s', 'at least 100ms'],
    ['CONSOLE_ROOM_HEARTBEAT', '99ms', 'at least 100ms'],
    ['CONSOLE_ROOM_HEARTBEAT', '25d', 'at most 24d'],
    ['CONSOLE_ROOM_HELLO_TIMEOUT', '0ms', 'at least 100ms'],
    ['CONSOLE_ROOM_HELLO_TIMEOUT', '600h', 'at most 24d'],
    ['CONSOLE_ROOM_FLOOD_TIMEOUT', '500ms', 'at least 1s'],
    ['CONSOLE_ROOM_FLOOD_TIMEOUT', '99999m', 'at most 24d'],
    ['CONSOLE_ROOM_SESSION_IDLE', '0s', 'at least 1s'],
    ['CONSOLE_ROOM_SESSION_IDLE', '1500ms', 'a whole number of seconds'],
    ['CONSOLE_ROOM_SESSION_MAX', '401d', 'at most 400d'],
    ['CONSOLE_ROOM_COMMIT_DELAY', '1s', 'at most 100ms'],
    ['CONSOLE_ROOM_DB_STATEMENT_TIMEOUT', '0s', 'at least 100ms'],
    ['CONSOLE_ROOM_DB_STATEMENT_TIMEOUT', '2h', 'at most 1h'],
  ])('refuses %s=%s, which the server could not run with', (name, value, words) => {
    expect(() => run([], { ...signIn, [name]: value })).toThrow(ConfigError);
    expect(() => run([], { ...signIn, [name]: value })).toThrow(`${name} "${value}": must be ${words}`);
  });

  it('reads a switch as 1/true/yes/on or 0/false/no/off and refuses anything else', () => {
    const allowHttp = (value: string) =>
      run([], { ...signIn, CONSOLE_ROOM_OIDC_ALLOW_HTTP: value }).auth?.allowHttp;
    for (const on of ['1', 'true', 'yes', 'on', 'ON', 'True']) expect(allowHttp(on)).toBe(true);
    for (const off of ['0', 'false', 'no', 'off', 'Off']) expect(allowHttp(off)).toBe(false);
    expect(run([], signIn).auth?.allowHttp).toBe(false);
    for (const bad of ['maybe', '2', 'enabled']) {
      expect(() => allowHttp(bad)).toThrow(ConfigError);
      expect(() => allowHttp(bad)).toThrow(`CONSOLE_ROOM_OIDC_ALLOW_HTTP ${JSON.stringify(bad)}`);
      expect(() => run([], { CONSOLE_ROOM_OIDC_ALLOW_HTTP: bad })).toThrow('CONSOLE_ROOM_OIDC_ALLOW_HTTP');
    }
  });

  it('names the environment variable a bad value came from, and never repeats a secret', () => {
    expect(() => run([], { CONSOLE_ROOM_TRUST_PROXY: '10.0.0.1,proxy.example.com' })).toThrow(
      'CONSOLE_ROOM_TRUST_PROXY "10.0.0.1,proxy.example.com": "proxy.example.com" is not an IP address',
    );
    expect(() => run([], { CONSOLE_ROOM_MAX_BROWSERS: 'lots' })).toThrow('CONSOLE_ROOM_MAX_BROWSERS "lots"');
    expect(() => run([], { CONSOLE_ROOM_LOG_LEVEL: 'loud' })).toThrow('CONSOLE_ROOM_LOG_LEVEL "loud"');
    const secret = 'hunter2-hunter2';
    expect(() => run([], { ...signIn, CONSOLE_ROOM_SESSION_SECRET: secret })).toThrow(
      /^CONSOLE_ROOM_SESSION_SECRET: must be at least 32 characters/u,
    );
  });

  it('ships the limits the README states', () => {
    expect(DEFAULT_LIMITS).toEqual({
      rateBurst: 200,
      ratePerSecond: 50,
      floodTimeoutMs: 30_000,
      personRateBurst: 1000,
      personRatePerSecond: 200,
      apiBurst: 60,
      apiPerSecond: 10,
      maxBrowsers: 20_000,
      maxBrowsersPerIp: 100,
      maxConsoles: 20_000,
      maxRooms: 100,
      maxUnsentBytes: 1024 * 1024,
      heartbeatMs: 25_000,
      helloTimeoutMs: 10_000,
    });
    expect(run([]).limits).toEqual(DEFAULT_LIMITS);
    expect(Object.isFrozen(DEFAULT_LIMITS)).toBe(true);
  });

  it("the README's Configuration and Limits tables are the settings table (npm run docs:config writes them)", async () => {
    const readme = await readFile(README, 'utf8');
    expect(withSettingsTables(readme)).toBe(readme);
    const rows = readme
      .split('\n')
      .filter((line) => line.startsWith('|'))
      .map((line) => line.split(/(?<!\\)\|/u).map((cell) => cell.trim()));
    for (const setting of SETTING_ROWS) {
      // The default is the cell after the environment variable (after the empty one for a flag alone).
      const [name, skip] = setting.env ? [`\`${setting.env}\``, 1] : [`\`${setting.flag}\``, 2];
      const row = rows.find((c) => c.includes(name));
      expect(row, name).toBeDefined();
      expect(row?.[(row?.indexOf(name) ?? 0) + skip], name).toBe(
        setting.default === undefined ? '' : `\`${setting.default}\``,
      );
    }
  });
});
