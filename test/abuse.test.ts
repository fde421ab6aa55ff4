// Floods, connection limits, slow readers and dead peers: one bad client never hurts the others.
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { CloseCode, ErrorCode } from '../src/protocol/codes.ts';
import { browserClient, consoleClient, ofType, quiet } from './helpers/clients.ts';
import {
  BURST_FRIENDLY,
  startTestServer,
  type TestServer,
  tempDir,
  untilRoomSize,
} from './helpers/server.ts';

const running: TestServer[] = [];
const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const s of running.splice(0)) await s.stop();
  for (const c of cleanups.splice(0)) await c();
});

async function server(env: Record<string, string>): Promise<TestServer> {
  const tmp = await tempDir();
  cleanups.push(tmp.cleanup);
  const s = await startTestServer(`${tmp.dir}/room.db`, [], env);
  running.push(s);
  return s;
}

describe('flood control', () => {
  const strict = {
    CONSOLE_ROOM_RATE_BURST: '3',
    CONSOLE_ROOM_RATE_PER_SECOND: '1',
    CONSOLE_ROOM_FLOOD_DISCONNECT: '8',
  };

  it('lets a burst through, then refuses an opted-in sender with rate_limited; the others see only what passed', async () => {
    const s = await server(strict);
    const watcher = await browserClient(s.url, 'watcher', 'ops');
    await watcher.waitFor((f) => f.type === 'welcome');
    const fast = await consoleClient(s.consolePort, {
      type: 'hello',
      room: 'ops',
      user: 'fast',
      protocol: 2,
    });
    await fast.waitFor((f) => f.type === 'welcome');
    for (let i = 0; i < 5; i++) fast.send({ type: 'message', text: `m${i}` });
    await fast.waitFor((f) => f.type === 'error' && f.code === ErrorCode.RateLimited);
    await fast.waitFor((f) => f.type === 'message' && f.text === 'm2');
    await quiet(200);
    expect(ofType(fast.frames, 'message').map((f) => f.text)).toEqual(['m0', 'm1', 'm2']);
    expect(ofType(fast.frames, 'error')).toHaveLength(2);
    expect(ofType(watcher.frames, 'message').map((f) => f.text)).toEqual(['m0', 'm1', 'm2']);
    expect(ofType(watcher.frames, 'error')).toEqual([]);
  });

  it('drops a seed console’s extra messages without sending it anything it would not understand', async () => {
    const s = await server(strict);
    const seed = await consoleClient(s.consolePort, { type: 'hello', room: 'ops', user: 'seed' });
    await untilRoomSize(s, 'ops', 1);
    for (let i = 0; i < 5; i++) seed.send({ type: 'message', text: `m${i}` });
    await seed.waitFor((f) => f.type === 'message' && f.text === 'm2');
    await quiet(200);
    expect(seed.frames.map((f) => f.type)).toEqual(['message', 'message', 'message']);
  });

  it('closes a persistent flooder (WebSocket close 4429) and the room carries on', async () => {
    const s = await server(strict);
    const calm = await consoleClient(s.consolePort, {
      type: 'hello',
      room: 'ops',
      user: 'calm',
      protocol: 2,
    });
    await calm.waitFor((f) => f.type === 'welcome');
    const flooder = await browserClient(s.url, 'flooder', 'ops');
    await flooder.waitFor((f) => f.type === 'welcome');
    for (let i = 0; i < 30; i++) flooder.send({ type: 'message', text: `spam${i}` });
    expect((await flooder.closed).code).toBe(CloseCode.Flood);
    await calm.waitFor((f) => f.type === 'presence' && f.user === 'flooder' && f.status === 'away');
    calm.send({ type: 'message', text: 'still fine' });
    await calm.waitFor((f) => f.type === 'message' && f.text === 'still fine');
    expect(ofType(calm.frames, 'message').length).toBeLessThanOrEqual(4);
  });

  it('closes a persistent flooding console', async () => {
    const s = await server(strict);
    const flooder = await consoleClient(s.consolePort, { type: 'hello', room: 'ops', user: 'flooder' });
    await untilRoomSize(s, 'ops', 1);
    for (let i = 0; i < 30; i++) flooder.send({ type: 'presence', status: i % 2 ? 'away' : 'available' });
    await flooder.closed;
    await untilRoomSize(s, 'ops', 0);
  });
});

describe('connection limits', () => {
  const status = (url: string) =>
    new Promise<number>((resolve) => {
      const ws = new WebSocket(url);
      ws.on('open', () => {
        resolve(101);
      });
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('error', () => {});
    });

  it('refuses browsers over the per-address limit with 503, and takes them again once one leaves', async () => {
    const s = await server({ CONSOLE_ROOM_MAX_BROWSERS_PER_IP: '2' });
    const a = await browserClient(s.url, 'a', 'ops');
    await browserClient(s.url, 'b', 'ops');
    const url = `${s.url.replace('http', 'ws')}/ws?user=c&room=ops`;
    expect(await status(url)).toBe(503);
    a.close();
    await a.closed;
    await untilRoomSize(s, 'ops', 1);
    expect(await status(url)).toBe(101);
  });

  it('refuses browsers over the total limit with 503', async () => {
    const s = await server({ CONSOLE_ROOM_MAX_BROWSERS: '1' });
    await browserClient(s.url, 'a', 'ops');
    expect(await status(`${s.url.replace('http', 'ws')}/ws?user=b&room=ops`)).toBe(503);
  });

  it('closes consoles over the console limit at once, and the ones inside keep working', async () => {
    const s = await server({ CONSOLE_ROOM_MAX_CONSOLES: '1' });
    const inside = await consoleClient(s.consolePort, {
      type: 'hello',
      room: 'ops',
      user: 'inside',
      protocol: 2,
    });
    await inside.waitFor((f) => f.type === 'welcome');
    const outside = await consoleClient(s.consolePort);
    await outside.closed;
    inside.send({ type: 'message', text: 'ok' });
    await inside.waitFor((f) => f.type === 'message');
  });
});

