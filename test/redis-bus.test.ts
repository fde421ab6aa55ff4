// The cluster bus on a real Redis, two nodes in one process so the order of their steps can be
// arranged: the per-address browser limit across nodes (ConnectionLimit over RedisBus), and a node
// whose clock is off.
import { createClient } from '@redis/client';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { RedisBus } from '../src/cluster/redis-bus.ts';
import { ConnectionLimit } from '../src/doors/limits.ts';
import type { ClusterListener } from '../src/hub/cluster.ts';
import { silentLog } from '../src/log.ts';
import { hasRedis, startRedis, type TestRedis } from '../support/engines.ts';
import { requireUnderCi } from './helpers/process.ts';
import { type TcpProxy, tcpProxy } from './helpers/tcp-proxy.ts';

requireUnderCi('cluster bus', hasRedis(), 'redis-server is missing');

const ADDRESS = '198.51.100.7';
const LIMIT = 3;
const quiet: ClusterListener = { event() {}, nodeLost() {}, connection() {} };

describe.runIf(hasRedis())('the per-address limit, two nodes on one Redis', () => {
  let redis: TestRedis;
  let admin: ReturnType<typeof createClient>;
  let buses: RedisBus[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    admin = createClient({ url: redis.url });
    await admin.connect();
  });

  afterEach(async () => {
    await Promise.all(buses.map((bus) => bus.close()));
    buses = [];
    await admin.flushAll();
  });

  afterAll(async () => {
    await admin?.close();
    await redis?.stop();
  });

  /** A node's browser connection counts: 3 per address, shared through its own bus. */
  async function node(): Promise<{ limit: ConnectionLimit; bus: RedisBus }> {
    const bus = await RedisBus.connect(redis.url, silentLog);
    await bus.start(quiet);
    buses.push(bus);
    return { limit: new ConnectionLimit(10_000, LIMIT, bus.addresses), bus };
  }

  /** What Redis holds for the address: each node's count. */
  const held = async (): Promise<Record<string, string>> => admin.hGetAll(`runspec-room:address:${ADDRESS}`);

  async function until(check: () => Promise<boolean>, what: string): Promise<void> {
    for (const end = Date.now() + 10_000; !(await check()); ) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  const presence = async (): Promise<Record<string, string>> => admin.hGetAll('runspec-room:presence:ops');

  /**
   * A node whose link to Redis runs through a proxy the test controls, holding one browser from
   * ADDRESS and x's presence in ops, both seen in Redis.
   */
  async function nodeBehindProxy() {
    const proxy = await tcpProxy(Number(new URL(redis.url).port));
    const up: boolean[] = [];
    const bus = await RedisBus.connect(`redis://127.0.0.1:${proxy.port}`, silentLog);
    await bus.start({ ...quiet, connection: (isUp) => up.push(isUp) });
    buses.push(bus);
    const release = await new ConnectionLimit(10_000, LIMIT, bus.addresses).acquireShared(ADDRESS);
    bus.setPresence('ops', 'x', { c: 1, b: 0, s: 'available', at: Date.now() });
    await until(async () => (await held())[bus.node] === '1', "the node's count");
    await until(async () => Object.keys(await presence()).length === 1, "the node's presence");
    return { proxy, up, bus, release };
  }

  /**
   * With Redis away for the node, its browser leaves and x goes; once the proxy lets it back, both
   * removals, lost meanwhile, are made.
   */
  async function leaveWhileAway(
    proxy: TcpProxy,
    up: boolean[],
    bus: RedisBus,
    release: Awaited<ReturnType<ConnectionLimit['acquireShared']>>,
  ): Promise<void> {
    if (typeof release === 'function') release();
    bus.setPresence('ops', 'x', null);
    proxy.release();
    await until(async () => up.at(-1) === true, 'the bus to be back');
    await until(
      async () => (await held())[bus.node] === undefined && Object.keys(await presence()).length === 0,
      'the lost removals made',
    );
  }

  it('sixteen at once over two nodes: exactly the limit gets in, and once they leave, exactly the limit again', async () => {
    const [a, b] = await Promise.all([node(), node()]);
    for (let round = 0; round < 2; round++) {
      const outcomes = await Promise.all(
        Array.from({ length: 16 }, (_, i) => (i % 2 ? a : b).limit.acquireShared(ADDRESS)),
      );
      const admitted = outcomes.filter((o) => typeof o === 'function');
      expect(admitted).toHaveLength(LIMIT);
      expect(outcomes.filter((o) => o === 'per_key')).toHaveLength(16 - LIMIT);
      for (const release of admitted) release();
      await until(async () => Object.keys(await held()).length === 0, 'both counts given back');
    }
  });

  it('a claim Redis answers late lets the connection in, and what the node holds is recorded once Redis answers', async () => {
    const [a, b] = await Promise.all([node(), node()]);
    const inA = [await a.limit.acquireShared(ADDRESS), await a.limit.acquireShared(ADDRESS)];
    const inB = await b.limit.acquireShared(ADDRESS);
    expect([...inA, inB].every((o) => typeof o === 'function')).toBe(true);
    // Redis answers nobody for 3 s, longer than an admission waits (1 s): node a lets a fourth in.
    await admin.sendCommand(['CLIENT', 'PAUSE', '3000', 'ALL']);
    expect(typeof (await a.limit.acquireShared(ADDRESS))).toBe('function');
    // Its claim then runs and is refused (2 + 1 + 1 > 3); the 3 node a holds are recorded all the same.
    await until(async () => (await held())[a.bus.node] === '3', "node a's count of 3");
    // So when node b's one leaves, the address is still at its limit on node a alone.
    if (typeof inB === 'function') inB();
    await until(async () => (await held())[b.bus.node] === undefined, "node b's count given back");
    expect(await b.limit.acquireShared(ADDRESS)).toBe('per_key');
  });

  it('a node whose clock runs a minute ahead takes nobody for gone, and is not taken for gone', async () => {
    const [a, b] = await Promise.all([node(), node()]);
    b.bus.setPresence('ops', 'bo', { c: 1, b: 0, s: 'available', at: Date.now() });
    const release = await a.limit.acquireShared(ADDRESS);
    expect(typeof release).toBe('function');
    await until(async () => (await held())[a.bus.node] === '1', "node a's count");
    const ahead = Date.now() + 60_000;
    const clock = vi.spyOn(Date, 'now').mockImplementation(() => ahead);
    try {
      // Node a, a minute ahead, still sees bo on node b.
      const seen = (await a.bus.presenceOf(['ops'])).get('ops');
      expect([...(seen?.get('bo')?.keys() ?? [])]).toEqual([b.bus.node]);
      // And node b's claims still count node a's browser: two more fill the limit of 3, a third is refused.
      expect(typeof (await b.limit.acquireShared(ADDRESS))).toBe('function');
      expect(typeof (await b.limit.acquireShared(ADDRESS))).toBe('function');
      expect(await b.limit.acquireShared(ADDRESS)).toBe('per_key');
    } finally {
      clock.mockRestore();
    }
  });

  it('removals lost while Redis was away are made once it is back, and a stop then leaves nothing of the node', async () => {
    const { proxy, up, bus, release } = await nodeBehindProxy();
    try {
      // Redis out of reach: the browser leaves and x goes, but neither removal gets there.
      proxy.hold();
      proxy.cut();
      await until(async () => up.includes(false), 'the bus to see Redis gone');
      await leaveWhileAway(proxy, up, bus, release);
      await bus.close();
      expect(await admin.keys('runspec-room:*')).toEqual([]);
    } finally {
      await proxy.close();
    }
  });

  it('the publishing connection lost alone counts as Redis away: what went missing meanwhile is made once it is back', async () => {
    const { proxy, up, bus, release } = await nodeBehindProxy();
    try {
      // Only the publishing connection (the one not subscribed) is killed, and it cannot come back
      // until released; the subscriber stays up throughout.
      const own = Number(await admin.sendCommand(['CLIENT', 'ID']));
      const clients = String(await admin.sendCommand(['CLIENT', 'LIST']))
        .trim()
        .split('\n');
      const publishing = clients
        .map((line) =>
          Object.fromEntries(line.split(' ').map((pair) => pair.split('=', 2) as [string, string])),
        )
        .filter((c) => Number(c.id) !== own && c.sub === '0' && c.psub === '0');
      expect(publishing).toHaveLength(1);
      proxy.hold();
      await admin.sendCommand(['CLIENT', 'KILL', 'ID', String(publishing[0]?.id)]);
      await until(async () => up.includes(false), 'the bus to see Redis gone');
      await leaveWhileAway(proxy, up, bus, release);
    } finally {
      await proxy.close();
    }
  });
});
