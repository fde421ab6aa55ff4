// The wire protocol: valibot schemas for every frame, with the TypeScript types inferred from them.
import * as v from 'valibot';
import { ErrorCode, NoticeCode } from './codes.ts';

/** The protocol version a console opts into by sending `"protocol": 2` in its hello. */
export const PROTOCOL_VERSION = 2;

/** Message text longer than this many characters (code points) is cut and marked with "…". */
export const TEXT_CAP = 20_000;

/** Longest user or room name, in characters. */
export const NAME_MAX = 128;

// Names never carry controls, format characters (soft hyphen, zero-width and bidi characters, tags),
// line or paragraph separators, default-ignorable code points (variation selectors, Hangul fillers)
// or unpaired surrogates: invisible, they let "ali\u00adce" pass for "alice".
/** Characters no name may contain; the page gets the same rule from /static/protocol.js. */
export const FORBIDDEN_IN_NAME = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}\p{Cs}]/u;

/** Why a name was refused, or undefined when it is acceptable. */
export function nameProblem(name: string): string | undefined {
  if (name.length === 0) return 'must not be blank';
  if ([...name].length > NAME_MAX) return `must be at most ${NAME_MAX} characters`;
  if (FORBIDDEN_IN_NAME.test(name)) return 'must not contain control, format or invisible characters';
  return undefined;
}

// Control characters other than tab and newline can drive a console's terminal (escape sequences)
// or hide text; both doors drop them from message text. A CR goes too, so CRLF becomes LF.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const TEXT_CONTROLS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/gu;

/** Message text as stored: control characters other than tab and newline removed, then capped. */
export function cleanText(text: string): string {
  return capText(text.replace(TEXT_CONTROLS, ''));
}

/** Cut text to TEXT_CAP characters (never splitting a surrogate pair) and mark the cut with "…". */
export function capText(text: string): string {
  const wellFormed = text.isWellFormed() ? text : text.toWellFormed();
  if (wellFormed.length <= TEXT_CAP) return wellFormed;
  let units = 0;
  let chars = 0;
  for (const ch of wellFormed) {
    if (chars === TEXT_CAP) return `${wellFormed.slice(0, units)}…`;
    units += ch.length;
    chars += 1;
  }
  return wellFormed;
}

/** Anything other than "available" is "away", as the original server did. */
export function normalizeStatus(status: unknown): Status {
  return status === 'available' ? 'available' : 'away';
}

// Scalars are turned into strings the way the original server did (it called Python's str() on
// them, which spells booleans True and False); objects and arrays are not names or text.
const Stringish = v.pipe(
  v.optional(v.nullable(v.union([v.string(), v.number(), v.boolean()])), ''),
  v.transform((value): string => {
    if (value === null) return '';
    if (typeof value === 'boolean') return value ? 'True' : 'False';
    return String(value);
  }),
);

/** Presence status on the wire. */
export const Status = v.picklist(['available', 'away']);
export type Status = v.InferOutput<typeof Status>;

/** Console → server: the first frame, binding identity and room. Blank user becomes "unknown". */
export const HelloFrame = v.object({
  type: v.literal('hello'),
  room: v.pipe(
    Stringish,
    v.transform((s) => s.trim()),
    v.check((s) => s.length > 0, 'room must not be blank'),
    v.check(
      (s) => nameProblem(s) === undefined,
      (issue) => `room ${nameProblem(String(issue.input))}`,
    ),
  ),
  user: v.pipe(
    Stringish,
    v.transform((s) => s.trim() || 'unknown'),
    v.check(
      (s) => nameProblem(s) === undefined,
      (issue) => `user ${nameProblem(String(issue.input))}`,
    ),
  ),
  protocol: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1))),
});
export type HelloFrame = v.InferOutput<typeof HelloFrame>;

// Something a reader can see: neither whitespace nor a default-ignorable (invisible) code point.
const VISIBLE = /[^\s\p{Default_Ignorable_Code_Point}]/u;

/**
 * Client → server: a message. Any `room`, `user`, `sender`, `id` or `ts` it carries is ignored.
 * Text with nothing visible once cleaned is refused (`empty_message`): neither stored nor sent.
 */
export const MessageIn = v.object({
  type: v.literal('message'),
  text: v.pipe(
    Stringish,
    v.transform(cleanText),
    v.check((s) => VISIBLE.test(s), 'message must not be empty'),
  ),
});
export type MessageIn = v.InferOutput<typeof MessageIn>;

/** Client → server: a presence change; any status other than "available" means "away". */
export const PresenceIn = v.object({
  type: v.literal('presence'),
  status: v.pipe(v.optional(v.unknown(), 'away'), v.transform(normalizeStatus)),
});
export type PresenceIn = v.InferOutput<typeof PresenceIn>;

