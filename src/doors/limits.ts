// Connection counting per door and per client address, for clean refusals at the limits.

/**
 * Connections per key on the other nodes of a cluster, so a per-key limit holds for the cluster:
 * what this node counts is shared, and what the others count is asked for at admission.
 */
export interface SharedCounts {
  /** How many connections from `key` the other live nodes hold now (0 when that cannot be known). */
  elsewhere(key: string): Promise<number>;
  /** This node now holds `count` connections from `key`. */
  set(key: string, count: number): void;
}

/** Counts open connections in total and per key (a client address). */
export class ConnectionLimit {
  readonly #maxTotal: number;
  readonly #maxPerKey: number;
  readonly #perKey = new Map<string, number>();
  readonly #shared: SharedCounts | undefined;
  #total = 0;

  constructor(maxTotal: number, maxPerKey = Number.POSITIVE_INFINITY, shared?: SharedCounts) {
    this.#maxTotal = maxTotal;
    this.#maxPerKey = maxPerKey;
    this.#shared = Number.isFinite(maxPerKey) ? shared : undefined;
  }

  /**
   * `why`, with the other nodes' connections from `key` counted against the per-key limit (a cluster):
   * two nodes admitting at the same moment may each let one more in.
   */
  async whyShared(key: string): Promise<'total' | 'per_key' | undefined> {
    const here = this.why(key);
    if (here || !this.#shared) return here;
    const elsewhere = await this.#shared.elsewhere(key).catch(() => 0);
    if ((this.#perKey.get(key) ?? 0) + elsewhere >= this.#maxPerKey) return 'per_key';
    return this.why(key);
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
    const count = (this.#perKey.get(key) ?? 0) + 1;
    this.#perKey.set(key, count);
    this.#shared?.set(key, count);
    return true;
  }

  /** Give back what one take counted. */
  give(key: string): void {
    this.#total -= 1;
    const left = (this.#perKey.get(key) ?? 1) - 1;
    if (left === 0) this.#perKey.delete(key);
    else this.#perKey.set(key, left);
    this.#shared?.set(key, left);
  }
}
