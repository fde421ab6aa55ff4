// What the server counts for its operators: the sink the Hub, the doors and the store report to. Web-standard
// and free of any metrics library; src/metrics/prometheus.ts turns it into Prometheus text.
import type { Refusal } from '../hub/slots.ts';

export type { Refusal };

/** Which door a connection came through. */
export type Door = 'console' | 'browser';

/**
 * Why a connection ended: the client closed it, or the server did because it was slow (4008), flooded
 * (4429), missed its heartbeat, lost its key or sign-in (4401), was banned or kicked (4403), sent a
 * frame or line past the limit, never said hello, was turned away at its hello, failed (1011), or the
 * server stopped.
 */
export type DisconnectReason =
  | 'closed'
  | 'slow'
  | 'flood'
  | 'heartbeat'
  | 'revoked'
  | 'banned'
  | 'too_large'
  | 'hello_timeout'
  | 'refused'
  | 'error'
  | 'shutdown';

/** Every disconnect reason, in the order the dashboard lists them. */
export const DISCONNECT_REASONS: readonly DisconnectReason[] = [
  'closed',
  'slow',
  'flood',
  'heartbeat',
  'revoked',
  'banned',
  'too_large',
  'hello_timeout',
  'refused',
  'error',
  'shutdown',
];

/** What a close code the server sends says about why the connection ended. */
export function reasonOfClose(code: number): DisconnectReason {
  switch (code) {
    case 4008:
      return 'slow';
    case 4429:
      return 'flood';
    case 4401:
      return 'revoked';
    case 4403:
      return 'banned';
    case 1009:
      return 'too_large';
    case 1001:
    case 1012:
      return 'shutdown';
    case 1011:
      return 'error';
    default:
      return 'closed';
  }
}

/** A store operation that failed. */
export type StoreOperation = 'read' | 'write';

/**
 * The events operators see as metrics. Each call is cheap (a number added to), so the Hub may call
 * them on every batch; the implementation reads the numbers when it is scraped.
 */
export interface Metrics {
  /** A connection was accepted by a door. */
  opened(door: Door): void;
  /** A connection a door accepted has ended. */
  disconnected(door: Door, reason: DisconnectReason): void;
  /** A connection joined a room (its first room, or another one). */
  joined(): void;
  /**
   * A batch was committed: how many messages it held, how many of them were stored (the rest were
   * resends of stored ones), and how long the store took, in seconds.
   */
  committed(batch: number, stored: number, seconds: number): void;
  /** Message and whisper frames handed to connections (echoes included). */
  delivered(frames: number): void;
  /** A frame had to wait: its connection sent faster than its rate. */
  throttled(door: Door): void;
  /** A sign-in finished: a session was made, or the sign-in was refused. */
  signIn(ok: boolean): void;
  /** The transcript writer thread died and a new one took its place. */
  writerRestarted(): void;
  /** A store operation failed. */
  databaseError(operation: StoreOperation): void;
  /** A search was answered. */
  searched(): void;
  /** A search was refused as busy: the node's searches at once were running, or the person's own. */
  searchRefused(reason: Refusal): void;
  /** An export was refused as busy: the node's exports at once were streaming, or the person's own. */
  exportRefused(reason: Refusal): void;
  /** An HTTP API request was refused (429): its person or address asked faster than the rate. */
  apiRateLimited(): void;
  /** A history page was answered `busy`: 16 of its connection's were waiting. */
  historyRefused(): void;
  /** A history read waited for its reader's budget (20,000 messages at once, 10,000 a second). */
  readHeld(): void;
  /** Retention removed messages: how many, and how long the batch held the writer, in seconds. */
  pruned(messages: number, seconds: number): void;
}

const nothing = (): void => {};

/** Metrics that go nowhere: the server's sink while no metrics port is set. */
export const noMetrics: Metrics = {
  opened: nothing,
  disconnected: nothing,
  joined: nothing,
  committed: nothing,
  delivered: nothing,
  throttled: nothing,
  signIn: nothing,
  writerRestarted: nothing,
  databaseError: nothing,
  searched: nothing,
  searchRefused: nothing,
  exportRefused: nothing,
  apiRateLimited: nothing,
  historyRefused: nothing,
  readHeld: nothing,
  pruned: nothing,
};
