// Connection counting per door and per client address, for clean refusals at the limits.

/** Counts open connections in total and per key (a client address). */
export class ConnectionLimit {
  readonly #maxTotal: number;
  readonly #maxPerKey: number;
  readonly #perKey = new Map<string, number>();
  #total = 0;

  constructor(maxTotal: number, maxPerKey = Number.POSITIVE_INFINITY) {
    this.#maxTotal = maxTotal;
    this.#maxPerKey = maxPerKey;
  }

  /** Whether one more connection from `key` would be within the limits (checked before an upgrade). */
  why(key: string): 'total' | 'per_key' | undefined {
    if (this.#total >= this.#maxTotal) return 'total';
    if ((this.#perKey.get(key) ?? 0) >= this.#maxPerKey) return 'per_key';
    return undefined;
  }

  /** Count a connection; returns its release, or undefined when a limit is reached. */
  acquire(key: string): (() => void) | undefined {
    if (!this.take(key)) return undefined;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.give(key);
    };
  }

  /** Count a connection if the limits allow it; whether they did. Each take is given back once. */
  take(key: string): boolean {
    if (this.why(key)) return false;
    this.#total += 1;
    this.#perKey.set(key, (this.#perKey.get(key) ?? 0) + 1);
    return true;
  }

  /** Give back what one take counted. */
  give(key: string): void {
    this.#total -= 1;
    const left = (this.#perKey.get(key) ?? 1) - 1;
    if (left === 0) this.#perKey.delete(key);
    else this.#perKey.set(key, left);
  }
}
