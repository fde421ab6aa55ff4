// Retention: messages (whispers too) older than CONSOLE_ROOM_RETENTION are deleted on a timer, a small
// batch per transaction on the write path, so messages waiting to be stored wait at most one batch.
import type { Log } from '../log.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { Pruned } from './append.ts';

/** Messages one retention transaction deletes at most. */
export const PRUNE_BATCH = 256;

/** How often retention runs after the first pass (right after start). */
export const PRUNE_EVERY_MS = 10 * 60_000;

/** What retention needs of the store. */
export interface Prunable {
  prune(before: number, limit: number): Promise<Pruned>;
}

/** Retention settings; all but `keepSeconds` have defaults. */
export interface RetentionOptions {
  store: Prunable;
  /** Messages older than this many seconds are deleted. */
  keepSeconds: number;
  log: Log;
  metrics: Metrics;
  batch?: number;
  everyMs?: number;
  /** Pause between two batches of one pass: other writes go first. */
  pauseMs?: number;
  now?: () => number;
}

/** Deletes what is older than the retention, now and then every PRUNE_EVERY_MS. */
export class Retention {
  readonly #options: RetentionOptions;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running: Promise<number> | undefined;
  #stopped = false;

  constructor(options: RetentionOptions) {
    this.#options = options;
  }

  /** Run a pass at once, then one every interval. */
  start(): void {
    const tick = (): void => {
      this.#timer = undefined;
      void this.run()
        .catch((error: unknown) => this.#options.log.error('retention failed', { error: String(error) }))
        .finally(() => {
          if (!this.#stopped) this.#timer = setTimeout(tick, this.#options.everyMs ?? PRUNE_EVERY_MS);
        });
    };
    this.#timer = setTimeout(tick, 0);
  }

  /** One pass: batches until one deletes nothing (or the retention is stopped); how many went. */
  run(): Promise<number> {
    this.#running ??= this.#pass().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #pass(): Promise<number> {
    const { store, keepSeconds, log, metrics } = this.#options;
    const before = (this.#options.now?.() ?? Date.now()) / 1000 - keepSeconds;
    let total = 0;
    let longest = 0;
    while (!this.#stopped) {
      const { deleted, ms } = await store.prune(before, this.#options.batch ?? PRUNE_BATCH);
      if (deleted === 0) break;
      metrics.pruned(deleted, ms / 1000);
      total += deleted;
      longest = Math.max(longest, ms);
      await new Promise((resolve) => setTimeout(resolve, this.#options.pauseMs ?? 20));
    }
    if (total > 0)
      log.info('retention deleted', {
        messages: total,
        before: new Date(before * 1000).toISOString(),
        longest_batch_ms: Math.round(longest * 10) / 10,
      });
    return total;
  }

  /** Stop: no new pass or batch starts; resolves once a batch in flight is done. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running?.catch(() => {});
  }
}
