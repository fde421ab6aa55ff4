// History pages are read in turns: a few at a time, each after a turn of I/O, the people waiting
// taking turns, so one person's burst of pages does not hold up everyone else's.
import { describe, expect, it } from 'vitest';
import { READ_BUDGET, READS_AT_ONCE, ReadTurns, type TurnsClock } from '../src/hub/reads.ts';

/** A read whose answer the test gives. */
function pending(log: string[], name: string) {
  let answer = (): void => {};
  const read = () =>
    new Promise<string>((resolve) => {
      log.push(name);
      answer = () => resolve(name);
    });
  return { read, answer: () => answer() };
}

/** A read that costs its reader nothing. */
const free = (): number => 0;

const settle = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
};

describe('read turns', () => {
  it('starts at most 4 reads at once, and the next as one ends', async () => {
    expect(READS_AT_ONCE).toBe(4);
    const turns = new ReadTurns(() => new Promise((resolve) => setImmediate(resolve)));
    const started: string[] = [];
    const reads = Array.from({ length: 6 }, (_, i) => pending(started, `r${i}`));
    const answered = reads.map((r, i) => turns.run(`person p${i}`, r.read, free));
    await settle();
    expect(started).toEqual(['r0', 'r1', 'r2', 'r3']);
    expect(turns.waiting).toBe(2);
    reads[2]?.answer();
    await expect(answered[2]).resolves.toBe('r2');
    await settle();
    expect(started).toEqual(['r0', 'r1', 'r2', 'r3', 'r4']);
  });

  it("runs one of a requester's reads at a time: one that never ends holds its own place, not everyone's", async () => {
    const turns = new ReadTurns(() => new Promise((resolve) => setImmediate(resolve)));
    const started: string[] = [];
    const hung = Array.from({ length: 4 }, (_, i) => pending(started, `mallory ${i}`));
    for (const read of hung) void turns.run('person mallory', read.read, free);
    const bob = pending(started, 'bob');
    const answered = turns.run('person bob', bob.read, free);
    await settle();
    expect(started).toEqual(['mallory 0', 'bob']);
    bob.answer();
    await expect(answered).resolves.toBe('bob');
    expect(turns.waiting).toBe(3);
  });

  it('lets everyone waiting go before a second read of the person who asked first', async () => {
    const turns = new ReadTurns(() => new Promise((resolve) => setImmediate(resolve)), { atOnce: 1 });
    const order: string[] = [];
    const run = (who: string, name: string) => turns.run(who, async () => order.push(name), free);
    const all = [
      ...Array.from({ length: 5 }, (_, i) => run('person mallory', `mallory ${i}`)),
      run('person bob', 'bob'),
      run('person carol', 'carol'),
    ];
    await Promise.all(all);
    expect(order).toEqual(['mallory 0', 'bob', 'carol', 'mallory 1', 'mallory 2', 'mallory 3', 'mallory 4']);
  });

  it('gives the sockets a turn before each read', async () => {
    const yields: string[] = [];
    const turns = new ReadTurns(
      async () => {
        yields.push('yield');
      },
      { atOnce: 1 },
    );
    await Promise.all(
      [1, 2, 3].map((i) => turns.run('person alice', async () => yields.push(`read ${i}`), free)),
    );
    expect(yields).toEqual(['yield', 'read 1', 'yield', 'read 2', 'yield', 'read 3']);
  });

  it('drops a read no longer wanted when its turn comes, without reading and without taking the turn', async () => {
    const turns = new ReadTurns(() => new Promise((resolve) => setImmediate(resolve)), { atOnce: 1 });
    const order: string[] = [];
    let gone = false;
    const first = turns.run('person bob', async () => order.push('bob'), free);
    const dropped = Array.from({ length: 1000 }, (_, i) =>
      turns.runIfWanted(
        'person mallory',
        async () => order.push(`mallory ${i}`),
        () => !gone,
        free,
      ),
    );
    const kept = turns.runIfWanted(
      'person mallory',
      async () => 'still wanted',
      () => true,
      free,
    );
    gone = true;
    await first;
    expect(await Promise.all(dropped)).toEqual(dropped.map(() => undefined));
    await expect(kept).resolves.toBe('still wanted');
    expect(order).toEqual(['bob']);
    expect(turns.waiting).toBe(0);
  });

  it('goes on after a read that fails, and passes its error to its asker alone', async () => {
    const turns = new ReadTurns(() => Promise.resolve(), { atOnce: 1 });
    const failed = turns.run('person alice', () => Promise.reject(new Error('store unavailable')), free);
    const next = turns.run('person alice', () => Promise.resolve('answered'), free);
    await expect(failed).rejects.toThrow('store unavailable');
    await expect(next).resolves.toBe('answered');
    expect(turns.waiting).toBe(0);
  });
});