describe('slow consumers', () => {
  it('disconnects a browser that stops reading (4008) while the others keep receiving everything', async () => {
    const s = await server({ ...BURST_FRIENDLY, CONSOLE_ROOM_MAX_UNSENT: String(256 * 1024) });
    const reader = await browserClient(s.url, 'reader', 'ops');
    await reader.waitFor((f) => f.type === 'welcome');
    const laggard = await browserClient(s.url, 'laggard', 'ops');
    await laggard.waitFor((f) => f.type === 'welcome');
    (laggard.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const sender = await consoleClient(s.consolePort, {
      type: 'hello',
      room: 'ops',
      user: 'sender',
      protocol: 2,
    });
    await sender.waitFor((f) => f.type === 'welcome');
    const body = 'x'.repeat(16_000);
    const total = 800; // 12.8 MB: far past the bound plus what the kernel buffers
    for (let i = 0; i < total; i++) sender.send({ type: 'message', text: `${i} ${body}` });
    await reader.waitFor((f) => f.type === 'presence' && f.user === 'laggard' && f.status === 'away', 20_000);
    await reader.waitFor((f) => f.type === 'message' && String(f.text).startsWith(`${total - 1} `), 20_000);
    const got = ofType(reader.frames, 'message').map((f) => Number(String(f.text).split(' ')[0]));
    expect(got).toEqual(Array.from({ length: total }, (_, i) => i));
    expect(s.hub.roomSize('ops')).toBe(2);
  }, 40_000);

  it('disconnects a console that stops reading', async () => {
    const s = await server({ ...BURST_FRIENDLY, CONSOLE_ROOM_MAX_UNSENT: String(256 * 1024) });
    const laggard = await consoleClient(s.consolePort, { type: 'hello', room: 'ops', user: 'laggard' });
    await untilRoomSize(s, 'ops', 1);
    laggard.socket.pause();
    const sender = await browserClient(s.url, 'sender', 'ops');
    await sender.waitFor((f) => f.type === 'welcome');
    const body = 'y'.repeat(16_000);
    for (let i = 0; i < 800; i++) sender.send({ type: 'message', text: `${i} ${body}` });
    await sender.waitFor((f) => f.type === 'presence' && f.user === 'laggard' && f.status === 'away', 20_000);
    await sender.waitFor((f) => f.type === 'message' && String(f.text).startsWith('799 '), 20_000);
  }, 40_000);
});

describe('heartbeats', () => {
  const fast = { CONSOLE_ROOM_HEARTBEAT: '200ms' };

  it('terminates a browser that stops answering pings; the room sees it leave within two intervals', async () => {
    const s = await server(fast);
    // A seed console watches: it is not pinged, so it stays whatever it does.
    const watcher = await consoleClient(s.consolePort, { type: 'hello', room: 'ops', user: 'watcher' });
    await untilRoomSize(s, 'ops', 1);
    // A well client answers pings on its own; this one is silent, like a machine that vanished.
    const url = `${s.url.replace('http', 'ws')}/ws?user=ghost&room=ops`;
    const ghost = new WebSocket(url, { autoPong: false });
    await new Promise((resolve) => ghost.once('open', resolve));
    await watcher.waitFor((f) => f.type === 'presence' && f.user === 'ghost' && f.status === 'available');
    const started = Date.now();
    await watcher.waitFor((f) => f.type === 'presence' && f.user === 'ghost' && f.status === 'away', 3000);
    expect(Date.now() - started).toBeLessThan(2 * 200 + 250);
  });

  it('keeps a browser that answers pings', async () => {
    const s = await server(fast);
    const b = await browserClient(s.url, 'alive', 'ops');
    await b.waitFor((f) => f.type === 'welcome');
    await quiet(1000);
    expect(s.hub.roomSize('ops')).toBe(1);
  });

  it('pings an opted-in console and closes it when it stops answering; answering keeps it', async () => {
    const s = await server(fast);
    const answering = await consoleClient(s.consolePort, {
      type: 'hello',
      room: 'ops',
      user: 'answering',
      protocol: 2,
    });
    answering.socket.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('"ping"')) answering.send({ type: 'pong' });
    });
    const silent = await consoleClient(s.consolePort, {
      type: 'hello',
      room: 'ops',
      user: 'silent',
      protocol: 2,
    });
    await silent.waitFor((f) => f.type === 'ping', 1000);
    const started = Date.now();
    await silent.closed;
    expect(Date.now() - started).toBeLessThan(2 * 200 + 250);
    await answering.waitFor((f) => f.type === 'presence' && f.user === 'silent' && f.status === 'away');
    await quiet(800);
    expect(s.hub.roomSize('ops')).toBe(1);
  });

  it('never sends a seed console a ping frame', async () => {
    const s = await server(fast);
    const seed = await consoleClient(s.consolePort, { type: 'hello', room: 'ops', user: 'seed' });
    await quiet(700);
    expect(seed.frames).toEqual([]);
    expect(s.hub.roomSize('ops')).toBe(1);
  });
});
