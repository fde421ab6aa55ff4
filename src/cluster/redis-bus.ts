// The cluster bus on Redis (node-redis, @redis/client): pub/sub for the nodes' events (a channel per
// room, per user, and one for all), a hash per room with each node's share of its presence, and a
// sorted set of live nodes that every node refreshes with a heartbeat. Works on Redis 7.0: nothing here
// needs per-field expiry; a dead node's presence is dropped by the others when its heartbeat stops.
// Heartbeats are stamped and judged by Redis's clock, so a node whose own clock is off is not taken
// for dead, nor a dead one for alive.
import { createClient, ErrorReply, type RedisClientType } from '@redis/client';
import type { SharedCounts } from '../doors/limits.ts';
import type {
  ClusterBus,
  ClusterEvent,
  ClusterListener,
  PresenceEntry,
  RemotePresence,
  Scope,
} from '../hub/cluster.ts';
import { type Log, shownUrl } from '../log.ts';

/** Keys and channels start with this, so a Redis can hold other things besides. */
const PREFIX = 'runspec-room:';
const NODES = `${PREFIX}nodes`;
const ALL = `${PREFIX}all`;
const roomChannel = (room: string): string => `${PREFIX}room:${room}`;
const userChannel = (user: string): string => `${PREFIX}user:${user}`;
const presenceKey = (room: string): string => `${PREFIX}presence:${room}`;
/** Browser connections from one client address: a field per node, its count. */
const addressKey = (address: string): string => `${PREFIX}address:${address}`;
/**
 * The fields a node holds in presence and address hashes, a field each (KEY U+0000 FIELD): what
 * is removed once the node is gone, even from rooms and addresses nobody comes back to.
 */
const NODE_KEYS = `${PREFIX}keys:`;
const nodeKeys = (node: string): string => `${NODE_KEYS}${node}`;
/** An entry of a node's list: a hash and the node's field in it (no key or field holds U+0000). */
const listed = (key: string, f: string): string => `${key}\u0000${f}`;
/** How long an admission waits for the other nodes' counts before it goes by its own. */
const ADDRESS_WAIT_MS = 1000;
/** Redis's clock in milliseconds, the one clock all nodes' heartbeats are stamped and judged by. */
const NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;
/** Remove every field a node's list names, then the list (emptied, Redis drops it). */
const FORGET = `
local function forget(list)
  for _, e in ipairs(redis.call('HKEYS', list)) do
    local at = string.find(e, '\\0', 1, true)
    if at then redis.call('HDEL', string.sub(e, 1, at - 1), string.sub(e, at + 1)) end
    redis.call('HDEL', list, e)
  end
end
`;
/**
 * Claim a place for one more connection from an address: KEYS address hash (a count per node), the
 * live-node set and this node's key list; ARGV this node, its count with the new one, the limit, and
 * how long a node may go without a heartbeat. Sets this node's count and answers 1 when the live
 * nodes then hold at most the limit, else answers 0 and changes nothing. The counts of nodes no
 * longer alive are removed.
 */
const CLAIM_ADDRESS = `${NOW}
local alive = now - tonumber(ARGV[4])
local others = 0
local counts = redis.call('HGETALL', KEYS[1])
for i = 1, #counts, 2 do
  local node = counts[i]
  if node ~= ARGV[1] then
    local beat = redis.call('ZSCORE', KEYS[2], node)
    if beat and tonumber(beat) >= alive then
      others = others + (tonumber(counts[i + 1]) or 0)
    else
      redis.call('HDEL', KEYS[1], node)
    end
  end
end
if others + tonumber(ARGV[2]) > tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], KEYS[1] .. '\\0' .. ARGV[1], '1')
return 1
`;
/**
 * A heartbeat: KEYS the live-node set; ARGV this node, how long a node may go without one, and the
 * prefix of the nodes' lists. Stamps this node with Redis's time, and removes every node silent for
 * longer: the fields its list names, and its place in the set. Answers whether this node was added
 * (it had been given up, or Redis restarted empty) and the nodes removed.
 */
