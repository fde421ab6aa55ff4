// Unit tests of the Hub (src/hub/hub.ts) with fake peers and an in-memory fake transcript: presence, stamping, batching, backscroll, resume, drops and shutdown.
import { beforeEach, describe, expect, it } from 'vitest';
import { Hub, type HubOptions } from '../src/hub/hub.ts';
import type { Encoded, Outgoing, Peer } from '../src/hub/peer.ts';
import type { NewMessage, StoredMessage, Transcript } from '../src/hub/transcript.ts';
import { CloseCode, ErrorCode } from '../src/protocol/codes.ts';
import type { ErrorOut, MessageOut, PresenceOut, ServerFrame, WelcomeOut } from '../src/protocol/frames.ts';
import { Count, deferred, Turns } from './helpers/events.ts';

const MiB = 1024 * 1024;

/** An in-memory transcript: increasing seq numbers, appends that can be held or made to fail. */
class FakeTranscript implements Transcript {
  readonly stored: StoredMessage[] = [];
  /** Size of every append call, in call order. */
  readonly batches: number[] = [];
  /** Append calls made (counted as each starts). */
  readonly appends = new Count();
  /** History reads made (counted as each starts). */
  readonly reads = new Count();
  /** While set, appends wait for it before storing anything. */
  hold: Promise<void> | undefined;
  /** While set, appends store at once but wait for it before reporting success. */
  holdAck: Promise<void> | undefined;
  /** While set, recent() and after() wait for it before reading. */
  holdReads: Promise<void> | undefined;
  failAppends = false;
  #seq = 0;

  async append(messages: readonly NewMessage[]): Promise<number[]> {
    this.batches.push(messages.length);
    this.appends.add();
    const hold = this.hold;
    if (hold) await hold;
    if (this.failAppends) throw new Error('disk I/O error');
    const seqs = messages.map((m) => {
      const existing = this.stored.find((s) => s.id === m.id);
      if (existing) return existing.seq;
      const seq = ++this.#seq;
      this.stored.push({ ...m, seq });
      return seq;
    });
    const holdAck = this.holdAck;
    if (holdAck) await holdAck;
    return seqs;
  }

  async recent(room: string, limit: number): Promise<StoredMessage[]> {
    this.reads.add();
    if (this.holdReads) await this.holdReads;
    return this.stored.filter((m) => m.room === room).slice(-limit);
  }

  async after(room: string, seq: number, limit: number): Promise<StoredMessage[]> {
    this.reads.add();
    if (this.holdReads) await this.holdReads;
    return this.stored.filter((m) => m.room === room && m.seq > seq).slice(0, limit);
  }

  async lastSeq(): Promise<number> {
    return this.#seq;
  }

  /** Store `count` messages in `room` directly, as if sent before the Hub started. */
  seed(room: string, count: number, sender = 'old-timer'): void {
    for (let i = 1; i <= count; i++) {
      const seq = ++this.#seq;
      this.stored.push({
        id: seq.toString(16).padStart(32, '0'),
        room,
        sender,
        text: `old ${i}`,
        ts: 1e9 + i,
        seq,
      });
    }
  }
}

interface PeerOptions {
  room?: string;
  wantsBackscroll?: boolean;
  optedIn?: boolean;
  since?: number;
}

/** A peer that records what it is sent and how it is closed. */
class FakePeer implements Peer {
  readonly user: string;
  readonly room: string;
  readonly wantsBackscroll: boolean;
  readonly optedIn: boolean;
  readonly since: number | undefined;
  /** Every frame sent, parsed, in order. */
  readonly frames: ServerFrame[] = [];
  /** Every frame sent, as the very object the Hub encoded. */
  readonly encoded: Encoded[] = [];
  /** What each send() call was handed: one frame or a run of them, one write each. */
  readonly sends: Outgoing[] = [];
  readonly closes: { code: number; reason: string }[] = [];
  /** Sends and closes in the order they happened. */
  readonly events: string[] = [];
  buffered = 0;
  throwOnSend = false;
  /** Called after each successful send. */
  onSend: ((frame: ServerFrame) => void) | undefined;
  /** Called on close(), like a door reporting the close back to the Hub. */
  onClose: (() => void) | undefined;

  constructor(user: string, options: PeerOptions = {}) {
    this.user = user;
    this.room = options.room ?? 'ops';
    this.wantsBackscroll = options.wantsBackscroll ?? false;
    this.optedIn = options.optedIn ?? false;
    this.since = options.since;
  }

