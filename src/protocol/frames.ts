// The wire protocol: valibot schemas for every frame, with the TypeScript types inferred from them.
import * as v from 'valibot';
import { ErrorCode, NoticeCode } from './codes.ts';
import { SEARCH_MAX, SEARCH_TEXT_MAX, searchProblem } from './search.ts';

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

/** A room or user name from a frame: trimmed, then held to the names rule. */
const Name = (what: string) =>
  v.pipe(
    Stringish,
    v.transform((s) => s.trim()),
    v.check((s) => s.length > 0, `${what} must not be blank`),
    v.check(
      (s) => nameProblem(s) === undefined,
      (issue) => `${what} ${nameProblem(String(issue.input))}`,
    ),
  );

/** Longest `ref` and `cid`, in characters. */
export const REF_MAX = 64;

/** A request's label, echoed on exactly one reply. */
const Ref = v.pipe(
  v.string('ref must be a string'),
  v.minLength(1, 'ref must not be empty'),
  v.maxLength(REF_MAX, `ref must be at most ${REF_MAX} characters`),
);

/** A client's id for a message, so a resend is recognised and not stored twice. */
const Cid = v.pipe(
  v.string('cid must be a string'),
  v.minLength(1, 'cid must not be empty'),
  v.maxLength(REF_MAX, `cid must be at most ${REF_MAX} characters`),
);

/** A sequence number as a client sends it. */
const Seq = v.pipe(
  v.number('must be a sequence number'),
  v.integer('must be a whole number'),
  v.minValue(0, 'must not be negative'),
  v.maxValue(Number.MAX_SAFE_INTEGER, 'is too large'),
);

/** Most messages one history request answers. */
export const HISTORY_MAX = 200;

/** Messages a history request answers when it names no limit. */
export const HISTORY_DEFAULT = 50;

// Something a reader can see: neither whitespace nor a default-ignorable (invisible) code point.
const VISIBLE = /[^\s\p{Default_Ignorable_Code_Point}]/u;

/** Message text as stored: cleaned, capped, and refused (`empty_message`) when nothing visible is left. */
const Text = v.pipe(
  Stringish,
  v.transform(cleanText),
  v.check((s) => VISIBLE.test(s), 'message must not be empty'),
);

