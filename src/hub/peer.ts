// The Hub's view of a connection (a door adapts its socket to Peer), and a frame encoded once for all.
import type { ServerFrame } from '../protocol/frames.ts';

const encoder = new TextEncoder();

/**
 * A server frame serialised once and shared by every recipient of a broadcast. Doors take the form
 * they need: the JSON string, its UTF-8 bytes (WebSocket text frame) or the bytes plus a newline
 * (NDJSON line). Each form is computed at most once per frame, however many members receive it.
 */
export class Encoded {
  /** The frame as JSON text. */
  readonly json: string;
  /** The message's sequence number, for message frames. */
  readonly seq: number | undefined;
  #utf8: Uint8Array | undefined;
  #line: Uint8Array | undefined;

  constructor(frame: ServerFrame) {
    this.json = JSON.stringify(frame);
    this.seq = frame.type === 'message' ? frame.seq : undefined;
  }

  /** UTF-8 bytes of the JSON text. */
  get utf8(): Uint8Array {
    this.#utf8 ??= encoder.encode(this.json);
    return this.#utf8;
  }

  /** UTF-8 bytes of the JSON text followed by a newline: one NDJSON line. */
  get line(): Uint8Array {
    this.#line ??= encoder.encode(`${this.json}\n`);
    return this.#line;
  }
}

/** A connected member of a room, as a door presents it to the Hub. */
export interface Peer {
  /** The name stamped on everything this peer sends. */
  readonly user: string;
  /** The room this peer is bound to. */
  readonly room: string;
  /** Browsers want recent history on join; consoles never get it. */
  readonly wantsBackscroll: boolean;
  /** Opted-in peers also receive welcome and error frames; plain seed consoles receive neither. */
  readonly optedIn: boolean;
  /** Resume point: replay the room's messages after this sequence number instead of the backscroll. */
  readonly since: number | undefined;
  /** Queue a frame for delivery. May throw if the transport is already broken. */
  send(frame: Encoded): void;
  /** Bytes accepted by send() but not yet handed to the network. */
  bufferedAmount(): number;
  /** Close the connection; the door reports the close back with Hub.leave(). */
  close(code: number, reason: string): void;
  /** Optional: hold writes until uncork(), so a committed batch leaves in one system call. */
  cork?(): void;
  uncork?(): void;
}
