// Several nodes on one PostgreSQL and one Redis, each its own process (dist/main.js): one gapless order
// per room seen identically on every node, presence and `who` for the whole cluster, whispers and admin
// actions across nodes, and what survives a node's kill -9, a Redis restart and a PostgreSQL crash.
import { createClient } from '@redis/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ErrorCode } from '../src/protocol/codes.ts';
import {
  hasRedis,
  postgresBin,
  startPostgres,
  startRedis,
  type TestPostgres,
  type TestRedis,
} from '../support/engines.ts';
import {
  browserClient,
  type ConsoleClient,
  consoleClient,
  type Frame,
  ofType,
  request,
  type TestClient,
  upgradeStatus,
} from './helpers/clients.ts';
import { requireUnderCi } from './helpers/process.ts';
import { tempDir } from './helpers/server.ts';
import { runCli, type Spawned, spawnServer, untilOutput } from './helpers/spawn.ts';
import { haveSshKeygen, keyConsole, makeKey, sign, type TestKey } from './helpers/ssh.ts';

const bin = postgresBin();
requireUnderCi('cluster', bin !== undefined && hasRedis(), 'PostgreSQL (initdb) or redis-server is missing');
requireUnderCi('cluster admin', haveSshKeygen, 'ssh-keygen is missing (openssh-client)');

let pg: TestPostgres;
let redis: TestRedis;
let db: string;
const nodes = new Set<Spawned>();
let dir: string;
let cleanup: () => Promise<void>;

const ADMINS = { CONSOLE_ROOM_ADMINS: 'ada' };

/** A node of the cluster. */
async function node(env: Record<string, string> = {}): Promise<Spawned> {
  const started = await spawnServer(['--port', '0', '--ndjson-port', '0', '--db', db, '--redis', redis.url], {
    ...ADMINS,
    ...env,
  });
  nodes.add(started);
  return started;
}

async function stopNode(n: Spawned, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  nodes.delete(n);
  await n.stop(signal);
}

/** A protocol-2 console in `room` on `n`, once it has joined. */
async function member(n: Spawned, user: string, room: string, since?: number): Promise<ConsoleClient> {
  const client = await consoleClient(n.consolePort, {
    type: 'hello',
    room,
    user,
    protocol: 2,
    ...(since === undefined ? {} : { since }),
  });
  await client.waitFor((f) => f.type === 'joined' && f.room === room, 10_000);
  return client;
}

const messagesIn = (c: TestClient, room: string): Frame[] =>
  ofType(c.frames, 'message').filter((f) => f.room === room);

async function until(check: () => boolean, ms = 15_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  if (!bin || !hasRedis()) return;
  ({ dir, cleanup } = await tempDir());
  [pg, redis] = await Promise.all([startPostgres(bin), startRedis()]);
  db = await pg.database('cluster');
}, 60_000);

afterAll(async () => {
  await Promise.all([...nodes].map((n) => n.stop('SIGKILL')));
  await redis?.stop();
  await pg?.stop();
  await cleanup?.();
});

