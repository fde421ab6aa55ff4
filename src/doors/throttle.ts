// Flood control that slows and never drops: a token bucket per connection in front of a short queue.
// A connection over its rate stops being read until tokens refill (IRC's "fakelag"), so the excess
// waits in the client's and the kernel's buffers and then arrives, in order.
import { Encoded } from '../hub/peer.ts';
import { NoticeCode } from '../protocol/codes.ts';

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
 */
export class Throttle<T> {
  readonly #limits: ThrottleLimits;
  readonly #target: ThrottleTarget<T>;
  readonly #clock: ThrottleClock;
  readonly #graceMs: number;
  readonly #queue: Array<{ frame: T; bytes: number }> = [];
  #heldBytes = 0;
  #tokens: number;
  #refilledAt: number;
  /** When the current flood began; undefined while the connection is within its rate. */
  #slowedSince: number | undefined;
  /** When the queue last emptied. */
  #drainedAt = Number.NEGATIVE_INFINITY;
  #cancelTimer: (() => void) | undefined;
  #closed = false;

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

  /** A frame arrived; `bytes` is its size on the wire. */
  push(frame: T, bytes: number): void {
    if (this.#closed) return;
    const now = this.#clock.now();
    if (this.#queue.length === 0) {
      this.#refill(now);
      if (this.#tokens >= 1) {
        this.#tokens -= 1;
        if (this.#slowedSince !== undefined && now - this.#drainedAt > this.#graceMs) {
          this.#slowedSince = undefined;
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
    const retryAfterMs = this.#untilToken();
    if (this.#slowedSince === undefined || now - this.#drainedAt > this.#graceMs) {
      this.#slowedSince = now;
      this.#target.slowed(Math.ceil(retryAfterMs));
    } else if (now - this.#slowedSince >= this.#limits.maxSlowedMs) {
      this.#flood('sustained');
      return;
    }
    this.#schedule(retryAfterMs);
  }

  /** Stop: nothing more is handed on and no timer stays behind. */
  close(): void {
    this.#closed = true;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    this.#queue.length = 0;
    this.#heldBytes = 0;
  }

  #refill(now: number): void {
    const { burst, perSecond } = this.#limits;
    this.#tokens = Math.min(burst, this.#tokens + ((now - this.#refilledAt) / 1000) * perSecond);
    this.#refilledAt = now;
  }

  #untilToken(): number {
    return Math.max(0, ((1 - this.#tokens) / this.#limits.perSecond) * 1000);
  }

  #schedule(ms: number): void {
    this.#cancelTimer?.();
    this.#cancelTimer = this.#clock.after(() => this.#drain(), Math.max(1, ms));
  }

  #drain(): void {
    this.#cancelTimer = undefined;
    if (this.#closed) return;
    const now = this.#clock.now();
    this.#refill(now);
    while (this.#queue.length > 0 && this.#tokens >= 1) {
      const next = this.#queue.shift() as { frame: T; bytes: number };
      this.#heldBytes -= next.bytes;
      this.#tokens -= 1;
      this.#target.take(next.frame);
      if (this.#closed) return;
    }
    if (this.#queue.length === 0) {
      this.#drainedAt = now;
      this.#target.resume();
      return;
    }
    if (this.#slowedSince !== undefined && now - this.#slowedSince >= this.#limits.maxSlowedMs) {
      this.#flood('sustained');
      return;
    }
    this.#schedule(this.#untilToken());
  }

  #flood(reason: FloodReason): void {
    this.close();
    this.#target.flood(reason);
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
