// Flood control that slows and never drops: a token bucket per connection in front of a short queue.
// A connection over its rate stops being read until tokens refill (IRC's "fakelag"), so the excess
// waits in the client's and the kernel's buffers and then arrives, in order.
import { Encoded } from '../hub/peer.ts';
import { NoticeCode } from '../protocol/codes.ts';
import { msUntil, type Rate, tokensAt } from '../rate.ts';

/** How fast a connection may send, and when a sender that never slows down is closed. */
export interface ThrottleLimits {
  /** Frames a connection may send at once before the rate applies. */
  burst: number;
  /** Frames per second after the burst. */
  perSecond: number;
  /** A connection slowed without a break for this long is closed. */
  maxSlowedMs: number;
  /**
   * Bytes held for a slowed connection. Where reading can be paused only what was already read is
   * held; where it cannot (Deno's server WebSocket), this bound is what ends a flood.
   */
  maxHeldBytes: number;
}

/** Why a throttled connection is closed. */
export type FloodReason = 'sustained' | 'held';

/** What a throttle drives: the frame handler, the connection's reading, and its closing. */
export interface ThrottleTarget<T> {
  /** Handle one frame; called in arrival order, at most at the allowed rate. */
  take(frame: T): void;
  /** Stop reading the connection (the excess then waits in the client's and the kernel's buffers). */
  pause(): void;
  resume(): void;
  /** The connection has just started being slowed; the next frame is due in `retryAfterMs`. */
  slowed(retryAfterMs: number): void;
  /** Close the connection: it kept sending faster than its rate for too long, or held too much. */
  flood(reason: FloodReason): void;
  /** A frame has to wait for its turn (counted for the metrics). */
  held?(): void;
}

/** Clock and timer, injectable so tests control time. */
export interface ThrottleClock {
  now(): number;
  /** Call `fn` after `ms`; returns a function that cancels it. */
  after(fn: () => void, ms: number): () => void;
}

