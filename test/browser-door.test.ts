// The browser door over a real WebSocket and HTTP: backscroll, resume, query validation, page and health.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../src/protocol/codes.ts';
import { bareApp } from './helpers/app.ts';
import {
  barrier,
  browserClient,
  consoleClient,
  type Frame,
  ofType,
  upgradeStatus,
} from './helpers/clients.ts';
import { startTestServer, type TestServer, tempDir } from './helpers/server.ts';

let server: TestServer;
let cleanup: () => Promise<void>;
let n = 0;
const freshRoom = (): string => `web-${++n}`;

/** Send `count` messages from a console and wait for the last echo. */
async function fill(room: string, count: number, prefix = 'm'): Promise<Frame[]> {
  const c = await consoleClient(server.consolePort, { type: 'hello', room, user: 'filler', protocol: 2 });
  await c.waitFor((f) => f.type === 'welcome');
  for (let i = 0; i < count; i++) c.send({ type: 'message', text: `${prefix}${i}` });
  await c.waitFor((f) => f.type === 'message' && f.text === `${prefix}${count - 1}`, 10_000);
  c.close();
  await c.closed;
  return ofType(c.frames, 'message');
}

beforeAll(async () => {
  const tmp = await tempDir();
  cleanup = tmp.cleanup;
  server = await startTestServer(`${tmp.dir}/room.db`);
});

afterAll(async () => {
  await server.stop();
  await cleanup();
});

describe('browser door: history', () => {
  it('gives a joining browser exactly the last 50 messages of its room, oldest first', async () => {
    const room = freshRoom();
    await fill(freshRoom(), 5, 'elsewhere');
    await fill(room, 60);
    const b = await browserClient(server.url, 'carol', room);
    await b.waitFor((f) => f.type === 'message' && f.text === 'm59');
    const texts = ofType(await barrier(b), 'message').map((f) => f.text);
    expect(texts).toEqual(Array.from({ length: 50 }, (_, i) => `m${i + 10}`));
    expect(b.frames[0]?.type).toBe('welcome');
    b.close();
  });

  it('resumes with ?since= with exactly the messages missed, no gap and no duplicate', async () => {
    const room = freshRoom();
    await fill(room, 3, 'before');
    const first = await browserClient(server.url, 'dave', room);
    const last = await first.waitFor((f) => f.type === 'message' && f.text === 'before2');
    first.close();
    await first.closed;
    await fill(room, 7, 'missed');
    const again = await browserClient(server.url, 'dave', room, last.seq as number);
    await again.waitFor((f) => f.type === 'message' && f.text === 'missed6');
    expect(ofType(await barrier(again), 'message').map((f) => f.text)).toEqual(
      Array.from({ length: 7 }, (_, i) => `missed${i}`),
    );
    expect(again.frames[0]).toMatchObject({ type: 'welcome', complete: true });
    again.close();
  });

  it('sends nothing old to a browser resuming from the newest sequence number', async () => {
    const room = freshRoom();
    const sent = await fill(room, 2);
    const b = await browserClient(server.url, 'erin', room, sent.at(-1)?.seq as number);
    await b.waitFor((f) => f.type === 'welcome');
    expect(ofType(await barrier(b), 'message')).toEqual([]);
    b.close();
  });

  it('delivers live messages after the backscroll, in sequence order', async () => {
    const room = freshRoom();
    await fill(room, 3, 'old');
    const b = await browserClient(server.url, 'fay', room);
    await b.waitFor((f) => f.type === 'message' && f.text === 'old2');
    b.send({ type: 'message', text: 'live' });
    await b.waitFor((f) => f.type === 'message' && f.text === 'live');
    const seqs = ofType(b.frames, 'message').map((f) => f.seq as number);
    expect([...seqs].sort((a, z) => a - z)).toEqual(seqs);
    expect(new Set(seqs).size).toBe(seqs.length);
    b.close();
  });
});

