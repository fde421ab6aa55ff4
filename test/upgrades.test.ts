// Upgrade requests from a hostile client: every one is answered and let go, so none can hold a
// descriptor; a handshake that stalls is cut; bare connections are capped per address and in all;
// and in dev mode only the server's own pages get in.
import { readdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, parseCommand } from '../src/config.ts';
import { devOriginPolicy } from '../src/http/origins.ts';
import { clientInfo, trustList } from '../src/http/proxy.ts';
import { Hub } from '../src/hub/hub.ts';
import type { Transcript } from '../src/hub/transcript.ts';
import { silentLog } from '../src/log.ts';
import { RefusalCode } from '../src/protocol/codes.ts';
import { nodeRuntime } from '../src/web/node.ts';
import type { Wiring } from '../src/web/start.ts';
import { bareApp } from './helpers/app.ts';
import { browserClient, consoleClient, ofType, upgradeStatus } from './helpers/clients.ts';
import { makePki } from './helpers/pki.ts';
import { startTestServer, type TestServer, tempDir } from './helpers/server.ts';
import { spawnServer, untilOutput } from './helpers/spawn.ts';

let server: TestServer;
let cleanup: () => Promise<void>;
let port: number;

beforeAll(async () => {
  const tmp = await tempDir();
  cleanup = tmp.cleanup;
  server = await startTestServer(`${tmp.dir}/room.db`);
  port = Number(new URL(server.url).port);
});

afterAll(async () => {
  await server.stop();
  await cleanup();
});

/** Send raw request bytes; resolves with what came back and whether the server closed the connection. */
function raw(
  request: string,
  target = port,
  options: { until?: (response: string) => boolean } = {},
): Promise<{ response: string; closedByServer: boolean }> {
  return new Promise((resolve) => {
    const socket = connect({ port: target, host: '127.0.0.1' });
    let response = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      response += chunk;
      // Or only until it says what is awaited, then hang up.
      if (options.until?.(response)) {
        socket.destroy();
        resolve({ response, closedByServer: false });
      }
    });
    socket.on('error', () => {});
    socket.once('close', () => resolve({ response, closedByServer: true }));
    socket.write(request);
  });
}

describe('connections that never finish a request', () => {
  /** Milliseconds from `started` until the server closes `socket` (whatever it sends is read). */
  const closedAfter = (socket: Socket, started: number): Promise<number> =>
    new Promise((resolve) => {
      socket.on('error', () => {});
      socket.resume();
      socket.once('close', () => resolve(performance.now() - started));
    });

  it('one that sends nothing, and one that sends half its headers, are closed after 10 s; a browser meanwhile gets in', async () => {
    const started = performance.now();
    const silent = connect({ port, host: '127.0.0.1' });
    const half = connect({ port, host: '127.0.0.1' }, () =>
      half.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n'),
    );
    const closings = [closedAfter(silent, started), closedAfter(half, started)];
    const opened = await raw(
      'GET /ws?user=meanwhile&room=deadlines HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      port,
      { until: (head) => head.includes('\r\n\r\n') },
    );
    expect(opened.response).toMatch(/^HTTP\/1\.1 101 /u);
    // Not over https: no HSTS.
    expect(opened.response).not.toContain('Strict-Transport-Security');
    for (const ms of await Promise.all(closings)) {
      expect(ms).toBeGreaterThanOrEqual(9_500);
      expect(ms).toBeLessThan(15_000);
    }
  }, 20_000);

  it('over TLS: one that never starts its handshake, and one silent after it, are closed after 10 s', async () => {
    const tmp = await tempDir();
    const pki = makePki(tmp.dir);
    const tls = await spawnServer([
      '--port',
      '0',
      '--ndjson-port',
      '0',
      '--db',
      `${tmp.dir}/room.db`,
      '--tls-cert',
      pki.certFile,
      '--tls-key',
      pki.keyFile,
    ]);
    try {
      const tlsPort = Number(new URL(tls.url as string).port);
      const started = performance.now();
      const noHandshake = connect({ port: tlsPort, host: '127.0.0.1' });
      const handshaken = tlsConnect({
        port: tlsPort,
        host: '127.0.0.1',
        ca: pki.ca,
        servername: 'localhost',
      });
      await new Promise((resolve, reject) => handshaken.once('secureConnect', resolve).once('error', reject));
      // Meanwhile a browser gets in, and the 101 that answers it over https carries HSTS.
      const opened = await new Promise<string>((resolve, reject) => {
        const browser = tlsConnect({ port: tlsPort, host: '127.0.0.1', ca: pki.ca, servername: 'localhost' });
        let head = '';
        browser.setEncoding('utf8');
        browser.on('data', (chunk: string) => {
          head += chunk;
          if (head.includes('\r\n\r\n')) {
            browser.destroy();
            resolve(head);
          }
        });
        browser.once('error', reject);
        browser.write(
          'GET /ws?user=meanwhile&room=deadlines HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
        );
      });
      expect(opened).toMatch(/^HTTP\/1\.1 101 /u);
      expect(opened).toContain('\r\nStrict-Transport-Security: max-age=31536000\r\n');
      for (const ms of await Promise.all([
        closedAfter(noHandshake, started),
        closedAfter(handshaken, started),
      ])) {
        expect(ms).toBeGreaterThanOrEqual(9_500);
        expect(ms).toBeLessThan(15_000);
      }
    } finally {
      await tls.stop();
      await tmp.cleanup();
    }
  }, 30_000);
});

