// What both doors do with a decoded frame once their peer is in a room, and per-peer inflight bounds.
import type { Hub } from '../hub/hub.ts';
import type { Peer } from '../hub/peer.ts';
import { ErrorCode } from '../protocol/codes.ts';
import type { ClientFrame } from '../protocol/frames.ts';

/** Messages one connection may have waiting for commit before the door stops reading from it. */
export const MAX_INFLIGHT = 64;

/**
 * Bounds the messages a connection has in flight: reading pauses at MAX_INFLIGHT and resumes when
 * half have been committed, so a fast sender is slowed to the store's pace instead of queueing
 * without limit.
 */
export class Inflight {
  #count = 0;
  readonly #pause: () => void;
  readonly #resume: () => void;

  constructor(pause: () => void, resume: () => void) {
    this.#pause = pause;
    this.#resume = resume;
  }

  track(done: Promise<void>): void {
    this.#count += 1;
    if (this.#count === MAX_INFLIGHT) this.#pause();
    void done.finally(() => {
      this.#count -= 1;
      if (this.#count === MAX_INFLIGHT / 2) this.#resume();
    });
  }
}

/** Hand a frame from a joined peer to the Hub. */
export function dispatch(hub: Hub, peer: Peer, frame: ClientFrame, inflight: Inflight): void {
  switch (frame.type) {
    case 'message':
      inflight.track(hub.message(peer, frame.text));
      return;
    case 'presence':
      hub.presence(peer, frame.status);
      return;
    case 'hello':
      hub.refuse(peer, ErrorCode.AlreadyJoined, 'this connection is already in a room; hello is ignored');
      return;
  }
}
