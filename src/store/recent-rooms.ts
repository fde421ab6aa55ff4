// The room list of a database file this process alone writes to: the most recently active rooms,
// read from the store once and then kept up to date from the appends, so a `rooms` frame costs
// neither a scan of every conversation (whisper pairs included) nor a read of hundreds of rows.
import type { Appended, ConversationHead, NewMessage } from '../hub/transcript.ts';

/** Whisper pairs' keys start with U+0001, which no room name can. */
export const isRoomKey = (key: string): boolean => (key.codePointAt(0) ?? 0) > 1;

/**
 * The `kept` most recently active rooms, exactly as the store would list them. Rooms come in only by
 * an append, which makes them the most recent, and a room's time only grows, so a room left out
 * (once more than `kept` are more recent) cannot belong back until it is written to again.
 */
export class RecentRooms {
  readonly #read: (limit: number) => Promise<ConversationHead[]>;
  /** The most recent `kept`, and those written to since the map was last cut back to them. */
  readonly #heads = new Map<string, ConversationHead>();
  /** How many of the most recent the map holds for sure: the largest limit read (0: none yet). */
  #kept = 0;
  /** Appends answered while a read of the store runs: its rows may be from before them. */
  #noted: ConversationHead[] | undefined;
  #loading: Promise<void> | undefined;
  /** Counts forget(): a read that began before one may miss what it was for. */
  #forgotten = 0;

  /** `read`: the store's own list, most recent first, at most `limit`. */
  constructor(read: (limit: number) => Promise<ConversationHead[]>) {
    this.#read = read;
  }

  /** The most recently active rooms, most recent first, at most `limit`. */
  async top(limit: number): Promise<ConversationHead[]> {
    while (this.#kept < limit) {
      this.#loading ??= this.#load(limit).finally(() => {
        this.#loading = undefined;
      });
      await this.#loading;
    }
    return this.#sorted().slice(0, limit);
  }

  /**
   * What a committed batch did: each message stored with a seq moves its room up. Batches are told in
   * the order they committed (the appender answers in order), so a room's time here never goes back.
   */
  appended(batch: readonly NewMessage[], outcomes: readonly Appended[]): void {
    if (this.#kept === 0 && !this.#noted) return;
    batch.forEach((m, i) => {
      const outcome = outcomes[i];
      if (outcome && 'seq' in outcome && isRoomKey(m.room))
        this.#note({ key: m.room, seq: outcome.seq, ts: m.ts });
    });
    if (this.#heads.size > 2 * this.#kept && this.#kept > 0) this.#cut();
  }

  /**
   * An append failed: it may still have been committed (a writer that died after its commit), so the
   * list is read from the store again when next asked for.
   */
  forget(): void {
    this.#forgotten += 1;
    this.#kept = 0;
    this.#heads.clear();
  }

  async #load(limit: number): Promise<void> {
    this.#noted = [];
    const forgotten = this.#forgotten;
    try {
      const heads = await this.#read(limit);
      const noted = this.#noted;
      // Read again (the caller loops) rather than keep rows that may be from before the failure.
      if (forgotten !== this.#forgotten) return;
      this.#heads.clear();
      for (const head of heads) this.#heads.set(head.key, head);
      for (const head of noted) this.#merge(head);
      this.#kept = limit;
      this.#cut();
    } finally {
      this.#noted = undefined;
    }
  }

  #note(head: ConversationHead): void {
    this.#noted?.push(head);
    if (this.#kept > 0) this.#merge(head);
  }

  /** As the store's trigger does: a conversation's seq and time never go back. */
  #merge(head: ConversationHead): void {
    const had = this.#heads.get(head.key);
    this.#heads.set(
      head.key,
      had ? { key: head.key, seq: Math.max(had.seq, head.seq), ts: Math.max(had.ts, head.ts) } : head,
    );
  }

  #sorted(): ConversationHead[] {
    return [...this.#heads.values()].sort((a, b) => b.ts - a.ts);
  }

  /** Keep the `kept` most recent only. */
  #cut(): void {
    if (this.#heads.size <= this.#kept) return;
    for (const head of this.#sorted().slice(this.#kept)) this.#heads.delete(head.key);
  }
}
