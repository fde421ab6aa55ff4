// The Hub as one node of a cluster, with a bus the test drives: each room delivered strictly in seq
// order whatever order the nodes' messages arrive in, gaps filled from the store, duplicates dropped,
// and presence merged across nodes (one arrival, one departure, a lost node's users away once), and
// bans read again when the bus comes back.
import { describe, expect, it } from 'vitest';
import type { AdminStore } from '../src/hub/admin.ts';
import type {
  ClusterBus,
  ClusterEvent,
  ClusterListener,
  PresenceEntry,
  RemotePresence,
} from '../src/hub/cluster.ts';
import { Hub } from '../src/hub/hub.ts';
import type { Outgoing, Peer } from '../src/hub/peer.ts';
import type { Restriction } from '../src/hub/restrictions.ts';
import type {
  Appended,
  Arrival,
  ConversationHead,
  NewMessage,
  ReadMarker,
  StoredMessage,
  Transcript,
} from '../src/hub/transcript.ts';

/** The store the nodes share: each conversation numbered 1, 2, 3… */
class SharedTranscript implements Transcript {
  readonly stored: StoredMessage[] = [];

  search(): Promise<StoredMessage[]> {
    return Promise.resolve([]);
  }

  last(room: string): number {
    return this.stored.filter((m) => m.room === room).length;
  }

  /** What another node committed: stored here, and returned as its event would carry it. */
  commit(room: string, text: string): StoredMessage {
    const m: StoredMessage = {
      id: `other-${this.stored.length}`,
      room,
      sender: 'remote',
      text,
      ts: 1,
      via: 'console',
      seq: this.last(room) + 1,
    };
    this.stored.push(m);
    return m;
  }

  async append(messages: readonly NewMessage[]): Promise<Appended[]> {
    return messages.map((m) => {
      const seq = this.last(m.room) + 1;
      this.stored.push({ ...m, seq });
      return { seq };
    });
  }
  async recent(room: string, limit: number): Promise<StoredMessage[]> {
    return this.stored.filter((m) => m.room === room).slice(-limit);
  }
  async after(room: string, seq: number, limit: number): Promise<StoredMessage[]> {
    return this.stored.filter((m) => m.room === room && m.seq > seq).slice(0, limit);
  }
  async before(room: string, seq: number, limit: number): Promise<StoredMessage[]> {
    return this.stored.filter((m) => m.room === room && m.seq < seq).slice(-limit);
  }
  failLastSeq = false;
  async lastSeq(room: string): Promise<number> {
    if (this.failLastSeq) throw new Error('database is locked');
    return this.last(room);
  }
  async rooms(): Promise<ConversationHead[]> {
    return [];
  }
  async markers(): Promise<Map<string, number>> {
    return new Map();
  }
  async saveMarkers(_markers: readonly ReadMarker[]): Promise<void> {}
  async unreadWhispers(): Promise<number> {
    return 0;
  }
  async arrival(): Promise<Arrival> {
    return { read: 0, whispers: 0 };
  }
  async knows(): Promise<boolean> {
    return true;
  }
  async remember(): Promise<void> {}
}

/** A bus whose other nodes are the test: it records what this node publishes. */
class TestBus implements ClusterBus {
  readonly node = 'here';
  readonly published: ClusterEvent[] = [];
  listener: ClusterListener | undefined;
  remote: RemotePresence = new Map();

  async start(listener: ClusterListener): Promise<void> {
    this.listener = listener;
  }
  publish(_scope: unknown, event: ClusterEvent): void {
    this.published.push(event);
  }
  /** Rooms this node listens to, and how many times over. */
  readonly watching = new Map<string, number>();
  async watchRoom(room: string): Promise<RemotePresence> {
    this.watching.set(room, (this.watching.get(room) ?? 0) + 1);
    return this.remote;
  }
  unwatchRoom(room: string): void {
    const n = (this.watching.get(room) ?? 0) - 1;
    if (n > 0) this.watching.set(room, n);
    else this.watching.delete(room);
  }
  watchUser(): void {}
  unwatchUser(): void {}
  async online(): Promise<boolean> {
    return false;
  }
  setPresence(room: string, user: string, entry: PresenceEntry | null): void {
    this.published.push({ t: 'presence', room, user, entry });
  }
  async presenceOf(): Promise<Map<string, RemotePresence>> {
    return new Map();
  }
  async close(): Promise<void> {}
}

class TestPeer implements Peer {
  readonly frames: Array<Record<string, unknown>> = [];
  readonly via: 'console' | 'browser';
  readonly wantsBackscroll: boolean;
  readonly optedIn = true;
  readonly user: string;
  constructor(user: string, via: 'console' | 'browser' = 'console') {
    this.user = user;
    this.via = via;
    this.wantsBackscroll = via === 'browser';
  }
  send(frames: Outgoing): void {
    for (const f of frames.parts) this.frames.push(JSON.parse(f.json) as Record<string, unknown>);
  }
  bufferedAmount(): number {
    return 0;
  }
  close(): void {}
  of(type: string): Array<Record<string, unknown>> {
    return this.frames.filter((f) => f.type === type);
  }
}

