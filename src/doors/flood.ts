// Flood control for one connection: a token bucket, and a count of recent drops that ends it.

/** What to do with one frame. */
export type Verdict = 'ok' | 'drop' | 'disconnect';

/** Flood settings. */
export interface FloodLimits {
  /** Frames that may come at once. */
  burst: number;
  /** Frames per second after the burst. */
  perSecond: number;
  /** Drops within `windowMs` after which the connection is closed. */
  disconnectAfter: number;
  windowMs?: number;
}

/** A token bucket per connection. Pure: time comes from `now`. */
export class FloodGate {
  readonly #limits: Required<FloodLimits>;
  readonly #now: () => number;
  #tokens: number;
  #last: number;
  #windowStart: number;
  #drops = 0;

  constructor(limits: FloodLimits, now: () => number = () => performance.now()) {
    this.#limits = { windowMs: 10_000, ...limits };
    this.#now = now;
    this.#tokens = limits.burst;
    this.#last = now();
    this.#windowStart = this.#last;
  }

  /** Frames dropped in the current window. */
  get drops(): number {
    return this.#drops;
  }

  /** Spend a token for one frame. */
  take(): Verdict {
    const now = this.#now();
    const { burst, perSecond, disconnectAfter, windowMs } = this.#limits;
    this.#tokens = Math.min(burst, this.#tokens + ((now - this.#last) / 1000) * perSecond);
    this.#last = now;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 'ok';
    }
    if (now - this.#windowStart > windowMs) {
      this.#windowStart = now;
      this.#drops = 0;
    }
    this.#drops += 1;
    return this.#drops >= disconnectAfter ? 'disconnect' : 'drop';
  }
}

/** The flood settings from the configured limits. */
export function floodLimits(limits: {
  rateBurst: number;
  ratePerSecond: number;
  floodDisconnect: number;
}): FloodLimits {
  return {
    burst: limits.rateBurst,
    perSecond: limits.ratePerSecond,
    disconnectAfter: limits.floodDisconnect,
  };
}
