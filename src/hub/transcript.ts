// What the Hub needs of the durable transcript, and the group commit that feeds it.

const yieldToIo: () => Promise<void> =
  typeof setImmediate === 'function'
    ? () => new Promise((resolve) => setImmediate(resolve))
    : () => new Promise((resolve) => setTimeout(resolve, 0));

/** A message stamped by the Hub, not yet stored. */
export interface NewMessage {
  id: string;
  room: string;
  sender: string;
  text: string;
  ts: number;
}

/** A message as stored: with its place in the transcript. */
export interface StoredMessage extends NewMessage {
  seq: number;
}

/** Why the store takes no writes, as /healthz names it: SQLite said read-only, full, or something else. */
export const WriteFailure = { ReadOnly: 'read-only', Full: 'full', Error: 'error' } as const;
export type WriteFailure = (typeof WriteFailure)[keyof typeof WriteFailure];

/** The store's last commit failed, and so did a write tried since: `database` says why. */
export class WritesFailing extends Error {
  override readonly name = 'WritesFailing';
  readonly database: WriteFailure;
  constructor(database: WriteFailure, options?: ErrorOptions) {
    const why = options?.cause instanceof Error ? options.cause.message : database;
    super(`the database takes no writes: ${why}`, options);
    this.database = database;
  }
}

/** The slice of the store the Hub uses. Implementations live in src/store. */
export interface Transcript {
  /** Store messages atomically, in order; returns their sequence numbers. Idempotent on `id`. */
  append(messages: readonly NewMessage[]): Promise<number[]>;
  /** The room's last `limit` messages, oldest first. */
  recent(room: string, limit: number): Promise<StoredMessage[]>;
  /** The room's messages after `seq`, oldest first, at most `limit`. */
  after(room: string, seq: number, limit: number): Promise<StoredMessage[]>;
  /** The newest sequence number in the whole transcript (0 when empty). */
  lastSeq(): Promise<number>;
  /**
   * How many appends may be outstanding at once (default 1). More than one only for a store that
   * commits appends strictly in the order they were made, such as a single writer thread.
   */
  readonly appendsInFlight?: number;
}

interface Pending {
  message: NewMessage;
  resolve: (stored: StoredMessage) => void;
  reject: (error: unknown) => void;
}

/** Bounds of a batch, and where a failure to report one goes. */
export interface GroupCommitOptions {
  /** Most messages per transaction (256). */
  maxBatch?: number | undefined;
  /**
   * Most text per transaction, in bytes (256 KiB): each committed batch is broadcast at once and
   * lands in every member's send buffer together.
   */
  maxBatchBytes?: number | undefined;
  /** `onCommit` threw: the batch is stored and its messages are still acknowledged. */
  onReportError?: (error: unknown) => void;
  /** Waited for before each batch is taken: one turn of I/O unless given (tests resolve their own). */
  yieldToIo?: (() => Promise<void>) | undefined;
}

interface Batch {
  readonly pending: Pending[];
  /** Set once the store has answered. */
  outcome: { seqs: number[] } | { error: unknown } | undefined;
}

/**
 * Group commit: messages submitted while a write is in flight are written together by the next one,
 * so a burst costs one transaction (one fsync) per batch instead of one per message. When the store
 * allows it, the next batch is already committing while the last one is being broadcast, so the
 * store and the event loop work at the same time. Batches are reported in the order they were made:
 * commit order is submission order and `onCommit` sees sequence numbers in increasing order.
 */
export class GroupCommit {
  readonly #transcript: Transcript;
  readonly #maxBatch: number;
  readonly #maxBatchBytes: number;
  readonly #inFlight: number;
  readonly #onCommit: (batch: StoredMessage[]) => void;
  readonly #onReportError: (error: unknown) => void;
  readonly #yieldToIo: () => Promise<void>;
  readonly #queue: Pending[] = [];
  /** Batches handed to the store, oldest first, until they are reported. */
  readonly #batches: Batch[] = [];
  /** A batch is about to be taken (after a turn of I/O). */
  #starting = false;
  #idle: Array<() => void> = [];

  constructor(
    transcript: Transcript,
    onCommit: (batch: StoredMessage[]) => void,
    options: GroupCommitOptions = {},
  ) {
    this.#transcript = transcript;
    this.#onCommit = onCommit;
    this.#maxBatch = options.maxBatch ?? 256;
    this.#maxBatchBytes = options.maxBatchBytes ?? 256 * 1024;
    this.#onReportError = options.onReportError ?? (() => {});
    this.#yieldToIo = options.yieldToIo ?? yieldToIo;
    this.#inFlight = Math.max(1, transcript.appendsInFlight ?? 1);
  }

  /** Queue a message; resolves once it is committed and `onCommit` has run for its batch. */
  submit(message: NewMessage): Promise<StoredMessage> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ message, resolve, reject });
      this.#start();
    });
  }

  /** Resolves when every message submitted so far is committed or has failed. */
  flushed(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #isIdle(): boolean {
    return this.#queue.length === 0 && this.#batches.length === 0 && !this.#starting;
  }

  /** How many queued messages the next batch takes: at least one, within both bounds. */
  #batchLength(): number {
    let bytes = 0;
    let n = 0;
    while (n < this.#queue.length && n < this.#maxBatch) {
      // UTF-16 length is a fair, cheap stand-in for the encoded size of the frame.
      bytes += (this.#queue[n]?.message.text.length ?? 0) + 200;
      if (n > 0 && bytes > this.#maxBatchBytes) break;
      n += 1;
    }
    return n;
  }

  /** Hand the next batch to the store if there is one and the store may take it. */
  #start(): void {
    if (this.#starting || this.#queue.length === 0 || this.#batches.length >= this.#inFlight) return;
    this.#starting = true;
    // Yield to I/O before each batch: sockets get read (frames arriving together join one batch)
    // and flushed (members drain what the last batch gave them). A fast store resolves without
    // ever reaching the event loop, and would otherwise starve every socket while a burst lasts.
    void this.#yieldToIo().then(() => {
      this.#starting = false;
      const batch: Batch = { pending: this.#queue.splice(0, this.#batchLength()), outcome: undefined };
      this.#batches.push(batch);
      let seqs: Promise<number[]>;
      try {
        seqs = this.#transcript.append(batch.pending.map((p) => p.message));
      } catch (error) {
        seqs = Promise.reject(error);
      }
      seqs.then(
        (answer) => this.#answered(batch, { seqs: answer }),
        (error: unknown) => this.#answered(batch, { error }),
      );
      this.#start();
    });
  }

  /** Report answered batches in the order they were made, then take the next. */
  #answered(batch: Batch, outcome: NonNullable<Batch['outcome']>): void {
    batch.outcome = outcome;
    for (let head = this.#batches[0]; head?.outcome; head = this.#batches[0]) {
      this.#batches.shift();
      const result = head.outcome;
      if ('error' in result) {
        for (const p of head.pending) p.reject(result.error);
        continue;
      }
      const stored = head.pending.map((p, i) => ({ ...p.message, seq: result.seqs[i] ?? 0 }));
      try {
        this.#onCommit(stored);
      } catch (error) {
        this.#onReportError(error);
      }
      for (let i = 0; i < head.pending.length; i++) head.pending[i]?.resolve(stored[i] as StoredMessage);
    }
    this.#start();
    if (this.#isIdle()) for (const resolve of this.#idle.splice(0)) resolve();
  }
}
