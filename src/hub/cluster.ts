// What the Hub needs of a cluster bus (the nodes' fan-out and shared presence), the events the nodes
// tell each other, and the pure parts of merging presence and ordering a room's messages. The Redis
// implementation lives in src/cluster/redis-bus.ts; the Hub knows only this interface.
import type { ServerFrame, Status, TypingState } from '../protocol/frames.ts';
import type { Restriction, RestrictionKind } from './restrictions.ts';
import type { StoredMessage } from './transcript.ts';

/** One node's share of a user's presence in a room. */
export interface PresenceEntry {
  /** Connections of the user in the room on that node. */
  c: number;
  /** Of them, browsers. */
  b: number;
  s: Status;
  /** When `s` was set (ms since the epoch, that node's clock): the newest status wins. */
  at: number;
}

/** A room's presence on the other nodes: user → node → entry. */
export type RemotePresence = Map<string, Map<string, PresenceEntry>>;

/** A `kicked` frame, as an admin's kick or ban sends it. */
export type KickedFrame = ServerFrame & { type: 'kicked' };

/** What one node tells the others. */
export type ClusterEvent =
  /** Room messages a node committed, in seq order (room scope). */
  | { t: 'messages'; messages: StoredMessage[] }
  /** A whisper a node committed (user scope: both people). */
  | { t: 'whisper'; message: StoredMessage }
  /** The node's share of a user's presence in a room; null once it has none (room scope). */
  | { t: 'presence'; room: string; user: string; entry: PresenceEntry | null }
  | { t: 'typing'; room: string; user: string; state: TypingState }
  | { t: 'deleted'; room: string; id: string; seq: number }
  /** Take the user's connections out of the room (room scope). */
  | { t: 'kick'; room: string; user: string; frame: KickedFrame }
  /** A read marker moved (user scope). */
  | { t: 'read'; user: string; target: { room: string } | { with: string }; seq: number }
  /** A ban or mute was set (everyone). */
  | { t: 'restrict'; restriction: Restriction }
  | { t: 'lift'; kind: RestrictionKind; room: string; user: string };

/** Who hears an event: the nodes with members in a room, with connections of a user, or all. */
export type Scope = { room: string } | { user: string } | 'all';

/** What the bus reports to the Hub. */
export interface ClusterListener {
  /** An event from another node (never this node's own). */
  event(node: string, event: ClusterEvent): void;
  /** A node stopped, or has not been heard from for the liveness timeout: its presence is gone. */
  nodeLost(node: string): void;
  /**
   * The bus lost (false) or regained (true) its connection. While it is down, events may be missed:
   * the Hub polls the store for messages; once it is back the Hub announces its presence again.
   */
  connection(up: boolean): void;
}

/** The fan-out and shared presence of the nodes of a cluster. */
export interface ClusterBus {
  /** This node's id: new at every start, so a restarted node leaves no ghosts behind. */
  readonly node: string;
  /** Start delivering events to `listener`. */
  start(listener: ClusterListener): Promise<void>;
  /** Tell the nodes in `scope` (best effort: a bus that is down drops it). */
  publish(scope: Scope, event: ClusterEvent): void;
  /**
   * Hear a room's events from now on, then read its presence on the live nodes. Resolves with an
   * empty snapshot when the bus is down (the subscription follows once it is back).
   */
  watchRoom(room: string): Promise<RemotePresence>;
  unwatchRoom(room: string): void;
  /** Hear a user's events (whispers, read markers) while the user has connections here. */
  watchUser(user: string): void;
  unwatchUser(user: string): void;
  /** Whether some node has a connection of `user` now (a name it may not have stored yet). */
  online(user: string): Promise<boolean>;
  /** Record this node's share of a user's presence in a room (null: none), and tell the room. */
  setPresence(room: string, user: string, entry: PresenceEntry | null): void;
  /** The presence of rooms this node does not watch, from the live nodes (for who and rooms). */
  presenceOf(rooms: readonly string[]): Promise<Map<string, RemotePresence>>;
  /** Leave the cluster: the other nodes drop this node's presence at once. */
  close(): Promise<void>;
}

/** A user's presence in a room across nodes: connections summed, the newest status. */
export interface Present {
  status: Status;
  connections: number;
  browsers: number;
}

/** Merge a local entry (if any) with the other nodes' entries of one user. */
export function mergePresence(
  local: PresenceEntry | undefined,
  remote: Map<string, PresenceEntry> | undefined,
): Present | undefined {
  let best: PresenceEntry | undefined = local;
  let connections = local?.c ?? 0;
  let browsers = local?.b ?? 0;
  for (const entry of remote?.values() ?? []) {
    connections += entry.c;
    browsers += entry.b;
    if (!best || entry.at > best.at) best = entry;
  }
  if (!best || connections === 0) return undefined;
  return { status: best.s, connections, browsers };
}

/** Apply one node's entry to a room's remote presence. */
export function applyPresence(
  remote: RemotePresence,
  node: string,
  user: string,
  entry: PresenceEntry | null,
): void {
  let nodes = remote.get(user);
  if (!entry) {
    nodes?.delete(node);
    if (nodes?.size === 0) remote.delete(user);
    return;
  }
  if (!nodes) {
    nodes = new Map();
    remote.set(user, nodes);
  }
  nodes.set(node, entry);
}

/**
 * Messages of one room that may arrive out of order and more than once (from this node's commits,
 * other nodes' and the store), released strictly in seq order from `next` on, each once.
 */
export class RoomOrder {
  readonly #ahead = new Map<number, StoredMessage>();

  /** Messages held for a gap before them. */
  get waiting(): number {
    return this.#ahead.size;
  }

  /** Take a message; those at or below `reported` are duplicates and are dropped. */
  offer(message: StoredMessage, reported: number): void {
    if (message.seq > reported) this.#ahead.set(message.seq, message);
  }

  /** The messages that follow `reported` without a gap, in order; they leave the hold. */
  release(reported: number): StoredMessage[] {
    const out: StoredMessage[] = [];
    for (const seq of [...this.#ahead.keys()]) if (seq <= reported) this.#ahead.delete(seq);
    for (let next = reported + 1; this.#ahead.has(next); next++) {
      out.push(this.#ahead.get(next) as StoredMessage);
      this.#ahead.delete(next);
    }
    return out;
  }

  /** Everything held (the room is being forgotten). */
  clear(): StoredMessage[] {
    const all = [...this.#ahead.values()];
    this.#ahead.clear();
    return all;
  }
}
