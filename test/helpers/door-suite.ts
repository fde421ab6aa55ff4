// What both doors promise, as a suite that runs against any server reachable over real sockets.
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/protocol/codes.ts';
import { barrier, browserClient, consoleClient, type Frame, ofType, type TestClient } from './clients.ts';
import { describeProtocol2 } from './protocol2-suite.ts';

/** Where a running server's doors are. */
export interface DoorTarget {
  readonly consolePort: number;
  readonly url: string;
}

type Join = (target: DoorTarget, user: string, room: string) => Promise<TestClient>;

let watchers = 0;

/**
 * A seed-protocol console gets no reply to its hello; an opted-in watcher in the room sees it arrive.
 * Works from outside the server's process, where the Hub cannot be asked.
 */
async function seedConsole(target: DoorTarget, user: string, room: string): Promise<TestClient> {
  const watcher = await consoleClient(target.consolePort, {
    type: 'hello',
    room,
    user: `watcher-${++watchers}`,
    protocol: 2,
  });
  await watcher.waitFor((f) => f.type === 'welcome');
  const client = await consoleClient(target.consolePort, { type: 'hello', room, user });
  await watcher.waitFor((f) => f.type === 'presence' && f.user === user && f.status === 'available');
  watcher.close();
  await watcher.closed;
  return client;
}

const doors: Array<[string, Join]> = [
  ['console door, seed protocol', seedConsole],
  [
    'console door, protocol 2',
    async (target, user, room) => {
      const client = await consoleClient(target.consolePort, { type: 'hello', room, user, protocol: 2 });
      await client.waitFor((f) => f.type === 'welcome');
      return client;
    },
  ],
  [
    'browser door',
    async (target, user, room) => {
      const client = await browserClient(target.url, user, room);
      await client.waitFor((f) => f.type === 'welcome');
      return client;
    },
  ],
];

const messages = (c: TestClient): Frame[] => ofType(c.frames, 'message');

/**
 * Register the door suite, and the protocol-2 suite; `target` is read when the tests run, after the
 * caller's beforeAll.
 */