  send(frames: Outgoing): void {
    if (this.throwOnSend) throw new Error('broken pipe');
    this.sends.push(frames);
    for (const frame of frames.parts) {
      const parsed = JSON.parse(frame.json) as ServerFrame;
      this.encoded.push(frame);
      this.frames.push(parsed);
      this.events.push(parsed.type);
      this.onSend?.(parsed);
    }
  }

  bufferedAmount(): number {
    return this.buffered;
  }

  close(code: number, reason: string): void {
    this.closes.push({ code, reason });
    this.events.push(`close ${code}`);
    this.onClose?.();
  }

  get messages(): MessageOut[] {
    return this.frames.filter((f): f is MessageOut => f.type === 'message');
  }

  get presences(): PresenceOut[] {
    return this.frames.filter((f): f is PresenceOut => f.type === 'presence');
  }

  get errors(): ErrorOut[] {
    return this.frames.filter((f): f is ErrorOut => f.type === 'error');
  }

  get welcomes(): WelcomeOut[] {
    return this.frames.filter((f): f is WelcomeOut => f.type === 'welcome');
  }

  clear(): void {
    this.frames.length = 0;
    this.encoded.length = 0;
    this.events.length = 0;
  }
}

const presence = (user: string, status: 'available' | 'away', room = 'ops'): PresenceOut => ({
  type: 'presence',
  room,
  user,
  status,
});

let transcript: FakeTranscript;

function makeHub(options: Partial<HubOptions> = {}): Hub {
  return new Hub({ transcript, lastSeq: transcript.stored.at(-1)?.seq ?? 0, ...options });
}

beforeEach(() => {
  transcript = new FakeTranscript();
});

describe('presence', () => {
  it('a newcomer is told who is already present, and the others are told about the newcomer', async () => {
    const hub = makeHub();
    const alice = new FakePeer('alice');
    const bob = new FakePeer('bob');
    await hub.join(alice);
    await hub.join(bob);
    alice.clear();
    bob.clear();

    const carol = new FakePeer('carol');
    await hub.join(carol);

    expect(carol.presences).toEqual([presence('alice', 'available'), presence('bob', 'available')]);
    expect(carol.presences.some((p) => p.user === 'carol')).toBe(false);
    expect(alice.frames).toEqual([presence('carol', 'available')]);
    expect(bob.frames).toEqual([presence('carol', 'available')]);
  });

  it('the first member of a room gets no presence frames at all', async () => {
    const hub = makeHub();
    const alice = new FakePeer('alice');
    await hub.join(alice);
    expect(alice.frames).toEqual([]);
  });

  it('members of other rooms hear nothing', async () => {
    const hub = makeHub();
    const elsewhere = new FakePeer('zed', { room: 'dev' });
    await hub.join(elsewhere);
    await hub.join(new FakePeer('alice'));
    await hub.message(new FakePeer('alice'), 'not a member, ignored');
    expect(elsewhere.frames).toEqual([]);
  });

  it('leaving announces away once, even if leave is called twice', async () => {
    const hub = makeHub();
    const alice = new FakePeer('alice');
    const bob = new FakePeer('bob');
    await hub.join(alice);
    await hub.join(bob);
    alice.clear();
    bob.clear();

    hub.leave(bob);
    hub.leave(bob);

    expect(alice.frames).toEqual([presence('bob', 'away')]);
    expect(bob.frames).toEqual([]);
    expect(hub.stats.connections).toBe(1);
  });

  it('a user with two connections stays present until the last one leaves', async () => {
    const hub = makeHub();
    const alice = new FakePeer('alice');
    const bobConsole = new FakePeer('bob');
    const bobBrowser = new FakePeer('bob', { wantsBackscroll: true });
    await hub.join(alice);
    await hub.join(bobConsole);
    alice.clear();

    await hub.join(bobBrowser);
    expect(alice.frames).toEqual([]);
    expect(bobBrowser.presences).toEqual([presence('alice', 'available')]);

    hub.leave(bobConsole);
    expect(alice.frames).toEqual([]);

    hub.leave(bobBrowser);
    expect(alice.frames).toEqual([presence('bob', 'away')]);
  });

  it('presence changes are relayed to the others but not back to the sender', async () => {
    const hub = makeHub();
    const alice = new FakePeer('alice');
    const bob = new FakePeer('bob');
    const carol = new FakePeer('carol');
    for (const p of [alice, bob, carol]) await hub.join(p);
    for (const p of [alice, bob, carol]) p.clear();

    hub.presence(alice, 'away');

    expect(alice.frames).toEqual([]);
    expect(bob.frames).toEqual([presence('alice', 'away')]);
    expect(carol.frames).toEqual([presence('alice', 'away')]);

    hub.presence(alice, 'available');
    expect(bob.frames).toEqual([presence('alice', 'away'), presence('alice', 'available')]);
  });

  it("a newcomer is told each member's current status, e.g. away after they set away", async () => {
    const hub = makeHub();
    const alice = new FakePeer('alice');
    const bob = new FakePeer('bob');
    await hub.join(alice);
    await hub.join(bob);
    hub.presence(alice, 'away');

    const carol = new FakePeer('carol');
    await hub.join(carol);

    expect(carol.presences).toEqual([presence('alice', 'away'), presence('bob', 'available')]);
  });

  it('a second connection of a user who set away makes them available again for the others', async () => {
    const hub = makeHub();
    const alice = new FakePeer('alice');
    const bob = new FakePeer('bob');
    await hub.join(alice);
    await hub.join(bob);
    hub.presence(bob, 'away');
    alice.clear();

    await hub.join(new FakePeer('bob', { wantsBackscroll: true }));
    expect(alice.frames).toEqual([presence('bob', 'available')]);
  });

  it('a presence change from a peer that is not in a room is ignored', async () => {
    const hub = makeHub();
    const alice = new FakePeer('alice');
    await hub.join(alice);
    hub.presence(new FakePeer('mallory'), 'away');
    expect(alice.frames).toEqual([]);
  });
});

