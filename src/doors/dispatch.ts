// What both doors do with a decoded frame once their peer is in a room: flood control, inflight
// bounds, and handing the frame to the Hub.
import type { Hub } from '../hub/hub.ts';
import type { Peer } from '../hub/peer.ts';
import type { Log } from '../log.ts';
import { CloseCode, ErrorCode } from '../protocol/codes.ts';
import type { ClientFrame } from '../protocol/frames.ts';
import { FloodGate, type FloodLimits } from './flood.ts';

/** Messages one connection may have waiting for commit before the door stops reading from it. */
export const MAX_INFLIGHT = 64;

/** How a door lets the handler slow its reading down. */
export interface Reading {
  pause(): void;
  resume(): void;
}

/** Handles the frames of one joined connection, whichever door it came through. */
export class FrameHandler {
  readonly #hub: Hub;
  readonly #peer: Peer;
  readonly #log: Log;
  readonly #reading: Reading;
  readonly #gate: FloodGate;
  #inflight = 0;
  #closed = false;

  constructor(hub: Hub, peer: Peer, log: Log, flood: FloodLimits, reading: Reading) {
    this.#hub = hub;
    this.#peer = peer;
    this.#log = log;
    this.#reading = reading;
    this.#gate = new FloodGate(flood);
  }

  handle(frame: ClientFrame): void {
    if (this.#closed || frame.type === 'pong') return;
    if (frame.type === 'hello') {
      this.#hub.refuse(
        this.#peer,
        ErrorCode.AlreadyJoined,
        'this connection is already in a room; hello is ignored',
      );
      return;
    }
    const verdict = this.#gate.take();
    if (verdict === 'disconnect') {
      this.#closed = true;
      this.#log.warn('flooding connection closed', { room: this.#peer.room, user: this.#peer.user });
      this.#peer.close(CloseCode.Flood, 'too many messages');
      return;
    }
    if (verdict === 'drop') {
      // One log line per burst of drops, not one per dropped frame.
      if (this.#gate.drops === 1)
        this.#log.warn('rate limit: dropping frames', { room: this.#peer.room, user: this.#peer.user });
      this.#hub.refuse(this.#peer, ErrorCode.RateLimited, 'too many messages; this one was dropped');
      return;
    }
    if (frame.type === 'presence') {
      this.#hub.presence(this.#peer, frame.status);
      return;
    }
    this.#track(this.#hub.message(this.#peer, frame.text));
  }

  /**
   * Bounds the messages in flight: reading pauses at MAX_INFLIGHT and resumes when half have been
   * committed, so a fast sender is slowed to the store's pace instead of queueing without limit.
   */
  #track(done: Promise<void>): void {
    this.#inflight += 1;
    if (this.#inflight === MAX_INFLIGHT) this.#reading.pause();
    void done.finally(() => {
      this.#inflight -= 1;
      if (this.#inflight === MAX_INFLIGHT / 2) this.#reading.resume();
    });
  }
}
