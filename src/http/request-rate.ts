// A rate for the HTTP API: a token bucket per person (signed in) or per client address. A request
// cannot be slowed the way a connection's frames are (nothing waits to be read), so one past the
// rate is refused with 429 and told when to ask again; nothing it asked for was done.
import { dropOldest } from '../bounded.ts';
import { msUntil, type Rate, tokensAt } from '../rate.ts';

/** How many requests one requester may make at once, and how many a second after that. */
export type RequestRateLimits = Rate;

/**
 * Requesters whose buckets are kept, the least recently seen let go first. A bucket let go is as
 * good as full, which one unseen for `burst / perSecond` seconds is anyway; only this many other
 * requesters in between could reset it.
 */
export const REQUESTERS_KEPT = 10_000;

interface Bucket {
  tokens: number;
  at: number;
}

/** The HTTP API's rate, per requester. */
export class RequestRate {
  readonly #limits: RequestRateLimits;
  readonly #now: () => number;
  readonly #kept: number;
  /** By requester, the least recently seen first. */
  readonly #buckets = new Map<string, Bucket>();

  constructor(
    limits: RequestRateLimits,
    now: () => number = () => performance.now(),
    kept = REQUESTERS_KEPT,
  ) {
    this.#limits = limits;
    this.#now = now;
    this.#kept = kept;
  }

  /**
   * Take a request's token from `requester`'s bucket: 0 when the request may go on, else how many
   * milliseconds until it could. A refused request takes nothing, so asking again at once costs the
   * requester no more than waiting.
   */
  take(requester: string): number {
    const now = this.#now();
    let bucket = this.#buckets.get(requester);
    if (bucket) {
      this.#buckets.delete(requester);
      bucket.tokens = tokensAt(this.#limits, bucket.tokens, bucket.at, now);
      bucket.at = now;
    } else {
      bucket = { tokens: this.#limits.burst, at: now };
    }
    this.#buckets.set(requester, bucket);
    if (this.#buckets.size > this.#kept) dropOldest(this.#buckets, this.#kept);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.ceil(msUntil(this.#limits, bucket.tokens));
  }

  /** Requesters whose buckets are kept. */
  get size(): number {
    return this.#buckets.size;
  }
}

/** How long what a session token counts for is taken from memory. */
export const KNOWN_FOR_MS = 1000;

/**
 * Whom each session token seen in the last second counted for (its person, or the address when its
 * session had ended), so a request is counted without a database read: a client past its rate then
 * costs a signature check and a lookup here. Only the counting uses it; the request itself, if let
 * through, reads its session as always.
 */
export class KnownSessions {
  readonly #now: () => number;
  readonly #kept: number;
  /** By token, the least recently seen first. */
  readonly #requesters = new Map<string, { requester: string; at: number }>();

  constructor(now: () => number = () => performance.now(), kept = REQUESTERS_KEPT) {
    this.#now = now;
    this.#kept = kept;
  }

  /** Whom `token` counted for within the last second, if it was seen then. */
  requesterOf(token: string): string | undefined {
    const known = this.#requesters.get(token);
    if (!known) return undefined;
    if (this.#now() - known.at < KNOWN_FOR_MS) return known.requester;
    this.#requesters.delete(token);
    return undefined;
  }

  /** `token` was found to count for `requester`. */
  learn(token: string, requester: string): void {
    this.#requesters.delete(token);
    this.#requesters.set(token, { requester, at: this.#now() });
    if (this.#requesters.size > this.#kept) dropOldest(this.#requesters, this.#kept);
  }
}
