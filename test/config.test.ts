// Flags and environment become one validated configuration; mistakes are one clear ConfigError.
import { describe, expect, it } from 'vitest';
import { type Config, ConfigError, parseCommand } from '../src/config.ts';

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

  it('refuses unknown flags and bad ports with the flag named', () => {
    expect(() => run(['--prot', '1'])).toThrow('--prot');
    expect(() => run(['--ndjson-port', '99999'])).toThrow('--ndjson-port');
  });
});
