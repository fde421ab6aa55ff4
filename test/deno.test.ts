// The server on Deno (`deno task start`): both doors over real sockets, the page, TLS, the CLI, shutdown.
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { delimiter, dirname, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type ServerProcess, spawnServerProcess } from '../support/server-process.ts';
import { browserClient, consoleClient, ofType, upgradeStatus } from './helpers/clients.ts';
import { describeDoors } from './helpers/door-suite.ts';
import { makePki } from './helpers/pki.ts';
import { findDeno, ROOT, requireUnderCi, runProcess } from './helpers/process.ts';
import { tempDir } from './helpers/server.ts';
import { untilOutput } from './helpers/spawn.ts';
import { haveSshKeygen, makeKey } from './helpers/ssh.ts';

const deno = findDeno();
requireUnderCi(
  'Deno',
  deno !== undefined,
  'no Deno binary was found: run scripts/install-deno.sh, put deno on PATH or set DENO_BIN',
);

/** The environment of a Deno run: this Deno first on PATH, as for someone who installed it. */
const denoEnv = (env: Record<string, string>): Record<string, string> => ({
  PATH: `${dirname(deno ?? '')}${delimiter}${process.env.PATH ?? ''}`,
  ...env,
});

/** `deno task start …` in the repository, exactly as README tells people to run it. */
const startDeno = (args: string[], env: Record<string, string> = {}): Promise<ServerProcess> =>
  spawnServerProcess(deno as string, ['task', 'start', ...args], { cwd: ROOT, env: denoEnv(env) });
const runDeno = (args: string[], env: Record<string, string> = {}) =>
  runProcess(deno as string, ['task', 'start', ...args], { cwd: ROOT, env: denoEnv(env) });

let dir: string;
let cleanup: () => Promise<void>;
let server: ServerProcess;

const extra: ServerProcess[] = [];

