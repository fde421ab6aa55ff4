// What the Hub needs of the durable transcript, and the group commit that feeds it.
import type { SearchTerm } from '../protocol/search.ts';

/**
 * Resolves after the event loop has read and written sockets. An immediate, where there is one: a
 * zero timer set from a timer callback that took over a millisecond is due again before the timers
 * phase ends, so two of them taking turns never let the loop reach the sockets.
 */
export const yieldToIo: () => Promise<void> =
  typeof setImmediate === 'function'
    ? () => new Promise((resolve) => setImmediate(resolve))
    : () => new Promise((resolve) => setTimeout(resolve, 0));

/** Where a message came from: a person's browser, or a console. */
export type Via = 'browser' | 'console';

/** A message stamped by the Hub, not yet stored. */
export interface NewMessage {
  id: string;
  /** The conversation: a room's name, or a whisper pair's key (see conversationKey). */
  room: string;
  sender: string;
  text: string;
  ts: number;
  via: Via;
  /** The sender's client id, so a resend is recognised. */
  cid?: string;
  /** A whisper's recipient. */
  recipient?: string;
}

/** A message as stored: with its place in its conversation. */
export interface StoredMessage extends Omit<NewMessage, 'via'> {
  seq: number;
  /** When an admin deleted it (float seconds): its text is empty and it stays as a tombstone. */
  deleted?: number;
  /** Unknown for messages stored before it was recorded. */
  via: Via | undefined;
}

/** What became of one appended message: stored with its seq, or a resend of one stored before. */
export type Appended = { seq: number } | { duplicate: StoredMessage };

/** How far a user has read a conversation. */
export interface ReadMarker {
  user: string;
  conversation: string;
  seq: number;
}

/** What a connection's first room needs from the store: the user's read marker there, and unread whispers. */
export interface Arrival {
  read: number;
  whispers: number;
}

/** A conversation's newest message, as a room list shows it. */
export interface ConversationHead {
  key: string;
  seq: number;
  ts: number;
}

/**
 * The key of the whisper conversation between two people: the same whoever writes, and never a room
 * name (a name cannot hold the control character U+0001 that starts and joins it). Not NUL: SQLite
 * text ends at a NUL.
 */
export function conversationKey(a: string, b: string): string {
  return a < b ? `\u0001${a}\u0001${b}` : `\u0001${b}\u0001${a}`;
}

/** Whether a conversation key is a whisper pair's rather than a room's. */
export const isPair = (key: string): boolean => key.startsWith('\u0001');

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
  /**
   * Store messages atomically, in order, each with the next seq of its conversation; a message whose
   * sender already stored one there with the same cid comes back as that one instead. Idempotent on `id`.
   */
  append(messages: readonly NewMessage[]): Promise<Appended[]>;
  /** The conversation's last `limit` messages, oldest first. */
  recent(room: string, limit: number): Promise<StoredMessage[]>;
  /** The conversation's messages after `seq`, oldest first, at most `limit`. */
  after(room: string, seq: number, limit: number): Promise<StoredMessage[]>;
  /** The conversation's last `limit` messages before `seq`, oldest first. */
  before(room: string, seq: number, limit: number): Promise<StoredMessage[]>;
  /** The conversation's newest seq (0 when it has none). */
  lastSeq(room: string): Promise<number>;
  /**
   * A room's messages that hold every term (a word, a phrase; a prefix where marked), newest first,
   * older than `before` when given, at most `limit`. Deleted messages and whispers never match. A store
   * maps the terms to its own engine (FTS5 here; a PostgreSQL store would use a tsquery).
   */
  search(
    room: string,
    terms: readonly SearchTerm[],
    before: number | undefined,
    limit: number,
  ): Promise<StoredMessage[]>;
  /** Rooms (not whisper pairs) with stored messages, most recently active first, at most `limit`. */
  rooms(limit: number): Promise<ConversationHead[]>;
  /** A user's read markers: of the given conversations, or of all of them. */
  markers(user: string, conversations?: readonly string[]): Promise<Map<string, number>>;
  /** Move read markers forward (never back). */
  saveMarkers(markers: readonly ReadMarker[]): Promise<void>;
  /** Whispers to `user` newer than its read markers. */
  unreadWhispers(user: string): Promise<number>;
  /** `user`'s read marker of `conversation` and its unread whispers, in one read (a welcome needs both). */
  arrival(user: string, conversation: string): Promise<Arrival>;
  /**
   * What `arrival` would answer, where the store knows it without reading (it has never stored a
   * marker or a whisper for `user`); undefined when it must read. A store whose file other processes
   * write never knows.
   */
  arrivalKnown?(user: string, conversation: string): Arrival | undefined;
  /** What `lastSeq` would answer, where the store knows it without reading (a conversation it never had). */
  lastSeqKnown?(room: string): number | undefined;
  /** Whether a name has ever been seen in a room. */
  knows(name: string): Promise<boolean>;
  /** Record names as seen. */
  remember(names: readonly string[]): Promise<void>;
  /**
   * How many appends may be outstanding at once (default 1). More than one only for a store that
   * commits appends strictly in the order they were made, such as a single writer thread.
   */
  readonly appendsInFlight?: number;
  /** How many searches the store takes at once, running or waiting (the Hub's SEARCHES_AT_ONCE unless less). */
  readonly searchesAtOnce?: number;
  /**
   * History reads the store takes at once (READS_AT_ONCE unless given). A local file answers on the
   * event loop, so more at once would only run back to back; a remote store's reads wait on the
   * network, and a pool can take several.
   */
  readonly readsAtOnce?: number;
}

