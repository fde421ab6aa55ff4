// The console door over real TCP: hello binding, framing limits, UTF-8, and what a seed console receives.
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../src/protocol/codes.ts';
import { barrier, consoleClient, ofType } from './helpers/clients.ts';
import { startTestServer, type TestServer, tempDir, untilRoomSize } from './helpers/server.ts';

let server: TestServer;
let cleanup: () => Promise<void>;
let n = 0;
const freshRoom = (): string => `console-${++n}`;

beforeAll(async () => {
  const tmp = await tempDir();
  cleanup = tmp.cleanup;
  server = await startTestServer(`${tmp.dir}/room.db`);
});

afterAll(async () => {
  await server.stop();
  await cleanup();
});

describe('console door', () => {
  it('ignores frames sent before hello', async () => {
    const room = freshRoom();
    const watcher = await consoleClient(server.consolePort, {
      type: 'hello',
      room,
      user: 'watcher',
      protocol: 2,
    });
    await watcher.waitFor((f) => f.type === 'welcome');
    const early = await consoleClient(server.consolePort);
    early.send({ type: 'message', room, text: 'too early' });
    early.send({ type: 'presence', room, status: 'away' });
    early.send({ type: 'hello', room, user: 'early' });
    early.send({ type: 'message', text: 'after hello' });
    const got = await watcher.waitFor((f) => f.type === 'message');
    expect(got).toMatchObject({ sender: 'early', text: 'after hello' });
    expect(ofType(watcher.frames, 'message')).toHaveLength(1);
    expect(ofType(watcher.frames, 'presence').filter((f) => f.status === 'away')).toHaveLength(0);
    early.close();
    watcher.close();
  });

  it('rejects a hello with a blank room and takes a later valid one; a blank user becomes "unknown"', async () => {
    const room = freshRoom();
    const c = await consoleClient(server.consolePort, { type: 'hello', room: '   ', user: 'x' });
    c.send({ type: 'hello', room, user: '  ' });
    await untilRoomSize(server, room, 1);
    c.send({ type: 'message', text: 'hi' });
    const echo = await c.waitFor((f) => f.type === 'message');
    expect(echo.sender).toBe('unknown');
    expect(echo.room).toBe(room);
    c.close();
  });

  it('closes a connection that sends no valid hello within the time limit', async () => {
    const { startConsoleDoor } = await import('../src/doors/console-door.ts');
    const door = await startConsoleDoor({
      hub: server.hub,
      log: (await import('../src/log.ts')).silentLog,
      host: '127.0.0.1',
      port: 0,
      helloTimeoutMs: 200,
    });
    const c = await consoleClient(door.address.port);
    c.send({ type: 'message', text: 'no hello' });
    const started = Date.now();
    await c.closed;
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    door.stopAccepting();
  });

  it('closes a console that sends no hello after 10 seconds by default, not before', async () => {
    const opened = performance.now();
    const c = await consoleClient(server.consolePort);
    c.send({ type: 'message', text: 'before hello' });
    await c.closed;
    const after = performance.now() - opened;
    expect(after).toBeGreaterThanOrEqual(9_900);
    expect(after).toBeLessThan(12_000);
  }, 20_000);

  it('skips blank and malformed lines without closing the connection', async () => {
    const room = freshRoom();
    const c = await consoleClient(server.consolePort, { type: 'hello', room, user: 'alice' });
    c.raw('\n\n   \n{not json\n[1,2]\n"text"\n{"type":"message"}\r\n');
    c.send({ type: 'message', text: 'still here' });
    const echo = await c.waitFor((f) => f.type === 'message' && f.text === 'still here');
    expect(echo.sender).toBe('alice');
    // A message frame without text is refused as empty (the original server stored it as "").
    expect(ofType(c.frames, 'message').map((f) => f.text)).toEqual(['still here']);
    c.close();
  });

  it('accepts CRLF line endings and frames split across many writes', async () => {
    const room = freshRoom();
    const c = await consoleClient(server.consolePort);
    const bytes = `${JSON.stringify({ type: 'hello', room, user: 'bob' })}\r\n${JSON.stringify({ type: 'message', text: 'split ✓' })}\r\n`;
    for (const ch of Buffer.from(bytes)) {
      c.raw(Buffer.from([ch]));
    }
    const echo = await c.waitFor((f) => f.type === 'message');
    expect(echo).toMatchObject({ sender: 'bob', text: 'split ✓' });
    c.close();
  });

  it('closes only the connection that sends a line over 64 KiB, before its newline arrives', async () => {
    const room = freshRoom();
    const other = await consoleClient(server.consolePort, {
      type: 'hello',
      room,
      user: 'other',
      protocol: 2,
    });
    await other.waitFor((f) => f.type === 'welcome');
    const big = await consoleClient(server.consolePort, { type: 'hello', room, user: 'big' });
    await untilRoomSize(server, room, 2);
    big.raw(`{"type":"message","text":"${'a'.repeat(64 * 1024)}`); // no newline yet
    await big.closed;
    await other.waitFor((f) => f.type === 'presence' && f.user === 'big' && f.status === 'away');
    other.send({ type: 'message', text: 'unaffected' });
    await other.waitFor((f) => f.type === 'message' && f.text === 'unaffected');
    expect(ofType(other.frames, 'message')).toHaveLength(1);
    other.close();
  });

  it('takes a line of just under 64 KiB', async () => {
    const room = freshRoom();
    const c = await consoleClient(server.consolePort, { type: 'hello', room, user: 'wide' });
    const text = 'b'.repeat(20_000);
    c.send({ type: 'message', text });
    const echo = await c.waitFor((f) => f.type === 'message');
    expect(echo.text).toBe(text);
    c.close();
  });

  it('refuses a line of invalid UTF-8 instead of storing garbage, and keeps the connection', async () => {
    const room = freshRoom();
    const c = await consoleClient(server.consolePort, { type: 'hello', room, user: 'utf', protocol: 2 });
    await c.waitFor((f) => f.type === 'welcome');
    c.raw(
      Buffer.concat([
        Buffer.from('{"type":"message","text":"bad '),
        Buffer.from([0xff, 0xfe]),
        Buffer.from('"}\n'),
      ]),
    );
    const error = await c.waitFor((f) => f.type === 'error');
    expect(error.code).toBe(ErrorCode.BadUtf8);
    c.send({ type: 'message', text: 'good ü' });
    const echo = await c.waitFor((f) => f.type === 'message');
    expect(echo.text).toBe('good ü');
    expect(ofType(c.frames, 'message')).toHaveLength(1);
    c.close();
  });

  it('sends a seed console only message and presence frames, never welcome or error frames', async () => {
    const room = freshRoom();
    const seed = await consoleClient(server.consolePort, { type: 'hello', room, user: 'seed' });
    await untilRoomSize(server, room, 1);
    const v2 = await consoleClient(server.consolePort, { type: 'hello', room, user: 'v2', protocol: 2 });
    await v2.waitFor((f) => f.type === 'welcome');
    seed.send({ type: 'bogus' });
    seed.raw('{broken\n');
    seed.send({ type: 'hello', room, user: 'again' });
    seed.send({ type: 'message', text: 'ok' });
    v2.send({ type: 'presence', status: 'away' });
    await seed.waitFor((f) => f.type === 'message');
    await seed.waitFor((f) => f.type === 'presence' && f.user === 'v2' && f.status === 'away');
    expect(new Set(seed.frames.map((f) => f.type))).toEqual(new Set(['message', 'presence']));
    for (const f of ofType(seed.frames, 'message')) {
      expect(Object.keys(f).sort()).toEqual(['id', 'room', 'sender', 'seq', 'text', 'ts', 'type']);
    }
    for (const f of ofType(seed.frames, 'presence'))
      expect(Object.keys(f).sort()).toEqual(['room', 'status', 'type', 'user']);
    seed.close();
    v2.close();
  });

  it('answers an opted-in console with error codes for frames it refuses', async () => {
    const room = freshRoom();
    const c = await consoleClient(server.consolePort, { type: 'hello', room, user: 'v2', protocol: 2 });
    await c.waitFor((f) => f.type === 'welcome');
    c.raw('{broken\n');
    c.send({ type: 'bogus' });
    c.send({ type: 'hello', room, user: 'again' });
    await c.waitFor((f) => f.type === 'error' && f.code === ErrorCode.AlreadyJoined);
    expect(ofType(c.frames, 'error').map((f) => f.code)).toEqual([
      ErrorCode.BadJson,
      ErrorCode.UnknownType,
      ErrorCode.AlreadyJoined,
    ]);
    c.close();
  });

  it('a client that does not wait for its welcome still gets it first, and its other frames answered after, in order', async () => {
    const room = freshRoom();
    const other = freshRoom();
    const writer = await consoleClient(server.consolePort, { type: 'hello', room, user: 'w', protocol: 2 });
    await writer.waitFor((f) => f.type === 'welcome');
    writer.send({ type: 'message', text: 'before', ref: 'm0' });
    await writer.waitFor((f) => f.type === 'message' && f.ref === 'm0');
    // Resuming from 0 makes the first join read the store; everything else is sent with the hello.
    const c = await consoleClient(server.consolePort);
    c.raw(
      [
        { type: 'hello', room, user: 'eager', protocol: 2, since: 0, ref: 'h' },
        { type: 'who', room, ref: 'w' },
        { type: 'join', room: other, ref: 'j' },
        { type: 'message', room, text: 'right away', ref: 'm' },
        { type: 'hello', room, user: 'again', ref: 'h2' },
      ]
        .map((f) => `${JSON.stringify(f)}\n`)
        .join(''),
    );
    await c.waitFor((f) => f.type === 'error' && f.ref === 'h2');
    await c.waitFor((f) => f.type === 'message' && f.ref === 'm');
    const answered = c.frames.filter((f) => f.ref !== undefined).map((f) => `${f.type} ${f.ref}`);
    expect(c.frames[0]).toMatchObject({ type: 'welcome', ref: 'h', seq: 1 });
    // The echo comes once the message is committed; the rest are answered as they are handled.
    expect(answered.filter((a) => a !== 'message m')).toEqual(['welcome h', 'who w', 'joined j', 'error h2']);
    // The catch-up came between the welcome and the rest.
    expect(c.frames.findIndex((f) => f.type === 'message' && f.text === 'before')).toBeLessThan(
      c.frames.findIndex((f) => f.ref === 'w'),
    );
    c.close();
    writer.close();
  });

  it('refuses a hello whose name carries control or bidi-override characters', async () => {
    const room = freshRoom();
    const c = await consoleClient(server.consolePort, {
      type: 'hello',
      room,
      user: 'ali\u202ece',
      protocol: 2,
    });
    const error = await c.waitFor((f) => f.type === 'error');
    expect(error.code).toBe(ErrorCode.BadName);
    expect(server.hub.roomSize(room)).toBe(0);
    c.close();
  });

  // Each would show as "alice" in the people list: U+00AD, U+034F, U+061C, U+180E, U+115F, U+3164,
  // U+FE0F, U+E0041, U+206A, U+2028.
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
  ])('refuses a hello whose user or room %j carries an invisible character', async (name) => {
    const room = freshRoom();
    const user = await consoleClient(server.consolePort, { type: 'hello', room, user: name, protocol: 2 });
    expect((await user.waitFor((f) => f.type === 'error')).code).toBe(ErrorCode.BadName);
    const inRoom = await consoleClient(server.consolePort, {
      type: 'hello',
      room: name,
      user: 'bob',
      protocol: 2,
    });
    expect((await inRoom.waitFor((f) => f.type === 'error')).code).toBe(ErrorCode.BadName);
    // A plain console is not told, and is not let in either: its next, valid hello is the one that counts.
    const seed = await consoleClient(server.consolePort, { type: 'hello', room, user: name });
    seed.send({ type: 'hello', room, user: 'plain' });
    seed.send({ type: 'message', text: 'who am I' });
    expect((await seed.waitFor((f) => f.type === 'message')).sender).toBe('plain');
    expect(server.hub.roomSize(room)).toBe(1);
    expect(server.hub.roomSize(name)).toBe(0);
    for (const c of [user, inRoom, seed]) c.close();
  });

  it('never gives a console backscroll, even in a busy room', async () => {
    const room = freshRoom();
    const talker = await consoleClient(server.consolePort, { type: 'hello', room, user: 'talker' });
    for (let i = 0; i < 5; i++) talker.send({ type: 'message', text: `m${i}` });
    await talker.waitFor((f) => f.type === 'message' && f.text === 'm4');
    const late = await consoleClient(server.consolePort, { type: 'hello', room, user: 'late', protocol: 2 });
    await late.waitFor((f) => f.type === 'welcome');
    await late.waitFor((f) => f.type === 'presence' && f.user === 'talker');
    expect(ofType(await barrier(late), 'message')).toEqual([]);
    talker.close();
    late.close();
  });

  it('treats a disconnect as leaving the room', async () => {
    const room = freshRoom();
    const stay = await consoleClient(server.consolePort, { type: 'hello', room, user: 'stay', protocol: 2 });
    await stay.waitFor((f) => f.type === 'welcome');
    const go = await consoleClient(server.consolePort, { type: 'hello', room, user: 'go' });
    await stay.waitFor((f) => f.type === 'presence' && f.user === 'go' && f.status === 'available');
    go.socket.destroy();
    await stay.waitFor((f) => f.type === 'presence' && f.user === 'go' && f.status === 'away');
    await untilRoomSize(server, room, 1);
    stay.close();
  });

  it('listens on the loopback interface only', async () => {
    // The address the listening socket really has…
    expect(server.consoleAddress.host).toBe('127.0.0.1');
    // …and the door cannot be reached through any other address of this machine.
    const others = Object.values(networkInterfaces())
      .flat()
      .filter((i) => i && !i.internal && i.family === 'IPv4')
      .map((i) => i?.address as string);
    for (const address of others) {
      const outcome = await new Promise<string>((resolve) => {
        const socket = connect({ host: address, port: server.consolePort });
        socket.once('connect', () => {
          socket.destroy();
          resolve('connected');
        });
        socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
      });
      expect(outcome, `via ${address}`).toBe('ECONNREFUSED');
    }
  });
});