describe.skipIf(!deno)('on Deno', () => {
  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir());
    server = await startDeno(['--port', '0', '--ndjson-port', '0', '--db', join(dir, 'room.db')]);
  }, 60_000);

  afterAll(async () => {
    await server?.stop('SIGKILL');
    await cleanup?.();
  });

  afterEach(async () => {
    for (const s of extra.splice(0)) await s.stop('SIGKILL');
  });

  it('runs on Deno and says so in its ready line', () => {
    expect(server.output()).toMatch(/ ready version=\S+ runtime=deno\/2\./u);
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/u);
  });

  describeDoors(() => ({ consolePort: server.consolePort, url: server.url as string }), 'deno');

  describe('browser door on Deno', () => {
    it('serves the page with its Content-Security-Policy, the static files and /healthz', async () => {
      const page = await fetch(`${server.url}/`);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
      expect(await page.text()).toContain('/static/app.js');
      const script = await fetch(`${server.url}/static/app.js`);
      expect(script.headers.get('content-type')).toContain('text/javascript');
      const etag = script.headers.get('etag') ?? '';
      expect(
        (await fetch(`${server.url}/static/app.js`, { headers: { 'if-none-match': etag } })).status,
      ).toBe(304);
      const health = await fetch(`${server.url}/healthz`);
      expect(health.status).toBe(200);
      expect(await health.json()).toMatchObject({ status: 'ok', database: 'up' });
    });

    it('refuses an upgrade without a valid user and room with 400, and a plain GET with 426', async () => {
      const upgrade = (query: string) =>
        upgradeStatus(`${(server.url as string).replace('http', 'ws')}/ws${query}`);
      expect(await upgrade('?room=ops')).toBe(400);
      expect(await upgrade(`?user=${encodeURIComponent('evil\u202etxt')}&room=ops`)).toBe(400);
      expect(await upgrade('?user=alice&room=ops')).toBe(101);
      expect((await fetch(`${server.url}/ws?user=alice&room=ops`)).status).toBe(426);
    });

    it('an upgrade Deno refuses (no Sec-WebSocket-Key) gives its place back: more of them than the per-address limit, then a browser still gets in', async () => {
      const url = new URL(`${server.url}/ws?user=alice&room=keyless`);
      const keyless = (): Promise<number> =>
        new Promise((resolve, reject) => {
          const request = httpRequest(url, { headers: { connection: 'Upgrade', upgrade: 'websocket' } });
          request.on('response', (response) => {
            response.resume();
            resolve(response.statusCode ?? 0);
          });
          request.on('upgrade', (_response, socket) => {
            socket.destroy();
            resolve(101);
          });
          request.on('error', reject);
          request.end();
        });
      // The shipped limit: 100 open browser connections per client address.
      for (let i = 0; i < 110; i++) expect(await keyless()).toBe(400);
      expect(
        await upgradeStatus(`${(server.url as string).replace('http', 'ws')}/ws?user=alice&room=keyless`),
      ).toBe(101);
    });

    it('closes a socket that sends a frame over 64 KiB (1009) and nobody else notices', async () => {
      const other = await browserClient(server.url as string, 'hal', 'deno-big');
      await other.waitFor((f) => f.type === 'welcome');
      const big = await browserClient(server.url as string, 'ida', 'deno-big');
      await big.waitFor((f) => f.type === 'welcome');
      big.ws.send(JSON.stringify({ type: 'message', text: 'é'.repeat(33 * 1024) }));
      expect((await big.closed).code).toBe(1009);
      other.send({ type: 'message', text: 'unaffected' });
      await other.waitFor((f) => f.type === 'message' && f.text === 'unaffected');
      other.close();
    });

    it('slows a flooding browser and closes it (4429) once it holds more than it may (Deno cannot pause reading)', async () => {
      const watcher = await consoleClient(server.consolePort, {
        type: 'hello',
        room: 'deno-flood',
        user: 'watcher',
        protocol: 2,
      });
      await watcher.waitFor((f) => f.type === 'welcome');
      const flooder = await browserClient(server.url as string, 'flooder', 'deno-flood');
      await flooder.waitFor((f) => f.type === 'welcome');
      // 2 MB at once: past the 1 MiB the server holds for a connection it cannot stop reading.
      const frame = JSON.stringify({ type: 'message', text: 'z'.repeat(1000) });
      for (let i = 0; i < 2000; i++) flooder.ws.send(frame);
      // Deno sends the 4429 close frame, but closing a socket with unread data resets the connection,
      // and the reset can reach the client before the frame: the client then sees 1006.
      expect([4429, 1006]).toContain((await flooder.closed).code);
      await watcher.waitFor((f) => f.type === 'presence' && f.user === 'flooder' && f.status === 'away');
      // Commits keep their order: once the watcher's own message is echoed, whatever the flooder got
      // in before it was closed has been stored and delivered.
      watcher.send({ type: 'message', text: 'room still fine' });
      await watcher.waitFor((f) => f.type === 'message' && f.text === 'room still fine');
      // Its burst went through first; the excess it was still sending did not.
      const passed = ofType(watcher.frames, 'message').filter((f) => f.sender === 'flooder');
      expect(passed.length).toBeGreaterThanOrEqual(200);
      expect(passed.length).toBeLessThan(2000);
      await untilOutput(server, /browser closed: kept sending faster than its rate .*reason=held/u);
      watcher.close();
    });

    it('answers a binary frame with an error and keeps the socket', async () => {
      const b = await browserClient(server.url as string, 'gus', 'deno-binary');
      await b.waitFor((f) => f.type === 'welcome');
      b.ws.send(Buffer.from([1, 2, 3]));
      expect((await b.waitFor((f) => f.type === 'error')).code).toBe('binary_unsupported');
      b.send({ type: 'message', text: 'fine' });
      await b.waitFor((f) => f.type === 'message' && f.text === 'fine');
      b.close();
    });

    it('gives a joining browser the room history and resumes with ?since= exactly', async () => {
      const room = 'deno-history';
      const c = await consoleClient(server.consolePort, { type: 'hello', room, user: 'filler', protocol: 2 });
      await c.waitFor((f) => f.type === 'welcome');
      for (let i = 0; i < 6; i++) c.send({ type: 'message', text: `m${i}` });
      await c.waitFor((f) => f.type === 'message' && f.text === 'm5');
      const sent = ofType(c.frames, 'message');
      const first = await browserClient(server.url as string, 'carol', room);
      await first.waitFor((f) => f.type === 'message' && f.text === 'm5');
      expect(ofType(first.frames, 'message').map((f) => f.text)).toEqual(sent.map((f) => f.text));
      first.close();
      const since = sent[2]?.seq as number;
      const resumed = await browserClient(server.url as string, 'carol', room, since);
      const welcome = await resumed.waitFor((f) => f.type === 'welcome');
      expect(welcome.complete).toBe(true);
      await resumed.waitFor((f) => f.type === 'message' && f.text === 'm5');
      expect(ofType(resumed.frames, 'message').map((f) => f.text)).toEqual(['m3', 'm4', 'm5']);
      resumed.close();
      c.close();
    });

    it('answers a search frame and GET /api/rooms/:room/search from its search thread', async () => {
      const room = 'deno-search';
      const c = await consoleClient(server.consolePort, { type: 'hello', room, user: 'finder', protocol: 2 });
      await c.waitFor((f) => f.type === 'welcome');
      for (const text of ['the deploy starts', 'lunch', 'the deploy is done'])
        c.send({ type: 'message', text });
      await c.waitFor((f) => f.type === 'message' && f.text === 'the deploy is done');
      c.send({ type: 'search', room, q: 'deploy', ref: 'find' });
      const answer = await c.waitFor((f) => f.ref === 'find', 10_000);
      expect(answer).toMatchObject({ type: 'search', more: false });
      expect((answer.messages as Array<{ text: string }>).map((m) => m.text)).toEqual([
        'the deploy is done',
        'the deploy starts',
      ]);
      const response = await fetch(new URL(`/api/rooms/${room}/search?q=dep*`, server.url as string));
      expect(((await response.json()) as { messages: unknown[] }).messages).toHaveLength(2);
      c.close();
    });

    it('serves https and wss with --tls-cert and --tls-key', async () => {
      const tmp = await tempDir();
      try {
        const pki = makePki(tmp.dir);
        const tls = await startDeno([
          '--port',
          '0',
          '--ndjson-port',
          '0',
          '--db',
          join(tmp.dir, 'room.db'),
          '--tls-cert',
          pki.certFile,
          '--tls-key',
          pki.keyFile,
        ]);
        extra.push(tls);
        expect(tls.url).toMatch(/^https:\/\//u);
        const ws = new WebSocket(`${(tls.url as string).replace('https', 'wss')}/ws?user=tess&room=tls`, {
          ca: pki.ca,
        });
        const welcome = await new Promise<Record<string, unknown>>((resolve, reject) => {
          ws.once('message', (data) => resolve(JSON.parse(String(data)) as Record<string, unknown>));
          ws.once('error', reject);
        });
        expect(welcome).toMatchObject({ type: 'welcome', user: 'tess', room: 'tls' });
        ws.close();
      } finally {
        await tmp.cleanup();
      }
    });
  });

  describe('command line on Deno', () => {
    it('prints the same --help and --version as on Node', async () => {
      const help = await runDeno(['--help']);
      expect(help.code).toBe(0);
      for (const word of ['--host', '--port', '--ndjson-port', '--db', '--ndjson-only', 'CONSOLE_ROOM_DB']) {
        expect(help.stdout).toContain(word);
      }
      const version = await runDeno(['--version']);
      expect(version.code).toBe(0);
      expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/u);
    });

    it.runIf(haveSshKeygen)(
      'runs the database subcommands: keys, audit, export and backup, on the running server’s file',
      async () => {
        const db = join(dir, 'room.db');
        // Something to export: a console's message through the running Deno server.
        const writer = await consoleClient(server.consolePort, {
          type: 'hello',
          room: 'deno-cli',
          user: 'ann',
          protocol: 2,
        });
        writer.send({ type: 'message', room: 'deno-cli', text: 'from deno' });
        await writer.waitFor((f) => f.type === 'message' && f.text === 'from deno');
        writer.close();
        const key = await makeKey(dir, 'ann-deno');
        const added = await runDeno(['keys', 'add', 'ann', key.pubFile, '--db', db]);
        expect(added.stderr).not.toContain('error');
        expect(added.code).toBe(0);
        const listed = await runDeno(['keys', 'list', '--db', db]);
        expect(listed.code).toBe(0);
        expect(listed.stdout).toContain(key.fingerprint);
        const audit = await runDeno(['audit', '--db', db]);
        expect(audit.code).toBe(0);
        expect(audit.stdout).toContain('key_add');
        const exported = await runDeno(['export', '--room', 'deno-cli', '--db', db]);
        expect(exported.code).toBe(0);
        expect(
          exported.stdout
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l)),
        ).toMatchObject([{ type: 'message', room: 'deno-cli', sender: 'ann', text: 'from deno', seq: 1 }]);
        const copy = join(dir, 'copy.db');
        const backup = await runDeno(['backup', '--db', db, copy]);
        expect(backup.code).toBe(0);
        expect((await runDeno(['export', '--room', 'deno-cli', '--db', copy])).stdout).toBe(exported.stdout);
        // The clients are Node's, and it says so.
        const mcp = await runDeno(['mcp']);
        expect(mcp.code).toBe(2);
        expect(mcp.stderr).toMatch(/^runspec-room: error: mcp runs on Node: npx runspec-room mcp/mu);
        expect((await runDeno(['--help'])).stdout).toMatch(/Commands .*\n(?:.*\n)*\s+keys\s/u);
      },
      60_000,
    );

    it('ends with one clear line and exit code 2 on a bad flag, and 1 when a port is in use', async () => {
      const bad = await runDeno(['--port', 'http']);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/^runspec-room: error: --port "http"/mu);
      const blocker = createServer();
      await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
      const port = (blocker.address() as { port: number }).port;
      try {
        const tmp = await tempDir();
        const busy = await runDeno([
          '--port',
          String(port),
          '--ndjson-port',
          '0',
          '--db',
          join(tmp.dir, 'r.db'),
        ]);
        await tmp.cleanup();
        expect(busy.code).toBe(1);
        expect(busy.stderr).toContain(
          `runspec-room: error: port ${port} on 127.0.0.1 is already in use (--port)`,
        );
        expect(busy.stderr).not.toMatch(/\n\s+at /u);
      } finally {
        blocker.close();
      }
    });

    it('takes its settings from the same environment variables', async () => {
      const tmp = await tempDir();
      try {
        const s = await startDeno([], {
          CONSOLE_ROOM_PORT: '0',
          CONSOLE_ROOM_NDJSON_PORT: '0',
          CONSOLE_ROOM_DB: join(tmp.dir, 'env.db'),
          CONSOLE_ROOM_LOG_LEVEL: 'debug',
        });
        extra.push(s);
        expect(s.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/u);
        expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
      } finally {
        await tmp.cleanup();
      }
    });

    it('on SIGTERM finishes what was accepted, closes browsers with 1012, exits 0 and keeps the transcript', async () => {
      const tmp = await tempDir();
      try {
        const db = join(tmp.dir, 'stop.db');
        const s = await startDeno(['--port', '0', '--ndjson-port', '0', '--db', db]);
        extra.push(s);
        const browser = await browserClient(s.url as string, 'carol', 'ops');
        await browser.waitFor((f) => f.type === 'welcome');
        const c = await consoleClient(s.consolePort, {
          type: 'hello',
          room: 'ops',
          user: 'alice',
          protocol: 2,
        });
        await c.waitFor((f) => f.type === 'welcome');
        for (let i = 0; i < 8; i++) c.send({ type: 'message', text: `burst ${i}` });
        await c.waitFor((f) => f.type === 'message');
        expect(await s.stop('SIGTERM')).toBe(0);
        expect((await browser.closed).code).toBe(1012);
        await c.closed;
        expect(s.output()).toContain('stopped');
        const echoed = ofType(c.frames, 'message').map((f) => f.id);
        expect(ofType(browser.frames, 'message').map((f) => f.id)).toEqual(echoed);

        const again = await startDeno(['--port', '0', '--ndjson-port', '0', '--db', db]);
        extra.push(again);
        const reader = await browserClient(again.url as string, 'reader', 'ops', 0);
        await reader.waitFor((f) => f.type === 'message' && f.id === echoed.at(-1));
        expect(ofType(reader.frames, 'message').map((f) => f.id)).toEqual(echoed);
        reader.close();
      } finally {
        await tmp.cleanup();
      }
    });
  });
});
