// What protocol 2 promises every opted-in client (a console whose hello says protocol 2, any browser),
// as one suite both doors run, and the Deno-hosted server too.
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/protocol/codes.ts';
import {
  barrier,
  browserClient,
  consoleClient,
  type Frame,
  ofType,
  request,
  type TestClient,
} from './clients.ts';
import type { DoorTarget } from './door-suite.ts';

type Open = (
  target: DoorTarget,
  user: string,
  room: string,
  extra?: { since?: number },
) => Promise<TestClient>;

const optedIn: Array<[string, Open]> = [
  [
    'console door, protocol 2',
    async (target, user, room, extra) => {
      const client = await consoleClient(target.consolePort, {
        type: 'hello',
        room,
        user,
        protocol: 2,
        ...extra,
      });
      await client.waitFor((f) => f.type === 'joined' && f.room === room);
      return client;
    },
  ],
  [
    'browser door',
    async (target, user, room, extra) => {
      const client = await browserClient(target.url, user, room, extra?.since);
      await client.waitFor((f) => f.type === 'joined' && f.room === room);
      return client;
    },
  ],
];

const inRoom = (c: TestClient, room: string): Frame[] =>
  ofType(c.frames, 'message').filter((f) => f.room === room);

/** A seed console in `room` (no frame answers its hello; another member sees it arrive). */
async function seed(
  target: DoorTarget,
  watcher: TestClient,
  user: string,
  room: string,
): Promise<TestClient> {
  const client = await consoleClient(target.consolePort, { type: 'hello', room, user });
  await watcher.waitFor((f) => f.type === 'presence' && f.user === user && f.room === room);
  return client;
}

