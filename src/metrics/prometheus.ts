// The metrics sink in Prometheus text, through prom-client: the one module that knows the library. The
// event-loop delay is sampled with a timer here, because Deno's monitorEventLoopDelay does not see a
// blocked loop (prom-client's default metrics would report zero there).
import process from 'node:process';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import {
  DISCONNECT_REASONS,
  type DisconnectReason,
  type Door,
  type Metrics,
  type Refusal,
  type StoreOperation,
} from './metrics.ts';

const DOORS: readonly Door[] = ['console', 'browser'];
const SAMPLE_MS = 100;

/** What the server reports at each scrape besides the counted events. */
export interface PrometheusOptions {
  /** Rooms with members now. */
  rooms: () => number;
  /** Version and runtime, for the info metric. */
  version: string;
  runtime: string;
}

/** Metrics kept for Prometheus; `text()` is what /metrics answers. */
export class PrometheusMetrics implements Metrics {
  readonly registry = new Registry();
  readonly #open = { console: 0, browser: 0 };
  #delivered = 0;
  #stored = 0;
  readonly #opened: Counter<'door'>;
  readonly #disconnects: Counter<'door' | 'reason'>;
  readonly #joins: Counter;
  readonly #batchSize: Histogram;
  readonly #commitSeconds: Histogram;
  readonly #throttled: Counter<'door'>;
  readonly #signIns: Counter<'outcome'>;
  readonly #writerRestarts: Counter;
  readonly #databaseErrors: Counter<'operation'>;
  readonly #searches: Counter;
  readonly #searchesRefused: Counter<'reason'>;
  readonly #exportsRefused: Counter<'reason'>;
  readonly #apiRateLimited: Counter;
  readonly #historyRefused: Counter;
  readonly #readsHeld: Counter;
  readonly #pruned: Counter;
  readonly #pruneSeconds: Histogram;
  readonly #loopDelay: Histogram;
  readonly #sampler: ReturnType<typeof setInterval>;