describe.runIf(bin && hasRedis())('several nodes', () => {
  let a: Spawned;
  let b: Spawned;
  let c: Spawned;

  beforeAll(async () => {
    [a, b, c] = await Promise.all([node(), node(), node()]);
  }, 60_000);

  it('senders on every node into one room: members on every node see one identical order, 1, 2, 3… without a gap', async () => {
    const room = 'order';
    const watchers = await Promise.all([a, b, c].map((n, i) => member(n, `watch-${i}`, room)));
    const senders = await Promise.all([a, b, c].map((n, i) => member(n, `send-${i}`, room)));
    const perSender = 60;
    for (let k = 0; k < perSender; k++)
      for (const [i, s] of senders.entries())
        s.send({ type: 'message', room, text: `${i}:${k}`, cid: `${i}-${k}` });
    const total = perSender * senders.length;
    await until(
      () => watchers.every((w) => messagesIn(w, room).length >= total),
      30_000,
      'every message everywhere',
    );
    const orders = watchers.map((w) => messagesIn(w, room).map((f) => `${f.seq} ${f.text}`));
    expect(orders[1]).toEqual(orders[0]);
    expect(orders[2]).toEqual(orders[0]);
    expect(messagesIn(watchers[0] as TestClient, room).map((f) => f.seq)).toEqual(
      Array.from({ length: total }, (_, i) => i + 1),
    );
    // Each sender's echoes: its own messages, in its own order.
    for (const [i, s] of senders.entries()) {
      const own = messagesIn(s, room).filter((f) => f.sender === `send-${i}`);
      expect(own.map((f) => f.text)).toEqual(Array.from({ length: perSender }, (_, k) => `${i}:${k}`));
    }
    for (const client of [...watchers, ...senders]) client.close();
  }, 60_000);

  it('presence and who are the whole cluster’s: one arrival, one departure, whatever node each connection is on', async () => {
    const room = 'presence';
    const alice = await member(a, 'alice', room);
    const bob1 = await member(b, 'bob', room);
    await alice.waitFor((f) => f.type === 'presence' && f.user === 'bob' && f.status === 'available');
    const bob2 = await member(c, 'bob', room);
    const who = await request(alice, { type: 'who', room });
    expect(who.users).toEqual([
      { user: 'alice', status: 'available', kind: 'console', connections: 1 },
      { user: 'bob', status: 'available', kind: 'console', connections: 2 },
    ]);
    // who for a room this node has no members in.
    const carol = await member(c, 'carol', 'elsewhere');
    const whoThere = await request(carol, { type: 'who', room });
    expect(whoThere.users).toEqual(who.users);
    bob1.close();
    // bob is still there through his other connection: nobody hears he left.
    let connections = 2;
    while (connections === 2) {
      const now = await request(alice, { type: 'who', room });
      connections = Number((now.users as Frame[]).find((u) => u.user === 'bob')?.connections ?? 0);
    }
    expect(connections).toBe(1);
    bob2.close();
    await alice.waitFor((f) => f.type === 'presence' && f.user === 'bob' && f.status === 'away', 10_000);
    expect(
      ofType(alice.frames, 'presence')
        .filter((f) => f.user === 'bob')
        .map((f) => f.status),
    ).toEqual(['available', 'away']);
    for (const client of [alice, carol]) client.close();
  }, 30_000);

  it('a whisper reaches every connection of both people, on every node', async () => {
    const alice = await member(a, 'w-alice', 'w');
    const alicePhone = await browserClient(c.url as string, 'w-alice', 'w');
    const bob = await member(b, 'w-bob', 'w');
    await alicePhone.waitFor((f) => f.type === 'joined');
    const echo = await request(alice, { type: 'whisper', to: 'w-bob', text: 'psst' });
    expect(echo).toMatchObject({ type: 'whisper', from: 'w-alice', to: 'w-bob', text: 'psst', seq: 1 });
    await bob.waitFor((f) => f.type === 'whisper' && f.text === 'psst');
    await alicePhone.waitFor((f) => f.type === 'whisper' && f.text === 'psst');
    for (const client of [alice, alicePhone, bob]) client.close();
  });

  it('typing, read markers and the room list reach across nodes', async () => {
    const room = 'across';
    const alice = await member(a, 'x-alice', room);
    const alicePhone = await member(b, 'x-alice', room);
    const bob = await member(b, 'x-bob', room);
    await request(bob, { type: 'typing', room, state: 'active' });
    await alice.waitFor((f) => f.type === 'typing' && f.user === 'x-bob' && f.state === 'active');
    const said = await request(bob, { type: 'message', room, text: 'read me' });
    await alice.waitFor((f) => f.type === 'message' && f.id === said.id);
    expect(await request(alice, { type: 'read', room, seq: Number(said.seq) })).toMatchObject({
      seq: said.seq,
    });
    await alicePhone.waitFor((f) => f.type === 'read' && f.room === room && f.seq === said.seq);
    // A node with no member in the room counts its members all the same.
    const carol = await member(c, 'x-carol', 'elsewhere-2');
    const rooms = await request(carol, { type: 'rooms' });
    expect((rooms.rooms as Frame[]).find((r) => r.room === room)).toMatchObject({
      members: 2,
      seq: said.seq,
    });
    for (const client of [alice, alicePhone, bob, carol]) client.close();
  });

  describe.runIf(haveSshKeygen)('admin actions', () => {
    let adaKey: TestKey;
    let ada: ConsoleClient;

    beforeAll(async () => {
      adaKey = await makeKey(dir, 'ada');
      expect((await runCli(['keys', 'add', 'ada', adaKey.pub, '--db', db])).code).toBe(0);
      const { client, answer } = await keyConsole(
        a.consolePort,
        { room: 'mod', user: 'ada', key: adaKey.pub },
        (n) => sign(adaKey.file, n),
      );
      expect(answer).toMatchObject({ type: 'welcome', admin: true });
      ada = client;
      await ada.waitFor((f) => f.type === 'joined');
    });

    /**
     * Resolves once `watcher` (on another node) has what `ada` sends now: that node has applied
     * everything ada's node published before (one publishing connection, one subscribing one).
     */
    const afterBus = async (watcher: TestClient): Promise<void> => {
      const text = `sync ${Math.random()}`;
      ada.send({ type: 'message', room: 'mod', text });
      await watcher.waitFor((f) => f.type === 'message' && f.text === text, 20_000);
    };

    it('kick, mute, ban and delete by an admin on one node take effect on the others', async () => {
      const bob = await member(b, 'bob-m', 'mod');
      const bobToo = await member(c, 'bob-m', 'mod');
      const carol = await member(c, 'carol-m', 'mod');
      expect(await request(ada, { type: 'kick', room: 'mod', user: 'bob-m', reason: 'break' })).toMatchObject(
        {
          type: 'ack',
        },
      );
      for (const conn of [bob, bobToo])
        await conn.waitFor((f) => f.type === 'kicked' && f.room === 'mod' && f.by === 'ada');
      await request(bob, { type: 'join', room: 'mod' });

      expect(await request(ada, { type: 'mute', room: 'mod', user: 'bob-m' })).toMatchObject({ type: 'ack' });
      await afterBus(bob);
      expect(await request(bob, { type: 'message', room: 'mod', text: 'hello?' })).toMatchObject({
        type: 'error',
        code: ErrorCode.Muted,
      });
      expect(await request(ada, { type: 'unmute', room: 'mod', user: 'bob-m' })).toMatchObject({
        type: 'ack',
      });
      await afterBus(bob);
      const said = await request(bob, { type: 'message', room: 'mod', text: 'the password is hunter2' });
      expect(said).toMatchObject({ type: 'message', sender: 'bob-m' });

      await ada.waitFor((f) => f.type === 'message' && f.id === said.id);
      expect(await request(ada, { type: 'delete', room: 'mod', id: said.id })).toMatchObject({ type: 'ack' });
      await bob.waitFor((f) => f.type === 'deleted' && f.id === said.id);

      expect(await request(ada, { type: 'ban', room: 'mod', user: 'bob-m' })).toMatchObject({ type: 'ack' });
      await bob.waitFor((f) => f.type === 'kicked' && f.banned === true);
      await afterBus(carol);
      const late = await consoleClient(c.consolePort, {
        type: 'hello',
        room: 'mod',
        user: 'bob-m',
        protocol: 2,
      });
      await late.waitFor((f) => f.type === 'error' && f.code === ErrorCode.Banned);
      for (const conn of [bob, bobToo, carol, late]) conn.close();
    });

    it('a kick of someone who is only on another node is not refused as not_found', async () => {
      const dan = await member(c, 'dan', 'far-room');
      expect(await request(ada, { type: 'kick', room: 'far-room', user: 'dan' })).toMatchObject({
        type: 'ack',
      });
      await dan.waitFor((f) => f.type === 'kicked' && f.room === 'far-room');
      expect(await request(ada, { type: 'kick', room: 'far-room', user: 'nobody' })).toMatchObject({
        code: ErrorCode.NotFound,
      });
      dan.close();
    });
  });
});

