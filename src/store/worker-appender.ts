// Appends through a writer thread (src/store/append-worker.ts): the Node entry's choice for a file.
import { Worker } from 'node:worker_threads';
import type { Appended, NewMessage, ReadMarker } from '../hub/transcript.ts';
import { type Appender, type Durability, flatten, type Indexed, type Pruned } from './append.ts';
import {
  type WriterData,
  WriterError,
  type WriterReply,
  type WriterRequest,
  type WriterTask,
} from './writer-protocol.ts';

// Deno runs the TypeScript source as it is; Node runs the built .js. Node running the TypeScript
// sources (the tests) gives its own entry, as `script`.
const WORKER = new URL(
  import.meta.url.endsWith('.ts') ? './append-worker.ts' : './append-worker.js',
  import.meta.url,
);
const CLOSE_TIMEOUT_MS = 5000;

/** How the writer thread is started. */
export interface WriterOptions {
  /** A running thread died (the next request starts a new one). */
  onLost?: ((error: Error) => void) | undefined;
  /** The thread's entry module: append-worker next to this file unless given (tests wrap it). */
  script?: URL | undefined;
}

type Answer = Appended[] | Durability | Pruned | Indexed | true;

interface Waiting {
  readonly request: WriterTask;
  /** Sent again once already, after a thread died holding it. */
  retried: boolean;
  resolve(answer: Answer): void;
  reject(error: Error): void;
}

/**
 * Appends run on a worker thread with its own connection (same durability settings). Batches are
 * answered in order. If the thread dies, the batches it held are sent once more, in order, to a new
 * thread: a batch it had committed but not yet answered is found there (appends are idempotent on
 * `id`) and gets its real seqs. A batch that fails again fails; it was never acknowledged.
 */
export class WorkerAppender implements Appender {
  /** The thread takes requests one after another, in order: the next batch can wait there. */
  readonly inFlight = 2;
  readonly #url: string;
  readonly #script: URL;
  readonly #onLost: (error: Error) => void;
  readonly #waiting = new Map<number, Waiting>();
  #worker: Promise<Worker> | undefined;
  #next = 1;
  #closed = false;

  private constructor(url: string, onLost: (error: Error) => void, script: URL) {
    this.#url = url;
    this.#script = script;
    this.#onLost = onLost;
  }

  /**
   * Start the writer for a file: URL; rejects if it cannot open the database or commit to it (the
   * thread proves a write before it takes requests).
   */
  static async start(url: string, options: WriterOptions = {}): Promise<WorkerAppender> {
    const appender = new WorkerAppender(url, options.onLost ?? (() => {}), options.script ?? WORKER);
    await appender.#spawn();
    return appender;
  }

  append(batch: readonly NewMessage[]): Promise<Appended[]> {
    if (batch.length === 0) return Promise.resolve([]);
    return this.#request({ args: flatten(batch), retried: false }) as Promise<Appended[]>;
  }

  async saveMarkers(markers: readonly ReadMarker[]): Promise<void> {
    if (markers.length > 0) await this.#request({ markers: [...markers] });
  }

  async remember(names: readonly string[], now: number): Promise<void> {
    if (names.length > 0) await this.#request({ people: [...names], now });
  }

  async ping(): Promise<void> {
    await this.#request({ ping: true });
  }

  async probe(): Promise<void> {
    await this.#request({ probe: true });
  }

  durability(): Promise<Durability> {
    return this.#request({ durability: true }) as Promise<Durability>;
  }

  prune(before: number, limit: number): Promise<Pruned> {
    return this.#request({ prune: { before, limit } }) as Promise<Pruned>;
  }

  index(limit: number): Promise<Indexed> {
    return this.#request({ index: { limit } }) as Promise<Indexed>;
  }

  /** Let the writer finish what it holds, close its connection and exit. */
  async close(): Promise<void> {
    this.#closed = true;
    const worker = await this.#worker?.catch(() => undefined);
    if (!worker) return;
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    worker.postMessage({ close: true } satisfies WriterRequest);
    const timer = setTimeout(() => void worker.terminate(), CLOSE_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  }

  async #request(request: WriterTask): Promise<Answer> {
    if (this.#closed) throw new WriterError('the transcript writer is closed');
    const worker = await (this.#worker ?? this.#spawn());
    return new Promise((resolve, reject) => {
      this.#post(worker, { request, retried: false, resolve, reject });
    });
  }

  #post(worker: Worker, waiting: Waiting): void {
    const n = this.#next++;
    this.#waiting.set(n, waiting);
    worker.postMessage({ ...waiting.request, n } satisfies WriterRequest);
  }

  /** A thread died holding `held`: send its batches once more to a new thread; fail the rest. */
  async #retry(held: Waiting[], error: Error): Promise<void> {
    const again = held.filter((w) => !w.retried && 'args' in w.request && !this.#closed);
    for (const w of held) if (!again.includes(w)) w.reject(error);
    if (again.length === 0) return;
    let worker: Worker;
    try {
      worker = await (this.#worker ?? this.#spawn());
    } catch (spawnError) {
      for (const w of again) w.reject(spawnError as Error);
      return;
    }
    for (const w of again) {
      w.retried = true;
      // The dead thread may have committed it: the new one looks its messages up by id first.
      if ('args' in w.request) w.request.retried = true;
      this.#post(worker, w);
    }
  }

  #spawn(): Promise<Worker> {
    // The thread does not take the process's own flags: a preload given with --import (a monitoring
    // agent, say) is for the main thread, and the writer needs none of them.
    const worker = new Worker(this.#script, {
      workerData: { url: this.#url } satisfies WriterData,
      execArgv: [],
    });
    let gone = false;
    let started = false;
    const ready = new Promise<Worker>((resolve, reject) => {
      const lost = (error: Error): void => {
        reject(error);
        if (gone) return;
        gone = true;
        if (this.#worker === ready) this.#worker = undefined;
        const held = [...this.#waiting.values()];
        this.#waiting.clear();
        // A thread that never started is reported by whoever waited for it to start.
        if (started && !this.#closed) this.#onLost(error);
        void this.#retry(held, error);
      };
      worker.on('message', (reply: WriterReply) => {
        if ('ready' in reply) {
          started = true;
          resolve(worker);
        } else if ('failed' in reply) reject(WriterError.from(reply.failed));
        else {
          const waiting = this.#waiting.get(reply.n);
          this.#waiting.delete(reply.n);
          if ('appended' in reply) waiting?.resolve(reply.appended);
          else if ('done' in reply) waiting?.resolve(true);
          else if ('durability' in reply) waiting?.resolve(reply.durability);
          else if ('pruned' in reply) waiting?.resolve(reply.pruned);
          else if ('indexed' in reply) waiting?.resolve(reply.indexed);
          else waiting?.reject(WriterError.from(reply.error));
        }
      });
      worker.once('error', (error) => lost(error));
      worker.once('exit', (code) =>
        lost(new WriterError(`the transcript writer stopped (exit code ${code})`)),
      );
    });
    this.#worker = ready;
    return ready;
  }
}
