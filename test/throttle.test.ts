// The throttle on its own, with a clock the tests move: it slows and never drops.
import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS } from '../src/config.ts';
import {
  type FloodReason,
  ReadGate,
  SharedRates,
  Throttle,
  type ThrottleClock,
  type ThrottleLimits,
  throttleLimits,
} from '../src/doors/throttle.ts';

/** A clock whose time only moves when the test says so; due timers fire as it passes them. */
class FakeClock implements ThrottleClock {
  time = 0;
  readonly #timers = new Set<{ at: number; fn: () => void }>();

  now(): number {
    return this.time;
  }

  after(fn: () => void, ms: number): () => void {
    const timer = { at: this.time + ms, fn };
    this.#timers.add(timer);
    return () => this.#timers.delete(timer);
  }

  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const due = [...this.#timers].filter((t) => t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.#timers.delete(due);
      this.time = due.at;
      due.fn();
    }
    this.time = end;
  }
}

function harness(limits: Partial<ThrottleLimits> = {}) {
  const clock = new FakeClock();
  const taken: number[] = [];
  const events: string[] = [];
  let paused = false;
  let flooded: FloodReason | undefined;
  const throttle = new Throttle<number>(
    { burst: 5, perSecond: 10, maxSlowedMs: 30_000, maxHeldBytes: 1_000_000, ...limits },
    {
      take: (n) => taken.push(n),
      pause: () => {
        paused = true;
        events.push('pause');
      },
      resume: () => {
        paused = false;
        events.push('resume');
      },
      slowed: (ms) => events.push(`slowed ${ms}`),
      flood: (reason) => {
        flooded = reason;
      },
    },
    clock,
  );
  let next = 0;
  const send = (count: number, bytes = 10) => {
    for (let i = 0; i < count; i++) throttle.push(next++, bytes);
  };
  return {
    clock,
    throttle,
    taken,
    events,
    send,
    paused: () => paused,
    flooded: () => flooded,
  };
}

describe('throttle', () => {
  it('hands a burst on at once without pausing or telling the client anything', () => {
    const h = harness();
    h.send(5);
    expect(h.taken).toEqual([0, 1, 2, 3, 4]);
    expect(h.events).toEqual([]);
  });

  it('slows frames past the burst to the rate, in order, and drops none', () => {
    const h = harness();
    h.send(25);
    expect(h.taken).toHaveLength(5);
    expect(h.paused()).toBe(true);
    h.clock.advance(1000);
    expect(h.taken).toHaveLength(15);
    h.clock.advance(1000);
    expect(h.taken).toEqual(Array.from({ length: 25 }, (_, i) => i));
    expect(h.paused()).toBe(false);
    expect(h.flooded()).toBeUndefined();
  });

  it('tells the client once when slowing starts, with when the next frame is due', () => {
    const h = harness();
    h.send(8);
    expect(h.events).toEqual(['pause', 'slowed 100']);
    h.clock.advance(300);
    expect(h.events).toEqual(['pause', 'slowed 100', 'resume']);
  });

  it('refills the burst after a pause, so a paste after a quiet spell goes through untouched', () => {
    const h = harness();
    h.send(5);
    h.clock.advance(500);
    h.send(5);
    expect(h.taken).toHaveLength(10);
    expect(h.events).toEqual([]);
  });

  it('closes a sender that stays ahead of its rate without a break for the flood timeout', () => {
    const h = harness({ maxSlowedMs: 5000 });
    let slowedAt: number | undefined;
    // Reading resumes whenever the queue empties; a flooder then always has the next frame waiting.
    for (let t = 0; t < 8000 && !h.flooded(); t += 50) {
      h.send(1);
      if (slowedAt === undefined && h.paused()) slowedAt = h.clock.time;
      h.clock.advance(50);
    }
    expect(h.flooded()).toBe('sustained');
    const slowedFor = h.clock.time - (slowedAt ?? 0);
    expect(slowedFor).toBeGreaterThanOrEqual(5000);
    expect(slowedFor).toBeLessThan(5200);
  });

  it('keeps a sender at exactly its rate open however long it sends', () => {
    const h = harness({ maxSlowedMs: 5000 });
    for (let t = 0; t < 60_000; t += 100) {
      h.send(1);
      h.clock.advance(100);
    }
    expect(h.flooded()).toBeUndefined();
    expect(h.taken).toHaveLength(600);
  });

  it('a real break (over a second with nothing waiting) ends a flood; the next one is timed afresh', () => {
    const h = harness({ maxSlowedMs: 5000 });
    // Twice three seconds of sending at twice the rate, a break between: each flood lasts under five.
    for (let t = 0; t < 2000; t += 50) {
      h.send(1);
      h.clock.advance(50);
    }
    h.clock.advance(10_000);
    for (let t = 0; t < 2000; t += 50) {
      h.send(1);
      h.clock.advance(50);
    }
    h.clock.advance(10_000);
    expect(h.flooded()).toBeUndefined();
    expect(h.taken).toHaveLength(80);
    expect(h.events.filter((e) => e.startsWith('slowed'))).toHaveLength(2);
  });

  it('closes a connection whose held frames pass the byte bound (where reading cannot pause)', () => {
    const h = harness({ maxHeldBytes: 1000 });
    h.send(5, 100); // the burst, taken at once
    h.send(10, 100); // 1,000 bytes held: at the bound
    expect(h.flooded()).toBeUndefined();
    h.send(1, 100);
    expect(h.flooded()).toBe('held');
    h.clock.advance(10_000);
    expect(h.taken).toHaveLength(5);
  });

  it('hands nothing on after it is closed', () => {
    const h = harness();
    h.send(10);
    h.throttle.close();
    h.clock.advance(10_000);
    expect(h.taken).toHaveLength(5);
  });

  it('the shipped defaults let a paste of 100 lines through untouched', () => {
    const h = harness(throttleLimits(DEFAULT_LIMITS));
    h.send(100);
    expect(h.taken).toHaveLength(100);
    expect(h.events).toEqual([]);
  });
});

