// RFC 6455 text frames as the server sends them, framed once per broadcast and shared by every socket.
import type { Outgoing } from '../hub/peer.ts';

const FRAMES = Symbol('websocket text frames');
const encoder = new TextEncoder();
/** The longest header: two bytes and eight of length. */
const MAX_HEAD = 10;
/**
 * Where frames are put together before they are copied out at their exact size. Each frame's JSON is
 * encoded straight into it, instead of into an array of its own that is then framed and joined
 * (three arrays and two copies a frame): a welcome's six frames took 1 µs instead of 6. A larger run
 * gets a buffer of its own.
 */
const SCRATCH = new Uint8Array(64 * 1024);

/**
 * The frames as consecutive WebSocket text frames, ready to write to the socket whole: one write per
 * member per broadcast, the same bytes for every member.
 */
export function websocketFrames(out: Outgoing): Uint8Array {
  return out.memo(FRAMES, () => {
    // A UTF-16 code unit is at most three bytes of UTF-8.
    let bound = 0;
    for (const part of out.parts) bound += part.json.length * 3 + MAX_HEAD;
    const into = bound <= SCRATCH.length ? SCRATCH : new Uint8Array(bound);
    let at = 0;
    for (const part of out.parts) at += putTextFrame(into, at, part.json);
    return into.slice(0, at);
  });
}

/** One unmasked, final text frame of `text` (a server never masks), written at `at`; its length. */
function putTextFrame(into: Uint8Array, at: number, text: string): number {
  // The payload goes after the longest header, then moves up behind the header it needs.
  const { read, written: n } = encoder.encodeInto(text, into.subarray(at + MAX_HEAD));
  if (read !== text.length) throw new Error('a frame did not fit the room made for it');
  const head = n < 126 ? 2 : n < 65536 ? 4 : MAX_HEAD;
  if (head < MAX_HEAD) into.copyWithin(at + head, at + MAX_HEAD, at + MAX_HEAD + n);
  into[at] = 0x81; // FIN + text
  if (n < 126) into[at + 1] = n;
  else if (n < 65536) {
    into[at + 1] = 126;
    into[at + 2] = n >>> 8;
    into[at + 3] = n & 0xff;
  } else {
    into[at + 1] = 127;
    new DataView(into.buffer, into.byteOffset + at + 2, 8).setBigUint64(0, BigInt(n));
  }
  return head + n;
}