/** Console → server: the first frame, binding identity and room. Blank user becomes "unknown". */
export const HelloFrame = v.object({
  type: v.literal('hello'),
  room: Name('room'),
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

/** Longest OpenSSH public key line and armored signature a console may send, in characters. */
export const KEY_TEXT_MAX = 16_384;

/** The namespace consoles sign the challenge nonce in (`ssh-keygen -Y sign -n runspec-room`). */
export const SIGNATURE_NAMESPACE = 'runspec-room';

/**
 * What a protocol-2 hello may add: a resume point for its room, a label for the welcome, and an
 * OpenSSH public key (`ssh-ed25519 AAAA…`) whose possession it will prove.
 */
export const HelloExtras = v.object({
  since: v.optional(Seq),
  ref: v.optional(Ref),
  key: v.optional(
    v.pipe(
      v.string('key must be an OpenSSH public key line'),
      v.minLength(1, 'key must not be empty'),
      v.maxLength(KEY_TEXT_MAX, `key must be at most ${KEY_TEXT_MAX} characters`),
    ),
  ),
});
export type HelloExtras = v.InferOutput<typeof HelloExtras>;

/**
 * Seed console → server: a message. Any `room`, `user`, `sender`, `id` or `ts` it carries is ignored:
 * the message goes to the room the hello bound. Text with nothing visible is refused.
 */
export const SeedMessageIn = v.object({ type: v.literal('message'), text: Text });

/** Client → server: a presence change; any status other than "available" means "away". */
const SeedPresenceIn = v.object({
  type: v.literal('presence'),
  status: v.pipe(v.optional(v.unknown(), 'away'), v.transform(normalizeStatus)),
});

/** The frames a seed console may send, exactly as the original server took them. */
export const SeedFrame = v.variant('type', [
  HelloFrame,
  SeedMessageIn,
  SeedPresenceIn,
  v.object({ type: v.literal('pong') }),
]);
export type SeedFrame = v.InferOutput<typeof SeedFrame>;

/** A message; `room` may be left out by a connection in exactly one room. */
export const MessageIn = v.object({
  type: v.literal('message'),
  text: Text,
  room: v.optional(Name('room')),
  cid: v.optional(Cid),
  ref: v.optional(Ref),
});
export type MessageIn = v.InferOutput<typeof MessageIn>;

/** A presence change, for one room, or for every room of the connection when none is named. */
export const PresenceIn = v.object({
  ...SeedPresenceIn.entries,
  room: v.optional(Name('room')),
  ref: v.optional(Ref),
});
export type PresenceIn = v.InferOutput<typeof PresenceIn>;

/** The answer to a ping. Any frame shows a client is alive. */
export const PongIn = v.object({ type: v.literal('pong'), ref: v.optional(Ref) });
export type PongIn = v.InferOutput<typeof PongIn>;

/** Join a room, resuming after `since` if given. */
export const JoinIn = v.object({
  type: v.literal('join'),
  room: Name('room'),
  since: v.optional(Seq),
  ref: v.optional(Ref),
});
export type JoinIn = v.InferOutput<typeof JoinIn>;

/** Leave a room. */
export const LeaveIn = v.object({ type: v.literal('leave'), room: Name('room'), ref: v.optional(Ref) });
export type LeaveIn = v.InferOutput<typeof LeaveIn>;

/** Who is in a room (joined or not). */
export const WhoIn = v.object({ type: v.literal('who'), room: Name('room'), ref: v.optional(Ref) });
export type WhoIn = v.InferOutput<typeof WhoIn>;

/** The rooms with members or stored messages. */
export const RoomsIn = v.object({ type: v.literal('rooms'), ref: v.optional(Ref) });
export type RoomsIn = v.InferOutput<typeof RoomsIn>;

/**
 * A page of a room's transcript (or of a whisper conversation, `with`), before or after a seq. Room
 * and `with`, or before and after, together are refused when the frame is decoded.
 */
export const HistoryIn = v.object({
  type: v.literal('history'),
  room: v.optional(Name('room')),
  with: v.optional(Name('with')),
  before: v.optional(Seq),
  after: v.optional(Seq),
  limit: v.optional(
    v.pipe(
      v.number('limit must be a number'),
      v.integer('limit must be a whole number'),
      v.minValue(1, 'limit must be at least 1'),
      v.maxValue(HISTORY_MAX, `limit must be at most ${HISTORY_MAX}`),
    ),
  ),
  ref: v.optional(Ref),
});
export type HistoryIn = v.InferOutput<typeof HistoryIn>;

/** What to search for: words, "phrases" and prefix* words, trimmed; refused when none is searchable. */
export const SearchText = v.pipe(
  v.string('q must be a string'),
  v.transform((s) => s.trim()),
  v.maxLength(SEARCH_TEXT_MAX, `q must be at most ${SEARCH_TEXT_MAX} characters`),
  v.check(
    (s) => searchProblem(s) === undefined,
    (issue) => `q ${searchProblem(String(issue.input))}`,
  ),
);

/**
 * Search a room's transcript (joined or not; whispers are never searched): the newest matches first,
 * older than `before` when it is given.
 */
export const SearchIn = v.object({
  type: v.literal('search'),
  room: Name('room'),
  q: SearchText,
  before: v.optional(Seq),
  limit: v.optional(
    v.pipe(
      v.number('limit must be a number'),
      v.integer('limit must be a whole number'),
      v.minValue(1, 'limit must be at least 1'),
      v.maxValue(SEARCH_MAX, `limit must be at most ${SEARCH_MAX}`),
    ),
  ),
  ref: v.optional(Ref),
});
export type SearchIn = v.InferOutput<typeof SearchIn>;

/** A message to one user, seen by both of them and nobody else. */
export const WhisperIn = v.object({
  type: v.literal('whisper'),
  to: Name('to'),
  text: Text,
  cid: v.optional(Cid),
  ref: v.optional(Ref),
});
export type WhisperIn = v.InferOutput<typeof WhisperIn>;

/** Typing states. */
export const TypingState = v.picklist(['active', 'idle']);
export type TypingState = v.InferOutput<typeof TypingState>;

/** Someone is typing in a room, or stopped. */
export const TypingIn = v.object({
  type: v.literal('typing'),
  room: v.optional(Name('room')),
  state: TypingState,
  ref: v.optional(Ref),
});
export type TypingIn = v.InferOutput<typeof TypingIn>;

/** How far the user has read a room (or a whisper conversation, `with`; not both). */
export const ReadIn = v.object({
  type: v.literal('read'),
  room: v.optional(Name('room')),
  with: v.optional(Name('with')),
  seq: Seq,
  ref: v.optional(Ref),
});
export type ReadIn = v.InferOutput<typeof ReadIn>;

/** A console's proof: the armored SSH signature over the challenge's nonce. */
export const AuthIn = v.object({
  type: v.literal('auth'),
  signature: v.pipe(
    v.string('signature must be an armored SSH signature'),
    v.minLength(1, 'signature must not be empty'),
    v.maxLength(KEY_TEXT_MAX, `signature must be at most ${KEY_TEXT_MAX} characters`),
  ),
  ref: v.optional(Ref),
});
export type AuthIn = v.InferOutput<typeof AuthIn>;

/** Longest reason an admin may give, in characters. */
export const REASON_MAX = 500;

const Reason = v.optional(
  v.pipe(
    v.string('reason must be a string'),
    v.transform(cleanText),
    v.maxLength(REASON_MAX, `reason must be at most ${REASON_MAX} characters`),
  ),
);

/** When a ban or mute ends: float seconds since the epoch, like `ts`. */
const Until = v.optional(
  v.pipe(
    v.number('until must be a time in seconds since the epoch'),
    v.finite('until must be a time in seconds since the epoch'),
    v.minValue(0, 'until must be a time in seconds since the epoch'),
  ),
);

/** A message id as the server stamps it. */
const MessageId = v.pipe(
  v.string('id must be a message id'),
  v.minLength(1, 'id must not be empty'),
  v.maxLength(REF_MAX, `id must be at most ${REF_MAX} characters`),
);

/** A key's SHA256 fingerprint, as `ssh-keygen -l` prints it. */
export const Fingerprint = v.pipe(
  v.string('fingerprint must be a string'),
  v.regex(/^SHA256:[A-Za-z0-9+/]{43}$/u, 'fingerprint must look like SHA256:… as ssh-keygen -l prints it'),
);

/** Admin: the user's connections leave the room (they may join again). */
export const KickIn = v.object({
  type: v.literal('kick'),
  room: Name('room'),
  user: Name('user'),
  reason: Reason,
  ref: v.optional(Ref),
});
export type KickIn = v.InferOutput<typeof KickIn>;

/** Admin: the user leaves the room and may not join it again until `until` or an unban. */
export const BanIn = v.object({
  type: v.literal('ban'),
  room: Name('room'),
  user: Name('user'),
  until: Until,
  reason: Reason,
  ref: v.optional(Ref),
});
export type BanIn = v.InferOutput<typeof BanIn>;

/** Admin: the user's messages to the room are refused until `until` or an unmute. */
export const MuteIn = v.object({ ...BanIn.entries, type: v.literal('mute') });
export type MuteIn = v.InferOutput<typeof MuteIn>;

/** Admin: lift a ban. */
export const UnbanIn = v.object({
  type: v.literal('unban'),
  room: Name('room'),
  user: Name('user'),
  ref: v.optional(Ref),
});
export type UnbanIn = v.InferOutput<typeof UnbanIn>;

/** Admin: lift a mute. */
export const UnmuteIn = v.object({ ...UnbanIn.entries, type: v.literal('unmute') });
export type UnmuteIn = v.InferOutput<typeof UnmuteIn>;

/** Admin: a message's text leaves the transcript; its seq stays, as a tombstone. */
export const DeleteIn = v.object({
  type: v.literal('delete'),
  room: Name('room'),
  id: MessageId,
  ref: v.optional(Ref),
});
export type DeleteIn = v.InferOutput<typeof DeleteIn>;

/** Admin: remove a console key; its live connections are closed. */
export const RevokeIn = v.object({
  type: v.literal('revoke'),
  fingerprint: Fingerprint,
  ref: v.optional(Ref),
});
export type RevokeIn = v.InferOutput<typeof RevokeIn>;

/** The frames only an admin may send. */
export type AdminFrame = KickIn | BanIn | MuteIn | UnbanIn | UnmuteIn | DeleteIn | RevokeIn;

/** A hello on a connection that has opted in already (it is refused, and the refusal answers its ref). */
const HelloAgain = v.object({ ...HelloFrame.entries, ...HelloExtras.entries });

/** Every frame an opted-in client (a protocol-2 console, any browser) may send. */
export const ClientFrame = v.variant('type', [
  HelloAgain,
  MessageIn,
  PresenceIn,
  PongIn,
  JoinIn,
  LeaveIn,
  WhoIn,
  RoomsIn,
  HistoryIn,
  SearchIn,
  WhisperIn,
  TypingIn,
  ReadIn,
  KickIn,
  BanIn,
  MuteIn,
  UnbanIn,
  UnmuteIn,
  DeleteIn,
  RevokeIn,
  AuthIn,
]);
export type ClientFrame = v.InferOutput<typeof ClientFrame>;

/** Where a message came from: a person's browser, or a console. */
export const Via = v.picklist(['browser', 'console']);
export type Via = v.InferOutput<typeof Via>;

/** Server → client: a stamped message. `seq` is its place in the room's transcript (an addition to the seed). */
export const MessageOut = v.object({
  type: v.literal('message'),
  room: v.string(),
  sender: v.string(),
  text: v.string(),
  id: v.string(),
  ts: v.number(),
  seq: v.number(),
  /** Opted-in clients: where it came from. */
  via: v.optional(Via),
  /** Opted-in clients: the sender's client id, when it gave one. */
  cid: v.optional(v.string()),
  /** Deleted by an admin: the text is empty, the seq stays. */
  deleted: v.optional(v.literal(true)),
  /** The sender's echo: the label of the frame that sent it. */
  ref: v.optional(v.string()),
});
export type MessageOut = v.InferOutput<typeof MessageOut>;

/** Server → client: someone's presence in the room. */
export const PresenceOut = v.object({
  type: v.literal('presence'),
  room: v.string(),
  user: v.string(),
  status: Status,
  ref: v.optional(v.string()),
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
  /** How far this user has read the room, and how many of its messages are newer. */
  read: v.number(),
  unread: v.number(),
  /** Whispers to this user newer than its read markers. */
  whispers: v.number(),
  /** The name is proven: by a console key, or by sign-in. (Always sent; absent from servers before keys.) */
  authenticated: v.optional(v.boolean()),
  /** The connection may send admin frames. (Always sent; absent from servers before keys.) */
  admin: v.optional(v.boolean()),
  ref: v.optional(v.string()),
});
export type WelcomeOut = v.InferOutput<typeof WelcomeOut>;

/** Server → opted-in client: a join is complete; live messages of the room follow. */
export const JoinedOut = v.object({
  type: v.literal('joined'),
  room: v.string(),
  /** The newest sequence number the catch-up covered. */
  seq: v.number(),
  /** False when more messages were missed than one resume replays. */
  complete: v.boolean(),
  read: v.number(),
  unread: v.number(),
  ref: v.optional(v.string()),
});
export type JoinedOut = v.InferOutput<typeof JoinedOut>;

/** Server → opted-in client: the connection has left a room. */
export const LeftOut = v.object({ type: v.literal('left'), room: v.string(), ref: v.optional(v.string()) });
export type LeftOut = v.InferOutput<typeof LeftOut>;

/** One user present in a room. */
export const WhoEntry = v.object({
  user: v.string(),
  status: Status,
  /** "human" when any of the user's connections there is a browser, else "console". */
  kind: v.picklist(['human', 'console']),
  connections: v.number(),
});
export type WhoEntry = v.InferOutput<typeof WhoEntry>;

/** Server → opted-in client: who is in a room. */
export const WhoOut = v.object({
  type: v.literal('who'),
  room: v.string(),
  users: v.array(WhoEntry),
  ref: v.optional(v.string()),
});
export type WhoOut = v.InferOutput<typeof WhoOut>;

/** One room in a room list. */
export const RoomEntry = v.object({
  room: v.string(),
  /** Users present now. */
  members: v.number(),
  /** Its newest sequence number (0: nothing stored). */
  seq: v.number(),
  /** When its newest message was stamped, if it has one. */
  ts: v.optional(v.number()),
});
export type RoomEntry = v.InferOutput<typeof RoomEntry>;

/** Server → opted-in client: the rooms with members or stored messages, most recently active first. */
export const RoomsOut = v.object({
  type: v.literal('rooms'),
  rooms: v.array(RoomEntry),
  /** More rooms than one answer lists. */
  more: v.boolean(),
  ref: v.optional(v.string()),
});
export type RoomsOut = v.InferOutput<typeof RoomsOut>;

/** Server → opted-in client: a whisper, to both its sender's and its recipient's connections. */
export const WhisperOut = v.object({
  type: v.literal('whisper'),
  from: v.string(),
  to: v.string(),
  text: v.string(),
  id: v.string(),
  ts: v.number(),
  /** Its place in the pair's own conversation. */
  seq: v.number(),
  via: v.optional(Via),
  cid: v.optional(v.string()),
  ref: v.optional(v.string()),
});
export type WhisperOut = v.InferOutput<typeof WhisperOut>;

/** Server → opted-in client: a page of history, oldest first; `more` when the transcript goes on. */
export const HistoryOut = v.object({
  type: v.literal('history'),
  room: v.optional(v.string()),
  with: v.optional(v.string()),
  messages: v.array(v.union([MessageOut, WhisperOut])),
  more: v.boolean(),
  ref: v.optional(v.string()),
});
export type HistoryOut = v.InferOutput<typeof HistoryOut>;

/** Server → opted-in client: messages of a room that match a search, newest first; `more` when older ones match too. */
export const SearchOut = v.object({
  type: v.literal('search'),
  room: v.string(),
  q: v.string(),
  messages: v.array(MessageOut),
  more: v.boolean(),
  ref: v.optional(v.string()),
});
export type SearchOut = v.InferOutput<typeof SearchOut>;

/** Server → opted-in client: someone in the room is typing, or stopped. */
export const TypingOut = v.object({
  type: v.literal('typing'),
  room: v.string(),
  user: v.string(),
  state: TypingState,
  ref: v.optional(v.string()),
});
export type TypingOut = v.InferOutput<typeof TypingOut>;

/** Server → the user's opted-in connections: how far the user has read a room or a whisper conversation. */
export const ReadOut = v.object({
  type: v.literal('read'),
  room: v.optional(v.string()),
  with: v.optional(v.string()),
  seq: v.number(),
  ref: v.optional(v.string()),
});
export type ReadOut = v.InferOutput<typeof ReadOut>;

/** Server → opted-in client: a request that has no other answer (presence, typing, pong) was done. */
export const AckOut = v.object({ type: v.literal('ack'), ref: v.string() });
export type AckOut = v.InferOutput<typeof AckOut>;

/** Server → opted-in client: a request was refused. */
export const ErrorOut = v.object({
  type: v.literal('error'),
  code: v.picklist(Object.values(ErrorCode)),
  message: v.string(),
  ref: v.optional(v.string()),
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

/** Server → console that offered a key: sign this nonce (`ssh-keygen -Y sign -n runspec-room`) and answer with auth. */
export const ChallengeOut = v.object({
  type: v.literal('challenge'),
  nonce: v.string(),
  /** The namespace to sign in. */
  namespace: v.string(),
  /** Seconds the nonce stays valid. */
  expires_in: v.number(),
});
export type ChallengeOut = v.InferOutput<typeof ChallengeOut>;

/** Server → opted-in client: an admin took this connection out of a room. Do not rejoin it by yourself. */
export const KickedOut = v.object({
  type: v.literal('kicked'),
  room: v.string(),
  by: v.string(),
  /** Banned as well: joining again is refused until `until` (or for good when absent). */
  banned: v.boolean(),
  until: v.optional(v.number()),
  reason: v.optional(v.string()),
});
export type KickedOut = v.InferOutput<typeof KickedOut>;

/** Server → opted-in members: an admin deleted a message; show it as deleted. */
export const DeletedOut = v.object({
  type: v.literal('deleted'),
  room: v.string(),
  id: v.string(),
  seq: v.number(),
});
export type DeletedOut = v.InferOutput<typeof DeletedOut>;

/** Server → opted-in console: are you there? Answer with a pong (or any frame). */
export const PingOut = v.object({ type: v.literal('ping') });
export type PingOut = v.InferOutput<typeof PingOut>;

/** Every frame the server sends. */
export const ServerFrame = v.variant('type', [
  MessageOut,
  PresenceOut,
  WelcomeOut,
  JoinedOut,
  LeftOut,
  WhoOut,
  RoomsOut,
  WhisperOut,
  HistoryOut,
  SearchOut,
  TypingOut,
  ReadOut,
  AckOut,
  ErrorOut,
  NoticeOut,
  PingOut,
  ChallengeOut,
  KickedOut,
  DeletedOut,
]);
export type ServerFrame = v.InferOutput<typeof ServerFrame>;

/** The result of decoding one inbound frame: the frame, or a wire error to report (with its ref, if any). */
export type Decoded<T> =
  | { ok: true; frame: T }
  | { ok: false; code: ErrorCode; message: string; optedIn: boolean; ref?: string };

/** Whether a raw frame asks for protocol 2 (so a refused hello can still be answered with an error frame). */
function asksForProtocol2(raw: unknown): boolean {
  const protocol = (raw as { protocol?: unknown } | null)?.protocol;
  return typeof protocol === 'number' && protocol >= PROTOCOL_VERSION;
}

/** A frame's label, when it is one the reply can carry. */
function refOf(raw: unknown): string | undefined {
  const ref = (raw as { ref?: unknown } | null)?.ref;
  return typeof ref === 'string' && ref.length > 0 && ref.length <= REF_MAX ? ref : undefined;
}

/** The wire code for a schema issue: a refused name, an empty message, or a malformed frame. */
function issueCode(path: string, type: string): ErrorCode {
  if (path === 'room' || path === 'user' || path === 'to' || path === 'with') return ErrorCode.BadName;
  if (path === 'text' && type === 'check') return ErrorCode.EmptyMessage;
  return ErrorCode.BadFrame;
}

const SEED_TYPES = new Set<string>(SeedFrame.options.map((o) => o.entries.type.literal));
const TYPES = new Set<string>(ClientFrame.options.map((o) => o.entries.type.literal));

/** What the schemas cannot say of one field alone: fields that exclude each other. */
function conflict(frame: ClientFrame): string | undefined {
  if (
    (frame.type === 'history' || frame.type === 'read') &&
    frame.room !== undefined &&
    frame.with !== undefined
  )
    return 'name a room or a user (with), not both';
  if (frame.type === 'history' && frame.before !== undefined && frame.after !== undefined)
    return 'ask for before or after, not both';
  return undefined;
}

/**
 * Parse JSON text into a validated client frame without throwing. A seed console (`optedIn` false)
 * is held to the original protocol: four frame types, and fields it did not know are ignored, not
 * checked. An opted-in client may send every frame, and what it sends is checked in full.
 */
export function decodeClientFrame(text: string, optedIn = true): Decoded<ClientFrame> {
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
  const ref = optedIn ? refOf(raw) : undefined;
  const refused = (code: ErrorCode, message: string): Decoded<ClientFrame> => ({
    ok: false,
    code,
    message,
    optedIn: optedIn || asksForProtocol2(raw),
    ...(ref === undefined ? {} : { ref }),
  });
  if (typeof type !== 'string' || !(optedIn ? TYPES : SEED_TYPES).has(type)) {
    return refused(ErrorCode.UnknownType, `unknown frame type ${JSON.stringify(type) ?? 'undefined'}`);
  }
  // A console's first hello is read as the seed protocol reads it; its protocol-2 additions, if it
  // asks for protocol 2, are read after (helloExtras).
  const result = optedIn ? v.safeParse(ClientFrame, raw) : v.safeParse(SeedFrame, raw);
  if (!result.success) {
    const issue = result.issues[0];
    const path = issue.path?.map((p) => String(p.key)).join('.') ?? '';
    const message = path ? `${path}: ${issue.message}` : issue.message;
    return refused(issueCode(path, issue.type), message);
  }
  const frame = result.output as ClientFrame;
  const problem = conflict(frame);
  return problem ? refused(ErrorCode.BadFrame, problem) : { ok: true, frame };
}

/** A protocol-2 hello's additions, or why they are refused. */
export function helloExtras(text: string): Decoded<HelloExtras> {
  const raw = JSON.parse(text) as unknown;
  const result = v.safeParse(HelloExtras, raw);
  if (result.success) return { ok: true, frame: result.output };
  const issue = result.issues[0];
  const path = issue.path?.map((p) => String(p.key)).join('.') ?? '';
  const ref = refOf(raw);
  return {
    ok: false,
    code: ErrorCode.BadFrame,
    message: path ? `${path}: ${issue.message}` : issue.message,
    optedIn: true,
    ...(ref === undefined ? {} : { ref }),
  };
}

/** A console's answer to its challenge, or why it is refused. */
export function decodeAuthFrame(text: string): Decoded<AuthIn> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, code: ErrorCode.BadJson, message: 'frame is not valid JSON', optedIn: true };
  }
  const result = v.safeParse(AuthIn, raw);
  if (result.success) return { ok: true, frame: result.output };
  const issue = result.issues[0];
  const path = issue.path?.map((p) => String(p.key)).join('.') ?? '';
  const ref = refOf(raw);
  return {
    ok: false,
    code: path === '' || path === 'type' ? ErrorCode.AuthFailed : ErrorCode.BadFrame,
    message:
      path === 'type'
        ? 'answer the challenge with an auth frame'
        : path
          ? `${path}: ${issue.message}`
          : issue.message,
    optedIn: true,
    ...(ref === undefined ? {} : { ref }),
  };
}
