// Things a unit test waits on instead of time: promises it settles itself, counts of calls, and a
// yield to I/O it hands out turn by turn.

/** A promise with its resolve and reject in hand. */
export interface Deferred<T = void> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: Error) => void;
}

/** A promise the test settles itself. */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Counts something happening, and lets a test wait until it has happened often enough. */
export class Count {
  #count = 0;
  readonly #waiters = new Set<{ n: number; wake: () => void }>();

  get value(): number {
    return this.#count;
  }

  /** It happened once more. */
  add(): void {
    this.#count += 1;
    for (const waiter of [...this.#waiters]) {
      if (this.#count >= waiter.n) waiter.wake();
    }
  }

  /** Resolves once it has happened `n` times; rejects after `ms`, so a test that waits in vain fails. */
  reached(n: number, ms = 2000): Promise<void> {
    if (this.#count >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = {
        n,
        wake: () => {
          clearTimeout(timer);
          this.#waiters.delete(waiter);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`counted ${this.#count} within ${ms} ms, expected ${n}`));
      }, ms);
      this.#waiters.add(waiter);
    });
  }
}

/**
 * A yield to I/O for GroupCommit (and the Hub) that the test hands out: each batch waits for its
 * turn, so the test knows exactly what was queued when a batch was taken.
 */
export class Turns {
  readonly #asked: Deferred[] = [];
  /** How many turns were asked for, ever. */
  readonly asked = new Count();

  /** The yield itself: pass it as `yieldToIo`. */
  readonly yieldToIo = (): Promise<void> => {
    const turn = deferred();
    this.#asked.push(turn);
    this.asked.add();
    return turn.promise;
  };

  /** Turns asked for and not yet given. */
  get waiting(): number {
    return this.#asked.length;
  }

  /**
   * Give the oldest turn asked for (waiting for one to be asked if none is); resolves once the
   * batch it was asked for has been taken and handed to the store.
   */
  async give(): Promise<void> {
    await this.asked.reached(this.asked.value - this.#asked.length + 1);
    const turn = this.#asked.shift() as Deferred;
    turn.resolve();
    // Reactions run in the order they were added: the group commit's own, which takes the batch, first.
    await turn.promise;
  }

  /** Give every turn asked for so far; resolves once their batches have been taken. */
  async giveAll(): Promise<void> {
    while (this.#asked.length > 0) await this.give();
  }
}
