// The Hub's view of a connection (a door adapts its socket to Peer), and a frame encoded once for all.
import type { ServerFrame } from '../protocol/frames.ts';

/**
 * What a peer is handed: one encoded frame, or a run of them for the same room. However many members
 * receive it, each wire form a door makes of it is made once: doors keep their forms in `memo`.
 */
export interface Outgoing {
  /** The frames, in order. */
  readonly parts: readonly Encoded[];
  /**
   * The value `make` computes for this frame or run, computed on the first call for each `key` and
   * returned as it is on every later one. A door keys it by its own symbol (its wire form).
   */
  memo<T>(key: symbol, make: (out: Outgoing) => T): T;
}

/** Keeps one value per key for an Outgoing; most frames go out through one door, so one slot is inline. */
class Memo {
  #key: symbol | undefined;
  #value: unknown;
  #more: Map<symbol, unknown> | undefined;

  get<T>(key: symbol, make: () => T): T {
    if (this.#key === key) return this.#value as T;
    if (this.#more?.has(key)) return this.#more.get(key) as T;
    const value = make();
    if (this.#key === undefined) {
      this.#key = key;
      this.#value = value;
    } else {
      this.#more ??= new Map();
      this.#more.set(key, value);
    }
    return value;
  }
}

/**
 * A server frame serialised once and shared by every recipient of a broadcast: its JSON text, and
 * whatever wire forms the doors memoise on it.
 */
export class Encoded implements Outgoing {
  /** The frame as JSON text. */
  readonly json: string;
  /** The message's sequence number, for message frames. */
  readonly seq: number | undefined;
  readonly #memo = new Memo();

  constructor(frame: ServerFrame | { json: string; seq: number | undefined }) {
    if ('json' in frame) {
      this.json = frame.json;
      this.seq = frame.seq;
    } else {
      this.json = JSON.stringify(frame);
      this.seq = frame.type === 'message' ? frame.seq : undefined;
    }
  }

  get parts(): readonly Encoded[] {
    return [this];
  }

  memo<T>(key: symbol, make: (out: Outgoing) => T): T {
    return this.#memo.get(key, () => make(this));
  }
}

/** Several frames for one room, handed to each member in one piece: one write per member per batch. */
export class EncodedRun implements Outgoing {
  readonly parts: readonly Encoded[];
  readonly #memo = new Memo();

  constructor(parts: readonly Encoded[]) {
    this.parts = parts;
  }

  memo<T>(key: symbol, make: (out: Outgoing) => T): T {
    return this.#memo.get(key, () => make(this));
  }
}

/** A connection, as a door presents it to the Hub. */
export interface Peer {
  /** The name stamped on everything this peer sends. */
  readonly user: string;
  /** Which door it came through: a person's browser, or a console. */
  readonly via: 'browser' | 'console';
  /** Browsers want recent history on join; consoles never get it unasked. */
  readonly wantsBackscroll: boolean;
  /** Opted-in peers (protocol 2) also get welcome, replies, errors and whispers; seed consoles neither. */
  readonly optedIn: boolean;
  /** The name is proven (a signed-in browser, a console that proved its key), not just claimed. */
  readonly authenticated?: boolean;
  /**
   * Whom this connection's history reads are counted for, as they take turns with everyone else's:
   * `person NAME` (the default), or, where a name is a claim anyone can make (a browser in dev mode),
   * `address GROUP`, so one client cannot take a turn for each name it makes up; a console without a
   * key, `console NAME`, apart from the person it names. Its frames' shared rate counts the same.
   */
  readonly reader?: string;
  /** Queue frames for delivery, as one write. May throw if the transport is already broken. */
  send(frames: Outgoing): void;
  /** Bytes accepted by send() but not yet handed to the network. */
  bufferedAmount(): number;
  /** Close the connection; the door reports the close back with Hub.disconnect(). */
  close(code: number, reason: string): void;
}
