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
}

interface Pending {
  message: NewMessage;
  resolve: (stored: StoredMessage) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit: messages submitted while a write is in flight are written together by the next one,
 * so a burst costs one transaction (one fsync) per batch instead of one per message. Batches are
 * written one after another, so commit order is submission order and `onCommit` sees sequence
 * numbers in increasing order.
 */
export class GroupCommit {
  readonly #transcript: Transcript;
  readonly #maxBatch: number;
  readonly #maxBatchBytes: number;
  readonly #onCommit: (batch: StoredMessage[]) => void;
  #queue: Pending[] = [];
  #writing: Promise<void> | undefined;

  /**
   * `maxBatch` bounds the messages per transaction; `maxBatchBytes` bounds their text, because each
   * committed batch is broadcast at once and lands in every member's send buffer together.
   */
  constructor(
    transcript: Transcript,
    onCommit: (batch: StoredMessage[]) => void,
    maxBatch = 256,
    maxBatchBytes = 256 * 1024,
  ) {
    this.#transcript = transcript;
    this.#onCommit = onCommit;
    this.#maxBatch = maxBatch;
    this.#maxBatchBytes = maxBatchBytes;
  }

  /** Queue a message; resolves once it is committed and `onCommit` has run for its batch. */
  submit(message: NewMessage): Promise<StoredMessage> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ message, resolve, reject });
      this.#writing ??= this.#drain();
    });
  }

  /** Messages waiting for or in a write. */
  get pending(): number {
    return this.#queue.length;
  }

  /** Resolves when every message submitted so far is committed or has failed. */
  async flushed(): Promise<void> {
    while (this.#writing) await this.#writing;
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

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        // Yield to I/O before each batch: sockets get read (frames arriving together join one batch)
        // and flushed (members drain what the last batch gave them). A fast store resolves without
        // ever reaching the event loop, and would otherwise starve every socket while a burst lasts.
        await yieldToIo();
        const batch = this.#queue.splice(0, this.#batchLength());
        let seqs: number[];
        try {
          seqs = await this.#transcript.append(batch.map((p) => p.message));
        } catch (error) {
          for (const p of batch) p.reject(error);
          continue;
        }
        const stored = batch.map((p, i) => ({ ...p.message, seq: seqs[i] ?? 0 }));
        this.#onCommit(stored);
        for (let i = 0; i < batch.length; i++) batch[i]?.resolve(stored[i] as StoredMessage);
      }
    } finally {
      this.#writing = undefined;
    }
  }
}
