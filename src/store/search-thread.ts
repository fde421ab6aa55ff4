// Searches of a local database on a thread of their own (src/store/search-worker.ts), started at the
// first search: the event loop serves the sockets while one walks many matches. They wait their turn
// there; the Hub bounds how many there are (SEARCHES_AT_ONCE).
import { Worker } from 'node:worker_threads';
import type { InValue } from '@libsql/client';
import type { Rows } from './native-reads.ts';

// Deno runs the TypeScript source as it is; Node runs the built .js. Node running the TypeScript
// sources (the tests) gives its own entry, as `script`.
const WORKER = new URL(
  import.meta.url.endsWith('.ts') ? './search-worker.ts' : './search-worker.js',
  import.meta.url,
);

/** What the thread is started with. */
export interface SearchData {
  url: string;
}

/** To the thread: a read to run. */
export interface SearchRequest {
  n: number;
  sql: string;
  args: InValue[];
}

/** From the thread: it is ready (or cannot open the database), or a read's rows (or its error). */
export type SearchReply =
  | { ready: true }
  | { failed: string }
  | { n: number; rows: Rows }
  | { n: number; error: string };

interface Waiting {
  resolve(rows: Rows): void;
  reject(error: Error): void;
}

/** Reads run one after another on a thread with its own read-only connection to the file. */
export class SearchThread {
  readonly #url: string;
  readonly #script: URL;
  readonly #onLost: (error: Error) => void;
  readonly #waiting = new Map<number, Waiting>();
  #worker: Promise<Worker> | undefined;
  #next = 1;
  #closed = false;

  /**
   * `url`: the database's file: URL; `script`: the thread's entry (search-worker next to this file);
   * `onLost`: a running thread died (the next search starts another).
   */
  constructor(url: string, options: { script?: URL | undefined; onLost?: (error: Error) => void } = {}) {
    this.#url = url;
    this.#script = options.script ?? WORKER;
    this.#onLost = options.onLost ?? (() => {});
  }

  /** Run one read on the thread, after those before it, starting the thread if it is not running. */
  query(sql: string, args: readonly InValue[]): Promise<Rows> {
    if (this.#closed) return Promise.reject(new Error('the search thread is closed'));
    let starting: Promise<Worker>;
    try {
      starting = this.#worker ?? this.#spawn();
    } catch (error) {
      // No thread could be made (a process or memory limit): this search fails, the next tries again.
      return Promise.reject(error);
    }
    const n = this.#next++;
    const answer = new Promise<Rows>((resolve, reject) => this.#waiting.set(n, { resolve, reject }));
    // A thread that fails to start rejects every read waiting for it, this one included.
    starting.then(
      (worker) => {
        if (this.#waiting.has(n)) worker.postMessage({ n, sql, args: [...args] } satisfies SearchRequest);
      },
      () => {},
    );
    return answer;
  }

  /**
   * End the thread. Searches still waiting are refused (nobody is left to answer at shutdown); the
   * one running finishes first, as native code cannot be stopped halfway.
   */
  async close(): Promise<void> {
    this.#closed = true;
    const closing = new Error('the search thread is closed');
    for (const waiting of this.#waiting.values()) waiting.reject(closing);
    this.#waiting.clear();
    const worker = await this.#worker?.catch(() => undefined);
    await worker?.terminate();
  }

  #spawn(): Promise<Worker> {
    // Not the process's own flags: a preload given with --import is for the main thread. Throws when
    // no thread can be made.
    const worker = new Worker(this.#script, {
      workerData: { url: this.#url } satisfies SearchData,
      execArgv: [],
    });
    // The thread alone never keeps the process running.
    worker.unref();
    const ready = new Promise<Worker>((resolve, reject) => {
      let gone = false;
      let started = false;
      const lost = (error: Error): void => {
        reject(error);
        if (gone) return;
        gone = true;
        if (this.#worker === ready) this.#worker = undefined;
        for (const waiting of this.#waiting.values()) waiting.reject(error);
        this.#waiting.clear();
        if (started && !this.#closed) this.#onLost(error);
      };
      worker.on('message', (reply: SearchReply) => {
        if ('ready' in reply) {
          started = true;
          resolve(worker);
        } else if ('failed' in reply) {
          lost(new Error(`the search thread cannot open the database: ${reply.failed}`));
          void worker.terminate();
        } else {
          const waiting = this.#waiting.get(reply.n);
          this.#waiting.delete(reply.n);
          if ('rows' in reply) waiting?.resolve(reply.rows);
          else waiting?.reject(new Error(reply.error));
        }
      });
      worker.once('error', (error) => lost(error));
      worker.once('exit', (code) => lost(new Error(`the search thread stopped (exit code ${code})`)));
    });
    this.#worker = ready;
    return ready;
  }
}
