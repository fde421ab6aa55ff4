// History reads (pages, a join's catch-up), taken in turns. A local database answers a read on the
// event loop, so a burst of them from one connection (or from many of one person's) used to run back
// to back while every other connection waited. Now reads start after the event loop has served the
// sockets, a few at a time, one of each requester's at a time, and the requesters waiting take turns:
// a burst costs the others a turn's wait, not the whole burst's. Each requester also has a budget of
// messages read a second, so one that reads all the time takes its share of the server, not all of
// what the others leave: past it, its next read waits until the budget is back above nothing.
import { dropOldest } from '../bounded.ts';
import { msUntil, type Rate, tokensAt } from '../rate.ts';
import type { Peer } from './peer.ts';

/**
 * Whom reads (HTTP API requests, and frames) count for: a person, by name, whichever door and connection
 * the reads come from; or, where a name is anyone's to claim, a client address (by its group).
 */
export const personRequester = (name: string): string => `person ${name}`;
export const addressRequester = (group: string): string => `address ${group}`;
/** A console whose name is its hello's claim, not proven by a key. */
export const consoleRequester = (name: string): string => `console ${name}`;

/** Whom a connection's reads, and its frames, count for: its own requester, else its person. */
export const requesterOf = (peer: Pick<Peer, 'reader' | 'user'>): string =>
  peer.reader ?? personRequester(peer.user);

/** Reads started and not yet finished, at most. */
export const READS_AT_ONCE = 4;

/** Messages one requester may read at once, and a second after that (a history page is up to 200). */
export const READ_BUDGET = { burst: 20_000, perSecond: 10_000 } as const;

/** Requesters whose budgets are kept, the least recently seen let go first (as good as full). */
export const READERS_KEPT = 10_000;

/** A read waiting for its turn. */
interface Waiting {
  /** Go (true), or give up: it is no longer wanted (false). */
  start: (go: boolean) => void;
  wanted: () => boolean;
  /** It has waited for its reader's budget (counted once). */
  held?: boolean;
}

/** How the turns tell time; injectable so tests control it. */
export interface TurnsClock {
  now(): number;
  /** Call `fn` after `ms`. */
  after(fn: () => void, ms: number): void;
}

const realClock: TurnsClock = {
  now: () => performance.now(),
  after: (fn, ms) => {
    const timer = setTimeout(fn, ms);
    // Nothing to keep the process up for: the reads waiting belong to connections that keep it up.
    (timer as unknown as { unref?: () => void }).unref?.();
  },
};

/** Reads waiting their turn: round-robin by requester, in order within one. */
export class ReadTurns {
  readonly #yield: () => Promise<void>;
  readonly #atOnce: number;
  readonly #budget: Rate;
  readonly #clock: TurnsClock;
  readonly #onHeld: () => void;
  /** By requester, in the order their turns come; a requester with nothing waiting is not here. */
  readonly #waiting = new Map<string, Waiting[]>();
  /** Requesters with a read running: one each, so one requester's slow reads hold one place. */
  readonly #running = new Set<string>();
  /** Each requester's budget, the least recently charged first. */
  readonly #budgets = new Map<string, { left: number; at: number }>();
  #starting = false;
  /** When a requester over its budget will be under it again, if a wake-up is set. */
  #wakeAt: number | undefined;

  constructor(
    yieldToIo: () => Promise<void>,
    options: {
      atOnce?: number | undefined;
      budget?: Rate;
      clock?: TurnsClock;
      /** A read has to wait for its reader's budget (called once per read). */
      onHeld?: () => void;
    } = {},
  ) {
    this.#yield = yieldToIo;
    this.#atOnce = options.atOnce ?? READS_AT_ONCE;
    this.#budget = options.budget ?? READ_BUDGET;
    this.#clock = options.clock ?? realClock;
    this.#onHeld = options.onHeld ?? (() => {});
  }

  /** Run `read` in `requester`'s turn; resolves or rejects as it does. */
  run<T>(requester: string, read: () => Promise<T>, cost: (result: T) => number): Promise<T> {
    return this.runIfWanted(requester, read, () => true, cost) as Promise<T>;
  }

