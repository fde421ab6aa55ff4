// A token bucket's arithmetic, the same for every rate the server keeps: a connection's frames, a
// person's frames together, the HTTP API's requests and the messages a reader may read.

/** So many at once, then so many a second. */
export interface Rate {
  readonly burst: number;
  readonly perSecond: number;
}

/** What a bucket that held `tokens` at `at` holds at `now` (ms): refilled at the rate, at most its burst. */
export const tokensAt = (rate: Rate, tokens: number, at: number, now: number): number =>
  Math.min(rate.burst, tokens + ((now - at) / 1000) * rate.perSecond);

/** Milliseconds until a bucket holding `tokens` holds `wanted` (0 if it does already). */
export const msUntil = (rate: Rate, tokens: number, wanted = 1): number =>
  Math.max(0, ((wanted - tokens) / rate.perSecond) * 1000);
