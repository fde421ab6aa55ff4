// What a client reads off the wire: the protocol's server frames, checked against their schemas; the key
// challenge, which the connection answers before anything else; and error frames and frames of a newer
// server, read leniently so its additions never break an older client.
import * as v from 'valibot';
import { ServerFrame } from '../protocol/frames.ts';

/** The server's question to a hello that carried a key: sign this nonce. */
export interface ChallengeFrame {
  type: 'challenge';
  nonce: string;
}

/** An error frame whose code this client may not know. */
export interface AnyErrorFrame {
  type: 'error';
  code: string;
  message: string;
  ref?: string;
}

/** One line from the server, decoded. */
export type Incoming =
  | { kind: 'frame'; frame: ServerFrame; raw: Record<string, unknown> }
  | { kind: 'challenge'; frame: ChallengeFrame; raw: Record<string, unknown> }
  | { kind: 'error'; frame: AnyErrorFrame; raw: Record<string, unknown> }
  | { kind: 'other'; raw: Record<string, unknown> };

const Challenge = v.object({ type: v.literal('challenge'), nonce: v.pipe(v.string(), v.minLength(1)) });
const AnyError = v.object({
  type: v.literal('error'),
  code: v.string(),
  message: v.optional(v.string(), ''),
  ref: v.optional(v.string()),
});

/** Decode a line; undefined when it is not a JSON object with a type. */
export function decodeLine(line: string): Incoming | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined;
  const record = raw as Record<string, unknown>;
  if (typeof record.type !== 'string') return undefined;
  const challenge = v.safeParse(Challenge, raw);
  if (challenge.success) return { kind: 'challenge', frame: challenge.output, raw: record };
  const known = v.safeParse(ServerFrame, raw);
  if (known.success) return { kind: 'frame', frame: known.output, raw: record };
  const error = v.safeParse(AnyError, raw);
  if (error.success) return { kind: 'error', frame: error.output, raw: record };
  return { kind: 'other', raw: record };
}