export function describeDoors(target: () => DoorTarget, roomPrefix = 'doors'): void {
  describeProtocol2(target, `${roomPrefix}-p2`);
  let roomNo = 0;
  const freshRoom = (): string => `${roomPrefix}-${++roomNo}`;

  describe.each(doors)('%s', (door, join) => {
    it("echoes a sender's own message back with the server's id, ts and sender", async () => {
      const room = freshRoom();
      const alice = await join(target(), 'alice', room);
      const before = Date.now() / 1000;
      alice.send({ type: 'message', room, text: 'rolling out' });
      const echo = await alice.waitFor((f) => f.type === 'message');
      expect(echo).toMatchObject({ type: 'message', room, sender: 'alice', text: 'rolling out' });
      expect(echo.id).toMatch(/^[0-9a-f]{32}$/u);
      expect(echo.ts).toBeGreaterThanOrEqual(before - 1);
      expect(echo.ts).toBeLessThanOrEqual(Date.now() / 1000 + 1);
      expect(typeof echo.seq).toBe('number');
      alice.close();
    });

    it('stamps the bound name on every message, whatever user or sender a frame claims', async () => {
      const room = freshRoom();
      const alice = await join(target(), 'alice', room);
      const bob = await join(target(), 'bob', room);
      alice.send({ type: 'message', text: 'spoof', user: 'mallory', sender: 'mallory', id: 'x', ts: 1 });
      const got = await bob.waitFor((f) => f.type === 'message');
      expect(got.sender).toBe('alice');
      expect(got.id).not.toBe('x');
      expect(got.ts).not.toBe(1);
      alice.close();
      bob.close();
    });

    it('never delivers a message to a room the sender is not in, whatever room the frame names', async () => {
      const room = freshRoom();
      const other = freshRoom();
      const alice = await join(target(), 'alice', room);
      const eve = await join(target(), 'eve', other);
      alice.send({ type: 'message', room: other, text: 'stays home' });
      if (door === 'console door, seed protocol') {
        // The seed protocol ignores a message's room: it goes to the room the hello bound.
        const echo = await alice.waitFor((f) => f.type === 'message');
        expect(echo.room).toBe(room);
      } else {
        // Protocol 2 names rooms: one not joined is refused.
        const refused = await alice.waitFor((f) => f.type === 'error');
        expect(refused.code).toBe(ErrorCode.NotJoined);
      }
      expect(ofType(await barrier(eve), 'message')).toEqual([]);
      alice.close();
      eve.close();
    });

    it('cuts text over 20,000 characters to 20,000 plus an ellipsis', async () => {
      const room = freshRoom();
      const alice = await join(target(), 'alice', room);
      alice.send({ type: 'message', text: 'x'.repeat(20_001) });
      const echo = await alice.waitFor((f) => f.type === 'message');
      expect(echo.text).toBe(`${'x'.repeat(20_000)}…`);
      alice.close();
    });

    it('drops control characters other than tab and newline from message text', async () => {
      const room = freshRoom();
      const alice = await join(target(), 'alice', room);
      alice.send({ type: 'message', text: 'red\u001b[31m alert\u0007\r\nnext\tline\u009b' });
      const echo = await alice.waitFor((f) => f.type === 'message');
      expect(echo.text).toBe('red[31m alert\nnext\tline');
      alice.close();
    });

    it('tells a newcomer who is present and tells the room when someone arrives and leaves', async () => {
      const room = freshRoom();
      const alice = await join(target(), 'alice', room);
      const bob = await join(target(), 'bob', room);
      await bob.waitFor((f) => f.type === 'presence' && f.user === 'alice' && f.status === 'available');
      await alice.waitFor((f) => f.type === 'presence' && f.user === 'bob' && f.status === 'available');
      bob.close();
      await alice.waitFor((f) => f.type === 'presence' && f.user === 'bob' && f.status === 'away');
      expect(
        ofType(await barrier(alice), 'presence').filter((f) => f.user === 'bob' && f.status === 'away'),
      ).toHaveLength(1);
      alice.close();
    });

    it('relays a presence change to the others, normalising any unknown status to away', async () => {
      const room = freshRoom();
      const alice = await join(target(), 'alice', room);
      const bob = await join(target(), 'bob', room);
      await bob.waitFor((f) => f.type === 'presence' && f.user === 'alice');
      const mark = bob.frames.length;
      alice.send({ type: 'presence', status: 'busy' });
      const change = await bob.waitFor((f) => f.type === 'presence' && f.user === 'alice', 3000, mark);
      expect(change.status).toBe('away');
      alice.send({ type: 'presence', status: 'available' });
      const back = await bob.waitFor(
        (f) => f.type === 'presence' && f.user === 'alice' && f.status === 'available',
        3000,
        mark,
      );
      expect(back.room).toBe(room);
      alice.close();
      bob.close();
    });

    it('refuses a message with nothing to show: not stored, not sent, and an opted-in sender is told', async () => {
      const room = freshRoom();
      const alice = await join(target(), 'alice', room);
      const bob = await join(target(), 'bob', room);
      const blanks = ['\u0000\u0007\u001b\u009b', '', ' \t\r\n ', '\u200b\u00ad', null];
      for (const text of blanks) alice.send({ type: 'message', text });
      // Whatever the blanks caused has arrived by the time this has.
      alice.send({ type: 'message', text: 'barrier' });
      await bob.waitFor((f) => f.type === 'message' && f.text === 'barrier');
      await alice.waitFor((f) => f.type === 'message' && f.text === 'barrier');
      expect(messages(bob).map((f) => f.text)).toEqual(['barrier']);
      expect(messages(alice).map((f) => f.text)).toEqual(['barrier']);
      const errors = ofType(alice.frames, 'error').map((f) => f.code);
      expect(errors).toEqual(
        door === 'console door, seed protocol' ? [] : blanks.map(() => ErrorCode.EmptyMessage),
      );
      const later = await browserClient(target().url, 'carol', room);
      await later.waitFor((f) => f.type === 'message' && f.text === 'barrier');
      expect(messages(later).map((f) => f.text)).toEqual(['barrier']);
      for (const c of [alice, bob, later]) c.close();
    });

    it('skips malformed frames and keeps the connection', async () => {
      const room = freshRoom();
      const alice = await join(target(), 'alice', room);
      alice.send({ type: 'nonsense' });
      alice.send({ type: 'message', text: { nested: true } });
      alice.send({ type: 'message', text: 'still here' });
      const echo = await alice.waitFor((f) => f.type === 'message');
      expect(echo.text).toBe('still here');
      alice.close();
    });
  });

  describe('across doors', () => {
    it('delivers messages from consoles to browsers and from browsers to consoles, in one order', async () => {
      const room = freshRoom();
      const ops = await consoleClient(target().consolePort, {
        type: 'hello',
        room,
        user: 'ops@web01',
        protocol: 2,
      });
      await ops.waitFor((f) => f.type === 'welcome');
      const browser = await browserClient(target().url, 'carol', room);
      await browser.waitFor((f) => f.type === 'welcome');
      ops.send({ type: 'message', text: 'from console' });
      browser.send({ type: 'message', text: 'from browser' });
      await ops.waitFor((f) => f.type === 'message' && f.text === 'from browser');
      await browser.waitFor((f) => f.type === 'message' && f.text === 'from console');
      await ops.waitFor((f) => f.type === 'message' && f.text === 'from console');
      await browser.waitFor((f) => f.type === 'message' && f.text === 'from browser');
      const order = (c: TestClient) => messages(c).map((f) => f.id);
      expect(order(browser)).toEqual(order(ops));
      ops.close();
      browser.close();
    });
  });
}