describe('bare connections cannot take the server from everyone else', () => {
  /** Open `n` TCP connections that send nothing; resolves once all are connected. */
  const bare = (target: number, n: number): Promise<Socket[]> =>
    Promise.all(
      Array.from(
        { length: n },
        () =>
          new Promise<Socket>((resolve, reject) => {
            const socket = connect({ port: target, host: '127.0.0.1' }, () => resolve(socket));
            socket.once('error', reject);
          }),
      ),
    );
  const closed = (socket: Socket): Promise<void> =>
    new Promise((resolve) => {
      socket.on('error', () => {});
      if (socket.destroyed) resolve();
      else socket.once('close', () => resolve());
    });
  /** Whether the server closes the connection within `ms` (its 10 s header deadline is far longer). */
  const closedWithin = (socket: Socket, ms: number): Promise<boolean> =>
    Promise.race([
      closed(socket).then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), ms)),
    ]);
  /** Upgrades until one is taken: a connection let go is given back when the server hears it close. */
  const untilUpgraded = async (url: string): Promise<number> => {
    let status = 0;
    for (let i = 0; i < 100 && status !== 101; i++) {
      status = await upgradeStatus(url);
      if (status !== 101) await new Promise((r) => setTimeout(r, 20));
    }
    return status;
  };

  /** Send GET /healthz on `socket` (kept alive); resolves with the status line of the answer. */
  const ask = (socket: Socket | TLSSocket): Promise<string> =>
    new Promise((resolve) => {
      let answer = '';
      const onData = (chunk: Buffer): void => {
        answer += chunk.toString('latin1');
        if (!answer.includes('\r\n')) return;
        socket.off('data', onData);
        resolve(answer.split('\r\n')[0] ?? '');
      };
      socket.on('data', onData);
      socket.once('close', () => resolve(answer.split('\r\n')[0] ?? ''));
      socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    });
  const WAITING = 64; // the floor of the per-address count, above CONSOLE_ROOM_MAX_BROWSERS_PER_IP=5

  it('an address that is not a trusted proxy may hold 64 connections that are not WebSockets: past them a new one is closed at once, or takes the place of one kept alive idle', async () => {
    const tmp = await tempDir();
    const limited = await spawnServer(
      ['--port', '0', '--ndjson-port', '0', '--db', `${tmp.dir}/room.db`, '--trust-proxy', 'none'],
      { CONSOLE_ROOM_MAX_BROWSERS_PER_IP: '5' },
    );
    try {
      const target = Number(new URL(limited.url as string).port);
      const held = await bare(target, WAITING);
      const [over] = await bare(target, 1);
      expect(await closedWithin(over as Socket, 3_000)).toBe(true);
      expect(held.filter((s) => s.destroyed)).toEqual([]);
      await untilOutput(
        limited,
        /browser connections refused: too many from one address remote=127\.0\.0\.1 limit=64/u,
      );
      // One of them is answered and kept alive: idle, it makes room for the next one, and only it.
      const [idle, ...silent] = held as [Socket, ...Socket[]];
      expect(await ask(idle)).toBe('HTTP/1.1 200 OK');
      const [next] = await bare(target, 1);
      expect(await closedWithin(idle, 3_000)).toBe(true);
      expect(await ask(next as Socket)).toBe('HTTP/1.1 200 OK');
      expect(silent.filter((s) => s.destroyed)).toEqual([]);
      for (const s of [...silent, next as Socket]) s.destroy();
    } finally {
      await limited.stop();
      await tmp.cleanup();
    }
  }, 20_000);

  it("connections kept alive with requests count too: one address cannot hold more than 64 of the door's places with them, and another address is served", async () => {
    const tmp = await tempDir();
    const limited = await spawnServer(
      ['--port', '0', '--ndjson-port', '0', '--db', `${tmp.dir}/room.db`, '--trust-proxy', 'none'],
      { CONSOLE_ROOM_MAX_BROWSERS_PER_IP: '5', CONSOLE_ROOM_MAX_BROWSERS: '1' },
    );
    try {
      const target = Number(new URL(limited.url as string).port);
      // More than the door holds in all (1 + 1,024), each connection asking and kept alive.
      const opened: Socket[] = [];
      const answers: string[] = [];
      for (let i = 0; i < 1100; i += WAITING) {
        const batch = await bare(target, Math.min(WAITING, 1100 - i));
        opened.push(...batch);
        answers.push(...(await Promise.all(batch.map(ask))));
      }
      expect(new Set(answers)).toEqual(new Set(['HTTP/1.1 200 OK']));
      // Each new one took the place of one idle longer: all but 64 are closed, the newest 64 open.
      await Promise.all(opened.slice(0, -WAITING).map(closed));
      expect(opened.slice(-WAITING).filter((s) => s.destroyed)).toEqual([]);
      // The door is not full: a client from another address gets in.
      const other = await new Promise<Socket>((resolve, reject) => {
        const socket = connect({ port: target, host: '127.0.0.1', localAddress: '127.0.0.2' }, () =>
          resolve(socket),
        );
        socket.once('error', reject);
      });
      expect(await ask(other)).toBe('HTTP/1.1 200 OK');
      for (const s of [...opened, other]) s.destroy();
    } finally {
      await limited.stop();
      await tmp.cleanup();
    }
  }, 30_000);

  it('an upgrade refused counts until its connection closes: refused upgrades cannot get past the per-address count', async () => {
    const tmp = await tempDir();
    const limited = await spawnServer(
      ['--port', '0', '--ndjson-port', '0', '--db', `${tmp.dir}/room.db`, '--trust-proxy', 'none'],
      { CONSOLE_ROOM_MAX_BROWSERS_PER_IP: '5' },
    );
    /** A connection whose upgrade of another path is refused (404); it never closes its side. */
    const refused = (target: number): Promise<Socket> =>
      new Promise((resolve, reject) => {
        const socket = connect({ port: target, host: '127.0.0.1', allowHalfOpen: true }, () =>
          socket.write(
            'GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
          ),
        );
        socket.once('data', () => resolve(socket));
        socket.once('error', reject);
      });
    try {
      const target = Number(new URL(limited.url as string).port);
      // The server lets a refused connection go after 1 s: the next one must come within it.
      let closedAtOnce = false;
      for (let attempt = 0; attempt < 3 && !closedAtOnce; attempt++) {
        const started = performance.now();
        const held = await Promise.all(Array.from({ length: WAITING }, () => refused(target)));
        const [over] = await bare(target, 1);
        const inTime = performance.now() - started < 800;
        closedAtOnce = (await closedWithin(over as Socket, 3_000)) && inTime;
        for (const s of [...held, over as Socket]) s.destroy();
        await Promise.all(held.map(closed));
      }
      expect(closedAtOnce).toBe(true);
    } finally {
      await limited.stop();
      await tmp.cleanup();
    }
  }, 30_000);

  it('over TLS a connection counts from connecting, through the handshake; answered and idle, it makes room', async () => {
    const tmp = await tempDir();
    const pki = makePki(tmp.dir);
    const tls = await spawnServer(
      [
        ...['--port', '0', '--ndjson-port', '0', '--db', `${tmp.dir}/room.db`, '--trust-proxy', 'none'],
        ...['--tls-cert', pki.certFile, '--tls-key', pki.keyFile],
      ],
      { CONSOLE_ROOM_MAX_BROWSERS_PER_IP: '5' },
    );
    try {
      const tlsPort = Number(new URL(tls.url as string).port);
      const handshake = (): Promise<TLSSocket | undefined> =>
        new Promise((resolve) => {
          const socket = tlsConnect({
            port: tlsPort,
            host: '127.0.0.1',
            ca: pki.ca,
            servername: 'localhost',
          });
          socket.once('secureConnect', () => resolve(socket));
          socket.once('error', () => resolve(undefined));
        });
      const first = await Promise.all(Array.from({ length: WAITING }, handshake));
      expect(first.filter((s) => s === undefined)).toEqual([]);
      // Handshaken but silent, they all count: a bare TCP connection past them is closed at once.
      const [over] = await bare(tlsPort, 1);
      expect(await closedWithin(over as Socket, 3_000)).toBe(true);
      // Each asks once and idles: as many new connections get through their handshake, each in the place of one.
      expect(new Set(await Promise.all((first as TLSSocket[]).map(ask)))).toEqual(
        new Set(['HTTP/1.1 200 OK']),
      );
      const second = await Promise.all(Array.from({ length: WAITING }, handshake));
      expect(second.filter((s) => s === undefined)).toEqual([]);
      for (const s of [...first, ...second]) s?.destroy();
    } finally {
      await tls.stop();
      await tmp.cleanup();
    }
  }, 20_000);

  it('connections from a trusted proxy are not held to that', async () => {
    const tmp = await tempDir();
    const proxied = await spawnServer(['--port', '0', '--ndjson-port', '0', '--db', `${tmp.dir}/room.db`], {
      CONSOLE_ROOM_MAX_BROWSERS_PER_IP: '5',
    });
    try {
      const target = Number(new URL(proxied.url as string).port);
      const held = await bare(target, WAITING + 16);
      // Accepted in order: once a later connection is answered, a refusal of any of them would show.
      expect(await upgradeStatus(`ws://127.0.0.1:${target}/ws?user=later&room=lobby`)).toBe(101);
      expect(held.filter((s) => s.destroyed)).toEqual([]);
      for (const s of held) s.destroy();
    } finally {
      await proxied.stop();
      await tmp.cleanup();
    }
  }, 20_000);

  it('the door holds at most its WebSocket limit and 1,024 more; past it a connection is closed at once while consoles keep getting in', async () => {
    const tmp = await tempDir();
    const small = await spawnServer(['--port', '0', '--ndjson-port', '0', '--db', `${tmp.dir}/room.db`], {
      CONSOLE_ROOM_MAX_BROWSERS: '1',
    });
    try {
      const target = Number(new URL(small.url as string).port);
      const consolePort = Number(
        /console door listening address=127\.0\.0\.1:(\d+)/u.exec(small.output())?.[1],
      );
      const held = await bare(target, 1 + 1024);
      const [over] = await bare(target, 1);
      expect(await closedWithin(over as Socket, 3_000)).toBe(true);
      await untilOutput(small, /browser connections refused: the door holds all it may limit=1025/u);
      const operator = await consoleClient(consolePort, {
        type: 'hello',
        room: 'ops',
        user: 'operator',
        protocol: 2,
      });
      await operator.waitFor((f) => f.type === 'welcome');
      operator.close();
      held[0]?.destroy();
      expect(await untilUpgraded(`ws://127.0.0.1:${target}/ws?user=back&room=lobby`)).toBe(101);
      for (const s of held) s.destroy();
    } finally {
      await small.stop();
      await tmp.cleanup();
    }
  }, 30_000);
});