describe('backscroll', () => {
  it('a console never receives backscroll; a browser receives the last 50 messages oldest first', async () => {
    transcript.seed('ops', 60);
    transcript.seed('dev', 5);
    const hub = makeHub();
    const console_ = new FakePeer('alice');
    const browser = new FakePeer('bob', { wantsBackscroll: true });
    await hub.join(console_);
    await hub.join(browser);

    expect(console_.messages).toEqual([]);
    expect(browser.messages).toHaveLength(50);
    expect(browser.messages.map((m) => m.text)).toEqual(
      Array.from({ length: 50 }, (_, i) => `old ${i + 11}`),
    );
    expect(browser.messages.every((m) => m.room === 'ops')).toBe(true);
    const seqs = browser.messages.map((m) => m.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
  });

  it('backscroll carries the stored id, ts, sender and seq of each message', async () => {
    transcript.seed('ops', 1, 'dave');
    const hub = makeHub();
    const browser = new FakePeer('bob', { wantsBackscroll: true });
    await hub.join(browser);
    const [stored] = transcript.stored;
    expect(browser.messages).toEqual([{ type: 'message', ...stored }]);
  });

  it('a browser that joins while messages are being committed gets each message exactly once, in order', async () => {
    transcript.seed('ops', 3);
    const hub = makeHub();
    const alice = new FakePeer('alice');
    await hub.join(alice);

    const commit = deferred();
    transcript.hold = commit.promise;
    const sending = [hub.message(alice, 'one'), hub.message(alice, 'two')];
    await transcript.appends.reached(1);

    const reads = deferred();
    transcript.holdReads = reads.promise;
    const browser = new FakePeer('bob', { wantsBackscroll: true });
    const joining = hub.join(browser);
    await transcript.reads.reached(1);

    commit.resolve();
    await Promise.all(sending); // committed and broadcast while the browser's history is still loading
    reads.resolve();
    await joining;
    await hub.message(alice, 'three');

    const texts = browser.messages.map((m) => m.text);
    expect(texts).toEqual(['old 1', 'old 2', 'old 3', 'one', 'two', 'three']);
    const ids = browser.messages.map((m) => m.id);
    expect(new Set(ids).size).toBe(ids.length);
    const seqs = browser.messages.map((m) => m.seq);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1] ?? 0);
  });

  it('a browser whose history read already sees a stored message that is not yet broadcast gets it exactly once', async () => {
    const hub = makeHub();
    const alice = new FakePeer('alice');
    await hub.join(alice);

    // The store has written the batch, but its acknowledgement has not reached the Hub yet.
    const ack = deferred();
    transcript.holdAck = ack.promise;
    const sending = hub.message(alice, 'one');
    await transcript.appends.reached(1);
    expect(transcript.stored.map((m) => m.text)).toEqual(['one']);

    const browser = new FakePeer('bob', { wantsBackscroll: true });
    await hub.join(browser);
    ack.resolve();
    await sending;

    expect(browser.messages.map((m) => m.text)).toEqual(['one']);
  });

  it('a browser whose history cannot be loaded still joins and receives live messages', async () => {
    const hub = makeHub();
    transcript.recent = async () => {
      throw new Error('database is locked');
    };
    const alice = new FakePeer('alice');
    await hub.join(alice);
    const browser = new FakePeer('bob', { wantsBackscroll: true, optedIn: true });
    await hub.join(browser);
    expect(browser.errors.map((e) => e.code)).toEqual([ErrorCode.StoreUnavailable]);

    await hub.message(alice, 'still here');
    expect(browser.messages.map((m) => m.text)).toEqual(['still here']);
  });

  it('a browser that leaves while its history loads gets nothing and is not counted', async () => {
    transcript.seed('ops', 2);
    const hub = makeHub();
    const reads = deferred();
    transcript.holdReads = reads.promise;
    const browser = new FakePeer('bob', { wantsBackscroll: true, optedIn: true });
    const joining = hub.join(browser);
    hub.leave(browser);
    reads.resolve();
    await joining;
    expect(browser.frames).toEqual([]);
    expect(hub.stats).toMatchObject({ rooms: 0, connections: 0 });
  });
});