const HEARTBEAT = `${NOW}${FORGET}
local added = redis.call('ZADD', KEYS[1], now, ARGV[1])
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[2])))
for _, node in ipairs(gone) do
  forget(ARGV[3] .. node)
  redis.call('ZREM', KEYS[1], node)
end
return {added, gone}
`;
/**
 * KEYS this node's list and the live-node set; ARGV this node, and 1 to leave the set too. Removes
 * every field the list names: on a stop, and when Redis is back (removals meanwhile were lost; what
 * the node holds is then written again).
 */
const FORGET_SELF = `${FORGET}
forget(KEYS[1])
if ARGV[2] == '1' then redis.call('ZREM', KEYS[2], ARGV[1]) end
return 1
`;
/** KEYS the live-node set; ARGV how long a node may go without a heartbeat: the nodes alive. */
const LIVE_NODES = `${NOW}
return redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf')
`;
/** A presence hash field: node and user (a name cannot hold U+0001). */
const field = (node: string, user: string): string => `${node}\u0001${user}`;

/** How the bus keeps time. */
export interface RedisBusOptions {
  /** A heartbeat this often (5 s). */
  heartbeatMs?: number;
  /** A node not heard from for this long is gone, with its users' presence (20 s). */
  lostAfterMs?: number;
  /** Start-up fails when Redis does not answer within this (10 s). */
  connectTimeoutMs?: number;
}

/** A wire event: who sent it, and what. */
interface Envelope {
  n: string;
  e: ClusterEvent | { t: 'beat' } | { t: 'bye' };
}

/** A node's id: random, so each start is a new node and a restarted one leaves no ghosts behind. */
function newNodeId(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, '0')).join(
    '',
  );
}

/** The cluster bus on one Redis server (a Sentinel or managed Redis with one endpoint works the same). */
export class RedisBus implements ClusterBus {
  readonly node = newNodeId();
  readonly #pub: RedisClientType;
  readonly #sub: RedisClientType;
  readonly #log: Log;
  readonly #heartbeatMs: number;
  readonly #lostAfterMs: number;
  /** This node's key list (NODE_KEYS). */
  readonly #keys = nodeKeys(this.node);
  #listener: ClusterListener | undefined;
  /** Other nodes, and when each was last heard from. */
  readonly #heard = new Map<string, number>();
  /** This node's presence fields, per room, so leaving can remove them. */
  readonly #mine = new Map<string, Set<string>>();
  readonly #userWatch = new Map<string, number>();
  /** This node's browser connections per client address, as shared (sent again after Redis is back). */
  readonly #addresses = new Map<string, number>();
  /** Claims have been failing (said once in the log until one works again). */
  #claimFailing = false;
  /** Heartbeats have been failing (said once in the log until one works again). */
  #beatFailing = false;
  #beat: ReturnType<typeof setInterval> | undefined;
  /** This node's first heartbeat is in the set of live nodes. */
  #alive = false;
  #up = false;
  #closed = false;

  private constructor(pub: RedisClientType, log: Log, options: RedisBusOptions) {
    this.#pub = pub;
    // Pub/sub takes a connection of its own: a subscribed connection runs no other commands.
    this.#sub = pub.duplicate();
    this.#log = log;
    this.#heartbeatMs = options.heartbeatMs ?? 5000;
    this.#lostAfterMs = options.lostAfterMs ?? 20_000;
  }

