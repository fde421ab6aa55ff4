// Unit tests of the Hub (src/hub/hub.ts) with fake peers and an in-memory fake transcript: presence, rooms, stamping, batching, backscroll, resume, refs, whispers, typing, read markers, drops and shutdown.
import { beforeEach, describe, expect, it, vi } from 'vitest';
import {
  type ExportStream,
  ExportsBusy,
  Hub,
  type HubOptions,
  SEARCHES_AT_ONCE,
  SearchesBusy,
} from '../src/hub/hub.ts';
import { Encoded, type Outgoing, type Peer } from '../src/hub/peer.ts';
import { Restrictions } from '../src/hub/restrictions.ts';
import {
  type Appended,
  type Arrival,
  type ConversationHead,
  conversationKey,
  isPair,
  type NewMessage,
  type ReadMarker,
  type StoredMessage,
  type Transcript,
  type Via,
} from '../src/hub/transcript.ts';
import { CloseCode, ErrorCode, NoticeCode } from '../src/protocol/codes.ts';
import type { ErrorOut, MessageOut, PresenceOut, ServerFrame, WelcomeOut } from '../src/protocol/frames.ts';
import type { SearchTerm } from '../src/protocol/search.ts';
import { Count, deferred, Turns } from './helpers/events.ts';

const MiB = 1024 * 1024;

/**
 * An in-memory transcript with the real store's semantics: each conversation numbered 1, 2, 3… without
 * gaps; a resend (same sender, conversation and cid) comes back as its original and is not stored.
 * Appends and reads can be held or made to fail.
 */
class FakeTranscript implements Transcript {
  readonly stored: StoredMessage[] = [];
  /** Size of every append call, in call order. */
  readonly batches: number[] = [];
  /** Append calls made (counted as each starts). */
  readonly appends = new Count();
  /** Message reads made: recent(), after() and before() (counted as each starts). */
  readonly reads = new Count();
  /** Every saveMarkers call, in order. */
  readonly saved: ReadMarker[][] = [];
  readonly markerSaves = new Count();
  /** Names seen. */
  readonly names = new Set<string>();
  /** While set, appends wait for it before storing anything. */
  hold: Promise<void> | undefined;
  /** While set, appends store at once but wait for it before reporting success. */
  holdAck: Promise<void> | undefined;
  /** While set, recent(), after() and before() wait for it before reading. */
  holdReads: Promise<void> | undefined;
  /** While set, markers() waits for it before reading. */
  holdMarkers: Promise<void> | undefined;
  /** While set, saveMarkers() waits for it before writing. */
  holdSaves: Promise<void> | undefined;
  /** saveMarkers calls begun. */
  readonly saveStarts = new Count();
  /** markers() reads answered. */
  readonly markerReads = new Count();
  failAppends = false;
  /** Message reads and the room list fail. */
  failReads = false;
  failMarkers = false;
  failNames = false;
  failLastSeq = false;
  /** Searches the store takes at once (unset: as many as the Hub sends). */
  searchesAtOnce: number | undefined;
  /**
   * Answers without a read for a name it has nothing of (no marker stored or being stored, no whisper)
   * and a room it has no message of, as the libSQL store does once it has learnt its names.
   */
  knowsNames = false;
  /** lastSeq() reads answered. */
  readonly lastSeqReads = new Count();
  /** Names with a marker stored or being stored, or a whisper to them. */
  readonly #marked = new Set<string>();
  readonly #markers = new Map<string, number>();
  /** Each conversation's newest seq once its messages are removed (as the conversations table keeps it). */
  readonly #heads = new Map<string, number>();
  #ids = 0;
  #ts = 1e9;

  async append(messages: readonly NewMessage[]): Promise<Appended[]> {
    this.batches.push(messages.length);
    this.appends.add();
    const hold = this.hold;
    if (hold) await hold;
    if (this.failAppends) throw new Error('disk I/O error');
    const appended = messages.map((m): Appended => {
      const same = this.stored.find((s) => s.id === m.id);
      if (same) return { seq: same.seq };
      const original =
        m.cid === undefined
          ? undefined
          : this.stored.find((s) => s.room === m.room && s.sender === m.sender && s.cid === m.cid);
      if (original) return { duplicate: { ...original } };
      const seq = this.last(m.room) + 1;
      if (m.recipient !== undefined) this.#marked.add(m.recipient);
      this.stored.push({ ...m, seq });
      return { seq };
    });
    const holdAck = this.holdAck;
    if (holdAck) await holdAck;
    return appended;
  }

