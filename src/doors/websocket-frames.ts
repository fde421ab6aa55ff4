// RFC 6455 text frames as the server sends them, framed once per broadcast and shared by every socket.
import { concatBytes, type Outgoing } from '../hub/peer.ts';

const FRAMES = Symbol('websocket text frames');

/** One unmasked, final WebSocket text frame around `payload` (a server never masks). */
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

/**
 * The frames as consecutive WebSocket text frames, ready to write to the socket whole: one write per
 * member per broadcast, the same bytes for every member.
 */
export function websocketFrames(out: Outgoing): Uint8Array {
  return out.memo(FRAMES, () => concatBytes(out.parts.map((part) => textFrame(part.utf8))));
}