/** `n` connections of whom `requesterOf(i)` says, on one clock, sharing `shared` per requester. */
function people(
  n: number,
  requesterOf: (i: number) => string,
  shared = { burst: 12, perSecond: 10 },
  own: Partial<ThrottleLimits> = {},
) {
  const clock = new FakeClock();
  let timers = 0;
  const counted: ThrottleClock = {
    now: () => clock.now(),
    after: (fn, ms) => {
      timers += 1;
      return clock.after(fn, ms);
    },
  };
  const rates = new SharedRates(shared, counted);
  const open = (i: number) => {
    const taken: number[] = [];
    const flooded: FloodReason[] = [];
    const throttle = new Throttle<number>(
      { burst: 5, perSecond: 10, maxSlowedMs: 30_000, maxHeldBytes: 1_000_000, ...own },
      {
        take: (f) => taken.push(f),
        pause: () => {},
        resume: () => {},
        slowed: () => {},
        flood: (reason) => flooded.push(reason),
      },
      counted,
    );
    throttle.share(rates, requesterOf(i));
    return { throttle, taken, flooded };
  };
  const connections = Array.from({ length: n }, (_, i) => open(i));
  return { clock, rates, connections, open, timers: () => timers };
}

describe("a person's connections together", () => {
  it('share one burst and one rate: the rest is slowed, in order, and none is dropped', () => {
    const { clock, connections } = people(4, () => 'person ada');
    connections.forEach((c, i) => {
      for (let f = 0; f < 5; f++) c.throttle.push(i * 100 + f, 10);
    });
    expect(connections.reduce((all, c) => all + c.taken.length, 0)).toBe(12);
    clock.advance(400);
    expect(connections.reduce((all, c) => all + c.taken.length, 0)).toBe(16);
    clock.advance(400);
    expect(connections.map((c) => c.taken)).toEqual(
      connections.map((_, i) => Array.from({ length: 5 }, (_, f) => i * 100 + f)),
    );
  });

  it("do not slow another person's, whose burst is their own", () => {
    const { connections } = people(4, (i) => (i < 3 ? 'person ada' : 'person bo'));
    for (const c of connections) for (let f = 0; f < 5; f++) c.throttle.push(f, 10);
    expect(connections.map((c) => c.taken.length)).toEqual([5, 5, 2, 5]);
  });

  it('take turns at the shared bucket, a frame each, on one timer however many wait', () => {
    const { clock, connections, timers } = people(100, () => 'address 203.0.113.0');
    for (const c of connections) for (let f = 0; f < 3; f++) c.throttle.push(f, 10);
    // The burst of 12 went to the first four; the other 96 wait in line.
    expect(connections.slice(0, 5).map((c) => c.taken.length)).toEqual([3, 3, 3, 3, 0]);
    const before = timers();
    clock.advance(9_650);
    expect(connections.slice(4).map((c) => c.taken.length)).toEqual(Array(96).fill(1));
    // About one timer a token (96 tokens), not one per waiting connection per token.
    expect(timers() - before).toBeLessThan(200);
    clock.advance(9_600);
    // Round after round: no connection gets a second frame before each has had one, in order.
    const counts = connections.slice(4).map((c) => c.taken.length);
    expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
    expect(connections.every((c) => c.taken.every((f, i) => f === i))).toBe(true);
  });

  it('never close a connection within its own rate as a flood, however long the shared bucket slows it', () => {
    const { clock, connections } = people(
      5,
      () => 'person ada',
      { burst: 12, perSecond: 10 },
      {
        maxSlowedMs: 3_000,
      },
    );
    // Each sends at its own rate, 10 a second, for 10 s; together they send five times the shared rate.
    for (let tick = 0; tick < 100; tick++) {
      connections.forEach((c, i) => {
        c.throttle.push(i * 1000 + tick, 10);
      });
      clock.advance(100);
    }
    expect(connections.flatMap((c) => c.flooded)).toEqual([]);
    clock.advance(60_000);
    expect(connections.map((c) => c.taken)).toEqual(
      connections.map((_, i) => Array.from({ length: 100 }, (_, tick) => i * 1000 + tick)),
    );
    expect(connections.flatMap((c) => c.flooded)).toEqual([]);
  });

  it('get no new burst by closing every connection and opening them again', () => {
    const { clock, rates, connections, open } = people(3, () => 'address 203.0.113.0');
    for (const c of connections) for (let f = 0; f < 5; f++) c.throttle.push(f, 10);
    for (const c of connections) c.throttle.close();
    const again = open(0);
    for (let f = 0; f < 5; f++) again.throttle.push(f, 10);
    expect(again.taken).toEqual([]);
    clock.advance(100);
    expect(again.taken).toEqual([0]);
    again.throttle.close();
    // Kept while it refills; let go once full again (1.2 s at 10 a second), when someone next comes.
    expect(rates.size).toBe(1);
    clock.advance(2000);
    const other = rates.join('person bo');
    expect(rates.size).toBe(1);
    other.leave({ turn: () => {} });
  });

  it('with the shipped defaults, let five connections each paste 100 lines at once untouched', () => {
    const { connections } = people(
      5,
      () => 'person ada',
      { burst: DEFAULT_LIMITS.personRateBurst, perSecond: DEFAULT_LIMITS.personRatePerSecond },
      throttleLimits(DEFAULT_LIMITS),
    );
    for (const c of connections) for (let f = 0; f < 100; f++) c.throttle.push(f, 10);
    expect(connections.map((c) => c.taken.length)).toEqual([100, 100, 100, 100, 100]);
  });
});

describe('read gate', () => {
  it('reads again only once every reason to pause has gone', () => {
    const events: string[] = [];
    const gate = new ReadGate({
      stopReading: () => events.push('pause'),
      startReading: () => events.push('resume'),
    });
    gate.hold('rate');
    gate.hold('commit');
    gate.release('rate');
    expect(events).toEqual(['pause']);
    gate.release('commit');
    gate.release('commit');
    expect(events).toEqual(['pause', 'resume']);
  });
});