describe('catch-up and slowness', () => {
  it('a browser whose socket fills up during its own backscroll still gets all of it', async () => {
    transcript.seed('ops', 50);
    const hub = makeHub({ maxBufferedBytes: 1000 });
    const browser = new FakePeer('bob', { wantsBackscroll: true });
    // Each frame sits unsent for a while: by the tenth the socket holds more than the bound.
    browser.onSend = () => {
      browser.buffered += 200;
    };
    await hub.join(browser);
    expect(browser.frames.filter((f) => f.type === 'message')).toHaveLength(50);
    expect(browser.closes).toEqual([]);
  });

  it('a member still holding more than the bound when a new batch commits is dropped with 4008', async () => {
    const hub = makeHub({ maxBufferedBytes: 1000 });
    const slow = new FakePeer('slow');
    const ok = new FakePeer('ok');
    const sender = new FakePeer('sender');
    for (const p of [slow, ok, sender]) await hub.join(p);
    slow.buffered = 5000;
    await hub.message(sender, 'hello');
    expect(slow.closes.map((c) => c.code)).toEqual([4008]);
    expect(ok.frames.filter((f) => f.type === 'message')).toHaveLength(1);
  });
});

describe('write coalescing', () => {
  it('a committed batch reaches each member in one send, in commit order, the same bytes for the whole room', async () => {
    const hub = makeHub();
    const sender = new FakePeer('sender');
    const readers = [new FakePeer('ann'), new FakePeer('bob')];
    const elsewhere = new FakePeer('cy', { room: 'dev' });
    for (const p of [sender, ...readers, elsewhere]) await hub.join(p);
    for (const p of [sender, ...readers, elsewhere]) p.sends.length = 0;

    await Promise.all(['a', 'b', 'c'].map((text) => hub.message(sender, text)));
    for (const reader of readers) {
      expect(reader.sends).toHaveLength(1);
      expect(reader.sends[0]?.parts.map((p) => (JSON.parse(p.json) as MessageOut).text)).toEqual([
        'a',
        'b',
        'c',
      ]);
    }
    expect(readers[0]?.sends[0]).toBe(readers[1]?.sends[0]);
    expect(elsewhere.sends).toEqual([]);
  });

  it('a batch that spans rooms gives each room only its own messages', async () => {
    const hub = makeHub();
    const ops = new FakePeer('ann');
    const dev = new FakePeer('bob', { room: 'dev' });
    for (const p of [ops, dev]) await hub.join(p);
    for (const p of [ops, dev]) p.sends.length = 0;
    await Promise.all([
      hub.message(ops, 'for ops'),
      hub.message(dev, 'for dev'),
      hub.message(ops, 'ops again'),
    ]);
    const texts = (p: FakePeer) => p.frames.filter((f) => f.type === 'message').map((f) => f.text);
    expect(texts(ops)).toEqual(['for ops', 'ops again']);
    expect(texts(dev)).toEqual(['for dev']);
    expect(ops.sends).toHaveLength(1);
  });
});