/** What the group commit needs of the store. */
export type Appends = Pick<Transcript, 'append' | 'appendsInFlight'>;

/** What a submitted message became: newly stored (and broadcast), or a resend of a stored one. */
export type Committed = { stored: StoredMessage } | { duplicate: StoredMessage };

interface Pending {
  message: NewMessage;
  resolve: (committed: Committed) => void;
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
  /** Messages waiting before a batch goes to the store while another is still in flight (16). */
  pipelineAt?: number | undefined;
  /**
   * Least time between the starts of two commits while fewer than `pipelineAt` messages wait (0:
   * none). At a steady, modest rate this makes what arrives within it share one commit, one fsync.
   */
  commitSpacingMs?: number | undefined;
  /** A batch was committed: its size, how many it stored, and how long the store took (seconds). */
  onCommitted?: ((batch: number, stored: number, seconds: number) => void) | undefined;
}

interface Batch {
  readonly pending: Pending[];
  /** When it went to the store, and when the store answered (performance.now()). */
  readonly startedAt: number;
  answeredAt: number;
  /** Set once the store has answered. */
  outcome: { appended: Appended[] } | { error: unknown } | undefined;
}

/**
 * Group commit: messages submitted while a write is in flight are written together by the next one,
 * so a burst costs one transaction (one fsync) per batch instead of one per message. When the store
 * allows it, the next batch is already committing while the last one is being broadcast, so the
 * store and the event loop work at the same time. Batches are reported in the order they were made:
 * commit order is submission order and `onCommit` sees sequence numbers in increasing order.
 */
export class GroupCommit {
  readonly #transcript: Appends;
  readonly #maxBatch: number;
  readonly #maxBatchBytes: number;
  readonly #inFlight: number;
  readonly #pipelineAt: number;
  readonly #spacingMs: number;
  /** When the last batch went to the store. */
  #lastStart = Number.NEGATIVE_INFINITY;
  #spacing: ReturnType<typeof setTimeout> | undefined;
  readonly #onCommit: (batch: StoredMessage[]) => void;
  readonly #onReportError: (error: unknown) => void;
  readonly #onCommitted: NonNullable<GroupCommitOptions['onCommitted']>;
  readonly #yieldToIo: () => Promise<void>;
  readonly #queue: Pending[] = [];
  /** Batches handed to the store, oldest first, until they are reported. */
  readonly #batches: Batch[] = [];
  /** A batch is about to be taken (after a turn of I/O). */
  #starting = false;
  #idle: Array<() => void> = [];

