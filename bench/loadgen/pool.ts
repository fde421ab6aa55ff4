// The runner's side of the load generator: worker threads, request/reply over postMessage, merged results.
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type {
  CollectResult,
  Command,
  ConnectResult,
  GenUsage,
  MemberSpec,
  Reply,
  SenderSpec,
  VerifyResult,
} from './commands.ts';

const WORKER_URL = new URL('./worker.ts', import.meta.url).href;
// Node 20 does not apply --import loaders to a worker's .ts entry, so the entry registers tsx itself.
const BOOT = `import('tsx/esm/api').then((api) => { api.register(); return import(${JSON.stringify(WORKER_URL)}); });`;

interface Waiter {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

/** Merged figures of one measurement window across workers. */
export interface Collected {
  hist: RecordableHistogram;
  inWindow: number;
  scheduled: Map<number, number>;
  usage: GenUsage[];
}

/** A pool of load-generator worker threads. */
export class LoadGen {
  readonly #workers: Worker[] = [];
  readonly #waiters = new Map<number, Waiter>();
  #nextId = 1;

  private constructor(count: number) {
    for (let i = 0; i < count; i++) {
      const worker = new Worker(BOOT, { eval: true });
      worker.on('message', (reply: Reply) => {
        const waiter = this.#waiters.get(reply.id);
        this.#waiters.delete(reply.id);
        if (reply.ok) waiter?.resolve(reply.value);
        else waiter?.reject(new Error(reply.error));
      });
      worker.on('error', (error) => {
        for (const w of this.#waiters.values()) w.reject(error);
        this.#waiters.clear();
      });
      this.#workers.push(worker);
    }
  }

  static start(count: number): LoadGen {
    return new LoadGen(count);
  }

  get size(): number {
    return this.#workers.length;
  }

  call<T>(index: number, cmd: Command): Promise<T> {
    const worker = this.#workers[index];
    if (!worker) return Promise.reject(new Error(`no worker ${index}`));
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      this.#waiters.set(id, { resolve: resolve as (v: unknown) => void, reject });
      worker.postMessage({ id, cmd });
    });
  }

  all<T>(cmd: Command): Promise<T[]> {
    return Promise.all(this.#workers.map((_, i) => this.call<T>(i, cmd)));
  }

  /** Which worker holds member `id`. */
  workerOf(id: number): number {
    return id % this.#workers.length;
  }

  /** Spread members over the workers (member i to worker i mod n) and open them. */
  async connect(
    target: Parameters<typeof connectCmd>[0],
    members: MemberSpec[],
    senders: SenderSpec[],
    concurrency: number,
  ): Promise<ConnectResult> {
    const parts = this.#workers.map((_, w) => members.filter((m) => this.workerOf(m.id) === w));
    const results = await Promise.all(
      parts.map((part, w) => this.call<ConnectResult>(w, connectCmd(target, part, senders, concurrency))),
    );
    return {
      handshakeUs: results.flatMap((r) => r.handshakeUs),
      errors: results.reduce((a, r) => a + r.errors, 0),
      firstError: results.find((r) => r.firstError)?.firstError,
      elapsedMs: Math.max(...results.map((r) => r.elapsedMs)),
    };
  }

  async collect(): Promise<Collected> {
    const parts = await this.all<CollectResult>({ op: 'collect' });
    const hist = createHistogram({ lowest: 1, highest: 120_000_000, figures: 3 });
    const scheduled = new Map<number, number>();
    for (const p of parts) {
      hist.add(p.hist);
      for (const [s, n] of p.scheduled) scheduled.set(s, (scheduled.get(s) ?? 0) + n);
    }
    return {
      hist,
      inWindow: parts.reduce((a, p) => a + p.inWindow, 0),
      scheduled,
      usage: parts.map((p) => p.usage),
    };
  }

  async received(): Promise<number> {
    return (await this.all<number>({ op: 'received' })).reduce((a, b) => a + b, 0);
  }

  /** Wait until deliveries stop arriving (or every expected one has), at most `maxMs`. */
  async drain(expected: number, maxMs: number, quietMs = 1000): Promise<number> {
    const until = Date.now() + maxMs;
    let last = -1;
    let lastChange = Date.now();
    for (;;) {
      const now = await this.received();
      if (now !== last) {
        last = now;
        lastChange = Date.now();
      }
      if (now >= expected || Date.now() > until || Date.now() - lastChange > quietMs) return now;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Count lost, duplicated and reordered deliveries against what every sender sent. */
  async verify(): Promise<VerifyResult & { sent: number }> {
    const sentParts = await this.all<[number, number][]>({ op: 'sent' });
    const sent = sentParts.flat();
    const parts = await this.all<VerifyResult>({ op: 'verify', sent });
    return {
      lost: parts.reduce((a, p) => a + p.lost, 0),
      duplicated: parts.reduce((a, p) => a + p.duplicated, 0),
      reordered: parts.reduce((a, p) => a + p.reordered, 0),
      members: parts.reduce((a, p) => a + p.members, 0),
      sent: sent.reduce((a, [, n]) => a + n, 0),
    };
  }

  async close(): Promise<void> {
    await this.all({ op: 'close' });
  }

  async stop(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.terminate()));
  }
}

function connectCmd(
  target: { consolePort: number; httpUrl: string; socketIo: boolean },
  members: MemberSpec[],
  senders: SenderSpec[],
  concurrency: number,
): Command {
  return { op: 'connect', target, members, senders, concurrency };
}
