// Reconnect delays: capped exponential backoff with full jitter, reset once a connection has held.

/** How reconnects are spaced. */
export interface BackoffPolicy {
  /** The first ceiling, doubled after each failed attempt. */
  readonly baseMs: number;
  /** The largest ceiling. */
  readonly capMs: number;
  /** A connection that stayed up this long resets the ceiling to `baseMs`. */
  readonly stableMs: number;
}

/** 0.5 s doubling to 30 s, reset after a stable minute. */
export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 500, capMs: 30_000, stableMs: 60_000 };

/** The delays between attempts to reconnect: a random wait below a ceiling that doubles up to a cap. */
export class Backoff {
  readonly #policy: BackoffPolicy;
  readonly #random: () => number;
  #attempt = 0;

  constructor(policy: BackoffPolicy = DEFAULT_BACKOFF, random: () => number = Math.random) {
    this.#policy = policy;
    this.#random = random;
  }

  /** The ceiling of the next delay. */
  get ceilingMs(): number {
    return Math.min(this.#policy.capMs, this.#policy.baseMs * 2 ** this.#attempt);
  }

  /** The wait before the next attempt (full jitter: anywhere from 0 to the ceiling). */
  next(): number {
    const delay = Math.floor(this.#random() * this.ceilingMs);
    if (this.ceilingMs < this.#policy.capMs) this.#attempt += 1;
    return delay;
  }

  /** A connection ended after `upMs`: a stable one starts the ceilings over. */
  ended(upMs: number): void {
    if (upMs >= this.#policy.stableMs) this.#attempt = 0;
  }
}