  constructor(
    transcript: Appends,
    onCommit: (batch: StoredMessage[]) => void,
    options: GroupCommitOptions = {},
  ) {
    this.#transcript = transcript;
    this.#onCommit = onCommit;
    this.#maxBatch = options.maxBatch ?? 256;
    this.#maxBatchBytes = options.maxBatchBytes ?? 256 * 1024;
    this.#onReportError = options.onReportError ?? (() => {});
    this.#onCommitted = options.onCommitted ?? (() => {});
    this.#yieldToIo = options.yieldToIo ?? yieldToIo;
    this.#inFlight = Math.max(1, transcript.appendsInFlight ?? 1);
    this.#pipelineAt = options.pipelineAt ?? 16;
    this.#spacingMs = options.commitSpacingMs ?? 0;
  }

  /** Queue a message; resolves once it is committed and `onCommit` has run for its batch. */
  submit(message: NewMessage): Promise<Committed> {
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
    // A second batch goes to the store before the first is answered only when enough is waiting to
    // be worth a commit of its own: at a modest rate a message waits for the commit in flight either
    // way (the store commits one after the other), and what gathers meanwhile shares one commit.
    if (this.#batches.length > 0 && this.#queue.length < this.#pipelineAt) return;
    // Commits no closer than the spacing, unless enough waits to be worth one at once: an fsync costs
    // about as much CPU as everything else a message takes, and a few messages can share one.
    const wait = this.#lastStart + this.#spacingMs - performance.now();
    if (wait > 0 && this.#queue.length < this.#pipelineAt) {
      this.#spacing ??= setTimeout(() => {
        this.#spacing = undefined;
        this.#start();
      }, wait);
      return;
    }
    this.#starting = true;
    // Yield to I/O before each batch: sockets get read (frames arriving together join one batch)
    // and flushed (members drain what the last batch gave them). A fast store resolves without
    // ever reaching the event loop, and would otherwise starve every socket while a burst lasts.
    void this.#yieldToIo().then(() => {
      this.#starting = false;
      clearTimeout(this.#spacing);
      this.#spacing = undefined;
      this.#lastStart = performance.now();
      const batch: Batch = {
        pending: this.#queue.splice(0, this.#batchLength()),
        startedAt: this.#lastStart,
        answeredAt: 0,
        outcome: undefined,
      };
      this.#batches.push(batch);
      let appended: Promise<Appended[]>;
      try {
        appended = this.#transcript.append(batch.pending.map((p) => p.message));
      } catch (error) {
        appended = Promise.reject(error);
      }
      appended.then(
        (answer) => this.#answered(batch, { appended: answer }),
        (error: unknown) => this.#answered(batch, { error }),
      );
      this.#start();
    });
  }

  /** Report answered batches in the order they were made, then take the next. */
  #answered(batch: Batch, outcome: NonNullable<Batch['outcome']>): void {
    batch.outcome = outcome;
    batch.answeredAt = performance.now();
    for (let head = this.#batches[0]; head?.outcome; head = this.#batches[0]) {
      this.#batches.shift();
      const result = head.outcome;
      if ('error' in result) {
        for (const p of head.pending) p.reject(result.error);
        continue;
      }
      const committed = head.pending.map((p, i): Committed => {
        const appended = result.appended[i];
        if (appended && 'duplicate' in appended) return { duplicate: appended.duplicate };
        return { stored: { ...p.message, seq: appended?.seq ?? 0 } };
      });
      const stored = committed.flatMap((c) => ('stored' in c ? [c.stored] : []));
      this.#onCommitted(head.pending.length, stored.length, (head.answeredAt - head.startedAt) / 1000);
      try {
        if (stored.length > 0) this.#onCommit(stored);
      } catch (error) {
        this.#onReportError(error);
      }
      for (let i = 0; i < head.pending.length; i++) head.pending[i]?.resolve(committed[i] as Committed);
    }
    this.#start();
    if (this.#isIdle()) for (const resolve of this.#idle.splice(0)) resolve();
  }
}
