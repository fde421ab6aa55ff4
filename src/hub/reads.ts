// History pages, taken in turns. A local database answers a read on the event loop, so a burst of
// pages from one connection (or from many of one person's) used to run back to back while every other
// connection waited. Now reads start after the event loop has served the sockets, a few at a time,
// one of each requester's at a time, and the requesters waiting take turns: a burst costs the others
// a turn's wait, not the whole burst's.

/** Reads started and not yet finished, at most. */
export const READS_AT_ONCE = 4;

/** A read waiting for its turn. */
interface Waiting {
  /** Go (true), or give up: it is no longer wanted (false). */
  start: (go: boolean) => void;
  wanted: () => boolean;
}

/** Reads waiting their turn: round-robin by requester, in order within one. */
export class ReadTurns {
  readonly #yield: () => Promise<void>;
  readonly #atOnce: number;
  /** By requester, in the order their turns come; a requester with nothing waiting is not here. */
  readonly #waiting = new Map<string, Waiting[]>();
  /** Requesters with a read running: one each, so one requester's slow reads hold one place. */
  readonly #running = new Set<string>();
  #starting = false;

  constructor(yieldToIo: () => Promise<void>, atOnce = READS_AT_ONCE) {
    this.#yield = yieldToIo;
    this.#atOnce = atOnce;
  }

  /** Run `read` in `requester`'s turn; resolves or rejects as it does. */
  run<T>(requester: string, read: () => Promise<T>): Promise<T> {
    return this.runIfWanted(requester, read, () => true) as Promise<T>;
  }

  /**
   * Run `read` in `requester`'s turn if, when the turn comes, it is still `wanted` (its connection is
   * open, still in the room); else resolve with undefined at once. What is no longer wanted leaves
   * the line without taking a turn, so a client that asks and goes costs nothing more.
   */
  async runIfWanted<T>(
    requester: string,
    read: () => Promise<T>,
    wanted: () => boolean,
  ): Promise<T | undefined> {
    const go = await new Promise<boolean>((start) => {
      const queue = this.#waiting.get(requester);
      if (queue) queue.push({ start, wanted });
      else this.#waiting.set(requester, [{ start, wanted }]);
      void this.#startNext();
    });
    if (!go) return undefined;
    try {
      return await read();
    } finally {
      this.#running.delete(requester);
      void this.#startNext();
    }
  }

  /** Reads waiting for their turn. */
  get waiting(): number {
    let n = 0;
    for (const queue of this.#waiting.values()) n += queue.length;
    return n;
  }

  /** Whether a waiting read could start now. */
  #startable(): boolean {
    if (this.#running.size >= this.#atOnce) return false;
    for (const requester of this.#waiting.keys()) if (!this.#running.has(requester)) return true;
    return false;
  }

  /** After a turn of I/O, start what there is room for, in turn order; again while any can start. */
  async #startNext(): Promise<void> {
    if (this.#starting) return;
    this.#starting = true;
    try {
      while (this.#startable()) {
        await this.#yield();
        for (const requester of [...this.#waiting.keys()]) {
          if (this.#running.size >= this.#atOnce) break;
          if (this.#running.has(requester)) continue;
          const queue = this.#waiting.get(requester) as Waiting[];
          while (queue.length > 0 && !queue[0]?.wanted()) queue.shift()?.start(false);
          const next = queue.shift();
          // The requester goes to the back of the line, behind everyone else waiting.
          this.#waiting.delete(requester);
          if (queue.length > 0) this.#waiting.set(requester, queue);
          if (!next) continue;
          this.#running.add(requester);
          next.start(true);
        }
      }
    } finally {
      this.#starting = false;
    }
  }
}