async function node(): Promise<{ hub: Hub; bus: TestBus; transcript: SharedTranscript }> {
  const transcript = new SharedTranscript();
  const bus = new TestBus();
  const hub = new Hub({ transcript, cluster: bus });
  await bus.start(hub.clusterListener);
  return { hub, bus, transcript };
}

async function joined(
  hub: Hub,
  user: string,
  room: string,
  via: 'console' | 'browser' = 'console',
): Promise<TestPeer> {
  const peer = new TestPeer(user, via);
  hub.connect(peer);
  await hub.join(peer, room, { welcome: {} });
  return peer;
}

const until = async (check: () => boolean): Promise<void> => {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 2));
  expect(check()).toBe(true);
};

const seqs = (peer: TestPeer): unknown[] => peer.of('message').map((f) => f.seq);

describe('a node of a cluster', () => {
  it('holds a message that arrives ahead of a gap, fills the gap from the store, and drops duplicates', async () => {
    const { hub, bus, transcript } = await node();
    const alice = await joined(hub, 'alice', 'ops');
    const m1 = transcript.commit('ops', 'one');
    const m2 = transcript.commit('ops', 'two');
    const m3 = transcript.commit('ops', 'three');
    bus.listener?.event('b', { t: 'messages', messages: [m3] });
    bus.listener?.event('c', { t: 'messages', messages: [m2] });
    expect(seqs(alice)).toEqual([]);
    await until(() => seqs(alice).length === 3);
    bus.listener?.event('b', { t: 'messages', messages: [m1, m2] });
    const own = new Promise<void>((resolve) => {
      void hub.message(alice, 'ops', 'four').then(resolve);
    });
    await own;
    await until(() => seqs(alice).length === 4);
    expect(alice.of('message').map((f) => [f.seq, f.text])).toEqual([
      [1, 'one'],
      [2, 'two'],
      [3, 'three'],
      [4, 'four'],
    ]);
    expect(bus.published).toContainEqual({ t: 'messages', messages: [expect.objectContaining({ seq: 4 })] });
  });

  it("holds this node's own commit behind another node's earlier one until that one comes", async () => {
    const { hub, bus, transcript } = await node();
    const alice = await joined(hub, 'alice', 'ops');
    const theirs = transcript.commit('ops', 'theirs first');
    await hub.message(alice, 'ops', 'mine second');
    expect(seqs(alice)).toEqual([]);
    bus.listener?.event('b', { t: 'messages', messages: [theirs] });
    expect(alice.of('message').map((f) => f.text)).toEqual(['theirs first', 'mine second']);
  });

  it('a client resuming after messages this node has not delivered yet does not get them again', async () => {
    const { hub, bus, transcript } = await node();
    const alice = await joined(hub, 'alice', 'ops');
    const m = ['one', 'two', 'three', 'four', 'five'].map((text) => transcript.commit('ops', text));
    bus.listener?.event('b', { t: 'messages', messages: m.slice(0, 2) });
    // Back from another node, where it saw up to 4.
    const bob = new TestPeer('bob');
    hub.connect(bob);
    await hub.join(bob, 'ops', { since: 4, welcome: {} });
    bus.listener?.event('b', { t: 'messages', messages: m.slice(2) });
    await until(() => seqs(alice).length === 5);
    expect(seqs(bob)).toEqual([5]);
  });

  it("a browser joining on a node reads its backscroll from the store, so another node's delete shows even when its event was lost", async () => {
    const { hub, bus, transcript } = await node();
    await joined(hub, 'alice', 'ops');
    const [m1, m2, m3] = ['one', 'two', 'three'].map((text) => transcript.commit('ops', text)) as [
      StoredMessage,
      StoredMessage,
      StoredMessage,
    ];
    bus.listener?.event('b', { t: 'messages', messages: [m3] });
    bus.listener?.event('c', { t: 'messages', messages: [m1, m2] });
    const bob = await joined(hub, 'bob', 'ops', 'browser');
    expect(bob.of('message').map((f) => [f.seq, f.text])).toEqual([
      [1, 'one'],
      [2, 'two'],
      [3, 'three'],
    ]);

    // Another node's admin deletes the second; the store keeps its tombstone, and the event is lost.
    transcript.stored[1] = { ...m2, text: '', deleted: 2 };
    const carol = await joined(hub, 'carol', 'ops', 'browser');
    expect(carol.of('message').map((f) => [f.seq, f.text, f.deleted])).toEqual([
      [1, 'one', undefined],
      [2, '', true],
      [3, 'three', undefined],
    ]);
  });

  it('a room that cannot be opened while the database fails leaves no subscription behind, and opens once it is back', async () => {
    const { hub, bus, transcript } = await node();
    const ann = new TestPeer('ann');
    hub.connect(ann);
    transcript.failLastSeq = true;
    for (const room of ['a', 'b', 'c']) await hub.join(ann, room, { ref: room });
    expect(ann.of('error').map((f) => [f.code, f.ref])).toEqual([
      ['store_unavailable', 'a'],
      ['store_unavailable', 'b'],
      ['store_unavailable', 'c'],
    ]);
    expect([...bus.watching]).toEqual([]);
    transcript.failLastSeq = false;
    await hub.join(ann, 'a', { ref: 'again' });
    expect(ann.of('joined').map((f) => f.ref)).toEqual(['again']);
    expect([...bus.watching]).toEqual([['a', 1]]);
  });

  it('announces a user once however many nodes they are on, and away only when the last one goes', async () => {
    const { hub, bus } = await node();
    const alice = await joined(hub, 'alice', 'ops');
    const entry = { c: 1, b: 0, s: 'available' as const, at: Date.now() };
    bus.listener?.event('b', { t: 'presence', room: 'ops', user: 'bob', entry });
    bus.listener?.event('c', { t: 'presence', room: 'ops', user: 'bob', entry });
    bus.listener?.event('b', { t: 'presence', room: 'ops', user: 'bob', entry: null });
    expect(alice.of('presence').map((f) => f.status)).toEqual(['available']);
    bus.listener?.nodeLost('c');
    bus.listener?.nodeLost('c');
    expect(alice.of('presence').map((f) => [f.user, f.status])).toEqual([
      ['bob', 'available'],
      ['bob', 'away'],
    ]);
    // A local arrival of someone present elsewhere is not announced again.
    bus.listener?.event('b', { t: 'presence', room: 'ops', user: 'carol', entry });
    const carol = await joined(hub, 'carol', 'ops');
    expect(alice.of('presence').filter((f) => f.user === 'carol')).toHaveLength(1);
    hub.disconnect(carol);
    expect(alice.of('presence').filter((f) => f.user === 'carol')).toHaveLength(1);
  });

  describe('bans, when the bus comes back', () => {
    const ban: Restriction = { kind: 'ban', room: 'ops', user: 'mallory', by: 'ada', at: 1 };

    /** A node whose bans and mutes are stored in `restrictions` (the store answers when it does). */
    async function moderated(restrictions: () => Promise<Restriction[]>) {
      const store: AdminStore = {
        restrictions,
        restrict: async () => {},
        lift: async () => true,
        tombstone: async () => undefined,
        audit: async () => {},
      };
      const bus = new TestBus();
      const hub = new Hub({ transcript: new SharedTranscript(), cluster: bus, admin: { store } });
      await bus.start(hub.clusterListener);
      return { hub, bus };
    }

    it('a ban stored while the bus was down, its event lost, takes its user out of the room once it is back', async () => {
      const stored: Restriction[] = [];
      const { hub, bus } = await moderated(async () => stored);
      const mallory = await joined(hub, 'mallory', 'ops');
      bus.listener?.connection(false);
      stored.push(ban);
      bus.listener?.connection(true);
      await until(() => mallory.of('kicked').length > 0);
      expect(mallory.of('kicked')).toEqual([{ type: 'kicked', room: 'ops', by: 'ada', banned: true }]);
      await hub.join(mallory, 'ops');
      expect(mallory.of('error').at(-1)).toMatchObject({ code: 'banned' });
    });

    it('back again while its bans are still being read: they are read once more after, so a ban lost in between holds', async () => {
      const answers: Array<(all: Restriction[]) => void> = [];
      const { hub, bus } = await moderated(
        () =>
          new Promise((resolve) => {
            answers.push(resolve);
          }),
      );
      const mallory = await joined(hub, 'mallory', 'ops');
      bus.listener?.connection(false);
      bus.listener?.connection(true);
      expect(answers).toHaveLength(1);
      // Down and back once more while the first read runs; the ban is stored meanwhile.
      bus.listener?.connection(false);
      bus.listener?.connection(true);
      answers[0]?.([]);
      await until(() => answers.length === 2);
      answers[1]?.([ban]);
      await until(() => mallory.of('kicked').length > 0);
      expect(mallory.of('kicked')).toEqual([{ type: 'kicked', room: 'ops', by: 'ada', banned: true }]);
    });

    it('a lift heard while the bans are read is not undone by that read', async () => {
      let answer: (all: Restriction[]) => void = () => {};
      const { hub, bus } = await moderated(
        () =>
          new Promise((resolve) => {
            answer = resolve;
          }),
      );
      const mallory = await joined(hub, 'mallory', 'ops');
      bus.listener?.connection(false);
      bus.listener?.connection(true);
      // The read began before the ban was lifted on another node, and answers after its event came.
      bus.listener?.event('b', { t: 'lift', kind: 'ban', room: 'ops', user: 'mallory' });
      answer([ban]);
      // The answer is applied in the microtasks that follow it: done before the next turn.
      await new Promise((resolve) => setImmediate(resolve));
      expect(mallory.of('kicked')).toEqual([]);
      const again = await joined(hub, 'mallory', 'dev');
      await hub.join(again, 'ops');
      expect(again.of('error')).toEqual([]);
      expect(again.of('joined').map((f) => f.room)).toEqual(['dev', 'ops']);
    });
  });
});