  constructor(options: PrometheusOptions) {
    const registers = [this.registry];
    const open = this.#open;
    const counts = { delivered: () => this.#delivered, stored: () => this.#stored };
    new Gauge({
      name: 'runspec_room_info',
      help: 'Always 1: the version and runtime of this server.',
      labelNames: ['version', 'runtime'],
      registers,
      collect() {
        this.set({ version: options.version, runtime: options.runtime }, 1);
      },
    });
    new Gauge({
      name: 'runspec_room_connections',
      help: 'Connections open now, by door.',
      labelNames: ['door'],
      registers,
      collect() {
        for (const door of DOORS) this.set({ door }, open[door]);
      },
    });
    new Gauge({
      name: 'runspec_room_rooms',
      help: 'Rooms with at least one member now.',
      registers,
      collect() {
        this.set(options.rooms());
      },
    });
    this.#opened = new Counter({
      name: 'runspec_room_connections_opened_total',
      help: 'Connections accepted, by door.',
      labelNames: ['door'],
      registers,
    });
    this.#disconnects = new Counter({
      name: 'runspec_room_disconnects_total',
      help: 'Connections ended, by door and reason.',
      labelNames: ['door', 'reason'],
      registers,
    });
    this.#joins = new Counter({ name: 'runspec_room_joins_total', help: 'Rooms joined.', registers });
    new Counter({
      name: 'runspec_room_messages_stored_total',
      help: 'Messages and whispers committed to the transcript.',
      registers,
      collect() {
        this.reset();
        this.inc(counts.stored());
      },
    });
    new Counter({
      name: 'runspec_room_deliveries_total',
      help: 'Message and whisper frames handed to connections, echoes included.',
      registers,
      collect() {
        this.reset();
        this.inc(counts.delivered());
      },
    });
    this.#batchSize = new Histogram({
      name: 'runspec_room_commit_batch_size',
      help: 'Messages per committed batch (one transaction, one fsync).',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers,
    });
    this.#commitSeconds = new Histogram({
      name: 'runspec_room_commit_seconds',
      help: 'Time from a batch going to the store until it was committed.',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.#throttled = new Counter({
      name: 'runspec_room_throttled_frames_total',
      help: 'Frames that waited because their connection sent faster than its rate, by door.',
      labelNames: ['door'],
      registers,
    });
    this.#signIns = new Counter({
      name: 'runspec_room_sign_ins_total',
      help: 'Sign-ins through the OpenID Provider, by outcome (ok or failed).',
      labelNames: ['outcome'],
      registers,
    });
    this.#writerRestarts = new Counter({
      name: 'runspec_room_writer_restarts_total',
      help: 'Times the transcript writer thread died and was started again.',
      registers,
    });
    this.#databaseErrors = new Counter({
      name: 'runspec_room_database_errors_total',
      help: 'Store operations that failed, by operation (read or write).',
      labelNames: ['operation'],
      registers,
    });
    this.#searches = new Counter({
      name: 'runspec_room_searches_total',
      help: 'Searches answered.',
      registers,
    });
    this.#searchesRefused = new Counter({
      name: 'runspec_room_searches_refused_total',
      help: 'Searches refused as busy, by reason: the node had as many running as it takes (server), or the person had (person).',
      labelNames: ['reason'],
      registers,
    });
    this.#exportsRefused = new Counter({
      name: 'runspec_room_exports_refused_total',
      help: 'Exports refused as busy, by reason: the node had as many streaming as it takes (server), or the person had (person).',
      labelNames: ['reason'],
      registers,
    });
    this.#apiRateLimited = new Counter({
      name: 'runspec_room_api_rate_limited_total',
      help: 'HTTP API requests refused with 429: their person or client address asked faster than the rate.',
      registers,
    });
    this.#historyRefused = new Counter({
      name: 'runspec_room_history_refused_total',
      help: 'History pages answered busy: 16 of their connection were waiting.',
      registers,
    });
    this.#readsHeld = new Counter({
      name: 'runspec_room_reads_held_total',
      help: "History reads (pages, joins' catch-ups) that waited for their reader's budget of messages a second.",
      registers,
    });
    this.#pruned = new Counter({
      name: 'runspec_room_retention_deleted_total',
      help: 'Messages deleted because they were older than the retention.',
      registers,
    });
    this.#pruneSeconds = new Histogram({
      name: 'runspec_room_retention_batch_seconds',
      help: 'How long each retention batch held the writer.',
      buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.#loopDelay = new Histogram({
      name: 'runspec_room_event_loop_delay_seconds',
      help: `How late a timer due every ${SAMPLE_MS} ms ran: how long the event loop was busy elsewhere.`,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    const started = Date.now() / 1000;
    new Counter({
      name: 'process_cpu_seconds_total',
      help: 'User and system CPU time of the process, in seconds.',
      registers,
      collect() {
        const { user, system } = process.cpuUsage();
        this.reset();
        this.inc((user + system) / 1e6);
      },
    });
    new Gauge({
      name: 'process_resident_memory_bytes',
      help: 'Resident memory of the process, in bytes.',
      registers,
      collect() {
        this.set(process.memoryUsage.rss());
      },
    });
    new Gauge({
      name: 'process_start_time_seconds',
      help: 'When the process started, in seconds since the epoch.',
      registers,
      collect() {
        this.set(started);
      },
    });
    for (const door of DOORS) {
      this.#opened.inc({ door }, 0);
      this.#throttled.inc({ door }, 0);
      for (const reason of DISCONNECT_REASONS) this.#disconnects.inc({ door, reason }, 0);
    }
    for (const outcome of ['ok', 'failed']) this.#signIns.inc({ outcome }, 0);
    for (const operation of ['read', 'write']) this.#databaseErrors.inc({ operation }, 0);
    for (const reason of ['server', 'person'] satisfies Refusal[]) {
      this.#searchesRefused.inc({ reason }, 0);
      this.#exportsRefused.inc({ reason }, 0);
    }
    let due = performance.now() + SAMPLE_MS;
    this.#sampler = setInterval(() => {
      const now = performance.now();
      this.#loopDelay.observe(Math.max(0, now - due) / 1000);
      due = now + SAMPLE_MS;
    }, SAMPLE_MS);
  }

  /** The metrics as Prometheus text. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** The Content-Type of `text()`. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Stop sampling the event loop. */
  stop(): void {
    clearInterval(this.#sampler);
  }

  opened(door: Door): void {
    this.#open[door] += 1;
    this.#opened.inc({ door });
  }

  disconnected(door: Door, reason: DisconnectReason): void {
    this.#open[door] -= 1;
    this.#disconnects.inc({ door, reason });
  }

  joined(): void {
    this.#joins.inc();
  }

  committed(batch: number, stored: number, seconds: number): void {
    this.#stored += stored;
    this.#batchSize.observe(batch);
    this.#commitSeconds.observe(seconds);
  }

  delivered(frames: number): void {
    this.#delivered += frames;
  }

  throttled(door: Door): void {
    this.#throttled.inc({ door });
  }

  signIn(ok: boolean): void {
    this.#signIns.inc({ outcome: ok ? 'ok' : 'failed' });
  }

  writerRestarted(): void {
    this.#writerRestarts.inc();
  }

  databaseError(operation: StoreOperation): void {
    this.#databaseErrors.inc({ operation });
  }

  searched(): void {
    this.#searches.inc();
  }

  searchRefused(reason: Refusal): void {
    this.#searchesRefused.inc({ reason });
  }

  exportRefused(reason: Refusal): void {
    this.#exportsRefused.inc({ reason });
  }

  apiRateLimited(): void {
    this.#apiRateLimited.inc();
  }

  historyRefused(): void {
    this.#historyRefused.inc();
  }

  readHeld(): void {
    this.#readsHeld.inc();
  }

  pruned(messages: number, seconds: number): void {
    this.#pruned.inc(messages);
    this.#pruneSeconds.observe(seconds);
  }
}