describe.runIf(bin && hasRedis())('starting a node', () => {
  it('refuses --redis without a postgres:// database, a URL that is not redis://, and a Redis that is not there', async () => {
    const file = await runCli(['--db', `${dir}/one.db`, '--redis', redis.url]);
    expect(file.code).toBe(2);
    expect(file.stderr).toMatch(/--db must be a postgres:\/\/ URL/u);
    const scheme = await runCli(['--db', db, '--redis', 'http://127.0.0.1:1']);
    expect(scheme.code).toBe(2);
    expect(scheme.stderr).toMatch(/must be a redis:\/\/ or rediss:\/\/ URL/u);
    const away = await runCli([
      '--db',
      db,
      '--redis',
      'redis://127.0.0.1:1',
      '--port',
      '0',
      '--ndjson-port',
      '0',
    ]);
    expect(away.code).toBe(1);
    expect(away.stderr).toMatch(/^runspec-room: error: cannot use Redis redis:\/\/127\.0\.0\.1:1\/?: /mu);
  });
});

describe.runIf(bin && hasRedis())('limits across nodes', () => {
  it('the per-address browser limit holds for the cluster: over it, either node refuses; once one leaves, either takes one again', async () => {
    const limited = { CONSOLE_ROOM_MAX_BROWSERS_PER_IP: '2' };
    const [a, b] = await Promise.all([node(limited), node(limited)]);
    const ws = (n: Spawned, user: string): string =>
      `${(n.url as string).replace('http', 'ws')}/ws?user=${user}&room=limits`;
    const first = await browserClient(a.url as string, 'l1', 'limits');
    const second = await browserClient(b.url as string, 'l2', 'limits');
    // Connected, as their people see it (each node shares its count as it admits).
    await Promise.all([first, second].map((c) => c.waitFor((f) => f.type === 'welcome')));
    expect(await upgradeStatus(ws(a, 'l3'))).toBe(503);
    expect(await upgradeStatus(ws(b, 'l3'))).toBe(503);
    first.close();
    await first.closed;
    // Node a gives its count back as the socket closes; node b sees it at its next admission.
    let status = 0;
    for (const end = Date.now() + 10_000; status !== 101 && Date.now() < end; )
      status = await upgradeStatus(ws(b, 'l4'));
    expect(status).toBe(101);
    second.close();
    await Promise.all([stopNode(a), stopNode(b)]);
  }, 60_000);

  it('a flood from one address at both nodes at once gets no more than the limit in, in all', async () => {
    const limited = { CONSOLE_ROOM_MAX_BROWSERS_PER_IP: '3' };
    const [a, b] = await Promise.all([node(limited), node(limited)]);
    const opened: WebSocket[] = [];
    const open = (n: Spawned, i: number) =>
      new Promise<number>((resolve) => {
        const ws = new WebSocket(`${(n.url as string).replace('http', 'ws')}/ws?user=f${i}&room=flood`);
        ws.once('open', () => {
          opened.push(ws);
          resolve(101);
        });
        ws.once('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0));
        ws.once('error', () => resolve(0));
      });
    const statuses = await Promise.all(Array.from({ length: 16 }, (_, i) => open(i % 2 ? a : b, i)));
    expect(statuses.filter((s) => s === 101)).toHaveLength(3);
    expect(statuses.filter((s) => s !== 101).every((s) => s === 503)).toBe(true);
    for (const ws of opened) ws.close();
    await Promise.all([stopNode(a), stopNode(b)]);
  }, 60_000);
});

describe.runIf(bin && hasRedis())('when something fails', () => {
  it('kill -9 of a node mid-burst: its clients resume on another node with nothing lost and nothing doubled', async () => {
    const [a, b] = await Promise.all([node(), node()]);
    const room = 'k9';
    const watcher = await member(a, 'watch', room);
    const sender = await member(b, 'sender', room);
    const total = 300;
    for (let i = 0; i < total; i++) sender.send({ type: 'message', room, text: `m${i}`, cid: `k-${i}` });
    await until(() => messagesIn(sender, room).length >= 50, 15_000, 'echoes before the kill');
    await stopNode(b, 'SIGKILL');
    await sender.closed;
    // The sender comes back on the surviving node, resumes after what it saw, and resends what was not echoed.
    const seen = messagesIn(sender, room);
    const since = Number(seen.at(-1)?.seq ?? 0);
    const echoed = new Set(seen.map((f) => f.cid));
    const back = await member(a, 'sender', room, since);
    // Each resend carries a ref, as a client's does: its reply (the echo, or the stored message when
    // the dead node had committed it) is told apart from the room's stream by that ref.
    for (let i = 0; i < total; i++)
      if (!echoed.has(`k-${i}`))
        back.send({ type: 'message', room, text: `m${i}`, cid: `k-${i}`, ref: `r-${i}` });
    const echoes = (): number => new Set([...seen, ...messagesIn(back, room)].map((f) => f.cid)).size;
    await until(() => echoes() >= total, 20_000, 'every message echoed once');
    await until(() => messagesIn(watcher, room).length >= total, 20_000, 'the watcher has all');
    const got = messagesIn(watcher, room);
    expect(got.map((f) => f.seq)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(new Set(got.map((f) => f.cid)).size).toBe(total);
    // The resumed connection saw the rest of the room after `since`, gapless, each message once;
    // below it only the original echoes of resends that had been stored before the kill.
    // A resend the dead node had stored after `since` is answered with that message, which the
    // stream also brings: the only seq that may come twice, once as the reply to the ref.
    const resumed = messagesIn(back, room);
    const stream = resumed
      .filter((f) => Number(f.seq) > since && f.ref === undefined)
      .map((f) => Number(f.seq));
    const replies = resumed.filter((f) => f.ref !== undefined);
    const afterSince = new Set(
      [...stream, ...replies.map((f) => Number(f.seq))].filter((seq) => seq > since),
    );
    expect([...afterSince].sort((x, y) => x - y)).toEqual(
      Array.from({ length: total - since }, (_, i) => since + i + 1),
    );
    expect(new Set(stream).size).toBe(stream.length);
    expect(new Set(replies.map((f) => f.ref)).size).toBe(replies.length);
    expect(replies.length).toBe(total - echoed.size);
    for (const f of resumed.filter((m) => Number(m.seq) <= since)) expect(echoed.has(f.cid)).toBe(false);
    for (const client of [watcher, back]) client.close();
    await stopNode(a);
  }, 60_000);

  it('a Redis restart mid-traffic: delivery resumes and the gap is filled', async () => {
    const [a, b] = await Promise.all([node(), node()]);
    const room = 'redis-restart';
    const watcher = await member(b, 'watch', room);
    const sender = await member(a, 'sender', room);
    const total = 120;
    let sent = 0;
    const sending = (async () => {
      for (; sent < total; sent++) {
        sender.send({ type: 'message', room, text: `r${sent}`, cid: `r-${sent}` });
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    await until(() => messagesIn(watcher, room).length >= 20, 10_000, 'traffic before the restart');
    await redis.restart(500);
    await sending;
    await until(() => messagesIn(sender, room).length >= total, 20_000, 'every echo');
    await until(() => messagesIn(watcher, room).length >= total, 20_000, 'every message across nodes');
    expect(messagesIn(watcher, room).map((f) => f.seq)).toEqual(
      Array.from({ length: total }, (_, i) => i + 1),
    );
    // Presence is announced again to the restarted (empty) Redis: who still answers for both nodes.
    let users: Frame[] = [];
    for (let i = 0; i < 100 && users.length < 2; i++) {
      users = (await request(watcher, { type: 'who', room })).users as Frame[];
      if (users.length < 2) await new Promise((r) => setTimeout(r, 100));
    }
    expect(users.map((u) => u.user)).toEqual(['sender', 'watch']);
    for (const client of [watcher, sender]) client.close();
    await Promise.all([stopNode(a), stopNode(b)]);
  }, 60_000);

  it.runIf(haveSshKeygen)(
    'a ban made while Redis is away reaches the other node once it is back: its member there is taken out and cannot join again',
    async () => {
      const [a, b] = await Promise.all([node(), node()]);
      const key = await makeKey(dir, 'ada-redis-away');
      expect((await runCli(['keys', 'add', 'ada', key.pub, '--db', db])).code).toBe(0);
      const { client: ada, answer } = await keyConsole(
        a.consolePort,
        { room: 'lobby-away', user: 'ada', key: key.pub },
        (n) => sign(key.file, n),
      );
      expect(answer).toMatchObject({ type: 'welcome', admin: true });
      const eve = await member(b, 'eve-away', 'ban-away');
      // Redis goes away for long enough to ban: the ban is stored, its events are lost.
      const restarting = redis.restart(3000);
      await untilOutput(a, /cluster: Redis connection lost/u);
      expect(await request(ada, { type: 'ban', room: 'ban-away', user: 'eve-away' })).toMatchObject({
        type: 'ack',
      });
      await restarting;
      // Node b reads the bans again once Redis is back: eve is taken out there, as by the ban itself.
      expect(await eve.waitFor((f) => f.type === 'kicked' && f.room === 'ban-away', 20_000)).toMatchObject({
        by: 'ada',
        banned: true,
      });
      expect(await request(eve, { type: 'join', room: 'ban-away' })).toMatchObject({
        code: ErrorCode.Banned,
      });
      for (const client of [ada, eve]) client.close();
      await Promise.all([stopNode(a), stopNode(b)]);
    },
    60_000,
  );

  it('pg_ctl stop -m immediate, then start: every echoed message is stored, and meanwhile senders got errors, never echoes', async () => {
    const a = await node();
    const room = 'pg-crash';
    const sender = await member(a, 'sender', room);
    const echoed: string[] = [];
    const refused: string[] = [];
    let i = 0;
    const send = async (): Promise<void> => {
      const reply = await request(sender, { type: 'message', room, text: `p${i}`, cid: `p-${i}` }, 20_000);
      if (reply.type === 'message') echoed.push(String(reply.id));
      else {
        expect(reply).toMatchObject({ type: 'error', code: ErrorCode.StoreUnavailable });
        refused.push(`p-${i}`);
      }
      i += 1;
    };
    for (let k = 0; k < 20; k++) await send();
    await pg.crash();
    for (let k = 0; k < 5; k++) await send();
    expect(refused.length).toBeGreaterThan(0);
    await pg.start();
    const end = Date.now() + 20_000;
    let after = 0;
    while (after < 10 && Date.now() < end) {
      const before = echoed.length;
      await send();
      if (echoed.length > before) after += 1;
    }
    expect(after).toBe(10);
    const history = await request(sender, { type: 'history', room, limit: 200 });
    const stored = new Set((history.messages as Frame[]).map((m) => m.id));
    for (const id of echoed) expect(stored.has(id)).toBe(true);
    sender.close();
    await stopNode(a);
  }, 90_000);

  it('presence converges after a node dies: its users go away within 30 s, once, and leave no ghost behind', async () => {
    const [a, c] = await Promise.all([node(), node()]);
    const room = 'ghosts';
    const alice = await member(a, 'alice', room);
    await member(c, 'ghost', room);
    // The dead node also leaves presence in a room nobody opens again, and a browser's address count.
    const attic = await browserClient(c.url as string, 'ghost', 'attic');
    await attic.waitFor((f) => f.type === 'welcome');
    await alice.waitFor((f) => f.type === 'presence' && f.user === 'ghost' && f.status === 'available');
    const redisClient = createClient({ url: redis.url });
    await redisClient.connect();
    const atticKey = 'runspec-room:presence:attic';
    const addressKey = 'runspec-room:address:127.0.0.1';
    const [cNode] = Object.keys(await redisClient.hGetAll(atticKey)).map((f) => f.split('\u0001')[0]);
    expect(cNode).toMatch(/^[0-9a-f]{16}$/u);
    expect(await redisClient.hExists(addressKey, cNode as string)).toBe(1);
    const killedAt = Date.now();
    await stopNode(c, 'SIGKILL');
    await alice.waitFor((f) => f.type === 'presence' && f.user === 'ghost' && f.status === 'away', 30_000);
    expect(Date.now() - killedAt).toBeLessThanOrEqual(30_000);
    // Redis keeps nothing of it: its fields go with the first heartbeat that finds it silent.
    const leftovers = async (): Promise<number> =>
      (await redisClient.exists([atticKey, `runspec-room:keys:${cNode}`])) +
      (await redisClient.hExists(addressKey, cNode as string));
    try {
      for (const end = Date.now() + 10_000; (await leftovers()) > 0 && Date.now() < end; )
        await new Promise((r) => setTimeout(r, 100));
      expect(await leftovers()).toBe(0);
    } finally {
      await redisClient.close();
    }
    // A node started afterwards (the dead one restarted) sees no ghost either.
    const again = await node();
    const late = await member(again, 'late', room);
    expect(((await request(late, { type: 'who', room })).users as Frame[]).map((u) => u.user)).toEqual([
      'alice',
      'late',
    ]);
    await alice.waitFor((f) => f.type === 'presence' && f.user === 'late');
    expect(ofType(alice.frames, 'presence').filter((f) => f.user === 'ghost')).toHaveLength(2);
    for (const client of [alice, late]) client.close();
    await Promise.all([stopNode(a), stopNode(again)]);
  }, 60_000);
});
