// Message text carrying its own identity and schedule (`<sender>:<n>:<scheduledNs>:` padded), and fast parsers.

/** Every message body is this many bytes (ASCII). */
export const BODY_BYTES = 200;

const PAD = 'x'.repeat(BODY_BYTES);

/** Monotonic nanoseconds, shared by every process on the machine (CLOCK_MONOTONIC). */
export function nowNs(): number {
  return Number(process.hrtime.bigint());
}

/** The body of message `n` from `sender`, scheduled at `scheduledNs`. */
export function messageText(sender: number, n: number, scheduledNs: number): string {
  const head = `${sender}:${n}:${scheduledNs}:`;
  return head + PAD.slice(head.length);
}

/** What a message body says about itself. */
export interface Stamp {
  sender: number;
  n: number;
  scheduledNs: number;
}

const COLON = 0x3a;
const ZERO = 0x30;
const TEXT_KEY = Buffer.from('"text":"');
const MESSAGE_PREFIX = Buffer.from('{"type":"message"');
const WELCOME_PREFIX = Buffer.from('{"type":"welcome"');

/** Kinds of server frame the load generator cares about. */
export type FrameKind = 'message' | 'welcome' | 'other';

/** The kind of a JSON frame held in bytes (servers write `type` first). */
export function frameKind(bytes: Uint8Array, start = 0): FrameKind {
  if (startsWith(bytes, start, MESSAGE_PREFIX)) return 'message';
  if (startsWith(bytes, start, WELCOME_PREFIX)) return 'welcome';
  return 'other';
}

function startsWith(bytes: Uint8Array, start: number, prefix: Uint8Array): boolean {
  if (bytes.length - start < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (bytes[start + i] !== prefix[i]) return false;
  return true;
}

/** Parse the stamp out of a message frame's JSON bytes, without JSON.parse; undefined if not ours. */
export function stampFromBytes(bytes: Buffer, start: number, end: number): Stamp | undefined {
  const at = bytes.indexOf(TEXT_KEY, start);
  if (at === -1 || at >= end) return undefined;
  let i = at + TEXT_KEY.length;
  const fields = [0, 0, 0];
  for (let f = 0; f < 3; f++) {
    let value = 0;
    let digits = 0;
    for (;;) {
      const c = bytes[i++];
      if (c === COLON) break;
      if (c === undefined || c < ZERO || c > ZERO + 9) return undefined;
      value = value * 10 + (c - ZERO);
      digits += 1;
    }
    if (digits === 0) return undefined;
    fields[f] = value;
  }
  return { sender: fields[0] as number, n: fields[1] as number, scheduledNs: fields[2] as number };
}

/** Parse the stamp out of a message text already decoded (Socket.IO hands objects). */
export function stampFromText(text: string): Stamp | undefined {
  const parts = text.split(':', 3);
  if (parts.length < 3) return undefined;
  const [sender, n, scheduledNs] = parts.map(Number) as [number, number, number];
  if (!Number.isInteger(sender) || !Number.isInteger(n) || !Number.isFinite(scheduledNs)) return undefined;
  return { sender, n, scheduledNs };
}
