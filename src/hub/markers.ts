// Read markers: how far each user has read each conversation. Kept here for the users connected, moved
// only forward, and written to the store in batches rather than one commit per `read` frame.
import { dropOldest } from '../bounded.ts';
import type { Log } from '../log.ts';
import type { Arrival, ReadMarker, Transcript } from './transcript.ts';

/**
 * One user's markers. Most users are in one conversation: that one is kept as a pair, and a Map (about
 * 200 bytes even with one entry) is made only for a second.
 */
type Marks = Map<string, number> | { conversation: string; seq: number };

const markOf = (marks: Marks | undefined, conversation: string): number | undefined => {
  if (marks === undefined) return undefined;
  if (marks instanceof Map) return marks.get(conversation);
  return marks.conversation === conversation ? marks.seq : undefined;
};

/**
 * How many conversations' markers are kept for one user, the one unchanged longest let go first
 * (about 100 bytes each): more than a connection's rooms (100 by default) and the whispers it
 * reads. One let go is read from the store again when it is asked about, so joining and leaving
 * room after room, or marking one whisper conversation after another, does not grow the server.
 */
export const MARKS_PER_USER = 256;

/** Read markers of connected users, written behind. */
export class ReadMarkers {
  readonly #transcript: Transcript;
  readonly #log: Log;
  readonly #flushMs: number;
  readonly #connected: (user: string) => boolean;
  readonly #perUser: number;
  /**
   * user → conversation → seq, for connected users (forgotten when their last connection goes) and
   * the conversations asked about or read while connected, at most #perUser each.
   */
  readonly #known = new Map<string, Marks>();
  readonly #dirty = new Map<string, ReadMarker>();
  /** Markers being written now: the store may not have them yet. */
  readonly #writing = new Map<string, ReadMarker>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #flushing: Promise<void> = Promise.resolve();

  /** `connected` says whether a user has a connection here: only theirs are kept. */
  constructor(
    transcript: Transcript,
    log: Log,
    connected: (user: string) => boolean,
    options: { flushMs?: number; perUser?: number } = {},
  ) {
    this.#transcript = transcript;
    this.#log = log;
    this.#connected = connected;
    this.#flushMs = options.flushMs ?? 1000;
    this.#perUser = options.perUser ?? MARKS_PER_USER;
  }

  /** How far `user` has read `conversation` (0: nothing read). */
  async get(user: string, conversation: string): Promise<number> {
    const cached = markOf(this.#known.get(user), conversation);
    if (cached !== undefined) return cached;
    const fromStore = (await this.#transcript.markers(user, [conversation])).get(conversation) ?? 0;
    return this.#settle(user, conversation, fromStore);
  }

  /**
   * What a welcome needs: how far `user` has read `conversation`, and how many whispers to it are
   * unread. One read of the store when the marker is not known here yet.
   */
  async arrival(user: string, conversation: string): Promise<Arrival> {
    // The count compares whispers with stored markers: what moved here is stored first.
    await this.flush();
    const cached = markOf(this.#known.get(user), conversation);
    if (cached !== undefined) return { read: cached, whispers: await this.#transcript.unreadWhispers(user) };
    const { read, whispers } = await this.#transcript.arrival(user, conversation);
    return { read: this.#settle(user, conversation, read), whispers };
  }

  /**
   * `arrival`'s answer where it needs no read of the store (it has nothing of `user`'s): undefined
   * when it does. With no whisper to count, nothing moved here needs writing first.
   */
  arrivalNow(user: string, conversation: string): Arrival | undefined {
    const known = this.#transcript.arrivalKnown?.(user, conversation);
    if (!known) return undefined;
    return { read: this.#settle(user, conversation, known.read), whispers: known.whispers };
  }

  /** `get`'s answer where it needs no read of the store: undefined when it does. */
  getNow(user: string, conversation: string): number | undefined {
    const cached = markOf(this.#known.get(user), conversation);
    if (cached !== undefined) return cached;
    const known = this.#transcript.arrivalKnown?.(user, conversation);
    return known && this.#settle(user, conversation, known.read);
  }

  /** The marker the store had, made current: a newer one read meanwhile or still unwritten wins. */
  #settle(user: string, conversation: string, fromStore: number): number {
    // Something read meanwhile is newer than what the store had.
    const now = markOf(this.#known.get(user), conversation);
    if (now !== undefined) return now;
    // A user who left and came back may have moved it since, and the store not heard of it yet.
    const key = `${user}\u0000${conversation}`;
    const stored = Math.max(fromStore, this.#dirty.get(key)?.seq ?? 0, this.#writing.get(key)?.seq ?? 0);
    this.#remember(user, conversation, stored);
    return stored;
  }

  /**
   * Move `user`'s marker of `conversation` to `seq` if that is further; returns where it is now. The
   * store hears of it within a flush interval.
   */
  async advance(user: string, conversation: string, seq: number): Promise<number> {
    const current = await this.get(user, conversation);
    if (seq <= current) return current;
    this.#remember(user, conversation, seq);
    this.#dirty.set(`${user}\u0000${conversation}`, { user, conversation, seq });
    this.#timer ??= setTimeout(() => void this.flush(), this.#flushMs);
    return seq;
  }

  /** Another node moved a marker (and writes it): the copy here follows, if it has one. */
  learn(user: string, conversation: string, seq: number): void {
    if ((markOf(this.#known.get(user), conversation) ?? seq) < seq) this.#remember(user, conversation, seq);
  }

  /** Forget a user who has left (what is not yet written stays queued). */
  forget(user: string): void {
    this.#known.delete(user);
  }

  /** Write what has moved since the last flush. */
  flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#dirty.size === 0) return this.#flushing;
    const batch = [...this.#dirty.values()];
    this.#dirty.clear();
    for (const m of batch) this.#writing.set(`${m.user}\u0000${m.conversation}`, m);
    const written = (): void => {
      for (const m of batch) {
        const key = `${m.user}\u0000${m.conversation}`;
        if (this.#writing.get(key) === m) this.#writing.delete(key);
      }
    };
    this.#flushing = this.#flushing
      .then(() => this.#transcript.saveMarkers(batch))
      .then(written, (error: unknown) => {
        this.#log.warn('read markers not saved; trying again', { error: String(error) });
        for (const m of batch) {
          const key = `${m.user}\u0000${m.conversation}`;
          const newer = this.#dirty.get(key);
          if (!newer || newer.seq < m.seq) this.#dirty.set(key, m);
        }
        written();
        this.#timer ??= setTimeout(() => void this.flush(), this.#flushMs);
      });
    return this.#flushing;
  }

  /**
   * Keep `user`'s marker, as the newest of theirs. A store read that ends after its user's last
   * connection went keeps nothing: forget() has run, and nothing would forget it again.
   */
  #remember(user: string, conversation: string, seq: number): void {
    if (!this.#connected(user)) return;
    const marks = this.#known.get(user);
    if (marks === undefined) this.#known.set(user, { conversation, seq });
    else if (marks instanceof Map) {
      marks.delete(conversation);
      marks.set(conversation, seq);
      dropOldest(marks, this.#perUser);
    } else if (marks.conversation === conversation) marks.seq = seq;
    else
      this.#known.set(
        user,
        new Map([
          [marks.conversation, marks.seq],
          [conversation, seq],
        ]),
      );
  }
}