describe('read budgets', () => {
  /** A clock the test moves; a due wake-up runs as time passes it. */
  class FakeClock implements TurnsClock {
    time = 0;
    readonly timers: Array<{ at: number; fn: () => void }> = [];
    now(): number {
      return this.time;
    }
    after(fn: () => void, ms: number): void {
      this.timers.push({ at: this.time + ms, fn });
    }
    advance(ms: number): void {
      this.time += ms;
      for (const timer of this.timers.splice(0)) {
        if (timer.at <= this.time) timer.fn();
        else this.timers.push(timer);
      }
    }
  }

  it("waits a reader's next read once it has read its burst, until the budget is back, while others read", async () => {
    expect(READ_BUDGET).toEqual({ burst: 20_000, perSecond: 10_000 });
    const clock = new FakeClock();
    let held = 0;
    const turns = new ReadTurns(() => new Promise((resolve) => setImmediate(resolve)), {
      clock,
      onHeld: () => {
        held += 1;
      },
    });
    const order: string[] = [];
    // Twenty resumes of 1,000 messages take the whole burst, and a little more.
    for (let i = 0; i < 21; i++)
      await turns.run(
        'address 203.0.113.7',
        async () => order.push(`m${i}`),
        () => 1000,
      );
    const late = turns.run(
      'address 203.0.113.7',
      async () => order.push('after the budget'),
      () => 200,
    );
    await settle();
    expect(order.at(-1)).toBe('m20');
    await turns.run(
      'person bob',
      async () => order.push('bob'),
      () => 50,
    );
    expect(order.at(-1)).toBe('bob');
    // 1,000 over: back above nothing a tenth of a second later.
    clock.advance(99);
    await settle();
    expect(order.at(-1)).toBe('bob');
    clock.advance(1);
    await late;
    expect(order.at(-1)).toBe('after the budget');
    // Held once, however many passes went by while it waited.
    expect(held).toBe(1);
  });

  it('lets a reader of pages of 50 read 200 a second for as long as it likes, and makes a faster one wait', async () => {
    const clock = new FakeClock();
    const turns = new ReadTurns(() => Promise.resolve(), { clock });
    let read = 0;
    for (let second = 0; second < 5; second++) {
      for (let i = 0; i < 200; i++)
        await turns.run(
          'person alice',
          async () => read++,
          () => 50,
        );
      clock.advance(1000);
    }
    expect(read).toBe(1000);
    expect(clock.timers).toEqual([]);
    // Twice that for two seconds: the burst runs out, and a read waits for the budget.
    let faster = 0;
    const reading = (async () => {
      for (let i = 0; i < 800; i++)
        await turns.run(
          'person alice',
          async () => faster++,
          () => 50,
        );
    })();
    await settle();
    expect(faster).toBe(401);
    expect(clock.timers).toHaveLength(1);
    clock.advance(5);
    await settle();
    expect(faster).toBe(402);
    clock.advance(5000);
    await reading;
    expect(faster).toBe(800);
  });
});
