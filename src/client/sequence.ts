// One conversation's order (a room, or the whispers with one person): each seq handed on once, in order,
// with a gap noticed (seq != last + 1) and held until the missing messages are read from history.

/** A frame with its place in its conversation. */
export interface Sequenced {
  readonly seq: number;
}

/** What a conversation needs from its client: hand on a frame, and read the messages after a seq. */
export interface SequenceHost<T extends Sequenced> {
  deliver(frame: T): void;
  /** The page of messages after `after`, oldest first, and whether more follow. */
  fetchAfter(after: number): Promise<{ messages: T[]; more: boolean }>;
  /** A gap history could not fill (the server no longer has it): `from` to `to` were skipped. */
  lost?(from: number, to: number): void;
}

/** Delivers a conversation's frames exactly once and in order, filling gaps from history. */
export class Sequence<T extends Sequenced> {
  /** The last seq handed on; undefined until the first frame or baseline. */
  last: number | undefined;
  readonly #host: SequenceHost<T>;
  readonly #held = new Map<number, T>();
  #filling = false;
  /** Whether a gap may be filled now (a room's join is complete on this connection). */
  #ready = false;

  constructor(host: SequenceHost<T>, last?: number) {
    this.#host = host;
    this.last = last;
  }

  /** Frames held behind a gap. */
  get held(): number {
    return this.#held.size;
  }

  /** Take a frame off the wire: hand it on, drop it as a duplicate, or hold it behind a gap. */
  receive(frame: T): void {
    if (this.last === undefined) {
      this.#handOn(frame);
      return;
    }
    if (frame.seq <= this.last) return;
    if (frame.seq === this.last + 1 && !this.#filling) {
      this.#handOn(frame);
      this.#release();
      return;
    }
    this.#held.set(frame.seq, frame);
    if (this.#ready) void this.#fill();
  }

  /**
   * The conversation is open on this connection and reached `newest` (a `joined` frame's seq): a
   * first baseline, or a gap up to it to fill.
   */
  open(newest?: number): void {
    this.#ready = true;
    if (this.last === undefined) {
      this.last = newest;
      this.#release();
      return;
    }
    if ((newest ?? 0) > this.last || this.#held.size > 0) void this.#fill(newest);
  }

  /** The connection is gone: what was held comes again in the resume, from `last` on. */
  close(): void {
    this.#ready = false;
    this.#held.clear();
  }

  #handOn(frame: T): void {
    this.last = frame.seq;
    this.#host.deliver(frame);
  }

  #release(): void {
    if (this.last === undefined) return;
    for (let next = this.#held.get(this.last + 1); next; next = this.#held.get(this.last + 1)) {
      this.#held.delete(next.seq);
      this.#handOn(next);
    }
    for (const seq of this.#held.keys()) if (seq <= this.last) this.#held.delete(seq);
  }

  /** Read whatever history holds after `last` (a conversation with no `joined` to say how far it goes). */
  resync(): void {
    this.#ready = true;
    if (this.last !== undefined) void this.#fill('end');
  }

  async #fill(upTo: number | 'end' = 0): Promise<void> {
    if (this.#filling) return;
    this.#filling = true;
    let toEnd = upTo === 'end';
    const floor = upTo === 'end' ? 0 : upTo;
    try {
      while (this.#ready && this.last !== undefined) {
        const target = Math.max(floor, ...this.#held.keys());
        if (!toEnd && this.last >= target) break;
        const from = this.last;
        const page = await this.#host.fetchAfter(from);
        if (!this.#ready) return;
        for (const frame of page.messages) {
          if (this.last !== undefined && frame.seq === this.last + 1) this.#handOn(frame);
        }
        this.#release();
        if (this.last !== from) {
          if (!page.more) toEnd = false;
          continue;
        }
        toEnd = false;
        // History has nothing right after `from` although later messages exist: those are gone from
        // the store. Say so and go on after them rather than wait for them forever.
        const later = [...this.#held.keys(), ...page.messages.map((m) => m.seq).filter((seq) => seq > from)];
        const next = later.length > 0 ? Math.min(...later) : target + 1;
        if (next <= from + 1) break;
        this.#host.lost?.(from + 1, next - 1);
        this.last = next - 1;
        for (const frame of page.messages) if (frame.seq === this.last + 1) this.#handOn(frame);
        this.#release();
      }
    } catch {
      // The connection went while reading history; the resume after reconnecting covers the gap.
    } finally {
      this.#filling = false;
    }
  }
}