describe('resume', () => {
  it('resume with since replays exactly the messages after since', async () => {
    transcript.seed('ops', 10);
    transcript.seed('dev', 3);
    const hub = makeHub();
    const peer = new FakePeer('alice', { since: 4, optedIn: true });
    await hub.join(peer);

    expect(peer.messages.map((m) => m.seq)).toEqual([5, 6, 7, 8, 9, 10]);
    expect(peer.welcomes).toHaveLength(1);
    expect(peer.welcomes[0]?.complete).toBe(true);
    expect(peer.welcomes[0]?.seq).toBe(13);
  });

  it('a resume that is already up to date replays nothing and is complete', async () => {
    transcript.seed('ops', 3);
    const hub = makeHub();
    const peer = new FakePeer('alice', { since: 3, optedIn: true });
    await hub.join(peer);
    expect(peer.messages).toEqual([]);
    expect(peer.welcomes[0]?.complete).toBe(true);
  });

  it('when more than resumeLimit messages were missed, the newest are replayed and the welcome says complete false', async () => {
    transcript.seed('ops', 10);
    const hub = makeHub({ resumeLimit: 3 });
    const peer = new FakePeer('alice', { since: 2, optedIn: true });
    await hub.join(peer);

    // The gap is left in the past, so the live stream that follows continues without one.
    expect(peer.messages.map((m) => m.seq)).toEqual([8, 9, 10]);
    expect(peer.welcomes[0]?.complete).toBe(false);
  });

  it('missing exactly resumeLimit messages is a complete resume', async () => {
    transcript.seed('ops', 10);
    const hub = makeHub({ resumeLimit: 3 });
    const peer = new FakePeer('alice', { since: 7, optedIn: true });
    await hub.join(peer);
    expect(peer.messages.map((m) => m.seq)).toEqual([8, 9, 10]);
    expect(peer.welcomes[0]?.complete).toBe(true);
  });

  it('a resume replaces the backscroll for a browser', async () => {
    transcript.seed('ops', 10);
    const hub = makeHub();
    const browser = new FakePeer('bob', { wantsBackscroll: true, since: 8 });
    await hub.join(browser);
    expect(browser.messages.map((m) => m.seq)).toEqual([9, 10]);
  });

  it('a fresh join carries no complete flag in its welcome', async () => {
    const hub = makeHub();
    const peer = new FakePeer('alice', { optedIn: true });
    await hub.join(peer);
    expect(peer.welcomes[0]).not.toHaveProperty('complete');
  });
});