/** Client → server (protocol 2): the answer to a ping. Any frame shows a client is alive. */
export const PongIn = v.object({ type: v.literal('pong') });
export type PongIn = v.InferOutput<typeof PongIn>;

/** Every frame a client may send once it is in a room. */
export const ClientFrame = v.variant('type', [HelloFrame, MessageIn, PresenceIn, PongIn]);
export type ClientFrame = v.InferOutput<typeof ClientFrame>;

/** Server → client: a stamped message. `seq` orders the room's transcript (an addition to the seed). */
export const MessageOut = v.object({
  type: v.literal('message'),
  room: v.string(),
  sender: v.string(),
  text: v.string(),
  id: v.string(),
  ts: v.number(),
  seq: v.number(),
});
export type MessageOut = v.InferOutput<typeof MessageOut>;

/** Server → client: someone's presence in the room. */
export const PresenceOut = v.object({
  type: v.literal('presence'),
  room: v.string(),
  user: v.string(),
  status: Status,
});
export type PresenceOut = v.InferOutput<typeof PresenceOut>;

/** Server → opted-in client: sent first, says who and where the connection is. */
export const WelcomeOut = v.object({
  type: v.literal('welcome'),
  protocol: v.number(),
  server: v.string(),
  room: v.string(),
  user: v.string(),
  /** The room's newest sequence number when the connection joined. */
  seq: v.number(),
  /** On a resume: false when more messages were missed than one resume replays. */
  complete: v.optional(v.boolean()),
});
export type WelcomeOut = v.InferOutput<typeof WelcomeOut>;

/** Server → opted-in client: a request was refused. */
export const ErrorOut = v.object({
  type: v.literal('error'),
  code: v.picklist(Object.values(ErrorCode)),
  message: v.string(),
});
export type ErrorOut = v.InferOutput<typeof ErrorOut>;

/** Server → opted-in client: information about its connection; nothing was refused. */
export const NoticeOut = v.object({
  type: v.literal('notice'),
  code: v.picklist(Object.values(NoticeCode)),
  message: v.string(),
  /** For `rate_limited`: when the next frame will be taken. */
  retry_after_ms: v.optional(v.number()),
});
export type NoticeOut = v.InferOutput<typeof NoticeOut>;

/** Server → opted-in console: are you there? Answer with a pong (or any frame). */
export const PingOut = v.object({ type: v.literal('ping') });
export type PingOut = v.InferOutput<typeof PingOut>;

/** Every frame the server sends. */
export const ServerFrame = v.variant('type', [
  MessageOut,
  PresenceOut,
  WelcomeOut,
  ErrorOut,
  NoticeOut,
  PingOut,
]);
export type ServerFrame = v.InferOutput<typeof ServerFrame>;

/** The result of decoding one inbound frame: the frame, or a wire error to report. */
export type Decoded<T> =
  | { ok: true; frame: T }
  | { ok: false; code: ErrorCode; message: string; optedIn: boolean };

/** Whether a raw frame asks for protocol 2 (so a refused hello can still be answered with an error frame). */
function asksForProtocol2(raw: unknown): boolean {
  const protocol = (raw as { protocol?: unknown } | null)?.protocol;
  return typeof protocol === 'number' && protocol >= PROTOCOL_VERSION;
}

/** The wire code for a schema issue: a refused name, an empty message, or a malformed frame. */
function issueCode(path: string, type: string): ErrorCode {
  if (path === 'room' || path === 'user') return ErrorCode.BadName;
  if (path === 'text' && type === 'check') return ErrorCode.EmptyMessage;
  return ErrorCode.BadFrame;
}

/** Parse JSON text into a validated client frame without throwing. */
export function decodeClientFrame(text: string): Decoded<ClientFrame> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, code: ErrorCode.BadJson, message: 'frame is not valid JSON', optedIn: false };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { ok: false, code: ErrorCode.BadFrame, message: 'frame must be a JSON object', optedIn: false };
  }
  const type = (raw as { type?: unknown }).type;
  if (type !== 'hello' && type !== 'message' && type !== 'presence' && type !== 'pong') {
    return {
      ok: false,
      code: ErrorCode.UnknownType,
      message: `unknown frame type ${JSON.stringify(type) ?? 'undefined'}`,
      optedIn: asksForProtocol2(raw),
    };
  }
  const result = v.safeParse(ClientFrame, raw);
  if (!result.success) {
    const issue = result.issues[0];
    const path = issue.path?.map((p) => String(p.key)).join('.') ?? '';
    const code = issueCode(path, issue.type);
    const message = path ? `${path}: ${issue.message}` : issue.message;
    return { ok: false, code, message, optedIn: asksForProtocol2(raw) };
  }
  return { ok: true, frame: result.output };
}
