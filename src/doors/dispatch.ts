// What both doors do with a decoded frame once their peer is in a room: bound the messages awaiting
// commit, and hand the frame to the Hub.
import type { Hub } from '../hub/hub.ts';
import type { Peer } from '../hub/peer.ts';
import { ErrorCode } from '../protocol/codes.ts';
import type { ClientFrame } from '../protocol/frames.ts';
import type { ReadGate } from './throttle.ts';

/** Messages one connection may have waiting for commit before the door stops reading from it. */
export const MAX_INFLIGHT = 64;

/** Handles the frames of one joined connection, whichever door it came through. */
export class FrameHandler {
  readonly #hub: Hub;
  readonly #peer: Peer;
  readonly #reading: ReadGate;
  #inflight = 0;

  constructor(hub: Hub, peer: Peer, reading: ReadGate) {
    this.#hub = hub;
    this.#peer = peer;
    this.#reading = reading;
  }

  handle(frame: ClientFrame): void {
    if (frame.type === 'pong') return;
    if (frame.type === 'hello') {
      this.#hub.refuse(
        this.#peer,
        ErrorCode.AlreadyJoined,
        'this connection is already in a room; hello is ignored',
      );
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
    if (this.#inflight === MAX_INFLIGHT) this.#reading.hold('commit');
    void done.finally(() => {
      this.#inflight -= 1;
      if (this.#inflight === MAX_INFLIGHT / 2) this.#reading.release('commit');
    });
  }
}