const realClock: ThrottleClock = {
  now: () => performance.now(),
  after: (fn, ms) => {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
};

/**
 * One connection's throttle. Frames within the rate are handed on at once; the first frame past it
 * pauses reading and waits, with whatever else was already read, until a token is due. A slowed
 * connection that pauses for less than a second is still the same flood: only a real break (no
 * frame waiting for over a second) ends it, so a sender that is always ahead of its rate is closed
 * after `maxSlowedMs` however its frames arrive.
 *
 * Shared (`share`), a frame also needs a token of the bucket of all the connections of its person
 * (or address). A connection that has a token of its own and waits only for the shared bucket takes
 * its turn there with the others, one frame a turn; that wait is not its flood, since the
 * connection itself is within its rate.
 */
export class Throttle<T> implements SharedWaiter {
  readonly #limits: ThrottleLimits;
  readonly #target: ThrottleTarget<T>;
  readonly #clock: ThrottleClock;
  readonly #graceMs: number;
  readonly #queue: Array<{ frame: T; bytes: number }> = [];
  #heldBytes = 0;
  #tokens: number;
  #refilledAt: number;
  /** When the current slowing began, by either rate: the client is told once a slowing. */
  #slowedSince: number | undefined;
  /** When the connection's own rate began to slow it: closed after maxSlowedMs without a break. */
  #floodSince: number | undefined;
  /** When the queue last emptied. */
  #drainedAt = Number.NEGATIVE_INFINITY;
  #cancelTimer: (() => void) | undefined;
  #closed = false;
  /** The bucket this connection draws on with the other connections of its person or address. */
  #shared: SharedRate | undefined;

  constructor(limits: ThrottleLimits, target: ThrottleTarget<T>, clock: ThrottleClock = realClock) {
    this.#limits = limits;
    this.#target = target;
    this.#clock = clock;
    this.#graceMs = Math.max(1000, 2000 / limits.perSecond);
    this.#tokens = limits.burst;
    this.#refilledAt = clock.now();
  }

  /** Whether frames are waiting for their turn. */
  get slowed(): boolean {
    return this.#queue.length > 0;
  }

  /**
   * From now on a frame also takes a token of the bucket `rates` keeps for `requester`, shared by all
   * the connections of this one's person (or address): many connections opened at once cannot each
   * spend a whole burst.
   */
  share(rates: SharedRates, requester: string): void {
    if (this.#closed) return;
    this.#shared?.leave(this);
    this.#shared = rates.join(requester);
  }

  /** A frame arrived; `bytes` is its size on the wire. */
  push(frame: T, bytes: number): void {
    if (this.#closed) return;
    const now = this.#clock.now();
    if (this.#queue.length === 0) {
      this.#refill(now);
      if (this.#tokens >= 1 && (this.#shared === undefined || this.#shared.take(now))) {
        this.#tokens -= 1;
        if (now - this.#drainedAt > this.#graceMs) {
          this.#slowedSince = undefined;
          this.#floodSince = undefined;
        }
        this.#target.take(frame);
        return;
      }
    }
    this.#queue.push({ frame, bytes });
    this.#heldBytes += bytes;
    this.#target.held?.();
    if (this.#heldBytes > this.#limits.maxHeldBytes) {
      this.#flood('held');
      return;
    }
    if (this.#queue.length > 1) return;
    this.#target.pause();
    const fresh = now - this.#drainedAt > this.#graceMs;
    if (this.#slowedSince === undefined || fresh) {
      this.#slowedSince = now;
      this.#target.slowed(Math.ceil(this.#untilToken(now)));
    }
    this.#wait(now, fresh);
  }

  /** The shared bucket's turn for this connection (SharedRate): one frame, if its own rate allows. */
  turn(now: number): void {
    if (this.#closed || this.#queue.length === 0) return;
    this.#refill(now);
    if (this.#tokens >= 1 && this.#shared?.take(now)) {
      this.#tokens -= 1;
      const next = this.#queue.shift() as { frame: T; bytes: number };
      this.#heldBytes -= next.bytes;
      this.#target.take(next.frame);
      if (this.#closed) return;
    }
    this.#next(now);
  }

  /** Stop: nothing more is handed on and no timer stays behind. */
  close(): void {
    if (!this.#closed) this.#shared?.leave(this);
    this.#shared = undefined;
    this.#closed = true;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    this.#queue.length = 0;
    this.#heldBytes = 0;
  }

  #refill(now: number): void {
    this.#tokens = tokensAt(this.#limits, this.#tokens, this.#refilledAt, now);
    this.#refilledAt = now;
  }

  #untilOwnToken(): number {
    return msUntil(this.#limits, this.#tokens);
  }

  #untilToken(now: number): number {
    return Math.max(this.#untilOwnToken(), this.#shared?.untilToken(now) ?? 0);
  }

  /**
   * Wait for the next frame's tokens: in line at the shared bucket when only it is empty, else for
   * the connection's own next token, which is its flood (`fresh`: after a real break, a new one).
   */
  #wait(now: number, fresh: boolean): void {
    if (this.#shared !== undefined && this.#tokens >= 1) {
      this.#shared.wait(this);
      return;
    }
    if (this.#floodSince === undefined || fresh) this.#floodSince = now;
    else if (now - this.#floodSince >= this.#limits.maxSlowedMs) {
      this.#flood('sustained');
      return;
    }
    this.#cancelTimer?.();
    this.#cancelTimer = this.#clock.after(() => this.#drain(), Math.max(1, this.#untilOwnToken()));
  }

  #drain(): void {
    this.#cancelTimer = undefined;
    if (this.#closed) return;
    const now = this.#clock.now();
    this.#refill(now);
    while (this.#queue.length > 0 && this.#tokens >= 1) {
      if (this.#shared !== undefined && !this.#shared.take(now)) break;
      const next = this.#queue.shift() as { frame: T; bytes: number };
      this.#heldBytes -= next.bytes;
      this.#tokens -= 1;
      this.#target.take(next.frame);
      if (this.#closed) return;
    }
    this.#next(now);
  }

  /** After frames were handed on: read again when none waits, else wait for the next tokens. */
  #next(now: number): void {
    if (this.#queue.length === 0) {
      this.#drainedAt = now;
      this.#target.resume();
      return;
    }
    this.#wait(now, false);
  }

  #flood(reason: FloodReason): void {
    this.close();
    this.#target.flood(reason);
  }
}

/** A connection waiting in line at a shared bucket. */
export interface SharedWaiter {
  /** A token of the shared bucket is there: take it, if the connection's own rate allows, for one frame. */
  turn(now: number): void;
}

/**
 * A token bucket several connections draw on together (SharedRates). Those waiting for it take
 * turns, one frame each, on one timer: however many connections wait, a token wakes one.
 */
export class SharedRate {
  readonly #limits: Rate;
  readonly #clock: ThrottleClock;
  readonly #release: (rate: SharedRate) => void;
  #tokens: number;
  #refilledAt: number;
  /** Connections drawing on it. */
  users = 0;
  /** Connections waiting for a token, in turn order (made for the first). */
  #line: Set<SharedWaiter> | undefined;
  #cancelTimer: (() => void) | undefined;
  #serving = false;

  constructor(limits: Rate, clock: ThrottleClock, release: (rate: SharedRate) => void) {
    this.#limits = limits;
    this.#clock = clock;
    this.#release = release;
    this.#tokens = limits.burst;
    this.#refilledAt = clock.now();
  }

  /** Take a token if one is there. */
  take(now: number): boolean {
    this.#tokens = this.#tokensAt(now);
    this.#refilledAt = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Wait in line for a token: `waiter.turn` is called when one is there, in order of asking. */
  wait(waiter: SharedWaiter): void {
    this.#line ??= new Set();
    this.#line.add(waiter);
    if (!this.#serving && this.#cancelTimer === undefined) this.#schedule(this.#clock.now());
  }

  /** A connection that joined this bucket has closed: out of line, and one user fewer. */
  leave(waiter: SharedWaiter): void {
    this.#line?.delete(waiter);
    if (this.#line?.size === 0) {
      this.#cancelTimer?.();
      this.#cancelTimer = undefined;
    }
    this.#release(this);
  }

  /** How long until the next token, in ms. */
  untilToken(now: number): number {
    return msUntil(this.#limits, this.#tokensAt(now));
  }

  /** How long until the bucket is full again, in ms. */
  untilFull(now: number): number {
    return msUntil(this.#limits, this.#tokensAt(now), this.#limits.burst);
  }

  #tokensAt(now: number): number {
    return tokensAt(this.#limits, this.#tokens, this.#refilledAt, now);
  }

  #schedule(now: number): void {
    this.#cancelTimer = this.#clock.after(() => this.#serve(), Math.max(1, this.untilToken(now)));
  }

  /** Give each token there to the next in line, one frame a turn; the line keeps its order. */
  #serve(): void {
    this.#cancelTimer = undefined;
    const line = this.#line;
    if (!line) return;
    this.#serving = true;
    try {
      // Each turn takes a token or leaves the line, so this ends.
      for (let now = this.#clock.now(); line.size > 0 && this.#tokensAt(now) >= 1; now = this.#clock.now()) {
        const [first] = line as Set<SharedWaiter> & Iterable<SharedWaiter>;
        line.delete(first as SharedWaiter);
        // It takes the token, and goes to the back of the line if it has more to send.
        (first as SharedWaiter).turn(now);
      }
    } finally {
      this.#serving = false;
    }
    if (line.size > 0) this.#schedule(this.#clock.now());
  }
}

/** Buckets no connection draws on that are kept at most (SharedRates), the longest idle let go first. */
const MAX_IDLE_RATES = 10_000;

/**
 * The shared buckets, one per person (or address). A bucket is kept while a connection draws on it,
 * and after the last one closes until it would be full again, so closing every connection and
 * opening them again does not buy a new burst; at most MAX_IDLE_RATES of those are kept.
 */
export class SharedRates {
  readonly #limits: Rate;
  readonly #clock: ThrottleClock;
  readonly #rates = new Map<string, SharedRate>();
  /** The buckets no connection draws on, in the order they became so. */
  readonly #idle = new Map<string, SharedRate>();
  #sweptAt = Number.NEGATIVE_INFINITY;

  constructor(limits: Rate, clock: ThrottleClock = realClock) {
    this.#limits = limits;
    this.#clock = clock;
  }

  /** The bucket of `requester` (a person, or an address) for one more connection; give it back with its `leave`. */
  join(requester: string): SharedRate {
    const now = this.#clock.now();
    this.#sweep(now);
    let rate = this.#rates.get(requester);
    if (!rate) {
      rate = new SharedRate(this.#limits, this.#clock, (left) => this.#leave(requester, left));
      this.#rates.set(requester, rate);
    }
    this.#idle.delete(requester);
    rate.users += 1;
    return rate;
  }

  /** A connection that joined `requester`'s bucket has closed. */
  #leave(requester: string, rate: SharedRate): void {
    rate.users -= 1;
    if (rate.users > 0 || this.#rates.get(requester) !== rate) return;
    this.#idle.set(requester, rate);
    if (this.#idle.size > MAX_IDLE_RATES) {
      const [oldest] = this.#idle.keys() as IterableIterator<string>;
      this.#forget(oldest as string);
    }
    this.#sweep(this.#clock.now());
  }

  /** Buckets kept now (drawn on, or refilling). */
  get size(): number {
    return this.#rates.size;
  }

  /** Let go of the idle buckets that are full again; at most once a second. */
  #sweep(now: number): void {
    if (now - this.#sweptAt < 1000) return;
    this.#sweptAt = now;
    for (const [requester, rate] of this.#idle) if (rate.untilFull(now) === 0) this.#forget(requester);
  }

  #forget(requester: string): void {
    this.#idle.delete(requester);
    this.#rates.delete(requester);
  }
}

/**
 * Reading of one connection, paused while any reason holds it (the throttle, or too many messages
 * awaiting commit) and resumed when none does.
 */
export class ReadGate {
  readonly #target: Pausable;
  /** The reasons holding it: a few at most, so a list (a Set would cost every connection 150 bytes). */
  #holds: string[] | undefined;

  constructor(target: Pausable) {
    this.#target = target;
  }

  hold(reason: string): void {
    this.#holds ??= [];
    if (this.#holds.includes(reason)) return;
    this.#holds.push(reason);
    if (this.#holds.length === 1) this.#target.stopReading();
  }

  release(reason: string): void {
    const at = this.#holds?.indexOf(reason) ?? -1;
    if (at === -1 || !this.#holds) return;
    this.#holds.splice(at, 1);
    if (this.#holds.length === 0) this.#target.startReading();
  }
}

/** A connection whose reading can be stopped and started. */
export interface Pausable {
  stopReading(): void;
  startReading(): void;
}

/** Bytes held for one slowed connection: a few reads' worth where reading pauses, the bound where it cannot. */
export const MAX_HELD_BYTES = 1024 * 1024;

/** The throttle settings from the configured limits. */
export function throttleLimits(limits: {
  rateBurst: number;
  ratePerSecond: number;
  floodTimeoutMs: number;
}): ThrottleLimits {
  return {
    burst: limits.rateBurst,
    perSecond: limits.ratePerSecond,
    maxSlowedMs: limits.floodTimeoutMs,
    maxHeldBytes: MAX_HELD_BYTES,
  };
}

/** The notice a slowed opted-in client gets once, when slowing starts. */
export function rateLimitedNotice(retryAfterMs: number): Encoded {
  return new Encoded({
    type: 'notice',
    code: NoticeCode.RateLimited,
    message: 'sending faster than the rate allows; frames are being slowed, none is dropped',
    retry_after_ms: retryAfterMs,
  });
}
