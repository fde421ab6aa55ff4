// The messages between the bench runner and its load-generator worker threads.
import type { RecordableHistogram } from 'node:perf_hooks';
import type { Target } from './clients.ts';

/** One connection the generator opens. */
export interface MemberSpec {
  id: number;
  door: 'console' | 'browser';
  room: string;
  user: string;
  /** Set when this member also sends: its sender number. */
  sender?: number;
}

/** Every sender in the run and its room (receivers need it to count what they missed). */
export interface SenderSpec {
  sender: number;
  room: string;
}

/** Generator usage over a measurement window, from inside one worker thread. */
export interface GenUsage {
  /** CPU of the worker thread as a share of one core (from /proc/thread-self/stat). */
  cpu: number;
  /** Event-loop utilisation, 0..1. */
  elu: number;
  /** Worker event-loop delay p99 in ms. */
  eldP99Ms: number;
}

export type Command =
  | { op: 'connect'; target: Target; members: MemberSpec[]; senders: SenderSpec[]; concurrency: number }
  | { op: 'step'; startNs: number; windowStartNs: number; endNs: number; ratePerSender: number }
  | { op: 'collect' }
  | { op: 'received' }
  | { op: 'sent' }
  | { op: 'verify'; sent: [number, number][] }
  | { op: 'pause'; member: number }
  | { op: 'resume'; member: number; waitMs: number }
  | { op: 'joins'; target: Target; room: string; count: number; backscroll: number; keepOpen: boolean }
  | { op: 'prefill'; target: Target; room: string; count: number; window: number }
  | { op: 'close' };

export interface ConnectResult {
  handshakeUs: number[];
  errors: number;
  firstError?: string;
  elapsedMs: number;
}

export interface CollectResult {
  hist: RecordableHistogram;
  /** Deliveries received whose scheduled time fell in the window (excluded members not counted). */
  inWindow: number;
  /** Messages this worker scheduled inside the window, per sender. */
  scheduled: [number, number][];
  usage: GenUsage;
}

export interface VerifyResult {
  lost: number;
  duplicated: number;
  reordered: number;
  members: number;
}

export interface ResumeResult {
  closedCode: number | undefined;
  received: number;
}

export interface JoinResult {
  /** Per join: WebSocket open to the last backscroll message, in µs. */
  toBackscrollUs: number[];
  /** Per join: connect start to WebSocket open, in µs. */
  openUs: number[];
  incomplete: number;
}

export type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string };
