// The Hub's view of a connection (a door adapts its socket to Peer), and a frame encoded once for all.
import type { ServerFrame } from '../protocol/frames.ts';

const encoder = new TextEncoder();

/**
 * What a peer is handed: one encoded frame, or a run of them for the same room. Every form is
 * built at most once, however many members receive it, and each form is one write.
 */
export interface Outgoing {
  /** The frames, in order (for transports that send frames one by one). */
  readonly parts: readonly Encoded[];
  /** The frames as consecutive WebSocket text frames. */
  readonly wsText: Uint8Array;
  /** The frames as consecutive NDJSON lines. */
  readonly line: Uint8Array;
}

/**
 * A server frame serialised once and shared by every recipient of a broadcast. Doors take the form
 * they need: the JSON string, its UTF-8 bytes (WebSocket text frame) or the bytes plus a newline
 * (NDJSON line). Each form is computed at most once per frame, however many members receive it.
 */
export class Encoded implements Outgoing {
  /** The frame as JSON text. */
  readonly json: string;
  /** The message's sequence number, for message frames. */
  readonly seq: number | undefined;
  #utf8: Uint8Array | undefined;
  #line: Uint8Array | undefined;
  #wsText: Uint8Array | undefined;

  constructor(frame: ServerFrame) {
    this.json = JSON.stringify(frame);
    this.seq = frame.type === 'message' ? frame.seq : undefined;
  }

  get parts(): readonly Encoded[] {
    return [this];
  }

  /** UTF-8 bytes of the JSON text. */
  get utf8(): Uint8Array {
    this.#utf8 ??= encoder.encode(this.json);
    return this.#utf8;
  }

  /** UTF-8 bytes of the JSON text followed by a newline: one NDJSON line. */
  get line(): Uint8Array {
    if (!this.#line) {
      const utf8 = this.utf8;
      this.#line = new Uint8Array(utf8.length + 1);
      this.#line.set(utf8);
      this.#line[utf8.length] = 0x0a;
    }
    return this.#line;
  }

  /**
   * The whole WebSocket text frame a server sends (RFC 6455: final, opcode 1, unmasked, no
   * extension), framed once per broadcast so each recipient costs one write of the same bytes.
   */
  get wsText(): Uint8Array {
    this.#wsText ??= textFrame(this.utf8);
    return this.#wsText;
  }
}

/** Several frames for one room, handed to each member in one piece: one write per member per batch. */
export class EncodedRun implements Outgoing {
  readonly parts: readonly Encoded[];
  #wsText: Uint8Array | undefined;
  #line: Uint8Array | undefined;

  constructor(parts: readonly Encoded[]) {
    this.parts = parts;
  }

  get wsText(): Uint8Array {
    this.#wsText ??= concat(this.parts.map((p) => p.wsText));
    return this.#wsText;
  }

  get line(): Uint8Array {
    this.#line ??= concat(this.parts.map((p) => p.line));
    return this.#line;
  }
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const c of chunks) size += c.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** One unmasked, final WebSocket text frame around `payload`. */
export function textFrame(payload: Uint8Array): Uint8Array {
  const n = payload.length;
  const head = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const frame = new Uint8Array(head + n);
  frame[0] = 0x81; // FIN + text
  if (n < 126) frame[1] = n;
  else if (n < 65536) {
    frame[1] = 126;
    frame[2] = n >>> 8;
    frame[3] = n & 0xff;
  } else {
    frame[1] = 127;
    new DataView(frame.buffer).setBigUint64(2, BigInt(n));
  }
  frame.set(payload, head);
  return frame;
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
  /** Queue frames for delivery, as one write. May throw if the transport is already broken. */
  send(frames: Outgoing): void;
  /** Bytes accepted by send() but not yet handed to the network. */
  bufferedAmount(): number;
  /** Close the connection; the door reports the close back with Hub.leave(). */
  close(code: number, reason: string): void;
}