describe('messages', () => {
  it('a message is stamped with id (32 hex), ts (float seconds near now), the bound sender and room, and echoed to the sender too', async () => {
    const hub = makeHub();
    const alice = new FakePeer('alice@web01');
    const bob = new FakePeer('bob');
    await hub.join(alice);
    await hub.join(bob);
    alice.clear();
    bob.clear();

    const before = Date.now() / 1000;
    await hub.message(alice, 'rolling out');
    const after = Date.now() / 1000;

    expect(alice.messages).toHaveLength(1);
    expect(bob.messages).toHaveLength(1);
    const [m] = bob.messages;
    expect(alice.messages[0]).toEqual(m);
    expect(m?.id).toMatch(/^[0-9a-f]{32}$/);
    expect(m?.ts).toBeGreaterThanOrEqual(before - 0.001);
    expect(m?.ts).toBeLessThanOrEqual(after + 0.001);
    expect(m).toMatchObject({
      type: 'message',
      room: 'ops',
      sender: 'alice@web01',
      text: 'rolling out',
      seq: 1,
    });
    expect(transcript.stored).toEqual([
      { id: m?.id, room: 'ops', sender: 'alice@web01', text: 'rolling out', ts: m?.ts, seq: 1 },
    ]);
  });

  it('every message gets a different id', async () => {
    const hub = makeHub();
    const alice = new FakePeer('alice');
    await hub.join(alice);
    await Promise.all(Array.from({ length: 20 }, (_, i) => hub.message(alice, `m${i}`)));
    expect(new Set(alice.messages.map((m) => m.id)).size).toBe(20);
  });

  it('a message from a peer that has not joined is ignored', async () => {
    const hub = makeHub();
    const alice = new FakePeer('alice');
    await hub.join(alice);
    await hub.message(new FakePeer('mallory'), 'sneaky');
    expect(alice.frames).toEqual([]);
    expect(transcript.batches).toEqual([]);
  });

  it('a message is not broadcast before its commit has finished', async () => {
    const hub = makeHub();
    const alice = new FakePeer('alice');
    const bob = new FakePeer('bob');
    await hub.join(alice);
    await hub.join(bob);

    const commit = deferred();
    transcript.hold = commit.promise;
    const sending = hub.message(alice, 'careful');
    await transcript.appends.reached(1);
    expect(transcript.batches).toEqual([1]);
    expect(alice.messages).toEqual([]);
    expect(bob.messages).toEqual([]);

    commit.resolve();
    await sending;
    expect(alice.messages.map((m) => m.text)).toEqual(['careful']);
    expect(bob.messages.map((m) => m.text)).toEqual(['careful']);
  });

  it('a message that could not be stored is not echoed and an opted-in sender gets a store_unavailable error', async () => {
    const hub = makeHub();
    const alice = new FakePeer('alice', { optedIn: true });
    const bob = new FakePeer('bob', { optedIn: true });
    await hub.join(alice);
    await hub.join(bob);
    alice.clear();
    bob.clear();

    transcript.failAppends = true;
    await hub.message(alice, 'lost');

    expect(alice.messages).toEqual([]);
    expect(alice.errors.map((e) => e.code)).toEqual([ErrorCode.StoreUnavailable]);
    expect(bob.frames).toEqual([]);
  });

  it('a plain peer whose message could not be stored gets nothing', async () => {
    const hub = makeHub();
    const alice = new FakePeer('alice');
    const bob = new FakePeer('bob');
    await hub.join(alice);
    await hub.join(bob);
    alice.clear();
    bob.clear();

    transcript.failAppends = true;
    await hub.message(alice, 'lost');

    expect(alice.frames).toEqual([]);
    expect(bob.frames).toEqual([]);
  });

  it('messages after a store failure are stored and delivered again once the store recovers', async () => {
    const hub = makeHub();
    const alice = new FakePeer('alice');
    await hub.join(alice);
    transcript.failAppends = true;
    await hub.message(alice, 'lost');
    transcript.failAppends = false;
    await hub.message(alice, 'found');
    expect(alice.messages.map((m) => m.text)).toEqual(['found']);
  });

  it('messages that arrive together are committed in one batch', async () => {
    const hub = makeHub();
    const alice = new FakePeer('alice');
    await hub.join(alice);

    const sending = Array.from({ length: 100 }, (_, i) => hub.message(alice, `m${i}`));
    await Promise.all(sending);

    expect(transcript.batches.length).toBeLessThanOrEqual(2);
    expect(transcript.batches.reduce((a, b) => a + b, 0)).toBe(100);
    expect(alice.messages.map((m) => m.text)).toEqual(Array.from({ length: 100 }, (_, i) => `m${i}`));
  });

  it('messages sent while a commit is in flight go together in the next batch', async () => {
    const turns = new Turns();
    const hub = makeHub({ yieldToIo: turns.yieldToIo });
    const alice = new FakePeer('alice');
    await hub.join(alice);

    const commit = deferred();
    transcript.hold = commit.promise;
    const first = hub.message(alice, 'first');
    await turns.give();
    const rest = Array.from({ length: 10 }, (_, i) => hub.message(alice, `r${i}`));
    await turns.giveAll();
    expect(transcript.batches).toEqual([1]); // the rest wait while the store holds the first
    commit.resolve();
    await turns.give();
    await Promise.all([first, ...rest]);

    expect(transcript.batches).toEqual([1, 10]);
  });

  it('broadcast order equals commit order', async () => {
    const hub = makeHub({ maxBatch: 7 });
    const alice = new FakePeer('alice');
    const bob = new FakePeer('bob');
    await hub.join(alice);
    await hub.join(bob);

    await Promise.all(Array.from({ length: 50 }, (_, i) => hub.message(i % 2 ? alice : bob, `m${i}`)));

    expect(transcript.batches.length).toBeGreaterThan(1);
    for (const peer of [alice, bob]) {
      const seqs = peer.messages.map((m) => m.seq);
      expect(seqs).toHaveLength(50);
      for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1] ?? 0);
      expect(peer.messages.map((m) => m.text)).toEqual(transcript.stored.map((m) => m.text));
    }
  });

  it('each broadcast is encoded once: every member receives the very same frame object', async () => {
    const hub = makeHub();
    const peers = [
      new FakePeer('alice'),
      new FakePeer('bob'),
      new FakePeer('carol', { wantsBackscroll: true }),
    ];
    for (const p of peers) await hub.join(p);
    for (const p of peers) p.clear();

    await hub.message(peers[0] as FakePeer, 'once');
    const sent = peers.map((p) => p.encoded[0]);
    expect(sent[0]).toBeDefined();
    expect(sent[1]).toBe(sent[0]);
    expect(sent[2]).toBe(sent[0]);

    for (const p of peers) p.clear();
    hub.presence(peers[0] as FakePeer, 'away');
    expect(peers[1]?.encoded[0]).toBeDefined();
    expect(peers[1]?.encoded[0]).toBe(peers[2]?.encoded[0]);
  });
});

