// The command line as users meet it: the built server run as a process.
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import pkg from '../package.json' with { type: 'json' };
import { SETTING_ROWS, settingName } from '../src/config.ts';
import { VERSION } from '../src/version.ts';
import { spawnServerProcess } from '../support/server-process.ts';
import { browserClient, consoleClient, ofType } from './helpers/clients.ts';
import { runProcess } from './helpers/process.ts';
import { tempDir } from './helpers/server.ts';
import { MAIN, runCli, type Spawned, spawnServer } from './helpers/spawn.ts';

const running: Spawned[] = [];
const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const s of running.splice(0)) if (s.proc.exitCode === null) await s.stop('SIGKILL');
  for (const c of cleanups.splice(0)) await c();
});

async function dbPath(): Promise<string> {
  const tmp = await tempDir();
  cleanups.push(tmp.cleanup);
  return `${tmp.dir}/room.db`;
}

const oneLine = (text: string): void => {
  expect(text.trim().split('\n')).toHaveLength(1);
  expect(text).not.toMatch(/\n\s+at /u); // no stack trace
};

describe('command line', () => {
  it('--help lists every flag and environment variable', async () => {
    const { code, stdout } = await runCli(['--help']);
    expect(code).toBe(0);
    for (const word of [
      '--host',
      '--port',
      '--ndjson-port',
      '--db',
      '--ndjson-only',
      '--log-level',
      '--version',
      'CONSOLE_ROOM_HOST',
      'CONSOLE_ROOM_PORT',
      'CONSOLE_ROOM_NDJSON_PORT',
      'CONSOLE_ROOM_DB',
      'CONSOLE_ROOM_DB_AUTH_TOKEN',
      'CONSOLE_ROOM_LOG_LEVEL',
      '--tls-cert',
      '--tls-key',
      '--trust-proxy',
      'CONSOLE_ROOM_OIDC_ISSUER',
      'CONSOLE_ROOM_OIDC_METADATA_URL',
      'CONSOLE_ROOM_OIDC_CLIENT_ID',
      'CONSOLE_ROOM_OIDC_CLIENT_SECRET',
      'CONSOLE_ROOM_SESSION_SECRET',
      'CONSOLE_ROOM_PUBLIC_URL',
      'CONSOLE_ROOM_SESSION_IDLE',
      'CONSOLE_ROOM_SESSION_MAX',
      'CONSOLE_ROOM_RATE_BURST',
      'CONSOLE_ROOM_RATE_PER_SECOND',
      'CONSOLE_ROOM_FLOOD_TIMEOUT',
      'CONSOLE_ROOM_API_BURST',
      'CONSOLE_ROOM_API_PER_SECOND',
      'CONSOLE_ROOM_MAX_BROWSERS',
      'CONSOLE_ROOM_MAX_BROWSERS_PER_IP',
      'CONSOLE_ROOM_MAX_CONSOLES',
      'CONSOLE_ROOM_MAX_UNSENT',
      'CONSOLE_ROOM_HEARTBEAT',
      'CONSOLE_ROOM_HELLO_TIMEOUT',
    ]) {
      expect(stdout).toContain(word);
    }
  });

  it('--help shows every setting of the table with its environment variable and default', async () => {
    const { stdout } = await runCli(['--help']);
    const lines = stdout.split('\n').map((line) => line.trim());
    for (const setting of SETTING_ROWS) {
      const name = settingName(setting);
      const line = lines.find((l) => l.startsWith(`${name} `));
      expect(line, name).toBeDefined();
      if (setting.flag && setting.env) expect(line).toContain(`env ${setting.env}`);
      if (setting.default !== undefined) expect(line).toContain(`default ${setting.default}`);
    }
  });

  it('--version prints the package version', async () => {
    const { code, stdout } = await runCli(['--version']);
    expect(code).toBe(0);
    expect(stdout.trim()).toBe(VERSION);
    expect(VERSION).toBe(pkg.version);
  });

  it('npx runspec-room runs the built server from a checkout, as the README says', async () => {
    const root = fileURLToPath(new URL('..', import.meta.url));
    const { code, stdout, stderr } = await runProcess('npx', ['--no-install', 'runspec-room', '--version'], {
      cwd: root,
    });
    expect(stderr).not.toMatch(/Permission denied/u);
    expect(code).toBe(0);
    expect(stdout.trim()).toBe(VERSION);
  });

  it('ends with one clear line and exit code 2 on a bad flag or value', async () => {
    for (const args of [
      ['--bogus'],
      ['--port', 'http'],
      ['--port', '70000'],
      ['--log-level', 'loud'],
      ['--trust-proxy', '10.0.0.0/99'],
      ['--trust-proxy', '999.1.1.1'],
      ['--trust-proxy', '::1/129'],
    ]) {
      const { code, stderr } = await runCli(args);
      expect(code).toBe(2);
      oneLine(stderr);
      expect(stderr).toMatch(/^runspec-room: error: /u);
      if (args[0] === '--trust-proxy') expect(stderr).toContain('--trust-proxy');
    }
    const { stderr } = await runCli([], { CONSOLE_ROOM_PORT: 'eighty' });
    expect(stderr).toContain('CONSOLE_ROOM_PORT');
  });

  it('ends with one line naming the variable and exit code 2 on a bad duration or switch, even without sign-in', async () => {
    const db = await dbPath();
    const cases: Array<Record<string, string>> = [
      { CONSOLE_ROOM_HEARTBEAT: 'soon' },
      { CONSOLE_ROOM_HEARTBEAT: '0s' },
      { CONSOLE_ROOM_SESSION_IDLE: 'forever' },
      { CONSOLE_ROOM_OIDC_ALLOW_HTTP: 'maybe' },
    ];
    for (const env of cases) {
      // A deadline: a server that took the value would run until killed.
      const args = [MAIN, '--ndjson-only', '--ndjson-port', '0', '--db', db];
      const { code, stderr } = await runProcess(process.execPath, args, { env, deadlineMs: 20_000 });
      expect(code).toBe(2);
      oneLine(stderr);
      expect(stderr).toMatch(new RegExp(`^runspec-room: error: ${Object.keys(env)[0]} "`, 'u'));
    }
  });

  it('ends with one clear line when a port is in use', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const db = await dbPath();
      const web = await runCli(['--port', String(port), '--ndjson-port', '0', '--db', db]);
      expect(web.code).toBe(1);
      oneLine(
        web.stderr
          .split('\n')
          .filter((l) => l.includes('error'))
          .join('\n'),
      );
      expect(web.stderr).toContain(`port ${port} on 127.0.0.1 is already in use`);
      const nd = await runCli(['--port', '0', '--ndjson-port', String(port), '--db', db]);
      expect(nd.code).toBe(1);
      expect(nd.stderr).toContain(`console door port ${port} is already in use`);
    } finally {
      blocker.close();
    }
  });

  it('ends with one clear line when the database cannot be written', async () => {
    const { code, stderr } = await runCli([
      '--port',
      '0',
      '--ndjson-port',
      '0',
      '--db',
      '/nonexistent/dir/room.db',
    ]);
    expect(code).toBe(1);
    oneLine(stderr);
    expect(stderr).toContain('cannot open database /nonexistent/dir/room.db');
  });

  it('flags win over environment variables', async () => {
    const db = await dbPath();
    const s = await spawnServer(['--port', '0', '--ndjson-port', '0'], {
      CONSOLE_ROOM_DB: db,
      CONSOLE_ROOM_PORT: '1',
      CONSOLE_ROOM_NDJSON_PORT: '1',
    });
    running.push(s);
    expect(s.consolePort).toBeGreaterThan(1);
    expect(s.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/u);
  });

  it('says at start when the descriptor limit is below what the connection limits allow, and how to fix it', async () => {
    // A hard limit (sh's ulimit sets both; Node raises a soft limit to the hard one by itself).
    const start = async (env: Record<string, string> = {}): Promise<string> => {
      const s = await spawnServerProcess(
        'sh',
        [
          '-c',
          'ulimit -n 2048 && exec "$0" "$@"',
          process.execPath,
          MAIN,
          '--port',
          '0',
          '--ndjson-port',
          '0',
          '--db',
          await dbPath(),
        ],
        { env },
      );
      running.push(s);
      const output = s.output();
      await s.stop();
      return output;
    };
    const shipped = await start();
    expect(shipped).toMatch(
      /warn {2}the descriptor limit is below what the connection limits allow limit=2048 needed=41088 fix="raise it \(ulimit -n, LimitNOFILE=/u,
    );
    // Limits that fit: nothing to say.
    const fitting = await start({ CONSOLE_ROOM_MAX_BROWSERS: '500', CONSOLE_ROOM_MAX_CONSOLES: '400' });
    expect(fitting).toContain(' ready ');
    expect(fitting).not.toContain('descriptor limit');
  });

  it('--ndjson-only serves consoles and no web door', async () => {
    const s = await spawnServer(['--ndjson-only', '--ndjson-port', '0', '--db', await dbPath()]);
    running.push(s);
    expect(s.url).toBeUndefined();
    expect(s.output()).not.toContain('browser door');
    const c = await consoleClient(s.consolePort, { type: 'hello', room: 'ops', user: 'alice', protocol: 2 });
    c.send({ type: 'message', text: 'console only' });
    await c.waitFor((f) => f.type === 'message');
    c.close();
  });

  it('--ndjson-only does not load the web stack', async () => {
    const db = await dbPath();
    // A loader hook that reports Hono's packages when resolved. (ws is not checked: @libsql/client loads it.)
    const hook = `data:text/javascript,${encodeURIComponent(
      "export async function resolve(s,c,n){if(/^(hono|@hono\\/)/.test(s))process.stderr.write('LOADED '+s+'\\n');return n(s,c)}",
    )}`;
    const NODE_OPTIONS = `--import=data:text/javascript,${encodeURIComponent(`import{register}from'node:module';register(${JSON.stringify(hook)});`)}`;
    const s = await spawnServer(['--ndjson-only', '--ndjson-port', '0', '--db', db], { NODE_OPTIONS });
    running.push(s);
    expect(s.output()).not.toContain('LOADED');
    const full = await spawnServer(['--port', '0', '--ndjson-port', '0', '--db', await dbPath()], {
      NODE_OPTIONS,
    });
    running.push(full);
    expect(full.output()).toContain('LOADED hono');
  });

  it('on SIGTERM finishes what was accepted, closes browsers with 1012 and exits 0', async () => {
    const db = await dbPath();
    const s = await spawnServer(['--port', '0', '--ndjson-port', '0', '--db', db]);
    running.push(s);
    const browser = await browserClient(s.url as string, 'carol', 'ops');
    await browser.waitFor((f) => f.type === 'welcome');
    const c = await consoleClient(s.consolePort, { type: 'hello', room: 'ops', user: 'alice', protocol: 2 });
    await c.waitFor((f) => f.type === 'welcome');
    for (let i = 0; i < 200; i++) c.send({ type: 'message', text: `burst ${i}` });
    await c.waitFor((f) => f.type === 'message');
    const code = await s.stop('SIGTERM');
    expect(code).toBe(0);
    expect((await browser.closed).code).toBe(1012);
    await c.closed;
    expect(s.output()).toContain('stopped');
    // Every echo the console saw is stored, and the browser saw the same messages in the same order.
    const echoed = ofType(c.frames, 'message').map((f) => f.id);
    expect(ofType(browser.frames, 'message').map((f) => f.id)).toEqual(echoed);
    const again = await spawnServer(['--port', '0', '--ndjson-port', '0', '--db', db]);
    running.push(again);
    const reader = await browserClient(again.url as string, 'reader', 'ops', 0);
    if (echoed.length > 0) await reader.waitFor((f) => f.type === 'message' && f.id === echoed.at(-1));
    const stored = ofType(reader.frames, 'message').map((f) => f.id);
    for (const id of echoed) expect(stored).toContain(id);
    reader.close();
  });
});
