// Protocol constants both doors and the page share: sizes and intervals that are part of the wire contract.

/** The largest frame either door takes: a console line (without its newline) or a WebSocket message. */
export const MAX_FRAME_BYTES = 64 * 1024;

/** How often a silent peer is asked whether it is still there, unless configured otherwise. */
export const HEARTBEAT_MS = 25_000;

/** How long a console may take to send its hello, unless configured otherwise. */
export const HELLO_TIMEOUT_MS = 10_000;