describe('upgrade requests that are not WebSocket upgrades of /ws', () => {
  it.each([
    [
      'h2c on /healthz',
      'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n',
    ],
    [
      'websocket and h2c on /ws',
      'GET /ws?user=a&room=b HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket, h2c\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    ],
    [
      'websocket on another path',
      'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    ],
    [
      'websocket without a key',
      'GET /ws?user=a&room=b HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
    ],
  ])('answers %s and closes the connection', async (_what, request) => {
    const { response, closedByServer } = await raw(request);
    expect(response).toMatch(/^HTTP\/1\.1 4(00|04|26) /u);
    expect(response).toContain(RefusalCode.BadUpgrade);
    expect(closedByServer).toBe(true);
  });

  it('keeps no descriptor for 300 of them, even from clients that never close, and keeps serving', async () => {
    const tmp = await tempDir();
    const spawned = await spawnServer(['--port', '0', '--ndjson-port', '0', '--db', `${tmp.dir}/room.db`]);
    const pid = spawned.proc.pid as number;
    const descriptors = (): number => readdirSync(`/proc/${pid}/fd`).length;
    const target = Number(new URL(spawned.url ?? '').port);
    try {
      const before = descriptors();
      const h2c =
        'GET /static/app.js HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n';
      // Each client writes its request and never reads or closes: only the server can let go.
      const clients = Array.from({ length: 300 }, () => {
        const socket = connect({ port: target, host: '127.0.0.1' });
        socket.on('error', () => {});
        socket.write(h2c);
        return socket;
      });
      const deadline = Date.now() + 10_000;
      let count = descriptors();
      while (count > before + 10 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        count = descriptors();
      }
      expect(count).toBeLessThanOrEqual(before + 10);
      expect((await fetch(`${spawned.url}/healthz`)).status).toBe(200);
      const b = await browserClient(spawned.url ?? '', 'after', 'upgrades');
      await b.waitFor((f) => f.type === 'welcome');
      b.close();
      for (const socket of clients) socket.destroy();
    } finally {
      await spawned.stop();
      await tmp.cleanup();
    }
  });
});

describe('the query of a WebSocket upgrade', () => {
  it('takes the first of a repeated parameter, as the app does for every other request', async () => {
    const { response } = await raw(
      'GET /ws?user=first&room=dup&user=second HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      port,
      { until: (text) => text.includes('"welcome"') && text.includes('}') },
    );
    expect(response).toMatch(/^HTTP\/1\.1 101 /u);
    expect(response).toContain('"user":"first"');
  });
});

/** Node's browser door alone on a port, with a door of the test's own (`wiring`), and an app that answers 404. */
function listenWith(wiring: Wiring, options: { handshakeTimeoutMs?: number } = {}) {
  return nodeRuntime.listen(
    { fetch: async () => new Response('not here', { status: 404 }) } as never,
    {
      hub: new Hub({ transcript: {} as Transcript }),
      log: silentLog,
      host: '127.0.0.1',
      port: 0,
      checkDatabase: async () => {},
      trustProxy: [],
      limits: DEFAULT_LIMITS,
      ...options,
    },
    wiring,
  );
}

describe('a WebSocket handshake that stalls', () => {
  it('is cut after the handshake timeout, and its connection slot comes back', async () => {
    let release!: () => void;
    const stalled = new Promise<void>((resolve) => {
      release = resolve;
    });
    // A door whose admission never answers for `a` (a session lookup on a stuck database, say); `b`
    // gets in at once.
    const wiring = {
      door: {
        admit: async (request: { query(): Record<string, string> }) =>
          request.query().user === 'b'
            ? { ok: true, identity: {}, release: () => {} }
            : stalled.then(() => ({ ok: false, status: 503, code: 'shutting_down', message: '' })),
        events: () => ({}),
      },
      client: clientInfo(trustList([]), () => ({ address: '', encrypted: false })),
    } as unknown as Wiring;
    const listening = await listenWith(wiring, { handshakeTimeoutMs: 300 });
    try {
      const started = performance.now();
      const stalledOne = raw(
        'GET /ws?user=a&room=b HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
        listening.port,
      );
      // Another browser that gets in meanwhile does not stop the stalled one's clock.
      expect(await upgradeStatus(`ws://127.0.0.1:${listening.port}/ws?user=b&room=b`)).toBe(101);
      const { response, closedByServer } = await stalledOne;
      expect(closedByServer).toBe(true);
      expect(response).toBe('');
      expect(performance.now() - started).toBeGreaterThanOrEqual(250);
    } finally {
      release();
      listening.stopAccepting();
      listening.destroyAll();
    }
  });

  /** A Node browser door whose admission lets everyone in, with the door's events made by `events`. */
  const failingDoor = async (events: () => object) => {
    let released = 0;
    const wiring = {
      door: {
        admit: () => ({ ok: true, identity: {}, release: () => (released += 1) }),
        events,
      },
      client: clientInfo(trustList([]), () => ({ address: '', encrypted: false })),
    } as unknown as Wiring;
    return { listening: await listenWith(wiring), released: () => released };
  };
  const upgradeRequest =
    'GET /ws?user=a&room=b HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';

  it('an upgrade that fails after admission is answered 500 and gives its connection slot back', async () => {
    const { listening, released } = await failingDoor(() => {
      throw new Error('no events for you');
    });
    try {
      const { response, closedByServer } = await raw(upgradeRequest, listening.port);
      expect(response).toMatch(/^HTTP\/1\.1 500 /u);
      expect(closedByServer).toBe(true);
      expect(released()).toBe(1);
    } finally {
      listening.stopAccepting();
      listening.destroyAll();
    }
  });

  it('a failure once the 101 is sent closes the WebSocket, with no HTTP answer after it', async () => {
    const { listening } = await failingDoor(() => ({
      onOpen: () => {
        throw new Error('the room is on fire');
      },
    }));
    try {
      const { response, closedByServer } = await raw(upgradeRequest, listening.port);
      expect(response).toMatch(/^HTTP\/1\.1 101 /u);
      expect(response).not.toContain('HTTP/1.1 500');
      expect(response.endsWith('\r\n\r\n')).toBe(true);
      expect(closedByServer).toBe(true);
    } finally {
      listening.stopAccepting();
      listening.destroyAll();
    }
  });

  it('holds a connection slot from admission until the socket closes, opened or not', async () => {
    const { app, hub } = bareApp({ upgrade: async () => undefined });
    const headers = { upgrade: 'websocket' };
    // The upgrade is refused after admission: the slot it took must come back every time.
    for (let i = 0; i < DEFAULT_LIMITS.maxBrowsersPerIp + 5; i++) {
      const res = await app.request('/ws?user=a&room=slots', { headers });
      expect(res.status).toBe(400);
      expect((await res.json()).error.code).toBe(RefusalCode.BadUpgrade);
    }
    expect(hub.stats.connections).toBe(0);
  });
});

/** CONSOLE_ROOM_ALLOWED_ORIGINS as the configuration reads it. */
function parseOrigins(list: string): readonly string[] {
  const command = parseCommand([], { CONSOLE_ROOM_ALLOWED_ORIGINS: list });
  if (command.kind !== 'run') throw new Error('expected a run command');
  return command.config.allowedOrigins;
}

describe('dev mode: only the server’s own pages may open /ws', () => {
  const upgrade = (headers: Record<string, string>) =>
    bareApp().app.request('/ws?user=alice&room=secret&since=0', {
      headers: { upgrade: 'websocket', ...headers },
    });

  it('refuses a page from another origin (403 bad_origin)', async () => {
    for (const origin of ['http://evil.example', 'http://127.0.0.1:9999', 'https://127.0.0.1:8080', 'null']) {
      const res = await upgrade({ origin, host: '127.0.0.1:8080' });
      expect(res.status, origin).toBe(403);
      expect((await res.json()).error.code).toBe(RefusalCode.BadOrigin);
    }
  });

  it('refuses a name that only resolves here (DNS rebinding) on every route but /healthz (403 bad_host)', async () => {
    const { app } = bareApp();
    for (const path of ['/ws?user=a&room=b', '/', '/me', '/static/app.js']) {
      const res = await app.request(path, {
        headers: { host: 'evil.example:8080', origin: 'http://evil.example:8080', upgrade: 'websocket' },
      });
      expect(res.status, path).toBe(403);
      expect((await res.json()).error.code).toBe(RefusalCode.BadHost);
    }
    expect((await app.request('/healthz', { headers: { host: 'evil.example:8080' } })).status).toBe(200);
  });

  it('takes its own pages on each loopback name, and clients that are not browsers', async () => {
    for (const [origin, host] of [
      ['http://127.0.0.1:8080', '127.0.0.1:8080'],
      ['http://localhost:8080', 'localhost:8080'],
      ['http://[::1]:8080', '[::1]:8080'],
    ] as const) {
      expect((await upgrade({ origin, host })).status, origin).toBe(101);
    }
    expect((await upgrade({ host: '127.0.0.1:8080' })).status).toBe(101);
  });

  it('takes more origins, and their host names, when CONSOLE_ROOM_ALLOWED_ORIGINS names them (a proxy in front)', async () => {
    const { app } = bareApp({
      origins: devOriginPolicy({
        host: '127.0.0.1',
        port: () => 8080,
        tls: false,
        extra: parseOrigins('https://room.example.com'),
      }),
    });
    const proxied = { host: 'room.example.com', origin: 'https://room.example.com', upgrade: 'websocket' };
    expect((await app.request('/ws?user=a&room=b', { headers: proxied })).status).toBe(101);
    expect((await app.request('/me', { headers: { host: 'room.example.com' } })).status).toBe(200);
    const other = { ...proxied, origin: 'https://other.example.com' };
    expect((await app.request('/ws?user=a&room=b', { headers: other })).status).toBe(403);
  });

  it('over real sockets, a page of another origin gets nothing from the room', async () => {
    const watcher = await browserClient(server.url, 'alice', 'secret');
    await watcher.waitFor((f) => f.type === 'welcome');
    watcher.send({ type: 'message', text: 'private' });
    await watcher.waitFor((f) => f.type === 'message');
    const status = await upgradeStatus(
      `${server.url.replace('http', 'ws')}/ws?user=mallory&room=secret&since=0`,
      { origin: 'http://evil.example' },
    );
    expect(status).toBe(403);
    expect(ofType(watcher.frames, 'presence').filter((f) => f.user === 'mallory')).toEqual([]);
    watcher.close();
  });
});
