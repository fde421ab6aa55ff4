// One connection's frames, once its door has framed and decoded them: each becomes a Hub call, and an
// opted-in client's frame with a `ref` gets exactly one answer. A seed console keeps the original
// protocol: everything it says goes to the room its hello bound.
import type { Hub } from '../hub/hub.ts';
import type { Peer } from '../hub/peer.ts';
import { ErrorCode } from './codes.ts';
import type { ClientFrame } from './frames.ts';

/** Messages one connection may have waiting for commit before its door stops reading it. */
export const MAX_INFLIGHT = 64;

/**
 * History pages one connection may have asked for and not yet been answered (the Hub reads them in
 * turns); one more is answered `busy` at once. A door cannot stop frames it has already read, so a
 * pause of its reading would not bound them.
 */
export const MAX_READS_WAITING = 16;

/** How the handler slows a connection's reading down while too many of its messages await commit. */
export interface Reading {
  hold(reason: string): void;
  release(reason: string): void;
}

/** Handles the frames of one connection, whichever door it came through. */
export class ConnectionHandler {
  readonly #hub: Hub;
  readonly #peer: Peer;
  readonly #reading: Reading;
  /** The room the connection was opened for (a console's hello, a browser's `?room=`). */
  readonly #home: string;
  #inflight = 0;
  #reads = 0;
  /** The first room's join, welcome included. */
  #joining: Promise<void> | undefined;
  /**
   * Frames read before the welcome went out (a client that did not wait for it): handled in order
   * once it has, so the welcome is the first frame an opted-in connection gets. Reading pauses
   * meanwhile, which bounds them.
   */
  #early: ClientFrame[] | undefined;
  #stopped = false;

  constructor(hub: Hub, peer: Peer, reading: Reading, home: string) {
    this.#hub = hub;
    this.#peer = peer;
    this.#reading = reading;
    this.#home = home;
  }

  /** Enter the Hub and the first room: resuming after `since`, and welcomed if opted in. */
  start(since: number | undefined, ref: string | undefined): void {
    this.#hub.connect(this.#peer);
    this.#joining = this.#hub.join(this.#peer, this.#home, {
      since,
      welcome: this.#peer.optedIn ? { ref } : undefined,
    });
  }

  /** Leave the Hub: every room, its user away where this was the last connection. */
  stop(): void {
    this.#stopped = true;
    this.#early = undefined;
    this.#hub.disconnect(this.#peer);
  }

  handle(frame: ClientFrame): void {
    const hub = this.#hub;
    const peer = this.#peer;
    if (this.#early) {
      this.#early.push(frame);
      return;
    }
    if (this.#joining) {
      if (peer.optedIn && hub.joining(peer, this.#home)) {
        this.#early = [frame];
        this.#reading.hold('welcome');
        const welcomed = (): void => this.#welcomed();
        void this.#joining.then(welcomed, welcomed);
        return;
      }
      this.#joining = undefined;
    }
    if (!peer.optedIn) {
      // The seed protocol: a message or a presence change, for the room the hello bound.
      if (frame.type === 'message') this.#track(hub.message(peer, this.#home, frame.text));
      else if (frame.type === 'presence') hub.presence(peer, [this.#home], frame.status);
      return;
    }
    const ref = 'ref' in frame ? frame.ref : undefined;
    switch (frame.type) {
      case 'hello':
        hub.refuse(
          peer,
          ErrorCode.AlreadyJoined,
          'this connection has said hello; join rooms with join',
          ref,
        );
        return;
      case 'pong':
        if (ref !== undefined) hub.reply(peer, { type: 'ack', ref });
        return;
      case 'message': {
        const room = this.#room(frame.room, ref);
        if (room !== undefined) this.#track(hub.message(peer, room, frame.text, { cid: frame.cid, ref }));
        return;
      }
      case 'whisper':
        this.#track(hub.whisper(peer, frame.to, frame.text, { cid: frame.cid, ref }));
        return;
      case 'presence':
        hub.presence(peer, frame.room === undefined ? undefined : [frame.room], frame.status, ref);
        return;
      case 'join':
        void hub.join(peer, frame.room, { since: frame.since, ref });
        return;
      case 'leave':
        hub.leave(peer, frame.room, ref);
        return;
      case 'who':
        hub.who(peer, frame.room, ref);
        return;
      case 'rooms':
        void hub.rooms(peer, ref);
        return;
      case 'typing': {
        const room = this.#room(frame.room, ref);
        if (room !== undefined) hub.typing(peer, room, frame.state, ref);
        return;
      }
      case 'read': {
        if (frame.with !== undefined) {
          void hub.read(peer, { with: frame.with }, frame.seq, ref);
          return;
        }
        const room = this.#room(frame.room, ref);
        if (room !== undefined) void hub.read(peer, { room }, frame.seq, ref);
        return;
      }
      case 'history': {
        if (this.#reads >= MAX_READS_WAITING) {
          hub.historyBusy(peer, MAX_READS_WAITING, ref);
          return;
        }
        const page = { before: frame.before, after: frame.after, limit: frame.limit };
        if (frame.with !== undefined) {
          this.#read(hub.history(peer, { with: frame.with }, page, ref));
          return;
        }
        const room = this.#room(frame.room, ref);
        if (room !== undefined) this.#read(hub.history(peer, { room }, page, ref));
        return;
      }
      case 'search':
        void hub.search(peer, frame.room, frame.q, { before: frame.before, limit: frame.limit }, ref);
        return;
      case 'auth':
        hub.refuse(peer, ErrorCode.BadFrame, 'auth answers a challenge, and this connection has none', ref);
        return;
      case 'kick':
      case 'ban':
      case 'unban':
      case 'mute':
      case 'unmute':
      case 'delete':
      case 'revoke':
        void hub.admin(peer, frame);
        return;
      default:
        frame satisfies never;
    }
  }

  /** The first room's join is done: what was read meanwhile is handled, in order. */
  #welcomed(): void {
    const early = this.#early;
    this.#early = undefined;
    this.#joining = undefined;
    if (this.#stopped || !early) return;
    this.#reading.release('welcome');
    for (const frame of early) this.handle(frame);
  }

  /** The room a frame is for: the one it names, or, for a connection in exactly one room, that one. */
  #room(named: string | undefined, ref: string | undefined): string | undefined {
    if (named !== undefined) return named;
    const rooms = this.#hub.roomsOf(this.#peer);
    if (rooms.length === 1) return rooms[0];
    this.#hub.refuse(
      this.#peer,
      rooms.length === 0 ? ErrorCode.NotJoined : ErrorCode.BadFrame,
      rooms.length === 0
        ? 'this connection is in no room'
        : `say which room: this connection is in ${rooms.length}`,
      ref,
    );
    return undefined;
  }

  /** Counts a history page until it is answered (MAX_READS_WAITING). */
  #read(done: Promise<void>): void {
    this.#reads += 1;
    void done.finally(() => {
      this.#reads -= 1;
    });
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