describe('slow and broken members', () => {
  it('a member whose send throws is dropped and the others still receive the message', async () => {
    const hub = makeHub();
    const alice = new FakePeer('alice');
    const broken = new FakePeer('bob');
    const carol = new FakePeer('carol');
    for (const p of [alice, broken, carol]) await hub.join(p);
    for (const p of [alice, broken, carol]) p.clear();

    broken.throwOnSend = true;
    await hub.message(alice, 'hello all');

    expect(alice.messages.map((m) => m.text)).toEqual(['hello all']);
    expect(carol.messages.map((m) => m.text)).toEqual(['hello all']);
    expect(broken.closes).toEqual([{ code: CloseCode.InternalError, reason: expect.any(String) }]);
    expect(alice.presences).toEqual([presence('bob', 'away')]);
    expect(carol.presences).toEqual([presence('bob', 'away')]);
    expect(hub.stats.connections).toBe(2);

    await hub.message(carol, 'after');
    expect(alice.messages.map((m) => m.text)).toEqual(['hello all', 'after']);
  });

  it('a member whose bufferedAmount is over the bound (1 MiB) is closed with code 4008 and the others still receive', async () => {
    const hub = makeHub();
    const alice = new FakePeer('alice');
    const slow = new FakePeer('bob');
    const carol = new FakePeer('carol');
    for (const p of [alice, slow, carol]) await hub.join(p);
    for (const p of [alice, slow, carol]) p.clear();

    slow.buffered = MiB + 1;
    await hub.message(alice, 'keep up');

    expect(slow.closes).toEqual([{ code: CloseCode.Slow, reason: expect.any(String) }]);
    expect(CloseCode.Slow).toBe(4008);
    expect(slow.messages).toEqual([]);
    expect(alice.messages.map((m) => m.text)).toEqual(['keep up']);
    expect(carol.messages.map((m) => m.text)).toEqual(['keep up']);
    expect(hub.stats.connections).toBe(2);
  });

  it('a member exactly at the 1 MiB bound is not dropped', async () => {
    const hub = makeHub();
    const alice = new FakePeer('alice');
    const full = new FakePeer('bob');
    await hub.join(alice);
    await hub.join(full);
    full.buffered = MiB;
    await hub.message(alice, 'just fits');
    expect(full.closes).toEqual([]);
    expect(full.messages.map((m) => m.text)).toEqual(['just fits']);
  });

  it('a slow or broken member does not delay the others: they receive in the same broadcast', async () => {
    const hub = makeHub();
    const alice = new FakePeer('alice');
    const slow = new FakePeer('slow');
    const broken = new FakePeer('broken');
    const carol = new FakePeer('carol');
    for (const p of [alice, slow, broken, carol]) await hub.join(p);
    for (const p of [alice, slow, broken, carol]) p.clear();
    slow.buffered = 10 * MiB;
    broken.throwOnSend = true;

    // Everything below happens inside one synchronous broadcast: no microtask runs between the sender's
    // echo and carol's copy, and by then the slow and the broken member have already been dropped.
    let microtaskRan = false;
    let seenByCarol: { microtaskRan: boolean; slowClosed: number; brokenClosed: number } | undefined;
    alice.onSend = () =>
      queueMicrotask(() => {
        microtaskRan = true;
      });
    carol.onSend = (frame) => {
      if (frame.type === 'message') {
        seenByCarol = { microtaskRan, slowClosed: slow.closes.length, brokenClosed: broken.closes.length };
      }
    };
    await hub.message(alice, 'go');
    expect(seenByCarol).toEqual({ microtaskRan: false, slowClosed: 1, brokenClosed: 1 });
    expect(alice.messages).toHaveLength(1);
    expect(carol.messages).toHaveLength(1);
    expect(slow.closes).toHaveLength(1);
    expect(broken.closes).toHaveLength(1);
  });

  it('a member whose close() also throws is still dropped', async () => {
    const hub = makeHub();
    const alice = new FakePeer('alice');
    const broken = new FakePeer('bob');
    await hub.join(alice);
    await hub.join(broken);
    broken.throwOnSend = true;
    broken.onClose = () => {
      throw new Error('already closed');
    };
    await hub.message(alice, 'hi');
    expect(alice.messages).toHaveLength(1);
    expect(hub.stats.connections).toBe(1);
  });

  it('a newcomer whose transport breaks while being caught up is closed once', async () => {
    transcript.seed('ops', 5);
    const hub = makeHub();
    await hub.join(new FakePeer('alice'));
    await hub.join(new FakePeer('carol'));
    const browser = new FakePeer('bob', { wantsBackscroll: true, optedIn: true });
    browser.throwOnSend = true;
    await hub.join(browser);
    expect(browser.closes).toHaveLength(1);
    expect(hub.stats.connections).toBe(2);
  });
});

