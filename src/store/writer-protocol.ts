// The messages between the event loop and the transcript writer thread, shared by both sides.
import type { Appended, ReadMarker } from '../hub/transcript.ts';
import type { Durability, Indexed, Pruned } from './append.ts';

/** What the thread is started with (its workerData). */
export interface WriterData {
  /** The database file, as a file: URL. */
  readonly url: string;
}

/**
 * One piece of work for the thread: a batch of messages (as made by `flatten`; `retried` when a dead
 * thread held it before), read markers, names seen, a ping, a probe, a durability read, a retention
 * batch, or an indexing pass.
 */
export type WriterTask =
  | { args: Array<string | number | null>; retried: boolean }
  | { markers: ReadMarker[] }
  | { people: string[]; now: number }
  | { ping: true }
  | { probe: true }
  | { durability: true }
  | { prune: { before: number; limit: number } }
  | { index: { limit: number } };

/** What the event loop asks of the writer thread: tasks, numbered and answered in order, or to close. */
export type WriterRequest = (WriterTask & { n: number }) | { close: true };

/** A failure as it crosses the thread boundary: the error's message and SQLite's code when it gave one. */
export interface WriterFailure {
  readonly message: string;
  readonly code: string | undefined;
}

/**
 * What the writer thread answers: `ready` or `failed` once, after it proved a write at start; then
 * one reply per task under the task's `n`.
 */
export type WriterReply =
  | { ready: true }
  | { failed: WriterFailure }
  | { n: number; appended: Appended[] }
  | { n: number; done: true }
  | { n: number; durability: Durability }
  | { n: number; pruned: Pruned }
  | { n: number; indexed: Indexed }
  | { n: number; error: WriterFailure };

/** What a thrown error becomes on its way to the event loop. */
export function writerFailure(error: unknown): WriterFailure {
  const raw = (error as { code?: unknown } | null | undefined)?.code;
  const code = raw === undefined || raw === null ? undefined : String(raw);
  const text = error instanceof Error ? error.message : String(error);
  // SQLite's code leads the message, as the operator sees it at start-up and in the log.
  return { message: code && !text.startsWith(code) ? `${code}: ${text}` : text, code };
}

/** A write the store refused, with SQLite's code (for example SQLITE_FULL) when it gave one. */
export class WriterError extends Error {
  override readonly name = 'WriterError';
  readonly code: string | undefined;
  constructor(message: string, code?: string) {
    super(message);
    this.code = code;
  }

  /** The error a failure reply stands for. */
  static from(failure: WriterFailure): WriterError {
    return new WriterError(failure.message, failure.code);
  }
}
