// The frames the Hub sends, built from stored messages: the seed protocol's plain message frame, the
// opted-in one (with where it came from and its client id), and the sender's echo (with its ref).
import type { ServerFrame } from '../protocol/frames.ts';
import { Encoded } from './peer.ts';
import { isPair, type StoredMessage } from './transcript.ts';

/** A room message frame exactly as the original server sent it, plus `seq`. */
export function plainMessage(m: StoredMessage): ServerFrame {
  return { type: 'message', room: m.room, sender: m.sender, text: m.text, id: m.id, ts: m.ts, seq: m.seq };
}

/** A room message frame for an opted-in client: with `via` and `cid` where known, and `ref` on an echo. */
export function richMessage(m: StoredMessage, ref?: string): ServerFrame {
  const frame: ServerFrame = { ...(plainMessage(m) as ServerFrame & { type: 'message' }) };
  if (m.via) frame.via = m.via;
  if (m.cid !== undefined) frame.cid = m.cid;
  if (m.deleted !== undefined) frame.deleted = true;
  if (ref !== undefined) frame.ref = ref;
  return frame;
}

/** A whisper frame, from its stored form (the conversation key is never shown). */
export function whisperFrame(m: StoredMessage, ref?: string): ServerFrame {
  const frame: ServerFrame = {
    type: 'whisper',
    from: m.sender,
    to: m.recipient ?? '',
    text: m.text,
    id: m.id,
    ts: m.ts,
    seq: m.seq,
  };
  if (m.via) frame.via = m.via;
  if (m.cid !== undefined) frame.cid = m.cid;
  if (ref !== undefined) frame.ref = ref;
  return frame;
}

/** A stored message as history shows it: a room message, or a whisper. */
export function historyFrame(m: StoredMessage): ServerFrame & { type: 'message' | 'whisper' } {
  return (isPair(m.room) ? whisperFrame(m) : richMessage(m)) as ServerFrame & { type: 'message' | 'whisper' };
}

/** One stored room message and its encodings, each made at most once however many members get it. */
export class MessageFrames {
  readonly message: StoredMessage;
  #plain: Encoded | undefined;
  #rich: Encoded | undefined;

  constructor(message: StoredMessage) {
    this.message = message;
  }

  /** For seed consoles. */
  get plain(): Encoded {
    this.#plain ??= new Encoded(plainMessage(this.message));
    return this.#plain;
  }

  /** For opted-in clients: the plain frame's JSON with the fields only they get, when it is made already. */
  get rich(): Encoded {
    if (!this.#rich) {
      const m = this.message;
      const extra = `${m.via ? `,"via":"${m.via}"` : ''}${m.cid === undefined ? '' : `,"cid":${JSON.stringify(m.cid)}`}${m.deleted === undefined ? '' : ',"deleted":true'}`;
      this.#rich = this.#plain
        ? new Encoded({ json: `${this.#plain.json.slice(0, -1)}${extra}}`, seq: m.seq })
        : new Encoded(richMessage(m));
    }
    return this.#rich;
  }

  /** The encoding a peer gets. */
  for(optedIn: boolean): Encoded {
    return optedIn ? this.rich : this.plain;
  }
}