describe('welcome and errors', () => {
  it('an opted-in peer gets welcome first', async () => {
    transcript.seed('ops', 4);
    const hub = makeHub({ serverName: 'runspec-room/9.9.9' });
    await hub.join(new FakePeer('alice'));
    const peer = new FakePeer('bob', { optedIn: true, wantsBackscroll: true });
    await hub.join(peer);

    expect(peer.frames[0]).toEqual({
      type: 'welcome',
      protocol: 2,
      server: 'runspec-room/9.9.9',
      room: 'ops',
      user: 'bob',
      seq: 4,
    });
    expect(peer.welcomes).toHaveLength(1);
    expect(peer.frames.slice(1).map((f) => f.type)).toEqual([
      'presence',
      'message',
      'message',
      'message',
      'message',
    ]);
  });

  it('the welcome seq is the newest committed message when the peer joins', async () => {
    const hub = makeHub();
    const alice = new FakePeer('alice');
    await hub.join(alice);
    await hub.message(alice, 'one');
    await hub.message(alice, 'two');
    const peer = new FakePeer('bob', { optedIn: true });
    await hub.join(peer);
    expect(peer.welcomes[0]?.seq).toBe(2);
  });

  it('a plain peer never gets welcome or error frames', async () => {
    transcript.seed('ops', 2);
    const hub = makeHub();
    const plain = new FakePeer('alice', { wantsBackscroll: true });
    await hub.join(plain);
    hub.refuse(plain, ErrorCode.BadFrame, 'nope');
    hub.refuse(plain, ErrorCode.AlreadyJoined, 'nope');
    transcript.failAppends = true;
    await hub.message(plain, 'lost');
    const shuttingDown = hub.shutdown();
    await hub.message(plain, 'too late');
    await shuttingDown;

    expect(plain.frames.map((f) => f.type)).not.toContain('welcome');
    expect(plain.frames.map((f) => f.type)).not.toContain('error');
  });

  it('an opted-in peer is told why a frame was refused', async () => {
    const hub = makeHub();
    const peer = new FakePeer('alice', { optedIn: true });
    await hub.join(peer);
    hub.refuse(peer, ErrorCode.UnknownType, 'unknown frame type "shout"');
    expect(peer.errors).toEqual([
      { type: 'error', code: ErrorCode.UnknownType, message: 'unknown frame type "shout"' },
    ]);
  });

  it('an opted-in peer that is not in a room yet is still told why its hello was refused', () => {
    const hub = makeHub();
    const peer = new FakePeer('alice', { optedIn: true });
    hub.refuse(peer, ErrorCode.BadName, 'user must not be blank');
    expect(peer.errors.map((e) => e.code)).toEqual([ErrorCode.BadName]);
  });
});

describe('shutdown', () => {
  it('shutdown finishes pending commits, broadcasts them, then closes every peer with 1012', async () => {
    const hub = makeHub();
    const alice = new FakePeer('alice');
    const bob = new FakePeer('bob', { room: 'dev', wantsBackscroll: true });
    await hub.join(alice);
    await hub.join(bob);
    const commit = deferred();
    transcript.hold = commit.promise;
    const sending = [hub.message(alice, 'last words'), hub.message(bob, 'me too')];

    let done = false;
    const shuttingDown = hub.shutdown().then(() => {
      done = true;
    });
    // The batch reaches the store after a turn of I/O, and is held there: shutdown still waits.
    await transcript.appends.reached(1);
    expect(done).toBe(false);
    expect(alice.closes).toEqual([]);
    expect(hub.accepting).toBe(false);

    commit.resolve();
    await shuttingDown;
    await Promise.all(sending);

    expect(alice.events).toEqual(['message', 'close 1012']);
    expect(bob.events).toEqual(['message', 'close 1012']);
    expect(alice.messages.map((m) => m.text)).toEqual(['last words']);
    expect(bob.messages.map((m) => m.text)).toEqual(['me too']);
    expect(CloseCode.ServiceRestart).toBe(1012);
  });

  it('after shutdown starts, members leaving are not announced away', async () => {
    const hub = makeHub();
    const alice = new FakePeer('alice');
    const bob = new FakePeer('bob');
    await hub.join(alice);
    await hub.join(bob);
    alice.clear();
    bob.clear();
    alice.onClose = () => hub.leave(alice);
    bob.onClose = () => hub.leave(bob);
    await hub.shutdown();
    expect(alice.presences).toEqual([]);
    expect(bob.presences).toEqual([]);
    expect(hub.stats.connections).toBe(0);
  });

  it('during shutdown a new peer is closed with 1012 and an opted-in sender is told its message was not stored', async () => {
    const hub = makeHub();
    const alice = new FakePeer('alice', { optedIn: true });
    await hub.join(alice);
    alice.clear();
    const shuttingDown = hub.shutdown();
    const late = new FakePeer('bob');
    await hub.join(late);
    await hub.message(alice, 'too late');
    await shuttingDown;

    expect(late.closes).toEqual([{ code: 1012, reason: expect.any(String) }]);
    expect(alice.errors.map((e) => e.code)).toEqual([ErrorCode.ShuttingDown]);
    expect(alice.messages).toEqual([]);
    expect(transcript.batches).toEqual([]);
  });
});