  /**
   * Run `read` in `requester`'s turn if, when the turn comes, it is still `wanted` (its connection is
   * open, still in the room); else resolve with undefined at once. What is no longer wanted leaves
   * the line without taking a turn, so a client that asks and goes costs nothing more. What it
   * read (`cost`, in messages) is taken from the requester's budget.
   */
  async runIfWanted<T>(
    requester: string,
    read: () => Promise<T>,
    wanted: () => boolean,
    cost: (result: T) => number,
  ): Promise<T | undefined> {
    const go = await new Promise<boolean>((start) => {
      const queue = this.#waiting.get(requester);
      if (queue) queue.push({ start, wanted });
      else this.#waiting.set(requester, [{ start, wanted }]);
      void this.#startNext();
    });
    if (!go) return undefined;
    try {
      const result = await read();
      this.#charge(requester, cost(result));
      return result;
    } finally {
      this.#running.delete(requester);
      void this.#startNext();
    }
  }

  /** Reads waiting for their turn. */
  get waiting(): number {
    let n = 0;
    for (const queue of this.#waiting.values()) n += queue.length;
    return n;
  }

  /** What is left of `requester`'s budget now (below 0 while it waits). */
  #left(requester: string, now: number): number {
    const budget = this.#budgets.get(requester);
    if (!budget) return this.#budget.burst;
    return tokensAt(this.#budget, budget.left, budget.at, now);
  }

  #charge(requester: string, cost: number): void {
    const messages = Number.isFinite(cost) ? Math.max(0, cost) : 0;
    const now = this.#clock.now();
    const left = this.#left(requester, now) - messages;
    this.#budgets.delete(requester);
    this.#budgets.set(requester, { left, at: now });
    if (this.#budgets.size > READERS_KEPT) dropOldest(this.#budgets, READERS_KEPT);
  }

  /** Whether a waiting read could start now; if only the budgets stop them, a wake-up for the first. */
  #startable(): boolean {
    if (this.#running.size >= this.#atOnce) return false;
    const now = this.#clock.now();
    let soonest = Number.POSITIVE_INFINITY;
    for (const requester of this.#waiting.keys()) {
      if (this.#running.has(requester)) continue;
      const left = this.#left(requester, now);
      if (left >= 0) return true;
      soonest = Math.min(soonest, now + msUntil(this.#budget, left, 0));
    }
    if (soonest !== Number.POSITIVE_INFINITY && (this.#wakeAt === undefined || soonest < this.#wakeAt)) {
      this.#wakeAt = soonest;
      this.#clock.after(
        () => {
          if (this.#wakeAt === soonest) this.#wakeAt = undefined;
          void this.#startNext();
        },
        Math.max(1, Math.ceil(soonest - now)),
      );
    }
    return false;
  }

  /** After a turn of I/O, start what there is room for, in turn order; again while any can start. */
  async #startNext(): Promise<void> {
    if (this.#starting) return;
    this.#starting = true;
    try {
      while (this.#startable()) {
        await this.#yield();
        const now = this.#clock.now();
        // Each requester waiting now, once: one put back goes to the end, past where this pass stops.
        let visits = this.#waiting.size;
        for (const requester of this.#waiting.keys()) {
          if (visits-- <= 0) break;
          if (this.#running.size >= this.#atOnce) break;
          if (this.#running.has(requester)) continue;
          const queue = this.#waiting.get(requester) as Waiting[];
          while (queue.length > 0 && !queue[0]?.wanted()) queue.shift()?.start(false);
          if (queue.length === 0) {
            this.#waiting.delete(requester);
            continue;
          }
          // Over its budget: its turn waits, in its place in the line.
          if (this.#left(requester, now) < 0) {
            const first = queue[0] as Waiting;
            if (!first.held) {
              first.held = true;
              this.#onHeld();
            }
            continue;
          }
          const next = queue.shift() as Waiting;
          // The requester goes to the back of the line, behind everyone else waiting.
          this.#waiting.delete(requester);
          if (queue.length > 0) this.#waiting.set(requester, queue);
          this.#running.add(requester);
          next.start(true);
        }
      }
    } finally {
      this.#starting = false;
    }
  }
}