describe('browser door: input at the door', () => {
  const upgrade = (query: string): Promise<number> =>
    upgradeStatus(`${server.url.replace('http', 'ws')}/ws${query}`);

  it('refuses an upgrade without a valid user and room with 400 before upgrading', async () => {
    expect(await upgrade('?room=ops')).toBe(400);
    expect(await upgrade('?user=alice')).toBe(400);
    expect(await upgrade('?user=&room=ops')).toBe(400);
    expect(await upgrade(`?user=${encodeURIComponent('a\u0007b')}&room=ops`)).toBe(400);
    expect(await upgrade(`?user=${encodeURIComponent('evil\u202etxt')}&room=ops`)).toBe(400);
    expect(await upgrade(`?user=${'a'.repeat(129)}&room=ops`)).toBe(400);
    expect(await upgrade('?user=alice&room=ops&since=abc')).toBe(400);
    expect(await upgrade('?user=alice&room=ops')).toBe(101);
  });

  it.each([
    'ali\u00adce',
    'ali\u034fce',
    'ali\u061cce',
    'ali\u180ece',
    'ali\u115fce',
    'ali\u3164ce',
    'alice\ufe0f',
    'alice\u{E0041}',
    'ali\u206ace',
    'ali\u2028ce',
  ])('refuses an upgrade whose user or room %j carries an invisible character with 400', async (name) => {
    expect(await upgrade(`?user=${encodeURIComponent(name)}&room=ops`)).toBe(400);
    expect(await upgrade(`?user=bob&room=${encodeURIComponent(name)}`)).toBe(400);
  });

  it('refuses a user or room of only ideographic or no-break spaces as blank', async () => {
    for (const blank of ['\u3000', '\u00a0', '\u3000\u00a0']) {
      expect(await upgrade(`?user=${encodeURIComponent(blank)}&room=ops`)).toBe(400);
      expect(await upgrade(`?user=bob&room=${encodeURIComponent(blank)}`)).toBe(400);
    }
    const res = await bareApp().app.request(`/ws?user=${encodeURIComponent('\u3000')}&room=ops`, {
      headers: { upgrade: 'websocket' },
    });
    expect(await res.json()).toMatchObject({
      error: { code: 'bad_query', message: 'user must not be blank' },
    });
  });

  it('answers a history page of up to 200 messages over HTTP, and 400 for more', async () => {
    expect((await fetch(`${server.url}/api/rooms/ops/messages?limit=200`)).status).toBe(200);
    const over = await fetch(`${server.url}/api/rooms/ops/messages?limit=201`);
    expect(over.status).toBe(400);
    expect(await over.json()).toMatchObject({ error: { code: 'bad_query' } });
  });

  it('explains a refusal in a JSON body, and answers a plain GET with 426', async () => {
    // Browsers cannot read the body of a refused upgrade, but scripts and operators can.
    const res = await bareApp().app.request('/ws?user=alice', { headers: { upgrade: 'websocket' } });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({
      error: { code: 'bad_query', message: 'room must not be blank' },
    });
    const plain = await fetch(`${server.url}/ws?user=alice&room=ops`);
    expect(plain.status).toBe(426);
    expect(await plain.json()).toMatchObject({ error: { code: 'upgrade_required' } });
  });

  it('answers a binary frame with an error and keeps the socket', async () => {
    const room = freshRoom();
    const b = await browserClient(server.url, 'gus', room);
    await b.waitFor((f) => f.type === 'welcome');
    b.ws.send(Buffer.from([1, 2, 3]));
    const error = await b.waitFor((f) => f.type === 'error');
    expect(error.code).toBe(ErrorCode.BinaryUnsupported);
    b.send({ type: 'message', text: 'fine' });
    await b.waitFor((f) => f.type === 'message' && f.text === 'fine');
    b.close();
  });

  it('closes a socket that sends a frame over 64 KiB (1009) and nobody else notices', async () => {
    const room = freshRoom();
    const other = await browserClient(server.url, 'hal', room);
    await other.waitFor((f) => f.type === 'welcome');
    const big = await browserClient(server.url, 'ida', room);
    await big.waitFor((f) => f.type === 'welcome');
    big.ws.send(JSON.stringify({ type: 'message', text: 'x'.repeat(70 * 1024) }));
    expect((await big.closed).code).toBe(1009);
    other.send({ type: 'message', text: 'unaffected' });
    await other.waitFor((f) => f.type === 'message' && f.text === 'unaffected');
    other.close();
  });

  it('answers malformed JSON with an error frame naming the problem', async () => {
    const room = freshRoom();
    const b = await browserClient(server.url, 'jan', room);
    await b.waitFor((f) => f.type === 'welcome');
    b.ws.send('{nope');
    b.send({ type: 'hello', room, user: 'someone-else' });
    await b.waitFor((f) => f.type === 'error' && f.code === ErrorCode.AlreadyJoined);
    expect(ofType(b.frames, 'error').map((f) => f.code)).toEqual([
      ErrorCode.BadJson,
      ErrorCode.AlreadyJoined,
    ]);
    b.close();
  });
});

describe('browser door: HTTP', () => {
  it('serves the page with a strict Content-Security-Policy', async () => {
    const res = await fetch(`${server.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/html');
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(await res.text()).toContain('/static/app.js');
  });

  it('serves static assets with their type and revalidation by ETag', async () => {
    const res = await fetch(`${server.url}/static/app.js`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/javascript');
    const etag = res.headers.get('etag') ?? '';
    const again = await fetch(`${server.url}/static/app.js`, { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
  });

  it('does not serve files outside static/', async () => {
    for (const path of [
      '/static/..%2fpackage.json',
      '/static/../package.json',
      '/static/nope.js',
      '/package.json',
    ]) {
      expect((await fetch(`${server.url}${path}`)).status).toBe(404);
    }
  });

  it('reports health as 200 with room and connection counts', async () => {
    const res = await fetch(`${server.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ok', database: 'up' });
  });

  it('reports 503 when the database does not answer', async () => {
    const failing = bareApp({ checkDatabase: () => Promise.reject(new Error('disk gone')) }).app;
    expect((await failing.request('/healthz')).status).toBe(503);
    const res = await bareApp({ checkDatabase: () => new Promise(() => {}) }).app.request('/healthz');
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ status: 'unavailable' });
  });
});