/** Register the protocol-2 suite; `target` is read when the tests run. */
export function describeProtocol2(target: () => DoorTarget, roomPrefix = 'p2'): void {
  let roomNo = 0;
  const freshRoom = (): string => `${roomPrefix}-${++roomNo}`;
  let userNo = 0;
  const freshUser = (name: string): string => `${name}-${roomPrefix}-${++userNo}`;

  describe.each(optedIn)('protocol 2, %s', (_door, open) => {
    it('answers every frame that carries a ref exactly once, with that ref, and errors too', async () => {
      const room = freshRoom();
      const alice = await open(target(), 'alice', room);
      const echo = await request(alice, { type: 'message', text: 'labelled' });
      expect(echo).toMatchObject({ type: 'message', text: 'labelled', room });
      const refused = await request(alice, { type: 'message', text: '' });
      expect(refused).toMatchObject({ type: 'error', code: ErrorCode.EmptyMessage });
      const unknown = await request(alice, { type: 'teleport' });
      expect(unknown).toMatchObject({ type: 'error', code: ErrorCode.UnknownType });
      const ack = await request(alice, { type: 'presence', status: 'away' });
      expect(ack).toMatchObject({ type: 'ack' });
      expect(await request(alice, { type: 'pong' })).toMatchObject({ type: 'ack' });
      expect(await request(alice, { type: 'hello', room, user: 'alice', protocol: 2 })).toMatchObject({
        type: 'error',
        code: ErrorCode.AlreadyJoined,
      });
      // A ref over 64 characters is refused, and cannot be echoed: a plain error.
      alice.send({ type: 'who', room, ref: 'x'.repeat(65) });
      const before = await barrier(alice);
      const refs = before.map((f) => f.ref).filter((r): r is string => typeof r === 'string');
      expect(new Set(refs).size).toBe(refs.length);
      expect(ofType(before, 'error').some((f) => f.code === ErrorCode.BadFrame && f.ref === undefined)).toBe(
        true,
      );
      alice.close();
    });

    it('joins several rooms on one connection, each with its own messages, presence and seq', async () => {
      const [ops, dev] = [freshRoom(), freshRoom()];
      const alice = await open(target(), 'alice', ops);
      const bob = await open(target(), 'bob', dev);
      const joined = await request(alice, { type: 'join', room: dev });
      expect(joined).toMatchObject({ type: 'joined', room: dev, complete: true, read: 0, unread: 0 });
      // The catch-up: who is there, before joined.
      const catchUp = alice.frames.slice(0, alice.frames.indexOf(joined));
      expect(catchUp).toContainEqual({ type: 'presence', room: dev, user: 'bob', status: 'available' });
      await bob.waitFor((f) => f.type === 'presence' && f.user === 'alice' && f.room === dev);

      bob.send({ type: 'message', text: 'in dev' });
      alice.send({ type: 'message', room: ops, text: 'in ops' });
      alice.send({ type: 'message', room: dev, text: 'also in dev' });
      await alice.waitFor((f) => f.type === 'message' && f.text === 'also in dev');
      await alice.waitFor((f) => f.type === 'message' && f.text === 'in dev');
      await alice.waitFor((f) => f.type === 'message' && f.text === 'in ops');
      expect(inRoom(alice, ops).map((f) => [f.text, f.seq])).toEqual([['in ops', 1]]);
      expect(inRoom(alice, dev).map((f) => f.seq)).toEqual([1, 2]);
      await bob.waitFor((f) => f.type === 'message' && f.text === 'also in dev');
      expect(inRoom(bob, ops)).toEqual([]);
      alice.close();
      bob.close();
    });

    it('refuses a frame for a room not joined (not_joined), and asks which room when it is not clear', async () => {
      const [home, other, third] = [freshRoom(), freshRoom(), freshRoom()];
      const alice = await open(target(), 'alice', home);
      const eve = await open(target(), 'eve', other);
      expect(await request(alice, { type: 'message', room: other, text: 'stray' })).toMatchObject({
        type: 'error',
        code: ErrorCode.NotJoined,
      });
      expect(await request(alice, { type: 'history', room: other })).toMatchObject({
        code: ErrorCode.NotJoined,
      });
      expect(await request(alice, { type: 'typing', room: other, state: 'active' })).toMatchObject({
        code: ErrorCode.NotJoined,
      });
      await request(alice, { type: 'join', room: third });
      expect(await request(alice, { type: 'message', text: 'where?' })).toMatchObject({
        code: ErrorCode.BadFrame,
      });
      expect(ofType(await barrier(eve), 'message').filter((f) => f.room === other)).toEqual([]);
      alice.close();
      eve.close();
    });

    it('leaves a room: left, and the others see away only when the user has no connection left there', async () => {
      const room = freshRoom();
      const watcher = await open(target(), 'watcher', room);
      const first = await open(target(), 'carol', room);
      const second = await open(target(), 'carol', freshRoom());
      await request(second, { type: 'join', room });
      expect(await request(first, { type: 'leave', room })).toMatchObject({ type: 'left', room });
      // carol is still there on her second connection: nobody is told she left.
      expect(
        ofType(await barrier(watcher), 'presence').filter((f) => f.user === 'carol' && f.status === 'away'),
      ).toEqual([]);
      await request(second, { type: 'leave', room });
      await watcher.waitFor((f) => f.type === 'presence' && f.user === 'carol' && f.status === 'away');
      expect(await request(first, { type: 'leave', room })).toMatchObject({ code: ErrorCode.NotJoined });
      for (const c of [watcher, first, second]) c.close();
    });

    it('resumes a room with since: every message after it, in order, then joined; on join and in the first room', async () => {
      const room = freshRoom();
      const filler = await open(target(), 'filler', room);
      for (let i = 1; i <= 6; i++) filler.send({ type: 'message', text: `m${i}` });
      await filler.waitFor((f) => f.type === 'message' && f.text === 'm6');
      const later = await open(target(), 'later', freshRoom());
      const joined = await request(later, { type: 'join', room, since: 2 });
      expect(joined).toMatchObject({ seq: 6, complete: true });
      expect(inRoom(later, room).map((f) => f.text)).toEqual(['m3', 'm4', 'm5', 'm6']);
      const resumed = await open(target(), 'resumed', room, { since: 4 });
      const welcome = await resumed.waitFor((f) => f.type === 'welcome');
      expect(welcome).toMatchObject({ room, seq: 6, complete: true });
      expect(inRoom(resumed, room).map((f) => f.text)).toEqual(['m5', 'm6']);
      for (const c of [filler, later, resumed]) c.close();
    });

    it('stores a message with a cid once: a resend gets the original echo, and nobody sees it twice', async () => {
      const room = freshRoom();
      const user = freshUser('agent');
      const watcher = await open(target(), 'watcher', room);
      const sender = await open(target(), user, room);
      const first = await request(sender, { type: 'message', text: 'build 42 passed', cid: 'job-42' });
      expect(first).toMatchObject({ type: 'message', cid: 'job-42', text: 'build 42 passed' });
      const again = await request(sender, { type: 'message', text: 'build 42 passed', cid: 'job-42' });
      expect(again).toMatchObject({ id: first.id, seq: first.seq, ts: first.ts, cid: 'job-42' });
      // After reconnecting, too.
      sender.close();
      await sender.closed;
      const back = await open(target(), user, room);
      const third = await request(back, { type: 'message', text: 'build 42 passed', cid: 'job-42' });
      expect(third).toMatchObject({ id: first.id, seq: first.seq });
      await barrier(watcher);
      expect(inRoom(watcher, room).filter((f) => f.cid === 'job-42')).toHaveLength(1);
      // Another sender's cid is another message.
      expect(await request(watcher, { type: 'message', text: 'mine', cid: 'job-42' })).toMatchObject({
        seq: (first.seq as number) + 2,
      });
      watcher.close();
      back.close();
    });

    it('says who is in a room and which rooms there are', async () => {
      const room = freshRoom();
      const human = await browserClient(target().url, 'dana', room);
      await human.waitFor((f) => f.type === 'joined');
      const agent = await open(target(), 'agent-7', room);
      const console2 = await consoleClient(target().consolePort, {
        type: 'hello',
        room,
        user: 'agent-7',
        protocol: 2,
      });
      await console2.waitFor((f) => f.type === 'joined');
      human.send({ type: 'presence', status: 'away' });
      await agent.waitFor((f) => f.type === 'presence' && f.user === 'dana' && f.status === 'away');
      const who = await request(agent, { type: 'who', room });
      const agentKind = _door === 'browser door' ? 'human' : 'console';
      expect(who.users).toEqual([
        { user: 'agent-7', status: 'available', kind: agentKind, connections: 2 },
        { user: 'dana', status: 'away', kind: 'human', connections: 1 },
      ]);
      // Asking about a room one is not in works too.
      const outsider = await open(target(), 'outsider', freshRoom());
      expect((await request(outsider, { type: 'who', room })).users).toHaveLength(2);
      agent.send({ type: 'message', text: 'hello rooms' });
      await agent.waitFor((f) => f.type === 'message' && f.text === 'hello rooms');
      const rooms = await request(outsider, { type: 'rooms' });
      const entry = (rooms.rooms as Array<Record<string, unknown>>).find((r) => r.room === room);
      expect(entry).toMatchObject({ room, members: 2, seq: 1 });
      for (const c of [human, agent, console2, outsider]) c.close();
    });

    it('pages through history before and after a seq, oldest first, with more until the end', async () => {
      const room = freshRoom();
      const filler = await open(target(), 'filler', room);
      for (let i = 1; i <= 12; i++) filler.send({ type: 'message', text: `h${i}` });
      await filler.waitFor((f) => f.type === 'message' && f.text === 'h12');
      const page = async (query: object): Promise<Frame> =>
        request(filler, { type: 'history', room, ...query });
      const newest = await page({ limit: 5 });
      expect((newest.messages as Frame[]).map((m) => m.text)).toEqual(['h8', 'h9', 'h10', 'h11', 'h12']);
      expect(newest.more).toBe(true);
      const older = await page({ before: 8, limit: 5 });
      expect((older.messages as Frame[]).map((m) => m.seq)).toEqual([3, 4, 5, 6, 7]);
      expect(older.more).toBe(true);
      const first = await page({ before: 3, limit: 5 });
      expect((first.messages as Frame[]).map((m) => m.seq)).toEqual([1, 2]);
      expect(first.more).toBe(false);
      const after = await page({ after: 9 });
      expect((after.messages as Frame[]).map((m) => m.seq)).toEqual([10, 11, 12]);
      expect(after.more).toBe(false);
      expect(await page({ limit: 201 })).toMatchObject({ type: 'error', code: ErrorCode.BadFrame });
      expect(await page({ before: 5, after: 2 })).toMatchObject({ type: 'error', code: ErrorCode.BadFrame });
      filler.close();
    });

    it('whispers to every opted-in connection of both people and nobody else, and keeps them for later', async () => {
      const room = freshRoom();
      const [from, to] = [freshUser('alice'), freshUser('bob')];
      const alice = await open(target(), from, room);
      const bobConsole = await consoleClient(target().consolePort, {
        type: 'hello',
        room,
        user: to,
        protocol: 2,
      });
      await bobConsole.waitFor((f) => f.type === 'joined');
      const bobBrowser = await browserClient(target().url, to, freshRoom());
      await bobBrowser.waitFor((f) => f.type === 'joined');
      const eve = await open(target(), 'eve', room);
      const seedy = await seed(target(), eve, 'seedy', room);
      const sent = await request(alice, { type: 'whisper', to, text: 'psst', cid: 'w1' });
      expect(sent).toMatchObject({ type: 'whisper', from, to, text: 'psst', seq: 1, cid: 'w1' });
      for (const c of [bobConsole, bobBrowser])
        expect(await c.waitFor((f) => f.type === 'whisper')).toMatchObject({
          from,
          to,
          text: 'psst',
          id: sent.id,
        });
      expect(ofType(await barrier(eve), 'whisper')).toEqual([]);
      expect(await barrier(seedy)).not.toContainEqual(expect.objectContaining({ text: 'psst' }));
      // Never in the room's history.
      const history = await request(eve, { type: 'history', room });
      expect((history.messages as Frame[]).map((m) => m.text)).not.toContain('psst');
      // A whisper is read later with history `with`, and counted in the welcome until read.
      const conversation = await request(bobBrowser, { type: 'history', with: from });
      expect((conversation.messages as Frame[]).map((m) => [m.type, m.text])).toEqual([['whisper', 'psst']]);
      const again = await browserClient(target().url, to, freshRoom());
      expect(await again.waitFor((f) => f.type === 'welcome')).toMatchObject({ whispers: 1 });
      await request(again, { type: 'read', with: from, seq: 1 });
      const later = await browserClient(target().url, to, freshRoom());
      expect(await later.waitFor((f) => f.type === 'welcome')).toMatchObject({ whispers: 0 });
      expect(await request(alice, { type: 'whisper', to: 'nobody-ever', text: 'hi' })).toMatchObject({
        code: ErrorCode.UnknownUser,
      });
      for (const c of [alice, bobConsole, bobBrowser, eve, seedy, again, later]) c.close();
    });

    it('relays typing to the other opted-in members, never stored, at most once per 2 s per connection', async () => {
      const room = freshRoom();
      const alice = await open(target(), 'alice', room);
      const bob = await open(target(), 'bob', room);
      const seedy = await seed(target(), bob, 'seedy', room);
      expect(await request(alice, { type: 'typing', state: 'active' })).toMatchObject({ type: 'ack' });
      expect(await bob.waitFor((f) => f.type === 'typing')).toEqual({
        type: 'typing',
        room,
        user: 'alice',
        state: 'active',
      });
      alice.send({ type: 'typing', state: 'active' }); // within 2 s: not relayed again
      alice.send({ type: 'typing', state: 'idle' });
      await bob.waitFor((f) => f.type === 'typing' && f.state === 'idle');
      expect(ofType(await barrier(bob), 'typing').map((f) => f.state)).toEqual(['active', 'idle']);
      expect(ofType(alice.frames, 'typing')).toEqual([]);
      expect(ofType(await barrier(seedy), 'typing')).toEqual([]);
      const history = await request(bob, { type: 'history', room });
      expect(history.messages as Frame[]).toHaveLength(2); // the two barriers, no typing
      for (const c of [alice, bob, seedy]) c.close();
    });

    it('lets an active typing state lapse by itself after 6 s', async () => {
      const room = freshRoom();
      const alice = await open(target(), 'alice', room);
      const bob = await open(target(), 'bob', room);
      alice.send({ type: 'typing', state: 'active' });
      await bob.waitFor((f) => f.type === 'typing' && f.state === 'active');
      const started = Date.now();
      await bob.waitFor((f) => f.type === 'typing' && f.state === 'idle', 9000);
      expect(Date.now() - started).toBeGreaterThanOrEqual(5500);
      alice.close();
      bob.close();
    }, 15_000);

    it('keeps read markers: forward only, on every connection of the user, counted in welcome and joined', async () => {
      const room = freshRoom();
      const user = freshUser('reader');
      const filler = await open(target(), 'filler', room);
      for (let i = 1; i <= 5; i++) filler.send({ type: 'message', text: `r${i}` });
      await filler.waitFor((f) => f.type === 'message' && f.text === 'r5');
      const phone = await open(target(), user, room);
      expect(await phone.waitFor((f) => f.type === 'joined')).toMatchObject({ seq: 5, read: 0, unread: 5 });
      const laptop = await open(target(), user, freshRoom());
      await request(laptop, { type: 'join', room });
      expect(await request(phone, { type: 'read', seq: 3 })).toMatchObject({ type: 'read', room, seq: 3 });
      expect(await laptop.waitFor((f) => f.type === 'read')).toMatchObject({ room, seq: 3 });
      expect(await request(phone, { type: 'read', seq: 2 })).toMatchObject({ seq: 3 }); // never back
      const tablet = await open(target(), user, room);
      expect(await tablet.waitFor((f) => f.type === 'welcome')).toMatchObject({
        room,
        seq: 5,
        read: 3,
        unread: 2,
      });
      for (const c of [filler, phone, laptop, tablet]) c.close();
    });

    it('says where each message came from (via), so an agent’s line is told from a person’s', async () => {
      const room = freshRoom();
      const me = await open(target(), 'me', room);
      const person = await browserClient(target().url, 'person', room);
      await person.waitFor((f) => f.type === 'joined');
      const agent = await consoleClient(target().consolePort, {
        type: 'hello',
        room,
        user: 'agent',
        protocol: 2,
      });
      await agent.waitFor((f) => f.type === 'joined');
      person.send({ type: 'message', text: 'from a browser' });
      agent.send({ type: 'message', text: 'from a console' });
      const a = await me.waitFor((f) => f.type === 'message' && f.text === 'from a browser');
      const b = await me.waitFor((f) => f.type === 'message' && f.text === 'from a console');
      expect([a.via, b.via]).toEqual(['browser', 'console']);
      for (const c of [me, person, agent]) c.close();
    });

    it('bounds the rooms of one connection (100 by default): one more is too_many_rooms', async () => {
      const alice = await open(target(), 'alice', freshRoom());
      const answers = await Promise.all(
        Array.from({ length: 99 }, () => request(alice, { type: 'join', room: freshRoom() }, 10_000)),
      );
      expect(answers.every((f) => f.type === 'joined')).toBe(true);
      expect(await request(alice, { type: 'join', room: freshRoom() })).toMatchObject({
        code: ErrorCode.TooManyRooms,
      });
      alice.close();
    }, 20_000);
  });

  describe('protocol 2 beside the seed protocol', () => {
    it('a seed console in a busy protocol-2 room still sees only message and presence frames, as before', async () => {
      const room = freshRoom();
      const alice = await browserClient(target().url, freshUser('alice'), room);
      await alice.waitFor((f) => f.type === 'joined');
      const seedy = await seed(target(), alice, 'seedy', room);
      seedy.send({ type: 'join', room: freshRoom(), ref: 'x' });
      seedy.send({ type: 'message', text: 'hi', room: 'elsewhere', ref: 'r', cid: 'c' });
      alice.send({ type: 'typing', state: 'active' });
      await request(alice, { type: 'whisper', to: 'seedy', text: 'psst' });
      await request(alice, { type: 'message', text: 'with a ref', cid: 'cid-1' });
      await request(alice, { type: 'who', room });
      const seen = await barrier(seedy);
      expect(new Set([...seen, ...seedy.frames].map((f) => f.type))).toEqual(
        new Set(['message', 'presence']),
      );
      const mine = ofType(seedy.frames, 'message').find((f) => f.text === 'hi');
      // Its own message went to its hello's room, and came back exactly as the seed protocol has it.
      expect(mine && Object.keys(mine).sort()).toEqual(['id', 'room', 'sender', 'seq', 'text', 'ts', 'type']);
      expect(mine?.room).toBe(room);
      const theirs = ofType(seedy.frames, 'message').find((f) => f.text === 'with a ref');
      expect(theirs && Object.keys(theirs).sort()).toEqual([
        'id',
        'room',
        'sender',
        'seq',
        'text',
        'ts',
        'type',
      ]);
      alice.close();
      seedy.close();
    });

    it('the browser door serves a room’s history over HTTP as the history request does', async () => {
      const room = freshRoom();
      const alice = await browserClient(target().url, 'alice', room);
      await alice.waitFor((f) => f.type === 'joined');
      for (let i = 1; i <= 3; i++) alice.send({ type: 'message', text: `w${i}` });
      await alice.waitFor((f) => f.type === 'message' && f.text === 'w3');
      const res = await fetch(
        `${target().url}/api/rooms/${encodeURIComponent(room)}/messages?before=3&limit=1`,
      );
      expect(res.status).toBe(200);
      const page = (await res.json()) as { messages: Frame[]; more: boolean };
      expect(page.messages.map((m) => [m.text, m.seq, m.via])).toEqual([['w2', 2, 'browser']]);
      expect(page.more).toBe(true);
      expect(
        (await fetch(`${target().url}/api/rooms/${encodeURIComponent(room)}/messages?limit=0`)).status,
      ).toBe(400);
      alice.close();
    });
  });
}