  async #read(): Promise<void> {
    this.reads.add();
    if (this.holdReads) await this.holdReads;
    if (this.failReads) throw new Error('database is locked');
  }

  #of(room: string): StoredMessage[] {
    return this.stored.filter((m) => m.room === room).sort((a, b) => a.seq - b.seq);
  }

  async recent(room: string, limit: number): Promise<StoredMessage[]> {
    await this.#read();
    return this.#of(room).slice(-limit);
  }

  async after(room: string, seq: number, limit: number): Promise<StoredMessage[]> {
    await this.#read();
    return this.#of(room)
      .filter((m) => m.seq > seq)
      .slice(0, limit);
  }

  async before(room: string, seq: number, limit: number): Promise<StoredMessage[]> {
    await this.#read();
    return this.#of(room)
      .filter((m) => m.seq < seq)
      .slice(-limit);
  }

  async search(
    room: string,
    terms: readonly SearchTerm[],
    before: number | undefined,
    limit: number,
  ): Promise<StoredMessage[]> {
    await this.#read();
    const words = terms.map((t) => t.text.toLowerCase());
    return this.#of(room)
      .filter((m) => m.recipient === undefined && m.deleted === undefined)
      .filter((m) => m.seq < (before ?? Number.POSITIVE_INFINITY))
      .filter((m) => words.every((w) => m.text.toLowerCase().includes(w)))
      .reverse()
      .slice(0, limit);
  }

  async lastSeq(room: string): Promise<number> {
    if (this.failLastSeq) throw new Error('database is locked');
    this.lastSeqReads.add();
    return this.last(room);
  }

  lastSeqKnown(room: string): number | undefined {
    return this.knowsNames && this.last(room) === 0 ? 0 : undefined;
  }

  arrivalKnown(user: string): Arrival | undefined {
    return this.knowsNames && !this.#marked.has(user) ? { read: 0, whispers: 0 } : undefined;
  }

  async rooms(limit: number): Promise<ConversationHead[]> {
    if (this.failReads) throw new Error('database is locked');
    const heads = new Map<string, ConversationHead>();
    for (const m of this.stored) {
      const head = heads.get(m.room);
      if (!isPair(m.room) && (!head || m.seq > head.seq))
        heads.set(m.room, { key: m.room, seq: m.seq, ts: m.ts });
    }
    return [...heads.values()].sort((a, b) => b.ts - a.ts).slice(0, limit);
  }

  async markers(user: string, conversations?: readonly string[]): Promise<Map<string, number>> {
    if (this.holdMarkers) await this.holdMarkers;
    if (this.failMarkers) throw new Error('database is locked');
    const found = new Map<string, number>();
    for (const [key, seq] of this.#markers) {
      const [who, conversation] = key.split('\u0000') as [string, string];
      if (who === user && (!conversations || conversations.includes(conversation)))
        found.set(conversation, seq);
    }
    this.markerReads.add();
    return found;
  }

  async saveMarkers(markers: readonly ReadMarker[]): Promise<void> {
    this.saveStarts.add();
    for (const m of markers) this.#marked.add(m.user);
    if (this.holdSaves) await this.holdSaves;
    if (this.failMarkers) throw new Error('database is locked');
    this.saved.push([...markers]);
    for (const m of markers) {
      if (m.seq > this.marker(m.user, m.conversation)) this.setMarker(m.user, m.conversation, m.seq);
    }
    this.markerSaves.add();
  }

  async unreadWhispers(user: string): Promise<number> {
    return this.stored.filter((m) => m.recipient === user && m.seq > this.marker(user, m.room)).length;
  }

  async arrival(user: string, conversation: string): Promise<Arrival> {
    const read = (await this.markers(user, [conversation])).get(conversation) ?? 0;
    return { read, whispers: await this.unreadWhispers(user) };
  }

  async knows(name: string): Promise<boolean> {
    if (this.failNames) throw new Error('database is locked');
    return this.names.has(name);
  }

  async remember(names: readonly string[]): Promise<void> {
    for (const name of names) this.names.add(name);
  }

  /** The conversation's newest seq, read synchronously. */
  last(room: string): number {
    return Math.max(this.#heads.get(room) ?? 0, this.#of(room).at(-1)?.seq ?? 0);
  }

  /** Remove a conversation's messages up to `seq`, as retention does; its newest seq stays. */
  forget(room: string, seq: number): void {
    this.#heads.set(room, this.last(room));
    for (let i = this.stored.length - 1; i >= 0; i--) {
      const m = this.stored[i] as StoredMessage;
      if (m.room === room && m.seq <= seq) this.stored.splice(i, 1);
    }
  }

  marker(user: string, conversation: string): number {
    return this.#markers.get(`${user}\u0000${conversation}`) ?? 0;
  }

  setMarker(user: string, conversation: string, seq: number): void {
    this.#marked.add(user);
    this.#markers.set(`${user}\u0000${conversation}`, seq);
  }

  /** Store `count` messages in `room` directly, as if sent before the Hub started; later seeds are newer. */
  seed(room: string, count: number, sender = 'old-timer', via: Via | undefined = 'console'): void {
    for (let i = 1; i <= count; i++) {
      this.#ts += 1;
      this.stored.push({
        id: (++this.#ids).toString(16).padStart(32, '0'),
        room,
        sender,
        text: `old ${i}`,
        ts: this.#ts,
        seq: this.last(room) + 1,
        via,
      });
    }
  }

  /** Store `count` whispers from one person to another, as if sent before the Hub started. */
  seedWhispers(from: string, to: string, count: number): void {
    const room = conversationKey(from, to);
    for (let i = 1; i <= count; i++) {
      this.#ts += 1;
      this.stored.push({
        id: (++this.#ids).toString(16).padStart(32, '0'),
        room,
        sender: from,
        recipient: to,
        text: `psst ${i}`,
        ts: this.#ts,
        seq: this.last(room) + 1,
        via: 'console',
      });
    }
    this.#marked.add(to);
    this.names.add(from).add(to);
  }
}

interface PeerOptions {
  via?: 'browser' | 'console';
  wantsBackscroll?: boolean;
  optedIn?: boolean;
}

type FrameOf<T extends ServerFrame['type']> = Extract<ServerFrame, { type: T }>;

/** A peer that records what it is sent and how it is closed. */
class FakePeer implements Peer {
  readonly user: string;
  readonly via: 'browser' | 'console';
  readonly wantsBackscroll: boolean;
  readonly optedIn: boolean;
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
  readonly #waiting = new Set<(frame: ServerFrame) => void>();

  constructor(user: string, options: PeerOptions = {}) {
    this.user = user;
    this.wantsBackscroll = options.wantsBackscroll ?? false;
    this.via = options.via ?? (this.wantsBackscroll ? 'browser' : 'console');
    this.optedIn = options.optedIn ?? false;
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
      for (const wake of [...this.#waiting]) wake(parsed);
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

  /** Resolves with the first frame still to come that matches; rejects after `ms`, so a wait in vain fails. */
  next(match: (frame: ServerFrame) => boolean, ms = 2000): Promise<ServerFrame> {
    return new Promise((resolve, reject) => {
      const wake = (frame: ServerFrame): void => {
        if (!match(frame)) return;
        clearTimeout(timer);
        this.#waiting.delete(wake);
        resolve(frame);
      };
      const timer = setTimeout(() => {
        this.#waiting.delete(wake);
        reject(new Error(`no matching frame for ${this.user} within ${ms} ms`));
      }, ms);
      this.#waiting.add(wake);
    });
  }

  of<T extends ServerFrame['type']>(type: T): FrameOf<T>[] {
    return this.frames.filter((f): f is FrameOf<T> => f.type === type);
  }

  get messages(): MessageOut[] {
    return this.of('message');
  }

  get presences(): PresenceOut[] {
    return this.of('presence');
  }

  get errors(): ErrorOut[] {
    return this.of('error');
  }

  get welcomes(): WelcomeOut[] {
    return this.of('welcome');
  }

  clear(): void {
    this.frames.length = 0;
    this.encoded.length = 0;
    this.events.length = 0;
    this.sends.length = 0;
  }
}

/** A console that speaks the seed protocol: no welcome, no replies, no errors, no whispers. */
const seed = (user: string): FakePeer => new FakePeer(user);
/** A console that opted into protocol 2. */
const console2 = (user: string): FakePeer => new FakePeer(user, { optedIn: true });
/** A signed-in browser, as the browser door makes it. */
const browser = (user: string): FakePeer =>
  new FakePeer(user, { via: 'browser', wantsBackscroll: true, optedIn: true });

const presence = (user: string, status: 'available' | 'away', room = 'ops'): PresenceOut => ({
  type: 'presence',
  room,
  user,
  status,
});

const range = (from: number, to: number): number[] =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

let transcript: FakeTranscript;

function makeHub(options: Partial<HubOptions> = {}): Hub {
  return new Hub({ transcript, ...options });
}

/** Connect a peer and join its first room as a door does: an opted-in peer is welcomed, answering `ref`. */
async function enter(
  hub: Hub,
  peer: FakePeer,
  room = 'ops',
  options: { since?: number; ref?: string } = {},
): Promise<void> {
  hub.connect(peer);
  await hub.join(peer, room, {
    since: options.since,
    welcome: peer.optedIn ? { ref: options.ref } : undefined,
  });
}

beforeEach(() => {
  transcript = new FakeTranscript();
});

describe('presence', () => {
  it('a newcomer is told who is already present, and the others are told about the newcomer', async () => {
    const hub = makeHub();
    const alice = seed('alice');
    const bob = seed('bob');
    await enter(hub, alice);
    await enter(hub, bob);
    alice.clear();
    bob.clear();

    const carol = seed('carol');
    await enter(hub, carol);

    expect(carol.presences).toEqual([presence('alice', 'available'), presence('bob', 'available')]);
    expect(carol.presences.some((p) => p.user === 'carol')).toBe(false);
    expect(alice.frames).toEqual([presence('carol', 'available')]);
    expect(bob.frames).toEqual([presence('carol', 'available')]);
  });

  it('the first member of a room gets no presence frames at all', async () => {
    const hub = makeHub();
    const alice = seed('alice');
    await enter(hub, alice);
    expect(alice.frames).toEqual([]);
  });

  it('members of other rooms hear nothing', async () => {
    const hub = makeHub();
    const elsewhere = seed('zed');
    await enter(hub, elsewhere, 'dev');
    await enter(hub, seed('alice'));
    await hub.message(seed('alice'), 'ops', 'not a member, ignored');
    await hub.message(elsewhere, 'dev', 'barrier');
    expect(elsewhere.frames.map((f) => f.type)).toEqual(['message']);
  });

  it('a connection that goes announces away once, even if disconnect is called twice', async () => {
    const hub = makeHub();
    const alice = seed('alice');
    const bob = seed('bob');
    await enter(hub, alice);
    await enter(hub, bob);
    alice.clear();
    bob.clear();

    hub.disconnect(bob);
    hub.disconnect(bob);

    expect(alice.frames).toEqual([presence('bob', 'away')]);
    expect(bob.frames).toEqual([]);
    expect(hub.stats.connections).toBe(1);
  });

  it('a user with two connections stays present until the last one goes', async () => {
    const hub = makeHub();
    const alice = seed('alice');
    const bobConsole = seed('bob');
    const bobBrowser = new FakePeer('bob', { wantsBackscroll: true });
    await enter(hub, alice);
    await enter(hub, bobConsole);
    alice.clear();

    await enter(hub, bobBrowser);
    expect(alice.frames).toEqual([]);
    expect(bobBrowser.presences).toEqual([presence('alice', 'available')]);

    hub.disconnect(bobConsole);
    expect(alice.frames).toEqual([]);

    hub.disconnect(bobBrowser);
    expect(alice.frames).toEqual([presence('bob', 'away')]);
  });

  it('presence changes are relayed to the others but not back to the sender', async () => {
    const hub = makeHub();
    const alice = seed('alice');
    const bob = seed('bob');
    const carol = seed('carol');
    for (const p of [alice, bob, carol]) await enter(hub, p);
    for (const p of [alice, bob, carol]) p.clear();

    hub.presence(alice, ['ops'], 'away');

    expect(alice.frames).toEqual([]);
    expect(bob.frames).toEqual([presence('alice', 'away')]);
    expect(carol.frames).toEqual([presence('alice', 'away')]);

    hub.presence(alice, ['ops'], 'available');
    expect(bob.frames).toEqual([presence('alice', 'away'), presence('alice', 'available')]);
  });

  it('a presence change naming no room applies to every room of the connection, and is acknowledged', async () => {
    const hub = makeHub();
    const ann = console2('ann');
    const bob = seed('bob');
    const cy = seed('cy');
    await enter(hub, ann);
    await hub.join(ann, 'dev');
    await enter(hub, bob);
    await enter(hub, cy, 'dev');
    for (const p of [ann, bob, cy]) p.clear();

    hub.presence(ann, undefined, 'away', 'p1');

    expect(bob.frames).toEqual([presence('ann', 'away')]);
    expect(cy.frames).toEqual([presence('ann', 'away', 'dev')]);
    expect(ann.frames).toEqual([{ type: 'ack', ref: 'p1' }]);
  });

  it("a newcomer is told each member's current status, e.g. away after they set away", async () => {
    const hub = makeHub();
    const alice = seed('alice');
    const bob = seed('bob');
    await enter(hub, alice);
    await enter(hub, bob);
    hub.presence(alice, ['ops'], 'away');

    const carol = seed('carol');
    await enter(hub, carol);

    expect(carol.presences).toEqual([presence('alice', 'away'), presence('bob', 'available')]);
  });

  it('a second connection of a user who set away makes them available again for the others', async () => {
    const hub = makeHub();
    const alice = seed('alice');
    const bob = seed('bob');
    await enter(hub, alice);
    await enter(hub, bob);
    hub.presence(bob, ['ops'], 'away');
    alice.clear();

    await enter(hub, browser('bob'));
    expect(alice.frames).toEqual([presence('bob', 'available')]);
  });

  it('a presence change from a peer that is not connected is ignored', async () => {
    const hub = makeHub();
    const alice = seed('alice');
    await enter(hub, alice);
    hub.presence(seed('mallory'), ['ops'], 'away');
    hub.presence(console2('mallory'), undefined, 'away');
    expect(alice.frames).toEqual([]);
  });
});

describe('backscroll', () => {
  it('a console never receives backscroll; a browser receives the last 50 messages oldest first', async () => {
    transcript.seed('ops', 60);
    transcript.seed('dev', 5);
    const hub = makeHub();
    const console_ = seed('alice');
    const opted = console2('carol');
    const web = browser('bob');
    await enter(hub, console_);
    await enter(hub, opted);
    await enter(hub, web);

    expect(console_.messages).toEqual([]);
    expect(opted.messages).toEqual([]);
    expect(web.messages).toHaveLength(50);
    expect(web.messages.map((m) => m.text)).toEqual(Array.from({ length: 50 }, (_, i) => `old ${i + 11}`));
    expect(web.messages.every((m) => m.room === 'ops')).toBe(true);
    expect(web.messages.map((m) => m.seq)).toEqual(range(11, 60));
  });

  it('browsers joining a room that is open here get its newest 50 from memory, the same as the store has them', async () => {
    transcript.seed('ops', 60);
    const hub = makeHub();
    const first = browser('ann');
    await enter(hub, first);
    expect(transcript.reads.value).toBe(1);
    const alice = seed('alice');
    await enter(hub, alice);
    for (const text of ['one', 'two', 'three']) await hub.message(alice, 'ops', text);

    const later = [browser('bob'), browser('carol')];
    for (const web of later) await enter(hub, web);
    expect(transcript.reads.value).toBe(1);
    const fromStore = (await transcript.recent('ops', 50)).map((m) => ({ type: 'message', ...m }));
    for (const web of later) expect(web.messages).toEqual(fromStore);
    expect(later[0]?.messages.map((m) => m.seq)).toEqual(range(14, 63));
  });

  it('a room with no messages yet gives its joiners an empty backscroll without reading the store, then what was said', async () => {
    const hub = makeHub();
    const alice = seed('alice');
    await enter(hub, alice);
    const ann = browser('ann');
    await enter(hub, ann);
    await hub.message(alice, 'ops', 'first words');
    const bob = browser('bob');
    await enter(hub, bob);
    expect(transcript.reads.value).toBe(0);
    expect(ann.messages.map((m) => [m.seq, m.text])).toEqual([[1, 'first words']]);
    expect(bob.messages.map((m) => [m.seq, m.text])).toEqual([[1, 'first words']]);
  });

  it('a message deleted while a join is loading shows deleted to the browsers that join after', async () => {
    transcript.seed('ops', 2);
    const hub = makeHub();
    await enter(hub, seed('alice'));
    const markers = deferred();
    transcript.holdMarkers = markers.promise;
    const ann = browser('ann');
    const joining = enter(hub, ann);
    await transcript.reads.reached(1);
    // The join has read the backscroll; an admin deletes the second message before it completes.
    const at = transcript.stored.findIndex((m) => m.seq === 2);
    const original = transcript.stored[at] as StoredMessage;
    transcript.stored[at] = { ...original, text: '', deleted: 2e9 };
    hub.announceDeleted('ops', original.id, 2);
    markers.resolve();
    await joining;
    transcript.holdMarkers = undefined;
    const bob = browser('bob');
    await enter(hub, bob);
    expect(bob.messages.map((m) => [m.text, m.deleted])).toEqual([
      ['old 1', undefined],
      ['', true],
    ]);
  });

  it('a message stored but never broadcast here (a gap) is not left out of later backscrolls', async () => {
    const hub = makeHub();
    const alice = seed('alice');
    await enter(hub, alice);
    await hub.message(alice, 'ops', 'one');
    // Stored by something else: this node never broadcast it.
    transcript.stored.push({
      ...(transcript.stored[0] as StoredMessage),
      id: 'f'.repeat(32),
      text: 'two',
      seq: 2,
    });
    await hub.message(alice, 'ops', 'three');
    const ann = browser('ann');
    await enter(hub, ann);
    expect(ann.messages.map((m) => [m.seq, m.text])).toEqual([
      [1, 'one'],
      [2, 'two'],
      [3, 'three'],
    ]);
  });

  it('a busy room nobody joins lets go of its kept messages; the next join reads them from the store', async () => {
    const hub = makeHub();
    const alice = seed('alice');
    await enter(hub, alice);
    // Two backscrolls' worth (100) are kept for a join; past that, with no join, they are let go.
    for (let i = 1; i <= 100; i++) await hub.message(alice, 'ops', String(i));
    const ann = browser('ann');
    await enter(hub, ann);
    expect(transcript.reads.value).toBe(0);
    for (let i = 101; i <= 201; i++) await hub.message(alice, 'ops', String(i));
    const bob = browser('bob');
    await enter(hub, bob);
    expect(transcript.reads.value).toBe(1);
    expect(bob.messages.map((m) => m.text)).toEqual(range(152, 201).map(String));
  });

  it("an admin's delete shows as a tombstone to browsers that join after it", async () => {
    transcript.seed('ops', 3);
    const hub = makeHub();
    await enter(hub, seed('alice'));
    await enter(hub, browser('ann'));
    const at = transcript.stored.findIndex((m) => m.seq === 2);
    const original = transcript.stored[at] as StoredMessage;
    transcript.stored[at] = { ...original, text: '', deleted: 2e9 };
    hub.announceDeleted('ops', original.id, 2);
    const bob = browser('bob');
    await enter(hub, bob);
    expect(bob.messages.map((m) => [m.text, m.deleted])).toEqual([
      ['old 1', undefined],
      ['', true],
      ['old 3', undefined],
    ]);
  });

  it('a message broadcast while a join that read the store is finishing reaches the browsers that join later', async () => {
    transcript.seed('ops', 3);
    const hub = makeHub();
    const alice = seed('alice');
    await enter(hub, alice);
    const markers = deferred();
    transcript.holdMarkers = markers.promise;
    const ann = browser('ann');
    const joining = enter(hub, ann);
    await transcript.reads.reached(1);
    await hub.message(alice, 'ops', 'new');
    markers.resolve();
    await joining;
    transcript.holdMarkers = undefined;
    const bob = browser('bob');
    await enter(hub, bob);
    const all = [
      [1, 'old 1'],
      [2, 'old 2'],
      [3, 'old 3'],
      [4, 'new'],
    ];
    expect(ann.messages.map((m) => [m.seq, m.text])).toEqual(all);
    expect(bob.messages.map((m) => [m.seq, m.text])).toEqual(all);
  });

  it('a message sent while its join is served from memory gets its echo with its ref, once, after the backscroll', async () => {
    const hub = makeHub();
    const bob = seed('bob');
    await enter(hub, bob);
    await hub.message(bob, 'ops', 'hello');
    const markers = deferred();
    transcript.holdMarkers = markers.promise;
    const web = browser('ann');
    const joining = enter(hub, web);
    await hub.message(web, 'ops', 'early', { cid: 'c1', ref: 'r1' });
    markers.resolve();
    await joining;
    expect(transcript.reads.value).toBe(0);
    expect(web.messages.map((m) => [m.text, m.seq, m.ref])).toEqual([
      ['hello', 1, undefined],
      ['early', 2, 'r1'],
    ]);
  });

  it('the backscroll from memory is the very JSON the store path gives: via, cid and tombstones alike, no ref', async () => {
    transcript.seed('ops', 2);
    const at = transcript.stored.findIndex((m) => m.seq === 1);
    transcript.stored[at] = { ...(transcript.stored[at] as StoredMessage), text: '', deleted: 5 };
    const hub = makeHub();
    await enter(hub, seed('alice'));
    const ann = browser('ann');
    await enter(hub, ann);
    await hub.message(ann, 'ops', 'mine', { cid: 'c1', ref: 'r1' });
    const cc = console2('cc');
    await enter(hub, cc);
    await hub.message(cc, 'ops', 'theirs', { cid: 'c2', ref: 'r2' });
    const fromMemory = browser('bob');
    await enter(hub, fromMemory);
    const fromStore = browser('carol');
    await enter(makeHub(), fromStore);
    expect(transcript.reads.value).toBe(2);
    const json = (p: FakePeer): string[] => p.encoded.filter((e) => e.seq !== undefined).map((e) => e.json);
    expect(json(fromMemory)).toHaveLength(4);
    expect(json(fromMemory)).toEqual(json(fromStore));
    expect(json(fromMemory).some((j) => j.includes('"ref"'))).toBe(false);
  });

  it('a room that closes gives its kept messages back to the memory budget', async () => {
    transcript.seed('a', 3);
    transcript.seed('b', 3);
    const hub = makeHub({ recentBytes: 1500 }); // room for one room's three
    const x = browser('x');
    await enter(hub, x, 'a');
    hub.disconnect(x);
    await enter(hub, seed('alice'), 'b');
    await enter(hub, browser('y'), 'b');
    await enter(hub, browser('z'), 'b');
    expect(transcript.reads.value).toBe(2);
  });

  it('past the memory budget for kept messages, joins read the store and still get the right backscroll', async () => {
    transcript.seed('ops', 60);
    const hub = makeHub({ recentBytes: 1000 });
    const alice = seed('alice');
    await enter(hub, alice);
    for (const user of ['ann', 'bob', 'carol']) {
      const web = browser(user);
      await enter(hub, web);
      expect(web.messages.map((m) => m.seq)).toEqual(range(11, 60));
    }
    expect(transcript.reads.value).toBe(3);
  });

  it('with retention set, messages older than it are not shown from memory once the store has deleted them', async () => {
    transcript.seed('ops', 2); // from 2001
    const hub = makeHub({ retentionSeconds: 3600 });
    const alice = seed('alice');
    await enter(hub, alice);
    const ann = browser('ann');
    await enter(hub, ann);
    // The store still had them (retention had not run yet), so the first joiner saw them.
    expect(ann.messages.map((m) => m.text)).toEqual(['old 1', 'old 2']);
    transcript.forget('ops', 2);
    await hub.message(alice, 'ops', 'new');
    const bob = browser('bob');
    await enter(hub, bob);
    expect(bob.messages.map((m) => m.text)).toEqual(['new']);
  });

  it('with retention set, joins do not read the store again and again for messages past it that the store still has', async () => {
    transcript.seed('ops', 2); // from 2001
    const hub = makeHub({ retentionSeconds: 3600 });
    await enter(hub, seed('alice'));
    const first = browser('first');
    await enter(hub, first);
    expect(first.messages.map((m) => m.text)).toEqual(['old 1', 'old 2']); // the store had them
    for (const user of ['b', 'c', 'd']) {
      const web = browser(user);
      await enter(hub, web);
      expect(web.messages).toEqual([]);
    }
    expect(transcript.reads.value).toBe(1);
  });

  it('backscroll carries the stored id, ts, sender and seq of each message', async () => {
    transcript.seed('ops', 1, 'dave');
    const hub = makeHub();
    const web = browser('bob');
    await enter(hub, web);
    const [stored] = transcript.stored;
    expect(web.messages).toEqual([{ type: 'message', ...stored }]);
  });

  it('a browser that joins while messages are being committed gets each message exactly once, in order', async () => {
    transcript.seed('ops', 3);
    const hub = makeHub();
    const alice = seed('alice');
    await enter(hub, alice);

    const commit = deferred();
    transcript.hold = commit.promise;
    const sending = [hub.message(alice, 'ops', 'one'), hub.message(alice, 'ops', 'two')];
    await transcript.appends.reached(1);

    const reads = deferred();
    transcript.holdReads = reads.promise;
    const web = browser('bob');
    const joining = enter(hub, web);
    await transcript.reads.reached(1);

    commit.resolve();
    await Promise.all(sending); // committed and broadcast while the browser's history is still loading
    reads.resolve();
    await joining;
    await hub.message(alice, 'ops', 'three');

    const texts = web.messages.map((m) => m.text);
    expect(texts).toEqual(['old 1', 'old 2', 'old 3', 'one', 'two', 'three']);
    const ids = web.messages.map((m) => m.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(web.messages.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('a browser whose history read already sees a stored message that is not yet broadcast gets it exactly once', async () => {
    const hub = makeHub();
    const alice = seed('alice');
    await enter(hub, alice);

    // The store has written the batch, but its acknowledgement has not reached the Hub yet.
    const ack = deferred();
    transcript.holdAck = ack.promise;
    const sending = hub.message(alice, 'ops', 'one');
    await transcript.appends.reached(1);
    expect(transcript.stored.map((m) => m.text)).toEqual(['one']);

    const web = browser('bob');
    await enter(hub, web);
    ack.resolve();
    await sending;

    expect(web.messages.map((m) => m.text)).toEqual(['one']);
  });

  it('a browser whose history cannot be loaded still joins and receives live messages', async () => {
    transcript.seed('ops', 1); // history this node has not read yet
    const hub = makeHub();
    transcript.failReads = true;
    const alice = seed('alice');
    await enter(hub, alice);
    const web = browser('bob');
    await enter(hub, web);
    expect(web.errors.map((e) => e.code)).toEqual([ErrorCode.StoreUnavailable]);
    expect(web.frames.map((f) => f.type)).toEqual(['welcome', 'error', 'presence', 'joined']);

    await hub.message(alice, 'ops', 'still here');
    expect(web.messages.map((m) => m.text)).toEqual(['still here']);
  });

  it('a browser that goes while its history loads gets nothing and is not counted', async () => {
    transcript.seed('ops', 2);
    const hub = makeHub();
    const reads = deferred();
    transcript.holdReads = reads.promise;
    const web = browser('bob');
    const joining = enter(hub, web);
    await transcript.reads.reached(1);
    hub.disconnect(web);
    reads.resolve();
    await joining;
    expect(web.frames).toEqual([]);
    expect(hub.stats).toMatchObject({ rooms: 0, connections: 0 });
  });
});

describe('catch-up and slowness', () => {
  it('a browser whose socket fills up during its own backscroll still gets all of it', async () => {
    transcript.seed('ops', 50);
    const hub = makeHub({ maxBufferedBytes: 1000 });
    const web = browser('bob');
    // Each frame sits unsent for a while: by the tenth the socket holds more than the bound.
    web.onSend = () => {
      web.buffered += 200;
    };
    await enter(hub, web);
    expect(web.messages).toHaveLength(50);
    expect(web.closes).toEqual([]);
  });

  it('a member still holding more than the bound when a new batch commits is dropped with 4008', async () => {
    const hub = makeHub({ maxBufferedBytes: 1000 });
    const slow = seed('slow');
    const ok = seed('ok');
    const sender = seed('sender');
    for (const p of [slow, ok, sender]) await enter(hub, p);
    slow.buffered = 5000;
    await hub.message(sender, 'ops', 'hello');
    expect(slow.closes.map((c) => c.code)).toEqual([CloseCode.Slow]);
    expect(ok.messages).toHaveLength(1);
  });

  it('a member that is sent more than maxPendingFrames while its join loads is dropped with 4008; the others get everything', async () => {
    transcript.seed('ops', 1); // history this node has not read yet: the join reads it
    const hub = makeHub({ maxPendingFrames: 3 });
    const alice = seed('alice');
    const carol = seed('carol');
    await enter(hub, alice);
    await enter(hub, carol);
    carol.clear();
    const reads = deferred();
    transcript.holdReads = reads.promise;
    const web = browser('bob');
    const joining = enter(hub, web);
    await transcript.reads.reached(1);

    for (const text of ['1', '2', '3']) await hub.message(alice, 'ops', text);
    expect(web.closes).toEqual([]); // three held: at the bound, not past it
    await hub.message(alice, 'ops', '4');
    expect(web.closes).toEqual([{ code: CloseCode.Slow, reason: expect.any(String) }]);
    expect(hub.stats.connections).toBe(2);
    expect(carol.presences).toEqual([presence('bob', 'available'), presence('bob', 'away')]);

    reads.resolve();
    await joining;
    expect(web.frames).toEqual([]);
    expect(carol.messages.map((m) => m.text)).toEqual(['1', '2', '3', '4']);
  });
});

describe('write coalescing', () => {
  it('a committed batch reaches each member in one send, in commit order, the same bytes for the whole room', async () => {
    const hub = makeHub();
    const sender = seed('sender');
    const readers = [seed('ann'), seed('bob')];
    const elsewhere = seed('cy');
    for (const p of [sender, ...readers]) await enter(hub, p);
    await enter(hub, elsewhere, 'dev');
    for (const p of [sender, ...readers, elsewhere]) p.clear();

    await Promise.all(['a', 'b', 'c'].map((text) => hub.message(sender, 'ops', text)));
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
    const ops = seed('ann');
    const dev = seed('bob');
    await enter(hub, ops);
    await enter(hub, dev, 'dev');
    for (const p of [ops, dev]) p.clear();
    await Promise.all([
      hub.message(ops, 'ops', 'for ops'),
      hub.message(dev, 'dev', 'for dev'),
      hub.message(ops, 'ops', 'ops again'),
    ]);
    expect(ops.messages.map((m) => m.text)).toEqual(['for ops', 'ops again']);
    expect(dev.messages.map((m) => m.text)).toEqual(['for dev']);
    expect(ops.sends).toHaveLength(1);
  });
});

describe('search', () => {
  it('answers any room, joined or not, newest first with more; whispers and deleted messages never match', async () => {
    transcript.seed('ops', 3);
    transcript.seedWhispers('alice', 'bob', 2);
    const hub = makeHub();
    const bob = console2('bob');
    await enter(hub, bob, 'lobby');
    const answer = bob.next((f) => f.type === 'search');
    await hub.search(bob, 'ops', 'old', { limit: 2 }, 's1');
    expect(await answer).toMatchObject({ type: 'search', room: 'ops', q: 'old', more: true, ref: 's1' });
    expect(bob.of('search')[0]?.messages.map((m) => m.seq)).toEqual([3, 2]);
    const whispers = bob.next((f) => f.type === 'search' && f.ref === 's2');
    await hub.search(bob, conversationKey('alice', 'bob'), 'psst', {}, 's2');
    expect(await whispers).toMatchObject({ messages: [], more: false });
  });

  it('refuses someone banned from the room with banned', async () => {
    const restrictions = new Restrictions([
      { kind: 'ban', room: 'ops', user: 'eve', until: undefined, by: 'ada', at: 1, reason: undefined },
    ]);
    const hub = makeHub({ restrictions });
    const eve = console2('eve');
    await enter(hub, eve, 'lobby');
    const refused = eve.next((f) => f.type === 'error');
    await hub.search(eve, 'ops', 'anything', {}, 's3');
    expect(await refused).toMatchObject({ code: ErrorCode.Banned, ref: 's3' });
  });

  it('asks the store for 8 searches at once at most, fewer where the store takes fewer, and refuses one more as busy', async () => {
    const hub = makeHub();
    for (const atOnce of [SEARCHES_AT_ONCE, 4]) {
      transcript.searchesAtOnce = atOnce === SEARCHES_AT_ONCE ? undefined : atOnce;
      const held = deferred();
      transcript.holdReads = held.promise;
      // Each of another person (one person has 2 at most), and one over HTTP in dev mode, nameless.
      const running = [
        hub.find('ops', 'x', {}),
        ...Array.from({ length: atOnce - 1 }, (_, i) => hub.find('ops', 'x', {}, `u${i}`)),
      ];
      await expect(hub.find('ops', 'x', {}, 'late')).rejects.toBeInstanceOf(SearchesBusy);
      await expect(hub.find('ops', 'x', {})).rejects.toThrow(`${atOnce} searches are running`);
      transcript.holdReads = undefined;
      held.resolve();
      await Promise.all(running);
      await expect(hub.find('ops', 'x', {}, 'late')).resolves.toMatchObject({ messages: [] });
    }
  });
});

describe('exports', () => {
  const request = { room: 'ops', since: 0, format: 'ndjson' } as const;
  const all = async (stream: ExportStream): Promise<string> => {
    let text = '';
    for (let next = await stream.next(); !next.done; next = await stream.next()) text += next.value;
    return text;
  };

  it('streams two at once, one per person, and refuses another as busy until one ends however it ends', async () => {
    transcript.seed('ops', 3);
    const hub = makeHub();
    const ada = hub.export(request, 'ada');
    expect(() => hub.export(request, 'ada')).toThrow(
      new ExportsBusy('at most 1 export of one person runs at once; try again when it is done'),
    );
    // Nameless (over HTTP in dev mode): bound by the node's two alone.
    const nameless = hub.export(request);
    expect(() => hub.export(request, 'bo')).toThrow(
      new ExportsBusy('2 exports are running; try again in a moment'),
    );
    // Ended before it began (a reader gone at once): its place is free.
    await nameless.return();
    const bo = hub.export(request, 'bo');
    expect(() => hub.export(request)).toThrow(ExportsBusy);
    // Read to its end.
    expect((await all(ada)).split('\n').filter(Boolean)).toHaveLength(3);
    const again = hub.export(request, 'ada');
    expect(() => hub.export(request, 'cy')).toThrow(ExportsBusy);
    // Failed partway (the store went away).
    transcript.failReads = true;
    await expect(bo.next()).rejects.toThrow();
    transcript.failReads = false;
    expect(await all(hub.export(request, 'cy'))).toContain('"seq":3');
    await again.return();
  });
});

describe('resume', () => {
  it('resume with since replays exactly the messages after since', async () => {
    transcript.seed('ops', 10);
    transcript.seed('dev', 3);
    const hub = makeHub();
    const peer = console2('alice');
    await enter(hub, peer, 'ops', { since: 4 });

    expect(peer.messages.map((m) => m.seq)).toEqual([5, 6, 7, 8, 9, 10]);
    expect(peer.messages.every((m) => m.room === 'ops')).toBe(true);
    expect(peer.welcomes).toHaveLength(1);
    expect(peer.welcomes[0]?.complete).toBe(true);
    expect(peer.welcomes[0]?.seq).toBe(10);
    expect(peer.of('joined')).toEqual([
      { type: 'joined', room: 'ops', seq: 10, complete: true, read: 0, unread: 10 },
    ]);
  });

  it('a resume that is already up to date replays nothing and is complete', async () => {
    transcript.seed('ops', 3);
    const hub = makeHub();
    const peer = console2('alice');
    await enter(hub, peer, 'ops', { since: 3 });
    expect(peer.messages).toEqual([]);
    expect(peer.welcomes[0]?.complete).toBe(true);
    expect(peer.welcomes[0]?.seq).toBe(3);
  });

  it('when more than resumeLimit messages were missed, the newest are replayed and welcome and joined say complete false', async () => {
    transcript.seed('ops', 10);
    const hub = makeHub({ resumeLimit: 3 });
    const peer = console2('alice');
    await enter(hub, peer, 'ops', { since: 2 });

    // The gap is left in the past, so the live stream that follows continues without one.
    expect(peer.messages.map((m) => m.seq)).toEqual([8, 9, 10]);
    expect(peer.welcomes[0]?.complete).toBe(false);
    expect(peer.of('joined')[0]).toMatchObject({ seq: 10, complete: false });
  });

  it('missing exactly resumeLimit messages is a complete resume', async () => {
    transcript.seed('ops', 10);
    const hub = makeHub({ resumeLimit: 3 });
    const peer = console2('alice');
    await enter(hub, peer, 'ops', { since: 7 });
    expect(peer.messages.map((m) => m.seq)).toEqual([8, 9, 10]);
    expect(peer.welcomes[0]?.complete).toBe(true);
  });

  it('the default resume limit replays 1000 messages and no more', async () => {
    transcript.seed('ops', 1001);
    const hub = makeHub();
    const whole = console2('alice');
    await enter(hub, whole, 'ops', { since: 1 });
    expect(whole.messages.map((m) => m.seq)).toEqual(range(2, 1001));
    expect(whole.welcomes[0]?.complete).toBe(true);
    const behind = console2('bob');
    await enter(hub, behind, 'ops', { since: 0 });
    expect(behind.messages.map((m) => m.seq)).toEqual(range(2, 1001));
    expect(behind.welcomes[0]?.complete).toBe(false);
  });

  it('a resume replaces the backscroll for a browser', async () => {
    transcript.seed('ops', 10);
    const hub = makeHub();
    const web = browser('bob');
    await enter(hub, web, 'ops', { since: 8 });
    expect(web.messages.map((m) => m.seq)).toEqual([9, 10]);
  });

  it('a resume from before what retention kept replays what is left and says complete false', async () => {
    transcript.seed('ops', 10);
    transcript.forget('ops', 6);
    const hub = makeHub();
    const behind = console2('alice');
    await enter(hub, behind, 'ops', { since: 3 });
    expect(behind.messages.map((m) => m.seq)).toEqual([7, 8, 9, 10]);
    expect(behind.welcomes[0]).toMatchObject({ seq: 10, complete: false });
    expect(behind.of('joined')[0]).toMatchObject({ seq: 10, complete: false });
    // From the horizon on, nothing is missing.
    const caughtUp = console2('bob');
    await enter(hub, caughtUp, 'ops', { since: 6 });
    expect(caughtUp.messages.map((m) => m.seq)).toEqual([7, 8, 9, 10]);
    expect(caughtUp.welcomes[0]?.complete).toBe(true);
    const join = console2('carol');
    await enter(hub, join, 'dev');
    const joined = join.next((f) => f.type === 'joined' && f.room === 'ops');
    await hub.join(join, 'ops', { since: 2, ref: 'j' });
    expect(await joined).toMatchObject({ complete: false, ref: 'j' });
  });

  it('a resume into a room whose every message retention removed says complete false, and replays nothing', async () => {
    transcript.seed('ops', 5);
    transcript.forget('ops', 5);
    const hub = makeHub();
    const behind = console2('alice');
    await enter(hub, behind, 'ops', { since: 2 });
    expect(behind.messages).toEqual([]);
    expect(behind.welcomes[0]).toMatchObject({ seq: 5, complete: false });
    const current = console2('bob');
    await enter(hub, current, 'ops', { since: 5 });
    expect(current.welcomes[0]).toMatchObject({ seq: 5, complete: true });
  });

  it('a fresh join carries no complete flag in its welcome', async () => {
    const hub = makeHub();
    const peer = console2('alice');
    await enter(hub, peer);
    expect(peer.welcomes[0]).not.toHaveProperty('complete');
  });

  it('a console that resumes while messages are being committed gets each message exactly once, in order', async () => {
    transcript.seed('ops', 4);
    const hub = makeHub();
    const alice = seed('alice');
    await enter(hub, alice);

    const reads = deferred();
    transcript.holdReads = reads.promise;
    const peer = console2('bob');
    const joining = enter(hub, peer, 'ops', { since: 2 });
    await transcript.reads.reached(1);
    // Broadcast while the resume is read: held for the joining console, and also in what it reads.
    await hub.message(alice, 'ops', 'during');
    reads.resolve();
    await joining;
    await hub.message(alice, 'ops', 'after');

    expect(peer.messages.map((m) => m.seq)).toEqual([3, 4, 5, 6]);
    expect(peer.messages.map((m) => m.text)).toEqual(['old 3', 'old 4', 'during', 'after']);
    expect(peer.frames.map((f) => f.type)).toEqual([
      'welcome',
      'presence',
      'message',
      'message',
      'message',
      'joined',
      'message',
    ]);
  });

  it('a resume whose read cannot see a message broadcast meanwhile still gets it, once, after joined', async () => {
    transcript.seed('ops', 2);
    const hub = makeHub();
    const alice = seed('alice');
    await enter(hub, alice);

    // The read answers with what was stored before the message, but only after its broadcast.
    const reads = deferred();
    const after = transcript.after.bind(transcript);
    let seen: StoredMessage[] = [];
    transcript.after = async (room, seq, limit) => {
      seen = await after(room, seq, limit);
      await reads.promise;
      return seen;
    };
    const peer = console2('bob');
    const joining = enter(hub, peer, 'ops', { since: 0 });
    await transcript.reads.reached(1);
    await hub.message(alice, 'ops', 'during');
    reads.resolve();
    await joining;

    expect(seen.map((m) => m.seq)).toEqual([1, 2]);
    expect(peer.messages.map((m) => m.seq)).toEqual([1, 2, 3]);
    expect(peer.frames.map((f) => f.type)).toEqual([
      'welcome',
      'presence',
      'message',
      'message',
      'joined',
      'message',
    ]);
  });
});

describe('messages', () => {
  it('a message is stamped with id (32 hex), ts (float seconds near now), the bound sender and room, and echoed to the sender too', async () => {
    const hub = makeHub();
    const alice = seed('alice@web01');
    const bob = seed('bob');
    await enter(hub, alice);
    await enter(hub, bob);
    alice.clear();
    bob.clear();

    const before = Date.now() / 1000;
    await hub.message(alice, 'ops', 'rolling out');
    const after = Date.now() / 1000;

    expect(alice.messages).toHaveLength(1);
    expect(bob.messages).toHaveLength(1);
    const [m] = bob.messages;
    expect(alice.messages[0]).toEqual(m);
    expect(m?.id).toMatch(/^[0-9a-f]{32}$/);
    expect(m?.ts).toBeGreaterThanOrEqual(before - 0.001);
    expect(m?.ts).toBeLessThanOrEqual(after + 0.001);
    expect(m).toEqual({
      type: 'message',
      room: 'ops',
      sender: 'alice@web01',
      text: 'rolling out',
      id: m?.id,
      ts: m?.ts,
      seq: 1,
    });
    expect(transcript.stored).toEqual([
      {
        id: m?.id,
        room: 'ops',
        sender: 'alice@web01',
        text: 'rolling out',
        ts: m?.ts,
        seq: 1,
        via: 'console',
      },
    ]);
  });

  it('every message gets a different id', async () => {
    const hub = makeHub();
    const alice = seed('alice');
    await enter(hub, alice);
    await Promise.all(Array.from({ length: 20 }, (_, i) => hub.message(alice, 'ops', `m${i}`)));
    expect(new Set(alice.messages.map((m) => m.id)).size).toBe(20);
  });

  it('a message from a peer that has not joined is ignored', async () => {
    const hub = makeHub();
    const alice = seed('alice');
    await enter(hub, alice);
    await hub.message(seed('mallory'), 'ops', 'sneaky');
    const connected = seed('mallory');
    hub.connect(connected);
    await hub.message(connected, 'ops', 'sneaky');
    expect(alice.frames).toEqual([]);
    expect(connected.frames).toEqual([]);
    expect(transcript.batches).toEqual([]);
  });

  it('a message is not broadcast before its commit has finished', async () => {
    const hub = makeHub();
    const alice = seed('alice');
    const bob = seed('bob');
    await enter(hub, alice);
    await enter(hub, bob);

    const commit = deferred();
    transcript.hold = commit.promise;
    const sending = hub.message(alice, 'ops', 'careful');
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
    const alice = console2('alice');
    const bob = console2('bob');
    await enter(hub, alice);
    await enter(hub, bob);
    alice.clear();
    bob.clear();

    transcript.failAppends = true;
    await hub.message(alice, 'ops', 'lost', { ref: 'm1' });

    expect(alice.messages).toEqual([]);
    expect(alice.errors.map((e) => [e.code, e.ref])).toEqual([[ErrorCode.StoreUnavailable, 'm1']]);
    expect(bob.frames).toEqual([]);
  });

  it('a plain peer whose message could not be stored gets nothing', async () => {
    const hub = makeHub();
    const alice = seed('alice');
    const bob = seed('bob');
    await enter(hub, alice);
    await enter(hub, bob);
    alice.clear();
    bob.clear();

    transcript.failAppends = true;
    await hub.message(alice, 'ops', 'lost');

    expect(alice.frames).toEqual([]);
    expect(bob.frames).toEqual([]);
  });

  it('messages after a store failure are stored and delivered again once the store recovers, without a gap in seq', async () => {
    const hub = makeHub();
    const alice = seed('alice');
    await enter(hub, alice);
    await hub.message(alice, 'ops', 'first');
    transcript.failAppends = true;
    await hub.message(alice, 'ops', 'lost');
    transcript.failAppends = false;
    await hub.message(alice, 'ops', 'found');
    expect(alice.messages.map((m) => [m.text, m.seq])).toEqual([
      ['first', 1],
      ['found', 2],
    ]);
  });

  it('messages that arrive together are committed in one batch', async () => {
    const hub = makeHub();
    const alice = seed('alice');
    await enter(hub, alice);

    const sending = Array.from({ length: 100 }, (_, i) => hub.message(alice, 'ops', `m${i}`));
    await Promise.all(sending);

    expect(transcript.batches.length).toBeLessThanOrEqual(2);
    expect(transcript.batches.reduce((a, b) => a + b, 0)).toBe(100);
    expect(alice.messages.map((m) => m.text)).toEqual(Array.from({ length: 100 }, (_, i) => `m${i}`));
  });

  it('messages sent while a commit is in flight go together in the next batch', async () => {
    const turns = new Turns();
    const hub = makeHub({ yieldToIo: turns.yieldToIo });
    const alice = seed('alice');
    await enter(hub, alice);

    const commit = deferred();
    transcript.hold = commit.promise;
    const first = hub.message(alice, 'ops', 'first');
    await turns.give();
    const rest = Array.from({ length: 10 }, (_, i) => hub.message(alice, 'ops', `r${i}`));
    await turns.giveAll();
    expect(transcript.batches).toEqual([1]); // the rest wait while the store holds the first
    commit.resolve();
    await turns.give();
    await Promise.all([first, ...rest]);

    expect(transcript.batches).toEqual([1, 10]);
  });

  it('broadcast order equals commit order', async () => {
    const hub = makeHub({ maxBatch: 7 });
    const alice = seed('alice');
    const bob = seed('bob');
    await enter(hub, alice);
    await enter(hub, bob);

    await Promise.all(Array.from({ length: 50 }, (_, i) => hub.message(i % 2 ? alice : bob, 'ops', `m${i}`)));

    expect(transcript.batches.length).toBeGreaterThan(1);
    for (const peer of [alice, bob]) {
      expect(peer.messages.map((m) => m.seq)).toEqual(range(1, 50));
      expect(peer.messages.map((m) => m.text)).toEqual(transcript.stored.map((m) => m.text));
    }
  });

  it('each broadcast is encoded once: every member of a kind receives the very same frame object', async () => {
    const hub = makeHub();
    const peers = [seed('alice'), seed('bob'), new FakePeer('carol', { wantsBackscroll: true })];
    const opted = [console2('dan'), browser('eve')];
    for (const p of [...peers, ...opted]) await enter(hub, p);
    for (const p of [...peers, ...opted]) p.clear();

    await hub.message(peers[0] as FakePeer, 'ops', 'once');
    const sent = peers.map((p) => p.encoded[0]);
    expect(sent[0]).toBeDefined();
    expect(sent[1]).toBe(sent[0]);
    expect(sent[2]).toBe(sent[0]);
    expect(opted[0]?.encoded[0]).toBeDefined();
    expect(opted[1]?.encoded[0]).toBe(opted[0]?.encoded[0]);
    expect(opted[0]?.encoded[0]).not.toBe(sent[0]); // the opted-in form says more

    for (const p of [...peers, ...opted]) p.clear();
    hub.presence(peers[0] as FakePeer, ['ops'], 'away');
    expect(peers[1]?.encoded[0]).toBeDefined();
    expect(peers[1]?.encoded[0]).toBe(peers[2]?.encoded[0]);
    expect(opted[0]?.encoded[0]).toBe(peers[1]?.encoded[0]);
  });
});

describe('slow and broken members', () => {
  it('a member whose send throws is dropped and the others still receive the message', async () => {
    const hub = makeHub();
    const alice = seed('alice');
    const broken = seed('bob');
    const carol = seed('carol');
    for (const p of [alice, broken, carol]) await enter(hub, p);
    for (const p of [alice, broken, carol]) p.clear();

    broken.throwOnSend = true;
    await hub.message(alice, 'ops', 'hello all');

    expect(alice.messages.map((m) => m.text)).toEqual(['hello all']);
    expect(carol.messages.map((m) => m.text)).toEqual(['hello all']);
    expect(broken.closes).toEqual([{ code: CloseCode.InternalError, reason: expect.any(String) }]);
    expect(alice.presences).toEqual([presence('bob', 'away')]);
    expect(carol.presences).toEqual([presence('bob', 'away')]);
    expect(hub.stats.connections).toBe(2);

    await hub.message(carol, 'ops', 'after');
    expect(alice.messages.map((m) => m.text)).toEqual(['hello all', 'after']);
  });

  it('a member whose bufferedAmount is over the bound (1 MiB) is closed with code 4008 and the others still receive', async () => {
    const hub = makeHub();
    const alice = seed('alice');
    const slow = seed('bob');
    const carol = seed('carol');
    for (const p of [alice, slow, carol]) await enter(hub, p);
    for (const p of [alice, slow, carol]) p.clear();

    slow.buffered = MiB + 1;
    await hub.message(alice, 'ops', 'keep up');

    expect(slow.closes).toEqual([{ code: CloseCode.Slow, reason: expect.any(String) }]);
    expect(CloseCode.Slow).toBe(4008);
    expect(slow.messages).toEqual([]);
    expect(alice.messages.map((m) => m.text)).toEqual(['keep up']);
    expect(carol.messages.map((m) => m.text)).toEqual(['keep up']);
    expect(hub.stats.connections).toBe(2);
  });

  it('a slow member in two rooms is dropped from both, and each room sees it go', async () => {
    const hub = makeHub();
    const slow = console2('slow');
    const alice = seed('alice');
    const bob = seed('bob');
    await enter(hub, slow);
    await hub.join(slow, 'dev');
    await enter(hub, alice);
    await enter(hub, bob, 'dev');
    alice.clear();
    bob.clear();

    slow.buffered = MiB + 1;
    await hub.message(alice, 'ops', 'keep up');

    expect(slow.closes.map((c) => c.code)).toEqual([CloseCode.Slow]);
    expect(hub.roomsOf(slow)).toEqual([]);
    expect(alice.messages.map((m) => m.text)).toEqual(['keep up']);
    expect(alice.presences).toEqual([presence('slow', 'away')]);
    expect(bob.frames).toEqual([presence('slow', 'away', 'dev')]);
    expect(hub.roomSize('dev')).toBe(1);
  });

  it('a member exactly at the 1 MiB bound is not dropped', async () => {
    const hub = makeHub();
    const alice = seed('alice');
    const full = seed('bob');
    await enter(hub, alice);
    await enter(hub, full);
    full.buffered = MiB;
    await hub.message(alice, 'ops', 'just fits');
    expect(full.closes).toEqual([]);
    expect(full.messages.map((m) => m.text)).toEqual(['just fits']);
  });

  it('a slow or broken member does not delay the others: they receive in the same broadcast', async () => {
    const hub = makeHub();
    const alice = seed('alice');
    const slow = seed('slow');
    const broken = seed('broken');
    const carol = seed('carol');
    for (const p of [alice, slow, broken, carol]) await enter(hub, p);
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
    await hub.message(alice, 'ops', 'go');
    expect(seenByCarol).toEqual({ microtaskRan: false, slowClosed: 1, brokenClosed: 1 });
    expect(alice.messages).toHaveLength(1);
    expect(carol.messages).toHaveLength(1);
    expect(slow.closes).toHaveLength(1);
    expect(broken.closes).toHaveLength(1);
  });

  it('a member whose close() also throws is still dropped', async () => {
    const hub = makeHub();
    const alice = seed('alice');
    const broken = seed('bob');
    await enter(hub, alice);
    await enter(hub, broken);
    broken.throwOnSend = true;
    broken.onClose = () => {
      throw new Error('already closed');
    };
    await hub.message(alice, 'ops', 'hi');
    expect(alice.messages).toHaveLength(1);
    expect(hub.stats.connections).toBe(1);
  });

  it('a newcomer whose transport breaks while being caught up is closed once', async () => {
    transcript.seed('ops', 5);
    const hub = makeHub();
    await enter(hub, seed('alice'));
    await enter(hub, seed('carol'));
    const web = browser('bob');
    web.throwOnSend = true;
    await enter(hub, web);
    expect(web.closes).toHaveLength(1);
    expect(hub.stats.connections).toBe(2);
  });
});

describe('welcome and errors', () => {
  it('an opted-in peer gets welcome first, then presence, backscroll and joined', async () => {
    transcript.seed('ops', 4);
    const hub = makeHub({ serverName: 'runspec-room/9.9.9' });
    await enter(hub, seed('alice'));
    const peer = browser('bob');
    await enter(hub, peer, 'ops', { ref: 'hello-1' });

    expect(peer.frames[0]).toEqual({
      type: 'welcome',
      protocol: 2,
      server: 'runspec-room/9.9.9',
      room: 'ops',
      user: 'bob',
      seq: 4,
      read: 0,
      unread: 4,
      whispers: 0,
      authenticated: false,
      admin: false,
      ref: 'hello-1',
    });
    expect(peer.welcomes).toHaveLength(1);
    expect(peer.frames.slice(1).map((f) => f.type)).toEqual([
      'presence',
      'message',
      'message',
      'message',
      'message',
      'joined',
    ]);
    // The hello's ref is answered once, by the welcome.
    expect(peer.frames.filter((f) => 'ref' in f)).toHaveLength(1);
  });

  it('the welcome seq is the newest committed message of the room when the peer joins', async () => {
    transcript.seed('dev', 7);
    const hub = makeHub();
    const alice = seed('alice');
    await enter(hub, alice);
    await hub.message(alice, 'ops', 'one');
    await hub.message(alice, 'ops', 'two');
    const peer = console2('bob');
    await enter(hub, peer);
    expect(peer.welcomes[0]?.seq).toBe(2);
  });

  it('a plain peer never gets welcome or error frames', async () => {
    transcript.seed('ops', 2);
    const hub = makeHub();
    const plain = new FakePeer('alice', { wantsBackscroll: true });
    await enter(hub, plain);
    hub.refuse(plain, ErrorCode.BadFrame, 'nope');
    hub.refuse(plain, ErrorCode.AlreadyJoined, 'nope');
    transcript.failAppends = true;
    await hub.message(plain, 'ops', 'lost');
    const shuttingDown = hub.shutdown();
    await hub.message(plain, 'ops', 'too late');
    await shuttingDown;

    expect(plain.frames.map((f) => f.type)).not.toContain('welcome');
    expect(plain.frames.map((f) => f.type)).not.toContain('error');
  });

  it('an opted-in peer is told why a frame was refused', async () => {
    const hub = makeHub();
    const peer = console2('alice');
    await enter(hub, peer);
    hub.refuse(peer, ErrorCode.UnknownType, 'unknown frame type "shout"', 'x1');
    expect(peer.errors).toEqual([
      { type: 'error', code: ErrorCode.UnknownType, message: 'unknown frame type "shout"', ref: 'x1' },
    ]);
  });

  it('an opted-in peer that is not in a room yet is still told why its hello was refused', () => {
    const hub = makeHub();
    const peer = console2('alice');
    hub.refuse(peer, ErrorCode.BadName, 'user must not be blank');
    expect(peer.errors.map((e) => e.code)).toEqual([ErrorCode.BadName]);
  });

  it('an opted-in peer is notified about its own connection; a seed peer is not', () => {
    const hub = makeHub();
    const notice = new Encoded({ type: 'notice', code: NoticeCode.RateLimited, message: 'slow down' });
    const opted = console2('alice');
    const plain = seed('bob');
    hub.notify(opted, notice);
    hub.notify(plain, notice);
    expect(opted.encoded).toEqual([notice]);
    expect(plain.frames).toEqual([]);
  });

  it('a room that cannot be opened closes a new connection with 1011, or refuses a later join with store_unavailable', async () => {
    const hub = makeHub();
    const ann = console2('ann');
    await enter(hub, ann);
    ann.clear();
    transcript.failLastSeq = true;
    await hub.join(ann, 'dev', { ref: 'j1' });
    expect(ann.frames).toEqual([
      { type: 'error', code: ErrorCode.StoreUnavailable, message: expect.any(String), ref: 'j1' },
    ]);
    expect(hub.roomsOf(ann)).toEqual(['ops']);

    const bob = console2('bob');
    await enter(hub, bob, 'dev');
    expect(bob.closes.map((c) => c.code)).toEqual([CloseCode.InternalError]);
    expect(hub.roomSize('dev')).toBe(0);

    transcript.failLastSeq = false;
    await hub.join(ann, 'dev', { ref: 'j2' });
    expect(ann.of('joined').map((j) => j.ref)).toEqual(['j2']);
  });
});

describe('several rooms per connection', () => {
  it("a connection in two rooms gets each room's messages with that room's name and its own seq", async () => {
    transcript.seed('dev', 2);
    const hub = makeHub();
    const ann = console2('ann');
    await enter(hub, ann);
    await hub.join(ann, 'dev');
    const bob = seed('bob');
    const cy = seed('cy');
    await enter(hub, bob);
    await enter(hub, cy, 'dev');
    ann.clear();
    bob.clear();
    cy.clear();

    await hub.message(bob, 'ops', 'to ops');
    await hub.message(cy, 'dev', 'to dev');
    await hub.message(bob, 'ops', 'ops again');

    expect(ann.messages.map((m) => [m.room, m.seq, m.text])).toEqual([
      ['ops', 1, 'to ops'],
      ['dev', 3, 'to dev'],
      ['ops', 2, 'ops again'],
    ]);
    expect(bob.messages.map((m) => m.text)).toEqual(['to ops', 'ops again']);
    expect(cy.messages.map((m) => m.text)).toEqual(['to dev']);
    expect(hub.roomsOf(ann)).toEqual(['ops', 'dev']);
  });

  it('a message to a room the connection has not joined is refused with not_joined, its ref echoed, and reaches nobody', async () => {
    const hub = makeHub();
    const ann = console2('ann');
    const cy = seed('cy');
    await enter(hub, ann);
    await enter(hub, cy, 'dev');
    ann.clear();
    cy.clear();

    await hub.message(ann, 'dev', 'sneaky', { ref: 'm1' });

    expect(ann.frames).toEqual([
      { type: 'error', code: ErrorCode.NotJoined, message: expect.any(String), ref: 'm1' },
    ]);
    await hub.message(cy, 'dev', 'barrier');
    expect(cy.messages.map((m) => m.text)).toEqual(['barrier']);
    expect(transcript.stored.map((m) => m.text)).toEqual(['barrier']);
  });
});

describe('join', () => {
  it('a join left before its catch-up is read is answered not_joined once, and its catch-up never read', async () => {
    transcript.seed('dev', 3);
    const hub = makeHub();
    const ann = console2('ann');
    await enter(hub, ann);
    ann.clear();
    const readsBefore = transcript.reads.value;
    const joining = hub.join(ann, 'dev', { since: 0, ref: 'j1' });
    hub.leave(ann, 'dev', 'l1');
    await joining;
    expect(ann.frames.filter((f) => f.type !== 'presence')).toEqual([
      { type: 'left', room: 'dev', ref: 'l1' },
      {
        type: 'error',
        code: ErrorCode.NotJoined,
        message: 'left "dev" before the join completed',
        ref: 'j1',
      },
    ]);
    expect(transcript.reads.value).toBe(readsBefore);
  });

  it('a history page asked for by a connection that leaves the room before its turn is answered not_joined, unread', async () => {
    transcript.seed('dev', 3);
    const hub = makeHub();
    const ann = console2('ann');
    await enter(hub, ann);
    await hub.join(ann, 'dev', { ref: 'j1' });
    ann.clear();
    const readsBefore = transcript.reads.value;
    const paging = hub.history(ann, { room: 'dev' }, { limit: 2 }, 'h1');
    hub.leave(ann, 'dev', 'l1');
    await paging;
    expect(ann.frames.filter((f) => f.type !== 'presence')).toEqual([
      { type: 'left', room: 'dev', ref: 'l1' },
      { type: 'error', code: ErrorCode.NotJoined, message: 'not in room "dev"', ref: 'h1' },
    ]);
    expect(transcript.reads.value).toBe(readsBefore);
  });

  it('a second join sent while the first is loading is answered after the first one', async () => {
    transcript.seed('dev', 3);
    const hub = makeHub();
    const ann = console2('ann');
    await enter(hub, ann);
    ann.clear();
    const reads = deferred();
    transcript.holdReads = reads.promise;
    const first = hub.join(ann, 'dev', { since: 0, ref: 'first' });
    await transcript.reads.reached(1);
    const second = hub.join(ann, 'dev', { ref: 'second' });
    reads.resolve();
    await Promise.all([first, second]);
    const answers = ann.frames.filter((f) => f.type === 'joined').map((f) => f.ref);
    expect(answers).toEqual(['first', 'second']);
    // Every message of the catch-up came before either answer.
    const firstAnswer = ann.frames.findIndex((f) => f.type === 'joined');
    expect(ann.frames.slice(0, firstAnswer).filter((f) => f.type === 'message')).toHaveLength(3);
  });

  it('join answers presence catch-up, then the messages after since in order, then joined with seq, complete, read, unread and ref', async () => {
    transcript.seed('dev', 5);
    transcript.setMarker('ann', 'dev', 3);
    const hub = makeHub();
    const ann = console2('ann');
    await enter(hub, ann);
    await enter(hub, seed('bob'), 'dev');
    const carol = browser('carol');
    await enter(hub, carol, 'dev');
    hub.presence(carol, undefined, 'away');
    ann.clear();

    await hub.join(ann, 'dev', { since: 2, ref: 'j1' });

    const messageAt = (seq: number) => ({
      type: 'message',
      room: 'dev',
      sender: 'old-timer',
      text: `old ${seq}`,
      id: expect.any(String),
      ts: expect.any(Number),
      seq,
      via: 'console',
    });
    expect(ann.frames).toEqual([
      presence('bob', 'available', 'dev'),
      presence('carol', 'away', 'dev'),
      messageAt(3),
      messageAt(4),
      messageAt(5),
      { type: 'joined', room: 'dev', seq: 5, complete: true, read: 3, unread: 2, ref: 'j1' },
    ]);
    expect(ann.welcomes).toEqual([]);
  });

  it('a join without since gives a console no messages, and a browser its backscroll', async () => {
    transcript.seed('dev', 3);
    const hub = makeHub();
    const ann = console2('ann');
    const web = browser('bob');
    await enter(hub, ann);
    await enter(hub, web);
    ann.clear();
    web.clear();
    await hub.join(ann, 'dev', { ref: 'a' });
    expect(ann.frames).toEqual([
      { type: 'joined', room: 'dev', seq: 3, complete: true, read: 0, unread: 3, ref: 'a' },
    ]);
    await hub.join(web, 'dev', { ref: 'b' });
    expect(web.frames.map((f) => f.type)).toEqual(['presence', 'message', 'message', 'message', 'joined']);
  });

  it('a second join of the same room answers joined again without a second catch-up', async () => {
    transcript.seed('dev', 3);
    const hub = makeHub();
    const ann = console2('ann');
    const bob = seed('bob');
    await enter(hub, ann);
    await enter(hub, bob, 'dev');
    await hub.join(ann, 'dev', { since: 0 });
    ann.clear();
    bob.clear();

    await hub.join(ann, 'dev', { since: 0, ref: 'again' });

    expect(ann.frames).toEqual([
      { type: 'joined', room: 'dev', seq: 3, complete: true, read: 0, unread: 3, ref: 'again' },
    ]);
    await hub.message(ann, 'dev', 'barrier');
    expect(bob.frames.map((f) => f.type)).toEqual(['message']); // no second "available"
    hub.who(ann, 'dev', 'w');
    expect(ann.of('who')[0]?.users.find((u) => u.user === 'ann')?.connections).toBe(1);
    expect(hub.roomSize('dev')).toBe(2);
  });

  it('a second join while read markers cannot be loaded is refused with store_unavailable; the connection stays in the room', async () => {
    transcript.seed('ops', 2);
    const hub = makeHub();
    const ann = console2('ann');
    transcript.failMarkers = true;
    await enter(hub, ann);
    expect(ann.errors.map((e) => e.code)).toEqual([ErrorCode.StoreUnavailable]);
    ann.clear();

    await hub.join(ann, 'ops', { ref: 'again' });

    expect(ann.frames).toEqual([
      { type: 'error', code: ErrorCode.StoreUnavailable, message: expect.any(String), ref: 'again' },
    ]);
    expect(hub.roomsOf(ann)).toEqual(['ops']);
    transcript.failMarkers = false;
    await hub.join(ann, 'ops', { ref: 'once more' });
    expect(ann.frames.at(-1)).toEqual({
      type: 'joined',
      room: 'ops',
      seq: 2,
      complete: true,
      read: 0,
      unread: 2,
      ref: 'once more',
    });
  });

  it('a connection may be in 100 rooms; one more is refused with too_many_rooms and its ref', async () => {
    const hub = makeHub();
    const ann = console2('ann');
    await enter(hub, ann, 'room-0');
    for (let i = 1; i < 100; i++) await hub.join(ann, `room-${i}`);
    expect(hub.roomsOf(ann)).toHaveLength(100);
    const watcher = seed('watcher');
    await enter(hub, watcher, 'one-too-many');
    ann.clear();

    await hub.join(ann, 'one-too-many', { ref: 'j101' });

    expect(ann.frames).toEqual([
      { type: 'error', code: ErrorCode.TooManyRooms, message: expect.any(String), ref: 'j101' },
    ]);
    expect(hub.roomsOf(ann)).toHaveLength(100);
    expect(hub.roomSize('one-too-many')).toBe(1);
    expect(watcher.frames).toEqual([]);

    hub.leave(ann, 'room-7');
    await hub.join(ann, 'one-too-many', { ref: 'j102' });
    expect(ann.of('joined').map((j) => j.ref)).toEqual(['j102']);
    expect(watcher.frames).toEqual([presence('ann', 'available', 'one-too-many')]);
  });
});

describe('leave and disconnect', () => {
  it("leave answers left, and the others see away only when it was the user's last connection in the room", async () => {
    const hub = makeHub();
    const annConsole = console2('ann');
    const annBrowser = browser('ann');
    const bob = seed('bob');
    for (const p of [annConsole, annBrowser, bob]) await enter(hub, p);
    for (const p of [annConsole, annBrowser, bob]) p.clear();

    hub.leave(annConsole, 'ops', 'l1');
    expect(annConsole.frames).toEqual([{ type: 'left', room: 'ops', ref: 'l1' }]);
    expect(bob.frames).toEqual([]);

    hub.leave(annBrowser, 'ops');
    expect(annBrowser.frames).toEqual([{ type: 'left', room: 'ops' }]);
    expect(bob.frames).toEqual([presence('ann', 'away')]);

    await hub.message(bob, 'ops', 'after');
    expect(annConsole.messages).toEqual([]);
    expect(annBrowser.messages).toEqual([]);
    expect(hub.roomsOf(annConsole)).toEqual([]);
    expect(hub.stats.connections).toBe(3); // still connected, in no room

    hub.leave(annConsole, 'ops', 'l2');
    expect(annConsole.frames.at(-1)).toEqual({
      type: 'error',
      code: ErrorCode.NotJoined,
      message: expect.any(String),
      ref: 'l2',
    });
  });

  it('disconnect leaves every room: where it was the last connection of its user the room sees away', async () => {
    const hub = makeHub();
    const ann = console2('ann');
    const annElsewhere = browser('ann');
    await enter(hub, ann);
    await hub.join(ann, 'dev');
    await hub.join(ann, 'qa');
    await enter(hub, annElsewhere, 'qa');
    const bob = seed('bob');
    const cy = seed('cy');
    const dan = seed('dan');
    await enter(hub, bob);
    await enter(hub, cy, 'dev');
    await enter(hub, dan, 'qa');
    for (const p of [bob, cy, dan]) p.clear();

    hub.disconnect(ann);

    expect(bob.frames).toEqual([presence('ann', 'away')]);
    expect(cy.frames).toEqual([presence('ann', 'away', 'dev')]);
    expect(dan.frames).toEqual([]);
    expect(hub.roomsOf(ann)).toEqual([]);
    expect(hub.stats).toEqual({ rooms: 3, connections: 4 });
    expect(hub.roomSize('ops')).toBe(1);
    expect(hub.roomSize('qa')).toBe(2);
  });
});

describe('per-room sequence numbers', () => {
  it("each room's frames are numbered 1, 2, 3… in broadcast order, whatever the other rooms do", async () => {
    transcript.seed('dev', 2);
    const hub = makeHub({ maxBatch: 5 });
    const ann = console2('ann');
    await enter(hub, ann);
    await hub.join(ann, 'dev');
    await hub.join(ann, 'qa');
    ann.clear();
    const rooms = ['ops', 'dev', 'qa'];

    await Promise.all(
      Array.from({ length: 30 }, (_, i) => hub.message(ann, rooms[i % 3] as string, `m${i}`)),
    );

    expect(transcript.batches.length).toBeGreaterThan(1);
    const seqs = (room: string) => ann.messages.filter((m) => m.room === room).map((m) => m.seq);
    expect(seqs('ops')).toEqual(range(1, 10));
    expect(seqs('dev')).toEqual(range(3, 12));
    expect(seqs('qa')).toEqual(range(1, 10));
    expect(ann.messages.filter((m) => m.room === 'qa').map((m) => m.text)).toEqual(
      Array.from({ length: 10 }, (_, i) => `m${i * 3 + 2}`),
    );
  });

  it("a join while another room is busy leaves that room's stream alone; the joined room's frames follow joined without a gap", async () => {
    transcript.seed('dev', 2);
    const hub = makeHub();
    const ann = console2('ann');
    const bob = seed('bob');
    const cy = seed('cy');
    await enter(hub, ann);
    await enter(hub, bob);
    await enter(hub, cy, 'dev');
    ann.clear();

    const reads = deferred();
    transcript.holdReads = reads.promise;
    const joining = hub.join(ann, 'dev', { since: 0, ref: 'j' });
    await transcript.reads.reached(1);
    await hub.message(bob, 'ops', 'live in ops');
    expect(ann.messages.map((m) => [m.room, m.seq])).toEqual([['ops', 1]]); // not held back by the join
    await hub.message(cy, 'dev', 'during join');
    expect(ann.messages.map((m) => m.room)).toEqual(['ops']);
    reads.resolve();
    await joining;
    await hub.message(bob, 'ops', 'ops again');
    await hub.message(cy, 'dev', 'after join');

    const dev = ann.frames.filter((f) => 'room' in f && f.room === 'dev');
    expect(dev.map((f) => (f.type === 'message' ? f.seq : f.type))).toEqual([
      'presence',
      1,
      2,
      3,
      'joined',
      4,
    ]);
    expect(ann.messages.filter((m) => m.room === 'ops').map((m) => m.seq)).toEqual([1, 2]);
  });
});

describe('idempotent sends', () => {
  it('a resend with the same cid is not broadcast again: the sender gets the original echo (same id, seq, ts) with its cid and the new ref', async () => {
    const hub = makeHub();
    const ann = console2('ann');
    const bob = console2('bob');
    const cy = seed('cy');
    for (const p of [ann, bob, cy]) await enter(hub, p);
    for (const p of [ann, bob, cy]) p.clear();

    await hub.message(ann, 'ops', 'once', { cid: 'c1', ref: 'r1' });
    const original = ann.messages[0];
    expect(original).toMatchObject({ text: 'once', seq: 1, cid: 'c1', ref: 'r1' });
    for (const p of [ann, bob, cy]) p.clear();

    await hub.message(ann, 'ops', 'once (edited before resending)', { cid: 'c1', ref: 'r2' });

    expect(ann.frames).toEqual([{ ...original, ref: 'r2' }]);
    expect(bob.frames).toEqual([]);
    expect(cy.frames).toEqual([]);
    expect(transcript.stored.map((m) => m.text)).toEqual(['once']);
    await hub.message(ann, 'ops', 'barrier');
    expect(bob.messages.map((m) => [m.text, m.seq])).toEqual([['barrier', 2]]);
    expect(cy.messages.map((m) => [m.text, m.seq])).toEqual([['barrier', 2]]);
  });

  it('a resend in the same batch as its original is stored once, broadcast once, and both sends are echoed', async () => {
    const hub = makeHub();
    const ann = console2('ann');
    const bob = console2('bob');
    await enter(hub, ann);
    await enter(hub, bob);
    ann.clear();
    bob.clear();

    await Promise.all([
      hub.message(ann, 'ops', 'twice', { cid: 'c1', ref: 'first' }),
      hub.message(ann, 'ops', 'twice', { cid: 'c1', ref: 'second' }),
    ]);

    expect(transcript.batches).toEqual([2]);
    expect(transcript.stored).toHaveLength(1);
    expect(bob.messages.map((m) => [m.text, m.seq])).toEqual([['twice', 1]]);
    expect(ann.messages.map((m) => [m.seq, m.ref])).toEqual([
      [1, 'first'],
      [1, 'second'],
    ]);
    expect(new Set(ann.messages.map((m) => m.id)).size).toBe(1);
  });

  it('a message sent while its own join is loading gets its echo with its ref, once', async () => {
    transcript.seed('ops', 1); // history this node has not read yet: the join reads it
    const hub = makeHub();
    const bob = seed('bob');
    await enter(hub, bob);
    const reads = deferred();
    transcript.holdReads = reads.promise;
    const web = browser('ann');
    const joining = enter(hub, web);
    await transcript.reads.reached(1);

    // Committed and broadcast while the backscroll loads: the read then sees it too.
    await hub.message(web, 'ops', 'early', { cid: 'c1', ref: 'r1' });
    reads.resolve();
    await joining;

    expect(web.messages.map((m) => [m.text, m.seq, m.ref])).toEqual([
      ['old 1', 1, undefined],
      ['early', 2, 'r1'],
    ]);
    expect(bob.messages.map((m) => m.text)).toEqual(['early']);
  });

  it('a resend while its join is loading gets the original echo with its ref, once, whether or not the catch-up shows it', async () => {
    const hub = makeHub();
    const first = console2('ann');
    await enter(hub, first);
    await hub.message(first, 'ops', 'sent before the line dropped', { cid: 'c1', ref: 'r1' });
    await hub.message(first, 'ops', 'another', { cid: 'c2', ref: 'r2' });
    hub.disconnect(first);

    // A resume shows the original: the echo answering the resend takes its place.
    const reads = deferred();
    transcript.holdReads = reads.promise;
    const resumed = console2('ann');
    const resuming = enter(hub, resumed, 'ops', { since: 0 });
    await transcript.reads.reached(1);
    await hub.message(resumed, 'ops', 'sent before the line dropped', { cid: 'c1', ref: 'r3' });
    await hub.message(resumed, 'ops', 'sent before the line dropped', { cid: 'c1', ref: 'r3 again' });
    reads.resolve();
    await resuming;
    expect(resumed.frames.map((f) => (f.type === 'message' ? [f.seq, f.ref] : f.type))).toEqual([
      'welcome',
      [1, 'r3'],
      [2, undefined],
      'joined',
      [1, 'r3 again'],
    ]);
    hub.disconnect(resumed);

    // A console without a resume is shown nothing: the echo follows joined.
    const markers = deferred();
    transcript.holdMarkers = markers.promise;
    const fresh = console2('ann');
    const joining = enter(hub, fresh);
    await hub.message(fresh, 'ops', 'another', { cid: 'c2', ref: 'r4' });
    markers.resolve();
    await joining;
    expect(fresh.frames.map((f) => (f.type === 'message' ? [f.seq, f.ref] : f.type))).toEqual([
      'welcome',
      'joined',
      [2, 'r4'],
    ]);
    expect(transcript.stored).toHaveLength(2);
  });

  it('the same cid from another user, or in another room, is a new message', async () => {
    const hub = makeHub();
    const ann = console2('ann');
    const bob = console2('bob');
    await enter(hub, ann);
    await hub.join(ann, 'dev');
    await enter(hub, bob);
    bob.clear();

    await hub.message(ann, 'ops', 'from ann', { cid: 'c1' });
    await hub.message(bob, 'ops', 'from bob', { cid: 'c1' });
    await hub.message(ann, 'dev', 'ann in dev', { cid: 'c1' });

    expect(bob.messages.map((m) => [m.text, m.seq])).toEqual([
      ['from ann', 1],
      ['from bob', 2],
    ]);
    expect(transcript.stored.map((m) => [m.room, m.seq, m.text])).toEqual([
      ['ops', 1, 'from ann'],
      ['ops', 2, 'from bob'],
      ['dev', 1, 'ann in dev'],
    ]);
  });

  it('a seed peer gets nothing back for a resend, and nobody else does either', async () => {
    const hub = makeHub();
    const plain = seed('ann');
    const bob = console2('bob');
    await enter(hub, plain);
    await enter(hub, bob);
    await hub.message(plain, 'ops', 'once', { cid: 'c1' });
    plain.clear();
    bob.clear();

    await hub.message(plain, 'ops', 'once', { cid: 'c1' });
    await hub.message(bob, 'ops', 'barrier');

    expect(plain.messages.map((m) => m.text)).toEqual(['barrier']);
    expect(bob.messages.map((m) => m.text)).toEqual(['barrier']);
    expect(transcript.stored).toHaveLength(2);
  });
});

describe('refs', () => {
  it("the echo carries the message's ref only on the sender's copy", async () => {
    const hub = makeHub();
    const ann = console2('ann');
    const annBrowser = browser('ann');
    const bob = console2('bob');
    const cy = seed('cy');
    for (const p of [ann, annBrowser, bob, cy]) await enter(hub, p);
    for (const p of [ann, annBrowser, bob, cy]) p.clear();

    await hub.message(ann, 'ops', 'labelled', { ref: 'r1' });

    expect(ann.messages.map((m) => m.ref)).toEqual(['r1']);
    for (const other of [annBrowser, bob, cy]) {
      expect(other.messages).toHaveLength(1);
      expect(other.messages[0]).not.toHaveProperty('ref');
      expect({ ...ann.messages[0], ref: undefined }).toEqual({
        ...other.messages[0],
        ref: undefined,
        via: 'console',
      });
    }
  });

  it('every error reply carries the ref of the frame it answers', async () => {
    const hub = makeHub();
    const ann = console2('ann');
    await enter(hub, ann);
    hub.connect(console2('bob'));
    ann.clear();

    await hub.message(ann, 'dev', 'x', { ref: 'message-not-joined' });
    hub.leave(ann, 'dev', 'leave-not-joined');
    hub.typing(ann, 'dev', 'active', 'typing-not-joined');
    hub.presence(ann, ['dev'], 'away', 'presence-not-joined');
    await hub.read(ann, { room: 'dev' }, 1, 'read-not-joined');
    await hub.history(ann, { room: 'dev' }, {}, 'history-not-joined');
    await hub.whisper(ann, 'nobody', 'x', { ref: 'whisper-unknown-user' });
    transcript.failAppends = true;
    await hub.message(ann, 'ops', 'x', { ref: 'message-store' });
    await hub.whisper(ann, 'bob', 'x', { ref: 'whisper-store' });
    transcript.failAppends = false;
    transcript.failNames = true;
    await hub.whisper(ann, 'stranger', 'x', { ref: 'whisper-names' });
    transcript.failNames = false;
    transcript.failReads = true;
    await hub.rooms(ann, 'rooms-store');
    await hub.history(ann, { room: 'ops' }, {}, 'history-store');
    await hub.history(ann, { with: 'bob' }, {}, 'history-with-store');
    transcript.failReads = false;
    transcript.failMarkers = true;
    await hub.read(ann, { with: 'bob' }, 1, 'read-store');
    transcript.failMarkers = false;
    transcript.failLastSeq = true;
    await hub.join(ann, 'qa', { ref: 'join-store' });
    transcript.failLastSeq = false;
    const stopping = hub.shutdown();
    await hub.message(ann, 'ops', 'x', { ref: 'message-shutdown' });
    await hub.whisper(ann, 'bob', 'x', { ref: 'whisper-shutdown' });
    await hub.join(ann, 'qa', { ref: 'join-shutdown' });
    await stopping;

    expect(ann.errors.map((e) => [e.ref, e.code])).toEqual([
      ['message-not-joined', ErrorCode.NotJoined],
      ['leave-not-joined', ErrorCode.NotJoined],
      ['typing-not-joined', ErrorCode.NotJoined],
      ['presence-not-joined', ErrorCode.NotJoined],
      ['read-not-joined', ErrorCode.NotJoined],
      ['history-not-joined', ErrorCode.NotJoined],
      ['whisper-unknown-user', ErrorCode.UnknownUser],
      ['message-store', ErrorCode.StoreUnavailable],
      ['whisper-store', ErrorCode.StoreUnavailable],
      ['whisper-names', ErrorCode.StoreUnavailable],
      ['rooms-store', ErrorCode.StoreUnavailable],
      ['history-store', ErrorCode.StoreUnavailable],
      ['history-with-store', ErrorCode.StoreUnavailable],
      ['read-store', ErrorCode.StoreUnavailable],
      ['join-store', ErrorCode.StoreUnavailable],
      ['message-shutdown', ErrorCode.ShuttingDown],
      ['whisper-shutdown', ErrorCode.ShuttingDown],
      ['join-shutdown', ErrorCode.ShuttingDown],
    ]);
    expect(ann.frames.filter((f) => f.type !== 'error')).toEqual([]);
  });

  it('requests that have no other answer are acknowledged with their ref', async () => {
    const hub = makeHub();
    const ann = console2('ann');
    await enter(hub, ann);
    ann.clear();
    hub.presence(ann, ['ops'], 'away', 'p');
    hub.typing(ann, 'ops', 'active', 't');
    hub.presence(ann, undefined, 'available');
    hub.typing(ann, 'ops', 'idle');
    expect(ann.frames).toEqual([
      { type: 'ack', ref: 'p' },
      { type: 'ack', ref: 't' },
    ]);
  });
});

describe('who', () => {
  it('who lists the users present, sorted, with status, kind (human if any browser) and connection count', async () => {
    const hub = makeHub();
    const asker = console2('asker');
    await enter(hub, asker, 'lobby');
    await enter(hub, console2('zed'));
    await enter(hub, console2('ann'));
    await enter(hub, browser('ann'));
    const bob = seed('bob');
    await enter(hub, bob);
    await enter(hub, console2('bob'));
    await enter(hub, browser('cy'));
    hub.presence(bob, ['ops'], 'away');
    asker.clear();

    hub.who(asker, 'ops', 'w1');
    hub.who(asker, 'empty', 'w2');

    expect(asker.frames).toEqual([
      {
        type: 'who',
        room: 'ops',
        users: [
          { user: 'ann', status: 'available', kind: 'human', connections: 2 },
          { user: 'bob', status: 'away', kind: 'console', connections: 2 },
          { user: 'cy', status: 'available', kind: 'human', connections: 1 },
          { user: 'zed', status: 'available', kind: 'console', connections: 1 },
        ],
        ref: 'w1',
      },
      { type: 'who', room: 'empty', users: [], ref: 'w2' },
    ]);
  });
});

describe('rooms', () => {
  it('rooms lists the rooms with members or stored messages, most recently active first, without whisper pairs', async () => {
    transcript.seed('old', 2);
    transcript.seed('mid', 1);
    transcript.seedWhispers('ann', 'bob', 2);
    transcript.seed('new', 3);
    const hub = makeHub();
    const ann = console2('ann');
    await enter(hub, ann, 'live');
    await enter(hub, seed('bob'), 'old');
    ann.clear();

    await hub.rooms(ann, 'r1');
    const [first] = ann.of('rooms');
    expect(first).toEqual({
      type: 'rooms',
      rooms: [
        { room: 'live', members: 1, seq: 0 },
        { room: 'new', members: 0, seq: 3, ts: expect.any(Number) },
        { room: 'mid', members: 0, seq: 1, ts: expect.any(Number) },
        { room: 'old', members: 1, seq: 2, ts: expect.any(Number) },
      ],
      more: false,
      ref: 'r1',
    });

    // Someone speaks in the oldest room: it comes first among the stored ones.
    await hub.join(ann, 'old');
    await hub.message(ann, 'old', 'revived');
    ann.clear();
    await hub.rooms(ann);
    expect(ann.of('rooms')[0]?.rooms.map((r) => [r.room, r.members, r.seq])).toEqual([
      ['live', 1, 0],
      ['old', 2, 3],
      ['new', 0, 3],
      ['mid', 0, 1],
    ]);
  });

  it('a room list names at most 500 rooms and says there are more', async () => {
    for (let i = 0; i < 500; i++) transcript.seed(`room-${i}`, 1);
    const hub = makeHub();
    const ann = console2('ann');
    hub.connect(ann);
    await hub.rooms(ann, 'all');
    expect(ann.of('rooms')[0]?.rooms).toHaveLength(500);
    expect(ann.of('rooms')[0]?.more).toBe(false);

    transcript.seed('one-more', 1);
    await hub.rooms(ann, 'all+1');
    const answer = ann.of('rooms')[1];
    expect(answer?.rooms).toHaveLength(500);
    expect(answer?.rooms[0]?.room).toBe('one-more');
    expect(answer?.more).toBe(true);
  });
});

describe('history', () => {
  it('history pages a joined room: the newest, before or after a seq, oldest first, with more when it goes on', async () => {
    transcript.seed('ops', 10);
    transcript.seed('dev', 60);
    const hub = makeHub();
    const ann = console2('ann');
    await enter(hub, ann);
    await hub.join(ann, 'dev');
    ann.clear();

    const page = async (room: string, p: { before?: number; after?: number; limit?: number }) => {
      await hub.history(ann, { room }, p, 'h');
      const answer = ann.of('history').at(-1);
      expect(answer).toMatchObject({ room, ref: 'h' });
      return [answer?.messages.map((m) => m.seq), answer?.more];
    };
    expect(await page('ops', { limit: 3 })).toEqual([[8, 9, 10], true]);
    expect(await page('ops', { before: 8, limit: 3 })).toEqual([[5, 6, 7], true]);
    expect(await page('ops', { before: 3, limit: 5 })).toEqual([[1, 2], false]);
    expect(await page('ops', { after: 6, limit: 2 })).toEqual([[7, 8], true]);
    expect(await page('ops', { after: 8, limit: 2 })).toEqual([[9, 10], false]);
    expect(await page('ops', {})).toEqual([range(1, 10), false]);
    expect(await page('dev', {})).toEqual([range(11, 60), true]); // 50 unless asked
    expect(ann.of('history')[0]?.messages[0]).toEqual({
      type: 'message',
      ...transcript.stored.find((m) => m.room === 'ops' && m.seq === 8),
    });
  });

  it('history never shows a message that is stored but not yet broadcast: it comes live, once', async () => {
    transcript.seed('ops', 2);
    const hub = makeHub();
    const ann = console2('ann');
    await enter(hub, ann);
    ann.clear();

    const ack = deferred();
    transcript.holdAck = ack.promise;
    const sending = hub.message(ann, 'ops', 'in flight');
    await transcript.appends.reached(1);
    expect(transcript.last('ops')).toBe(3);
    await hub.history(ann, { room: 'ops' }, {}, 'h');
    await hub.history(ann, { room: 'ops' }, { after: 1 }, 'h');
    ack.resolve();
    await sending;

    expect(ann.of('history').map((h) => h.messages.map((m) => m.seq))).toEqual([[1, 2], [2]]);
    expect(ann.messages.map((m) => m.seq)).toEqual([3]);
  });

  it('history of a room the connection has not joined is refused with not_joined', async () => {
    transcript.seed('dev', 3);
    const hub = makeHub();
    const ann = console2('ann');
    await enter(hub, ann);
    ann.clear();
    await hub.history(ann, { room: 'dev' }, {}, 'h1');
    expect(ann.frames).toEqual([
      { type: 'error', code: ErrorCode.NotJoined, message: expect.any(String), ref: 'h1' },
    ]);
    expect(transcript.reads.value).toBe(0);
  });

  it('history with someone pages the whispers between the two of them only', async () => {
    transcript.seedWhispers('bob', 'ann', 3);
    transcript.seedWhispers('ann', 'bob', 1);
    transcript.seedWhispers('cy', 'ann', 2);
    const hub = makeHub();
    const ann = console2('ann');
    await enter(hub, ann);
    ann.clear();

    await hub.history(ann, { with: 'bob' }, { limit: 3 }, 'h');

    const [answer] = ann.of('history');
    expect(answer).toMatchObject({ with: 'bob', more: true, ref: 'h' });
    expect(answer).not.toHaveProperty('room');
    expect(answer?.messages).toEqual([
      {
        type: 'whisper',
        from: 'bob',
        to: 'ann',
        text: 'psst 2',
        id: expect.any(String),
        ts: expect.any(Number),
        seq: 2,
        via: 'console',
      },
      {
        type: 'whisper',
        from: 'bob',
        to: 'ann',
        text: 'psst 3',
        id: expect.any(String),
        ts: expect.any(Number),
        seq: 3,
        via: 'console',
      },
      {
        type: 'whisper',
        from: 'ann',
        to: 'bob',
        text: 'psst 1',
        id: expect.any(String),
        ts: expect.any(Number),
        seq: 4,
        via: 'console',
      },
    ]);
  });
});

describe('whispers', () => {
  it('a whisper reaches every opted-in connection of both people and nobody else', async () => {
    const hub = makeHub();
    const ann = console2('ann');
    const annBrowser = browser('ann');
    const bob = console2('bob');
    const bobSeed = seed('bob');
    const cy = console2('cy');
    await enter(hub, ann);
    await enter(hub, annBrowser, 'dev');
    await enter(hub, bob, 'qa');
    await enter(hub, bobSeed);
    await enter(hub, cy);
    for (const p of [ann, annBrowser, bob, bobSeed, cy]) p.clear();

    await hub.whisper(ann, 'bob', 'just us', { ref: 'w1' });

    const whisper = {
      type: 'whisper',
      from: 'ann',
      to: 'bob',
      text: 'just us',
      id: expect.stringMatching(/^[0-9a-f]{32}$/),
      ts: expect.any(Number),
      seq: 1,
      via: 'console',
    };
    expect(ann.frames).toEqual([{ ...whisper, ref: 'w1' }]);
    expect(annBrowser.frames).toEqual([whisper]);
    expect(bob.frames).toEqual([whisper]);
    await hub.message(cy, 'ops', 'barrier');
    expect(bobSeed.frames.map((f) => f.type)).toEqual(['message']);
    expect(cy.frames.map((f) => f.type)).toEqual(['message']);
    expect(transcript.stored[0]).toMatchObject({
      room: conversationKey('ann', 'bob'),
      recipient: 'bob',
      seq: 1,
    });
  });

  it("a whisper is never in a room's backscroll, resume or history, and takes no room seq", async () => {
    transcript.seed('ops', 2);
    const hub = makeHub();
    const ann = console2('ann');
    const bob = console2('bob');
    await enter(hub, ann);
    await enter(hub, bob);
    await hub.whisper(ann, 'bob', 'secret');
    await hub.message(ann, 'ops', 'public');

    const web = browser('cy');
    await enter(hub, web);
    const resumed = console2('dan');
    await enter(hub, resumed, 'ops', { since: 0 });
    await hub.history(ann, { room: 'ops' }, {});

    expect(ann.messages.at(-1)?.seq).toBe(3);
    for (const texts of [
      web.messages.map((m) => m.text),
      resumed.messages.map((m) => m.text),
      ann.of('history')[0]?.messages.map((m) => m.text),
    ]) {
      expect(texts).toEqual(['old 1', 'old 2', 'public']);
    }
    expect(web.of('whisper')).toEqual([]);
  });

  it('a whisper to a name never seen is refused with unknown_user; a name the store knows is not', async () => {
    const hub = makeHub();
    const ann = console2('ann');
    await enter(hub, ann);
    ann.clear();

    await hub.whisper(ann, 'nobody', 'hello?', { ref: 'w1' });
    expect(ann.frames).toEqual([
      { type: 'error', code: ErrorCode.UnknownUser, message: expect.any(String), ref: 'w1' },
    ]);
    expect(transcript.stored).toEqual([]);

    transcript.names.add('gone');
    await hub.whisper(ann, 'gone', 'for later', { ref: 'w2' });
    expect(ann.frames.at(-1)).toMatchObject({ type: 'whisper', to: 'gone', ref: 'w2' });
    expect(transcript.stored.map((m) => m.recipient)).toEqual(['gone']);
  });

  it('a name remembered when it connected counts as seen, also after a restart', async () => {
    const before = makeHub();
    const bob = seed('bob');
    before.connect(bob); // in no room, never said anything
    before.disconnect(bob);
    // Names are written behind, many to a commit; a stop writes what is left.
    expect(transcript.names.has('bob')).toBe(false);
    await before.shutdown();
    expect(transcript.names.has('bob')).toBe(true);

    const hub = makeHub();
    const ann = console2('ann');
    await enter(hub, ann);
    const cy = seed('cy');
    hub.connect(cy);
    hub.disconnect(cy);
    ann.clear();
    await hub.whisper(ann, 'bob', 'welcome back', { ref: 'w1' });
    transcript.names.clear(); // the Hub remembers the names of this run itself
    await hub.whisper(ann, 'cy', 'gone already?', { ref: 'w2' });
    expect(ann.frames.map((f) => [f.type, 'ref' in f ? f.ref : undefined])).toEqual([
      ['whisper', 'w1'],
      ['whisper', 'w2'],
    ]);
  });

  it('a seed console never receives a whisper, not even one to its own user', async () => {
    const hub = makeHub();
    const ann = console2('ann');
    const bob = seed('bob');
    await enter(hub, ann);
    await enter(hub, bob);
    bob.clear();

    await hub.whisper(ann, 'bob', 'can you hear me?');
    await hub.message(ann, 'ops', 'barrier');

    expect(bob.frames.map((f) => f.type)).toEqual(['message']);
    expect(transcript.stored[0]).toMatchObject({ recipient: 'bob', text: 'can you hear me?' });
  });

  it('a resent whisper (same cid) is stored once, and only its sender gets the original again, with the new ref', async () => {
    const hub = makeHub();
    const ann = console2('ann');
    const bob = console2('bob');
    await enter(hub, ann);
    await enter(hub, bob);
    await hub.whisper(ann, 'bob', 'once', { cid: 'c1', ref: 'w1' });
    const [original] = ann.of('whisper');
    ann.clear();
    bob.clear();

    await hub.whisper(ann, 'bob', 'once', { cid: 'c1', ref: 'w2' });

    expect(ann.frames).toEqual([{ ...original, ref: 'w2' }]);
    expect(original).toMatchObject({ cid: 'c1', seq: 1 });
    await hub.message(ann, 'ops', 'barrier');
    expect(bob.frames.map((f) => f.type)).toEqual(['message']);
    expect(transcript.stored.filter((m) => m.recipient === 'bob')).toHaveLength(1);
  });
});

describe('typing', () => {
  it("typing is relayed to the room's other opted-in members only", async () => {
    const hub = makeHub();
    const ann = console2('ann');
    const bob = browser('bob');
    const cy = seed('cy');
    const dan = console2('dan');
    await enter(hub, ann);
    await hub.join(ann, 'dev');
    await enter(hub, bob);
    await enter(hub, cy);
    await enter(hub, dan, 'dev');
    for (const p of [ann, bob, cy, dan]) p.clear();

    hub.typing(ann, 'ops', 'active', 't1');

    expect(bob.frames).toEqual([{ type: 'typing', room: 'ops', user: 'ann', state: 'active' }]);
    expect(ann.frames).toEqual([{ type: 'ack', ref: 't1' }]);
    await hub.message(bob, 'ops', 'barrier');
    await hub.message(ann, 'dev', 'barrier');
    expect(cy.frames.map((f) => f.type)).toEqual(['message']);
    expect(dan.frames.map((f) => f.type)).toEqual(['message']);
  });

  it("a typist's own other connections are not told it is typing", async () => {
    const hub = makeHub();
    const ann = console2('ann');
    const annBrowser = browser('ann');
    const bob = browser('bob');
    for (const p of [ann, annBrowser, bob]) await enter(hub, p);
    for (const p of [ann, annBrowser, bob]) p.clear();
    hub.typing(ann, 'ops', 'active');
    expect(bob.of('typing')).toHaveLength(1);
    await hub.message(bob, 'ops', 'barrier');
    expect(annBrowser.frames.map((f) => f.type)).toEqual(['message']);
  });

  it('an active typing state is relayed at most once per 2 s per connection; idle is relayed at once', async () => {
    const hub = makeHub();
    const ann = console2('ann');
    const bob = console2('bob');
    const cy = console2('cy');
    for (const p of [ann, bob, cy]) await enter(hub, p);
    for (const p of [ann, bob, cy]) p.clear();
    const states = () => bob.of('typing').map((t) => `${t.user} ${t.state}`);

    hub.typing(ann, 'ops', 'active');
    hub.typing(ann, 'ops', 'active');
    hub.typing(ann, 'ops', 'active');
    expect(states()).toEqual(['ann active']);
    hub.typing(cy, 'ops', 'active'); // another connection has its own interval
    expect(states()).toEqual(['ann active', 'cy active']);
    hub.typing(ann, 'ops', 'idle');
    expect(states()).toEqual(['ann active', 'cy active', 'ann idle']);
    hub.typing(ann, 'ops', 'idle'); // nothing to stop
    hub.typing(ann, 'ops', 'active'); // a new burst of typing after a stop is news
    expect(states()).toEqual(['ann active', 'cy active', 'ann idle', 'ann active']);
  });

  it('a connection that keeps typing is relayed again once typingEveryMs has passed, and not sooner', async () => {
    const everyMs = 20;
    const hub = makeHub({ typingEveryMs: everyMs });
    const ann = console2('ann');
    const bob = console2('bob');
    await enter(hub, ann);
    await enter(hub, bob);
    bob.clear();

    // A typist's keystrokes, a millisecond or so apart, until the third relay arrives. Each relay
    // happened within its keystroke's call: after the clock read before it, before the one after.
    const relays: { before: number; after: number }[] = [];
    const third = bob.next(() => bob.of('typing').length === 3);
    let done = false;
    const stop = (): void => {
      done = true;
    };
    third.then(stop, stop);
    let keystrokes = 0;
    while (!done) {
      const before = Date.now();
      const relayed = bob.of('typing').length;
      hub.typing(ann, 'ops', 'active');
      keystrokes += 1;
      if (bob.of('typing').length > relayed) relays.push({ before, after: Date.now() });
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await third;

    expect(relays).toHaveLength(3);
    expect(keystrokes).toBeGreaterThan(3);
    for (let i = 1; i < relays.length; i++) {
      const previous = relays[i - 1] as { before: number };
      expect((relays[i] as { after: number }).after - previous.before).toBeGreaterThanOrEqual(everyMs);
    }
    expect(bob.of('typing').every((t) => t.state === 'active')).toBe(true);
  });

  it('an active typing state that is not renewed lapses to idle after typingLapseMs', async () => {
    const lapseMs = 30;
    const hub = makeHub({ typingLapseMs: lapseMs });
    const ann = console2('ann');
    const bob = console2('bob');
    await enter(hub, ann);
    await enter(hub, bob);
    bob.clear();

    const idle = bob.next((f) => f.type === 'typing' && f.state === 'idle');
    const start = Date.now();
    hub.typing(ann, 'ops', 'active');
    await idle;

    expect(Date.now() - start).toBeGreaterThanOrEqual(lapseMs - 2);
    expect(bob.frames).toEqual([
      { type: 'typing', room: 'ops', user: 'ann', state: 'active' },
      { type: 'typing', room: 'ops', user: 'ann', state: 'idle' },
    ]);
  });
});

describe('read markers', () => {
  it("a read marker only moves forward, and the user's other opted-in connections are told", async () => {
    transcript.seed('ops', 10);
    const hub = makeHub();
    const ann = console2('ann');
    const annBrowser = browser('ann');
    const annSeed = seed('ann');
    const bob = console2('bob');
    for (const p of [ann, annBrowser, annSeed, bob]) await enter(hub, p);
    for (const p of [ann, annBrowser, annSeed, bob]) p.clear();

    await hub.read(ann, { room: 'ops' }, 5, 'r1');
    expect(ann.frames).toEqual([{ type: 'read', room: 'ops', seq: 5, ref: 'r1' }]);
    expect(annBrowser.frames).toEqual([{ type: 'read', room: 'ops', seq: 5 }]);

    await hub.read(annBrowser, { room: 'ops' }, 3, 'r2');
    expect(annBrowser.frames.at(-1)).toEqual({ type: 'read', room: 'ops', seq: 5, ref: 'r2' });
    await hub.read(annBrowser, { room: 'ops' }, 8);
    expect(ann.frames.at(-1)).toEqual({ type: 'read', room: 'ops', seq: 8 });

    await hub.message(ann, 'ops', 'barrier');
    expect(annSeed.frames.map((f) => f.type)).toEqual(['message']);
    expect(bob.frames.map((f) => f.type)).toEqual(['message']);

    await hub.shutdown(); // writes what has moved
    expect(transcript.marker('ann', 'ops')).toBe(8);
  });

  it("a read marker never passes the room's newest message, so the next ones still count as unread", async () => {
    transcript.seed('ops', 4);
    const hub = makeHub();
    const ann = console2('ann');
    await enter(hub, ann);
    ann.clear();
    await hub.read(ann, { room: 'ops' }, 1000, 'r');
    expect(ann.frames).toEqual([{ type: 'read', room: 'ops', seq: 4, ref: 'r' }]);
    await hub.join(ann, 'ops', { ref: 'again' });
    expect(ann.frames.at(-1)).toMatchObject({ type: 'joined', seq: 4, read: 4, unread: 0 });
  });

  it('read markers reach the store within markerFlushMs, several moves in one write', async () => {
    const hub = makeHub({ markerFlushMs: 10 });
    transcript.seed('ops', 10);
    const ann = console2('ann');
    await enter(hub, ann);
    await hub.read(ann, { room: 'ops' }, 4);
    await hub.read(ann, { room: 'ops' }, 7);
    await hub.read(ann, { with: 'bob' }, 2);
    await transcript.markerSaves.reached(1);
    expect(transcript.saved).toEqual([
      [
        { user: 'ann', conversation: 'ops', seq: 7 },
        { user: 'ann', conversation: conversationKey('ann', 'bob'), seq: 2 },
      ],
    ]);
  });

  it('welcome and joined carry read and unread; welcome counts the unread whispers', async () => {
    transcript.seed('ops', 10);
    transcript.seed('dev', 4);
    transcript.seedWhispers('bob', 'ann', 3);
    transcript.seedWhispers('ann', 'bob', 1);
    transcript.seedWhispers('cy', 'ann', 1);
    transcript.setMarker('ann', 'ops', 6);
    transcript.setMarker('ann', 'dev', 4);
    transcript.setMarker('ann', conversationKey('ann', 'bob'), 1);
    const hub = makeHub();
    const ann = console2('ann');

    await enter(hub, ann, 'ops', { ref: 'hello' });
    await hub.join(ann, 'dev', { ref: 'j' });

    expect(ann.welcomes[0]).toMatchObject({ seq: 10, read: 6, unread: 4, whispers: 3, ref: 'hello' });
    expect(ann.of('joined')).toEqual([
      { type: 'joined', room: 'ops', seq: 10, complete: true, read: 6, unread: 4 },
      { type: 'joined', room: 'dev', seq: 4, complete: true, read: 4, unread: 0, ref: 'j' },
    ]);
  });

  it("a read on one connection is what the user's next connection is welcomed with", async () => {
    transcript.seed('ops', 10);
    const hub = makeHub();
    const ann = console2('ann');
    await enter(hub, ann);
    await hub.read(ann, { room: 'ops' }, 8);

    const annBrowser = browser('ann');
    await enter(hub, annBrowser);
    expect(annBrowser.welcomes[0]).toMatchObject({ read: 8, unread: 2 });
    expect(annBrowser.of('joined')[0]).toMatchObject({ read: 8, unread: 2 });
  });

  it('a user who reads, leaves and comes back before the marker is written is welcomed with what they read', async () => {
    transcript.seed('ops', 10);
    const hub = makeHub();
    const ann = console2('ann');
    await enter(hub, ann);
    await hub.read(ann, { room: 'ops' }, 8);
    hub.disconnect(ann);
    const again = browser('ann');
    await enter(hub, again);
    expect(again.welcomes[0]).toMatchObject({ read: 8, unread: 2 });
  });

  it('a console joining and leaving room after room keeps markers for the most recent ones only; an older one is read again, right', async () => {
    transcript.seed('ops', 5);
    const hub = makeHub({ marksPerUser: 2 });
    const ann = console2('ann');
    await enter(hub, ann);
    await hub.read(ann, { room: 'ops' }, 4);
    hub.leave(ann, 'ops');
    for (const room of ['r1', 'r2']) {
      await hub.join(ann, room, {});
      hub.leave(ann, room);
    }
    const reads = transcript.markerReads.value;
    ann.clear();
    await hub.join(ann, 'ops', { ref: 'back' });
    // Let go for r1 and r2, so the store is asked; the marker moved here (not yet written) still holds.
    expect(transcript.markerReads.value).toBe(reads + 1);
    expect(ann.frames.at(-1)).toMatchObject({ type: 'joined', room: 'ops', read: 4, unread: 1, ref: 'back' });
  });

  it('a marker read that ends after its user has gone keeps nothing: back later, they get what the store has then', async () => {
    transcript.seed('ops', 5);
    const hub = makeHub();
    const held = deferred();
    transcript.holdMarkers = held.promise;
    const ann = console2('ann');
    const entering = enter(hub, ann).catch(() => {});
    await new Promise((resolve) => setImmediate(resolve));
    hub.disconnect(ann);
    held.resolve();
    await entering;
    transcript.holdMarkers = undefined;
    // Meanwhile they read on (on another node, or another server before a restart): the store has 4.
    transcript.setMarker('ann', 'ops', 4);
    const again = console2('ann');
    await enter(hub, again, 'ops', { ref: 'back' });
    expect(again.frames.at(-1)).toMatchObject({ type: 'joined', room: 'ops', read: 4, unread: 1 });
  });

  /** Seed consoles under `names` connect and leave at once, in that order: each name is seen. */
  const comeAndGo = (hub: Hub, names: readonly string[]): void => {
    for (const name of names) {
      const peer = seed(name);
      hub.connect(peer);
      hub.disconnect(peer);
    }
  };

  it('names kept as seen are bounded: the oldest, once written, is let go, and a whisper to it asks the store', async () => {
    const hub = makeHub({ seenNames: 2 });
    const bo = console2('bo');
    await enter(hub, bo);
    comeAndGo(hub, ['old', 'mid', 'new']);
    // Names are written behind, within a second (the shipped interval).
    await vi.waitFor(() => expect([...transcript.names].sort()).toEqual(['bo', 'mid', 'new', 'old']), {
      timeout: 5000,
    });
    transcript.names.delete('old'); // the store forgets old, to show who is asked
    bo.clear();
    await hub.whisper(bo, 'new', 'kept', { ref: 'w1' });
    await hub.whisper(bo, 'old', 'let go', { ref: 'w2' });
    expect(bo.frames.map((f) => [f.type, 'ref' in f ? f.ref : undefined])).toEqual([
      ['whisper', 'w1'],
      ['error', 'w2'],
    ]);
  });

  it('a name seen but not written yet takes whispers, even past the bound of names kept', async () => {
    const hub = makeHub({ seenNames: 2 });
    const bo = console2('bo');
    await enter(hub, bo);
    comeAndGo(hub, ['old', 'mid', 'new']);
    expect(transcript.names.size).toBe(0); // written behind, within a second
    bo.clear();
    await hub.whisper(bo, 'old', 'still known', { ref: 'w1' });
    expect(bo.frames.map((f) => [f.type, 'ref' in f ? f.ref : undefined])).toEqual([['whisper', 'w1']]);
  });

  it.each([
    ['reads for every answer', false],
    ['knows whom it has nothing of', true],
  ])(
    'a user who comes back while their marker is being written is welcomed with what they read (a store that %s)',
    async (_, knows) => {
      transcript.knowsNames = knows;
      transcript.seed('ops', 10);
      const hub = makeHub({ markerFlushMs: 5 });
      const ann = console2('ann');
      await enter(hub, ann);
      const saving = deferred();
      transcript.holdSaves = saving.promise;
      await hub.read(ann, { room: 'ops' }, 9);
      await transcript.saveStarts.reached(1);
      hub.disconnect(ann);
      const again = browser('ann');
      // The welcome asks the store for the marker and the unread whispers together, and only once
      // what moved here is written: it waits for the write, and reads nothing before it.
      const reads = transcript.markerReads.value;
      const entering = enter(hub, again);
      // Everything the join does before the write is done runs by the next turn of the event loop.
      await new Promise((resolve) => setImmediate(resolve));
      expect(transcript.markerReads.value).toBe(reads);
      expect(again.welcomes).toHaveLength(0);
      saving.resolve();
      await entering;
      expect(again.welcomes[0]).toMatchObject({ read: 9, unread: 1 });
      await transcript.markerSaves.reached(1);
      expect(transcript.marker('ann', 'ops')).toBe(9);
    },
  );

  it('a read of a room the connection has not joined is refused and moves nothing', async () => {
    transcript.seed('dev', 5);
    const hub = makeHub();
    const ann = console2('ann');
    await enter(hub, ann);
    await hub.read(ann, { room: 'dev' }, 5, 'r');
    await hub.join(ann, 'dev');
    expect(ann.errors.map((e) => [e.code, e.ref])).toEqual([[ErrorCode.NotJoined, 'r']]);
    expect(ann.of('joined').find((j) => j.room === 'dev')).toMatchObject({ read: 0, unread: 5 });
  });
});

describe('a store that knows whom it has nothing of', () => {
  beforeEach(() => {
    transcript.knowsNames = true;
  });

  const storeReads = (): number =>
    transcript.reads.value + transcript.markerReads.value + transcript.lastSeqReads.value;

  it('welcomes a newcomer to a new room within the call, without reading the store', () => {
    const hub = makeHub();
    const ann = console2('ann');
    // Not awaited: nothing is left to wait for.
    void enter(hub, ann, 'fresh', { ref: 'hi' });
    expect(ann.frames.map((f) => f.type)).toEqual(['welcome', 'joined']);
    expect(ann.welcomes[0]).toMatchObject({
      room: 'fresh',
      seq: 0,
      read: 0,
      unread: 0,
      whispers: 0,
      ref: 'hi',
    });
    expect(storeReads()).toBe(0);
  });

  it('a browser joining an open room gets its welcome, who is there and the backscroll within the call', async () => {
    const hub = makeHub();
    const bob = console2('bob');
    await enter(hub, bob);
    await hub.message(bob, 'ops', 'one');
    await hub.message(bob, 'ops', 'two');
    const ann = browser('ann');
    void enter(hub, ann);
    expect(ann.frames.map((f) => f.type)).toEqual(['welcome', 'presence', 'message', 'message', 'joined']);
    expect(ann.welcomes[0]).toMatchObject({ seq: 2, read: 0, unread: 2, whispers: 0 });
    expect(ann.messages.map((m) => m.text)).toEqual(['one', 'two']);
    expect(storeReads()).toBe(0);
    // What is sent next reaches the newcomer once, after all of it.
    await hub.message(bob, 'ops', 'three');
    expect(ann.messages.map((m) => m.text)).toEqual(['one', 'two', 'three']);
  });

  it('someone who read, left and came back before the marker was written is welcomed with what they read', async () => {
    transcript.seed('ops', 10);
    const hub = makeHub();
    const ann = console2('ann');
    await enter(hub, ann);
    await hub.read(ann, { room: 'ops' }, 8);
    hub.disconnect(ann);
    const reads = transcript.markerReads.value;
    const again = browser('ann');
    await enter(hub, again);
    expect(again.welcomes[0]).toMatchObject({ read: 8, unread: 2, whispers: 0 });
    expect(transcript.markerReads.value).toBe(reads);
  });

  it('someone whose marker waits behind another write, not yet handed to the store, is welcomed with it at once', async () => {
    transcript.seed('ops', 10);
    const hub = makeHub({ markerFlushMs: 5 });
    const [ann, bob] = [console2('ann'), console2('bob')];
    await enter(hub, ann);
    await enter(hub, bob);
    const saving = deferred();
    transcript.holdSaves = saving.promise;
    await hub.read(bob, { room: 'ops' }, 4);
    await transcript.saveStarts.reached(1);
    // Ann's marker is written after bob's, which is held: the store has not been told of her yet.
    await hub.read(ann, { room: 'ops' }, 9);
    // Carol has a whisper waiting: her welcome writes what moved first, so ann's marker goes to be
    // written now, behind bob's.
    transcript.seedWhispers('dave', 'carol', 1);
    const carol = console2('carol');
    const carolEntering = enter(hub, carol);
    hub.disconnect(ann);
    // A console (a browser would read its backscroll of the room's stored messages first).
    const again = console2('ann');
    void enter(hub, again);
    expect(again.welcomes[0]).toMatchObject({ read: 9, unread: 1, whispers: 0 });
    expect(transcript.saveStarts.value).toBe(1);
    saving.resolve();
    await carolEntering;
    expect(carol.welcomes[0]).toMatchObject({ whispers: 1 });
    await transcript.markerSaves.reached(2);
    expect(transcript.marker('ann', 'ops')).toBe(9);
  });

  it('whispers waiting for a newcomer are counted in the welcome', async () => {
    transcript.seedWhispers('bob', 'ann', 2);
    const hub = makeHub();
    const ann = console2('ann');
    await enter(hub, ann, 'fresh');
    expect(ann.welcomes[0]).toMatchObject({ room: 'fresh', whispers: 2 });
  });

  it('a second room the store has no marker of is joined within the call, read 0', async () => {
    transcript.seed('dev', 3);
    const hub = makeHub();
    const ann = console2('ann');
    await enter(hub, ann);
    ann.clear();
    void hub.join(ann, 'fresh', { ref: 'j' });
    expect(ann.frames).toEqual([
      expect.objectContaining({ type: 'joined', room: 'fresh', read: 0, ref: 'j' }),
    ]);
    await hub.join(ann, 'dev', { ref: 'k' });
    expect(ann.frames.at(-1)).toMatchObject({ type: 'joined', room: 'dev', read: 0, unread: 3, ref: 'k' });
  });
});

describe('via', () => {
  it("opted-in members see where a message came from; a seed peer's frames never carry via or cid", async () => {
    const hub = makeHub();
    const web = browser('ann');
    const opted = console2('bob');
    const plain = seed('cy');
    for (const p of [web, opted, plain]) await enter(hub, p);
    for (const p of [web, opted, plain]) p.clear();

    await hub.message(web, 'ops', 'from a browser', { cid: 'c1' });
    await hub.message(opted, 'ops', 'from a console');
    await hub.message(plain, 'ops', 'from a seed console');

    expect(opted.messages.map((m) => [m.text, m.via])).toEqual([
      ['from a browser', 'browser'],
      ['from a console', 'console'],
      ['from a seed console', 'console'],
    ]);
    expect(opted.messages[0]?.cid).toBe('c1');
    expect(plain.messages).toHaveLength(3);
    for (const m of plain.messages) {
      expect(Object.keys(m).sort()).toEqual(['id', 'room', 'sender', 'seq', 'text', 'ts', 'type']);
    }
  });

  it('backscroll and resume show via to opted-in peers only', async () => {
    transcript.seed('ops', 2, 'old-timer', 'browser');
    const hub = makeHub();
    const web = browser('ann');
    const plain = new FakePeer('bob', { wantsBackscroll: true });
    await enter(hub, web);
    await enter(hub, plain);
    expect(web.messages.map((m) => m.via)).toEqual(['browser', 'browser']);
    expect(plain.messages).toHaveLength(2);
    for (const m of plain.messages) expect(m).not.toHaveProperty('via');
  });
});

describe('seed peers', () => {
  it('a seed peer never receives any frame type but message and presence, whatever the others do', async () => {
    transcript.seed('ops', 3);
    const hub = makeHub();
    const plain = seed('ann');
    const annBrowser = browser('ann');
    const bob = console2('bob');
    await enter(hub, plain);
    await enter(hub, annBrowser);
    await enter(hub, bob);

    // What the others do.
    hub.typing(bob, 'ops', 'active', 't1');
    hub.typing(bob, 'ops', 'idle', 't2');
    await hub.whisper(bob, 'ann', 'psst', { ref: 'w' });
    await hub.read(annBrowser, { room: 'ops' }, 3, 'r');
    await hub.read(annBrowser, { with: 'bob' }, 1);
    await hub.join(bob, 'dev', { ref: 'j' });
    hub.leave(bob, 'dev', 'l');
    hub.who(bob, 'ops', 'who');
    await hub.rooms(bob, 'rooms');
    await hub.history(bob, { room: 'ops' }, {}, 'h');
    await hub.message(bob, 'ops', 'hi', { cid: 'c', ref: 'm1' });
    await hub.message(bob, 'ops', 'hi', { cid: 'c', ref: 'm2' });
    await hub.message(bob, 'nowhere', 'x', { ref: 'e' });
    hub.presence(bob, undefined, 'away', 'p');
    hub.refuse(bob, ErrorCode.BadFrame, 'no');

    // What the seed peer itself is made to do, beyond what the seed protocol can say.
    await hub.message(plain, 'ops', 'mine', { cid: 's', ref: 'x1' });
    await hub.message(plain, 'ops', 'mine', { cid: 's', ref: 'x2' });
    await hub.message(plain, 'nowhere', 'x', { ref: 'x3' });
    hub.typing(plain, 'ops', 'active', 'x4');
    hub.presence(plain, ['ops'], 'away', 'x5');
    hub.presence(plain, ['nowhere'], 'away', 'x6');
    hub.who(plain, 'ops', 'x7');
    await hub.rooms(plain, 'x8');
    await hub.history(plain, { room: 'ops' }, {}, 'x9');
    await hub.read(plain, { room: 'ops' }, 2, 'x10');
    await hub.whisper(plain, 'bob', 'x', { ref: 'x11' });
    await hub.whisper(plain, 'nobody', 'x', { ref: 'x12' });
    await hub.join(plain, 'dev', { ref: 'x13' });
    await hub.join(plain, 'dev', { ref: 'x14' });
    hub.leave(plain, 'dev', 'x15');
    hub.leave(plain, 'nowhere', 'x16');
    hub.refuse(plain, ErrorCode.BadFrame, 'no', 'x17');
    hub.reply(plain, { type: 'ack', ref: 'x18' });
    hub.notify(plain, new Encoded({ type: 'notice', code: NoticeCode.RateLimited, message: 'slow down' }));
    transcript.failAppends = true;
    await hub.message(plain, 'ops', 'lost', { ref: 'x19' });
    transcript.failAppends = false;

    await hub.message(bob, 'ops', 'barrier');
    expect(plain.frames.at(-1)).toMatchObject({ type: 'message', text: 'barrier' });
    expect([...new Set(plain.frames.map((f) => f.type))].sort()).toEqual(['message', 'presence']);
    for (const frame of plain.frames) {
      expect(frame).not.toHaveProperty('ref');
      expect(frame).not.toHaveProperty('via');
      expect(frame).not.toHaveProperty('cid');
    }
    // The opted-in side did hear of it all.
    expect(annBrowser.of('whisper').map((w) => w.text)).toEqual(['psst', 'x']);
    expect(bob.of('typing').map((t) => t.state)).toEqual(['active']);
  });
});

describe('shutdown', () => {
  it('shutdown finishes pending commits, broadcasts them, then closes every peer with 1012', async () => {
    const hub = makeHub();
    const alice = seed('alice');
    const bob = new FakePeer('bob', { wantsBackscroll: true });
    await enter(hub, alice);
    await enter(hub, bob, 'dev');
    const commit = deferred();
    transcript.hold = commit.promise;
    const sending = [hub.message(alice, 'ops', 'last words'), hub.message(bob, 'dev', 'me too')];

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

  it('shutdown closes a connection that is in no room, and writes the read markers that moved', async () => {
    transcript.seed('ops', 4);
    const hub = makeHub();
    const ann = console2('ann');
    await enter(hub, ann);
    await hub.read(ann, { room: 'ops' }, 3);
    const idle = console2('bob');
    hub.connect(idle);
    await hub.shutdown();
    expect(idle.closes.map((c) => c.code)).toEqual([CloseCode.ServiceRestart]);
    expect(transcript.marker('ann', 'ops')).toBe(3);
  });

  it('after shutdown starts, members leaving are not announced away', async () => {
    const hub = makeHub();
    const alice = seed('alice');
    const bob = seed('bob');
    await enter(hub, alice);
    await enter(hub, bob);
    alice.clear();
    bob.clear();
    alice.onClose = () => hub.disconnect(alice);
    bob.onClose = () => hub.disconnect(bob);
    await hub.shutdown();
    expect(alice.presences).toEqual([]);
    expect(bob.presences).toEqual([]);
    expect(hub.stats.connections).toBe(0);
  });

  it('a seed console that says hello during shutdown is closed with 1012, even after the others were closed', async () => {
    const hub = makeHub();
    const alice = seed('alice');
    await enter(hub, alice);
    alice.clear();
    const shuttingDown = hub.shutdown();
    const early = seed('bob');
    await enter(hub, early);
    await shuttingDown;
    const late = seed('carol');
    await enter(hub, late);

    for (const peer of [early, late]) {
      expect(peer.closes).toEqual([{ code: 1012, reason: expect.any(String) }]);
      expect(peer.frames).toEqual([]);
      expect(hub.roomsOf(peer)).toEqual([]);
    }
    expect(hub.roomSize('ops')).toBe(1);
    expect(alice.presences).toEqual([]);
  });

  it('during shutdown a new opted-in peer is closed with 1012 and an opted-in sender is told its message was not stored', async () => {
    const hub = makeHub();
    const alice = console2('alice');
    await enter(hub, alice);
    alice.clear();
    const shuttingDown = hub.shutdown();
    const late = console2('bob');
    await enter(hub, late);
    await hub.message(alice, 'ops', 'too late', { ref: 'm' });
    await shuttingDown;

    expect(late.closes).toEqual([{ code: 1012, reason: expect.any(String) }]);
    expect(late.frames).toEqual([]);
    expect(hub.roomsOf(late)).toEqual([]);
    expect(alice.errors.map((e) => [e.code, e.ref])).toEqual([[ErrorCode.ShuttingDown, 'm']]);
    expect(alice.messages).toEqual([]);
    expect(transcript.batches).toEqual([]);
  });
});