  /** Connect to `url` (redis:// or rediss://); rejects with a one-line reason when Redis cannot be used. */
  static async connect(url: string, log: Log, options: RedisBusOptions = {}): Promise<RedisBus> {
    // At start-up a refused connection ends start-up at once; once running, the bus reconnects.
    const running = { yes: false };
    const pub = createClient({
      url,
      // A publish while Redis is down is dropped, not queued: the Hub polls the store meanwhile and
      // announces its presence again once the bus is back; a queue would replay stale events.
      disableOfflineQueue: true,
      socket: {
        reconnectStrategy: (retries, cause) => (running.yes ? Math.min(50 * 2 ** retries, 1000) : cause),
      },
    }) as RedisClientType;
    const bus = new RedisBus(pub, log, options);
    const timeout = options.connectTimeoutMs ?? 10_000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const lastError: { error?: unknown } = {};
    pub.on('error', (error: unknown) => {
      lastError.error = error;
    });
    try {
      await Promise.race([
        Promise.all([pub.connect(), bus.#sub.connect()]),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${timeout} ms${why(lastError.error)}`)),
            timeout,
          );
        }),
      ]);
      await pub.ping();
    } catch (error) {
      clearTimeout(timer);
      await bus.#disconnect();
      throw new Error(
        `cannot use Redis ${shownUrl(url, 'redis://…')}: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
    clearTimeout(timer);
    running.yes = true;
    return bus;
  }

  async start(listener: ClusterListener): Promise<void> {
    this.#listener = listener;
    this.#up = true;
    // Either connection lost, Redis is away: events are missed, or what this node writes is dropped
    // (the publishing connection queues nothing while it is away). Both must be back before the
    // lost removals are made and what this node holds is written again: with only the subscriber
    // back, those writes would be dropped too and the node's stale fields kept for good.
    this.#pub.on('error', (error: unknown) => this.#down(error));
    this.#sub.on('error', (error: unknown) => this.#down(error));
    this.#pub.on('ready', () => this.#ready());
    this.#sub.on('ready', () => this.#ready());
    await this.#sub.subscribe(ALL, (message) => this.#receive(message));
    this.#heartbeat();
    this.#beat = setInterval(() => this.#heartbeat(), this.#heartbeatMs);
    this.#beat.unref?.();
  }

  publish(scope: Scope, event: ClusterEvent): void {
    const channel =
      scope === 'all' ? ALL : 'room' in scope ? roomChannel(scope.room) : userChannel(scope.user);
    this.#send(channel, { n: this.node, e: event });
  }

  async watchRoom(room: string): Promise<RemotePresence> {
    const subscribed = this.#sub.subscribe(roomChannel(room), (message) => this.#receive(message));
    if (!this.#up) {
      subscribed.catch(() => {});
      return new Map();
    }
    try {
      await subscribed;
      return (await this.presenceOf([room])).get(room) ?? new Map();
    } catch (error) {
      this.#log.warn('cluster: room presence unavailable', { room, error: String(error) });
      return new Map();
    }
  }

  unwatchRoom(room: string): void {
    this.#sub.unsubscribe(roomChannel(room)).catch(() => {});
  }

  watchUser(user: string): void {
    const n = this.#userWatch.get(user) ?? 0;
    this.#userWatch.set(user, n + 1);
    if (n === 0) this.#sub.subscribe(userChannel(user), (message) => this.#receive(message)).catch(() => {});
  }

  unwatchUser(user: string): void {
    const n = (this.#userWatch.get(user) ?? 0) - 1;
    if (n > 0) {
      this.#userWatch.set(user, n);
      return;
    }
    this.#userWatch.delete(user);
    this.#sub.unsubscribe(userChannel(user)).catch(() => {});
  }

  async online(user: string): Promise<boolean> {
    // A node listens on a user's channel exactly while it has a connection of the user.
    const counts = (await this.#pub.pubSubNumSub(userChannel(user))) as Record<string, number>;
    return Object.values(counts).some((n) => Number(n) > 0);
  }

  setPresence(room: string, user: string, entry: PresenceEntry | null): void {
    const key = presenceKey(room);
    const f = field(this.node, user);
    let mine = this.#mine.get(room);
    if (entry) {
      if (!mine) {
        mine = new Set();
        this.#mine.set(room, mine);
      }
      mine.add(user);
      this.#pub.hSet(key, f, JSON.stringify(entry)).catch(() => {});
      this.#pub.hSet(this.#keys, listed(key, f), '1').catch(() => {});
    } else {
      mine?.delete(user);
      if (mine?.size === 0) this.#mine.delete(room);
      this.#pub.hDel(key, f).catch(() => {});
      this.#pub.hDel(this.#keys, listed(key, f)).catch(() => {});
    }
    this.#send(roomChannel(room), { n: this.node, e: { t: 'presence', room, user, entry } });
  }

  async presenceOf(rooms: readonly string[]): Promise<Map<string, RemotePresence>> {
    const out = new Map<string, RemotePresence>();
    if (rooms.length === 0) return out;
    const now = performance.now();
    const [alive, ...hashes] = await Promise.all([
      this.#pub.eval(LIVE_NODES, { keys: [NODES], arguments: [String(this.#lostAfterMs)] }),
      ...rooms.map((room) => this.#pub.hGetAll(presenceKey(room))),
    ]);
    const live = new Set(alive as string[]);
    rooms.forEach((room, i) => {
      const remote: RemotePresence = new Map();
      const stale: string[] = [];
      for (const [f, value] of Object.entries((hashes[i] ?? {}) as Record<string, string>)) {
        const [node, user] = f.split('\u0001') as [string, string | undefined];
        if (node === this.node || user === undefined) continue;
        if (!live.has(node)) {
          stale.push(f);
          continue;
        }
        const entry = parseEntry(value);
        if (!entry) continue;
        let nodes = remote.get(user);
        if (!nodes) {
          nodes = new Map();
          remote.set(user, nodes);
        }
        nodes.set(node, entry);
        if (!this.#heard.has(node)) this.#heard.set(node, now);
      }
      // A dead node's fields: whoever reads them first removes them.
      if (stale.length > 0) this.#pub.hDel(presenceKey(room), stale).catch(() => {});
      out.set(room, remote);
    });
    return out;
  }

  /** Browser connections per client address across the live nodes: the per-address limit's count. */
  readonly addresses: SharedCounts = {
    claim: (address, count, limit) => this.#claim(address, count, limit),
    set: (address, count) => {
      this.#remember(address, count);
      this.#shareAddress(address, count);
    },
  };

  #remember(address: string, count: number): void {
    if (count > 0) this.#addresses.set(address, count);
    else this.#addresses.delete(address);
  }

  /**
   * One script run: Redis runs nothing else meanwhile, so no other node's claim comes between. An
   * answer later than ADDRESS_WAIT_MS, or none, lets the connection in: what this node then holds is
   * recorded once the script is done (the same connection, so after it), or the others would count
   * one too few from here on.
   */
  async #claim(address: string, count: number, limit: number): Promise<boolean> {
    this.#remember(address, count);
    if (!this.#up) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let admitted = false;
    const late = new Promise<true>((resolve) => {
      timer = setTimeout(() => {
        admitted = true;
        resolve(true);
      }, ADDRESS_WAIT_MS);
    });
    const recordHeld = (): void => this.#shareAddress(address, this.#addresses.get(address) ?? 0);
    const claimed = this.#pub
      .eval(CLAIM_ADDRESS, {
        keys: [addressKey(address), NODES, this.#keys],
        arguments: [this.node, String(count), String(limit), String(this.#lostAfterMs)],
      })
      .then(
        (answer) => {
          this.#claimFailing = false;
          const recorded = Number(answer) === 1;
          if (!recorded && admitted) recordHeld();
          return recorded;
        },
        (error: unknown) => {
          if (!this.#claimFailing)
            this.#log.warn('cluster: a per-address claim failed; this node counts its own until one works', {
              error: String(error),
            });
          this.#claimFailing = true;
          recordHeld();
          return true;
        },
      );
    return Promise.race([claimed, late]).finally(() => clearTimeout(timer));
  }

  #shareAddress(address: string, count: number): void {
    const key = addressKey(address);
    if (count > 0) {
      this.#pub.hSet(key, this.node, String(count)).catch(() => {});
      this.#pub.hSet(this.#keys, listed(key, this.node), '1').catch(() => {});
    } else {
      this.#pub.hDel(key, this.node).catch(() => {});
      this.#pub.hDel(this.#keys, listed(key, this.node)).catch(() => {});
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#beat);
    this.#send(ALL, { n: this.node, e: { t: 'bye' } });
    // Everything its list names (removals lost while Redis was away included), and what it holds
    // now, in case the list missed some of it the same way.
    await Promise.allSettled([
      this.#forgetSelf(true),
      ...[...this.#addresses.keys()].map((address) => this.#pub.hDel(addressKey(address), this.node)),
      ...[...this.#mine].map(([room, users]) =>
        this.#pub.hDel(
          presenceKey(room),
          [...users].map((u) => field(this.node, u)),
        ),
      ),
    ]);
    await this.#disconnect();
  }

  /** Remove every field this node's list names (FORGET_SELF), and with `leave` its heartbeat. */
  #forgetSelf(leave: boolean): Promise<unknown> {
    return this.#pub.eval(FORGET_SELF, {
      keys: [this.#keys, NODES],
      arguments: [this.node, leave ? '1' : '0'],
    });
  }

  async #disconnect(): Promise<void> {
    await Promise.allSettled([this.#sub.close(), this.#pub.close()]);
  }

  #send(channel: string, envelope: Envelope): void {
    if (this.#closed && envelope.e.t !== 'bye') return;
    this.#pub.publish(channel, JSON.stringify(envelope)).catch(() => {});
  }

  #receive(message: string): void {
    let envelope: Envelope;
    try {
      envelope = JSON.parse(message) as Envelope;
    } catch {
      this.#log.warn('cluster: an event that is not JSON was ignored');
      return;
    }
    const node = envelope?.n;
    if (typeof node !== 'string' || typeof envelope.e?.t !== 'string' || node === this.node) return;
    if (envelope.e.t === 'bye') {
      this.#lost(node);
      return;
    }
    this.#heard.set(node, performance.now());
    if (envelope.e.t === 'beat') return;
    try {
      this.#listener?.event(node, envelope.e);
    } catch (error) {
      this.#log.error('cluster: an event could not be applied', {
        event: envelope.e.t,
        error: String(error),
      });
    }
  }

  /** Say this node lives, and drop the nodes that have not said so for too long. */
  #heartbeat(): void {
    const now = performance.now();
    this.#pub
      .eval(HEARTBEAT, { keys: [NODES], arguments: [this.node, String(this.#lostAfterMs), NODE_KEYS] })
      .then(
        (answer) => {
          const [added] = answer as [number, string[]];
          // Back in the set after the others removed it (this node was too slow to beat, or Redis
          // restarted empty): they have dropped its presence, so it announces it again.
          if (Number(added) === 1 && this.#alive && this.#up) {
            this.#log.warn('cluster: the other nodes had given this node up; announcing its presence again');
            for (const [address, count] of this.#addresses) this.#shareAddress(address, count);
            this.#listener?.connection(true);
          }
          this.#alive = true;
          this.#beatFailing = false;
        },
        (error: unknown) => {
          // Redis away is said once by #down; a refusal (an ACL without EVAL or TIME) is said here.
          if (this.#beatFailing || !(error instanceof ErrorReply)) return;
          this.#beatFailing = true;
          this.#log.warn('cluster: a heartbeat failed; the other nodes will take this node for gone', {
            error: String(error),
          });
        },
      );
    this.#send(ALL, { n: this.node, e: { t: 'beat' } });
    // Silent on the bus for too long (by this node's monotonic clock: only the time since it last
    // heard counts, so a step of the wall clock changes nothing): its users are away here. Its
    // fields in Redis go with the heartbeat that finds it silent by Redis's clock.
    for (const [node, at] of this.#heard) if (now - at > this.#lostAfterMs) this.#lost(node);
  }

  #lost(node: string): void {
    this.#heard.delete(node);
    this.#log.info('cluster: node gone', { node });
    this.#listener?.nodeLost(node);
  }

  #down(error: unknown): void {
    if (!this.#up || this.#closed) return;
    this.#up = false;
    this.#log.warn('cluster: Redis connection lost; polling the database until it is back', {
      error: String(error),
    });
    this.#listener?.connection(false);
  }

  #ready(): void {
    if (this.#up || this.#closed || !this.#listener || !this.#pub.isReady || !this.#sub.isReady) return;
    this.#up = true;
    this.#log.info('cluster: Redis connection back');
    // Everyone heard meanwhile is fresh again from now: a node that died meanwhile stays silent.
    const now = performance.now();
    for (const node of this.#heard.keys()) this.#heard.set(node, now);
    // Removals made while Redis was away were lost: all this node's fields go, and what it holds is
    // written again (its addresses here, its presence by the Hub), in that order on one connection.
    this.#forgetSelf(false).catch(() => {});
    this.#heartbeat();
    for (const [address, count] of this.#addresses) this.#shareAddress(address, count);
    this.#listener.connection(true);
  }
}

function parseEntry(text: string): PresenceEntry | undefined {
  try {
    const e = JSON.parse(text) as PresenceEntry;
    if (
      typeof e.c === 'number' &&
      typeof e.b === 'number' &&
      typeof e.s === 'string' &&
      typeof e.at === 'number'
    )
      return e;
  } catch {
    // Not ours.
  }
  return undefined;
}

function why(error: unknown): string {
  return error instanceof Error ? ` (${error.message})` : '';
}
