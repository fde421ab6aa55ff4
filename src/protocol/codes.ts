// Named codes: wire error codes carried in error frames, and WebSocket close codes.

/** Codes of `{"type":"error"}` frames (sent only to clients that opted in). */
export const ErrorCode = {
  BadJson: 'bad_json',
  BadFrame: 'bad_frame',
  UnknownType: 'unknown_type',
  BadName: 'bad_name',
  BadUtf8: 'bad_utf8',
  AlreadyJoined: 'already_joined',
  BinaryUnsupported: 'binary_unsupported',
  StoreUnavailable: 'store_unavailable',
  ShuttingDown: 'shutting_down',
  EmptyMessage: 'empty_message',
  /** The frame names a room this connection has not joined. */
  NotJoined: 'not_joined',
  /** The connection is in as many rooms as it may be. */
  TooManyRooms: 'too_many_rooms',
  /** A whisper to a name the server has never seen. */
  UnknownUser: 'unknown_user',
  /** The key's proof failed (unknown key, bad or late signature); the connection is closed. */
  AuthFailed: 'auth_failed',
  /** The name is protected by an enrolled key (or every console must prove one): hello with `key`. */
  AuthRequired: 'auth_required',
  /** The key this connection proved was removed; the connection is closed. */
  Revoked: 'revoked',
  /** Only an admin may do that. */
  Forbidden: 'forbidden',
  /** The user is banned from the room. */
  Banned: 'banned',
  /** The user is muted in the room: the message was not stored. */
  Muted: 'muted',
  /** What the request names (a message, a person in a room, a key) does not exist. */
  NotFound: 'not_found',
  /**
   * As many searches as the server runs at once are waiting, or 16 history pages of this connection
   * are: nothing was done; ask again shortly (a page: once one of them is answered).
   */
  Busy: 'busy',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Codes of `{"type":"notice"}` frames: information for a client that opted in; nothing was refused. */
export const NoticeCode = {
  /** The connection sends faster than its rate; its frames are being slowed, none is dropped. */
  RateLimited: 'rate_limited',
} as const;
export type NoticeCode = (typeof NoticeCode)[keyof typeof NoticeCode];

/** Codes of HTTP refusals (`{"error":{"code":…,"message":…}}`) on the browser door's routes and `/ws`. */
export const RefusalCode = {
  /** `/ws` asked for without a WebSocket upgrade (426). */
  UpgradeRequired: 'upgrade_required',
  /** An upgrade that is not a valid WebSocket upgrade on `/ws` (400). */
  BadUpgrade: 'bad_upgrade',
  /** The server is stopping (503). */
  ShuttingDown: 'shutting_down',
  /** A connection limit was reached (503). */
  TooManyConnections: 'too_many_connections',
  /** As many searches as the server runs at once are waiting: ask again shortly (503, Retry-After). */
  Busy: 'busy',
  /** An `/api/` request past its person's or address's rate: ask again after Retry-After (429). */
  RateLimited: 'rate_limited',
  /** A page on another origin tried to open the door (403). */
  BadOrigin: 'bad_origin',
  /** A request for a host name the server does not answer to (403, dev mode). */
  BadHost: 'bad_host',
  /** No valid sign-in session (401). */
  Unauthenticated: 'unauthenticated',
  /** Banned from the room asked about: its history, search and export are refused too (403). */
  Banned: 'banned',
  /** A query parameter failed validation (400). */
  BadQuery: 'bad_query',
  /** A request body failed validation (400). */
  BadRequest: 'bad_request',
  /** A console key that cannot be used: malformed, unsupported, or too weak (400). */
  BadKey: 'bad_key',
  /** A console key enrolled already, or one more than a name may have (409). */
  KeyConflict: 'key_conflict',
  NotFound: 'not_found',
  Internal: 'internal',
} as const;
export type RefusalCode = (typeof RefusalCode)[keyof typeof RefusalCode];

/** WebSocket close codes the server uses. */
export const CloseCode = {
  /** The server is stopping for good (Deno's shutdown closes sockets it still holds with this). */
  GoingAway: 1001,
  /** Server is going down for a restart; clients should reconnect. */
  ServiceRestart: 1012,
  /** A frame larger than the protocol allows. */
  FrameTooLarge: 1009,
  /** Internal failure on this connection only. */
  InternalError: 1011,
  /** The session behind this socket ended: do not reconnect, sign in again. */
  Unauthorized: 4401,
  /** The client did not read fast enough and its unsent data passed the bound. */
  Slow: 4008,
  /** The client kept sending faster than its rate for too long. */
  Flood: 4429,
  /** Banned from the room the connection was opened for: do not reconnect into it. */
  Forbidden: 4403,
  /** The server is at its connection limit; try again later. */
  TryAgainLater: 1013,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];
