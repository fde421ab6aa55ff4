// The browser door: whether, and as whom, a request may open /ws (admission, in one place), and each
// admitted WebSocket adapted to a Hub peer through Hono's runtime-neutral WSContext.
import type { Context } from 'hono';
import type { WSContext, WSEvents } from 'hono/ws';
import * as v from 'valibot';
import type { Limits } from '../config.ts';
import type { OriginPolicy } from '../http/origins.ts';
import type { Hub } from '../hub/hub.ts';
import type { Outgoing, Peer } from '../hub/peer.ts';
import type { Log } from '../log.ts';
import { type DisconnectReason, type Metrics, noMetrics, reasonOfClose } from '../metrics/metrics.ts';
import { CloseCode, ErrorCode, RefusalCode } from '../protocol/codes.ts';
import { decodeClientFrame, nameProblem } from '../protocol/frames.ts';
import { ConnectionHandler } from '../protocol/handler.ts';
import { ConnectionLimit } from './limits.ts';
import { ReadGate, rateLimitedNotice, Throttle, type ThrottleLimits, throttleLimits } from './throttle.ts';

/** Who a browser connection is and where it goes, decided before the upgrade. */
export interface BrowserIdentity {
  user: string;
  /** Signed in (the name is the provider's), rather than named by the query string in dev mode. */
  authenticated: boolean;
  room: string;
  since: number | undefined;
  remote: string;
  /**
   * Called once the socket is open with a way to close it; returns the function to call when it
   * closes. Sign-in uses it to close a socket within a second of its session ending.
   */
  attach?: (close: (code: number, reason: string) => void) => () => void;
}

/**
 * An upgrade request as admission reads it, whichever runtime and whichever stage it comes from (a
 * Hono context, or Node's request before any framework has seen it).
 */
export interface UpgradeRequest {
  header(name: string): string | undefined;
  /** The query string's parameters (the first of each name). */
  query(): Record<string, string>;
  /** The client's address, through trusted proxies. */
  readonly remote: string;
}

/** A signed-in browser, as the sign-in module finds it from a request's cookie. */
export interface Authenticated {
  user: string;
  attach: NonNullable<BrowserIdentity['attach']>;
}

/** The outcome of admission: an identity holding a connection slot, or a refusal to answer with. */
export type Admission =
  | { ok: true; identity: BrowserIdentity; release: () => void }
  | { ok: false; status: 400 | 401 | 403 | 426 | 503; code: RefusalCode; message: string };

/**
 * How one runtime's WebSocket does what WSContext does not expose. The default works on any
 * web-standard WebSocket; the Node adapter passes one that writes frames framed once per broadcast
 * and pauses reading.
 */
export interface SocketAccess {
  send(ws: WSContext, frames: Outgoing): void;
  bufferedAmount(ws: WSContext): number;
  pause(ws: WSContext): void;
  resume(ws: WSContext): void;
}

/** Works on any runtime whose raw socket is a web-standard WebSocket: one send per frame, no pausing. */
export const standardSocketAccess: SocketAccess = {
  send: (ws, frames) => {
    for (const frame of frames.parts) ws.send(frame.json);
  },
  bufferedAmount: (ws) => (ws.raw as { bufferedAmount?: number } | undefined)?.bufferedAmount ?? 0,
  pause: () => {},
  resume: () => {},
};

/** The upgrade request of a Hono context. */
export function upgradeRequestOf(c: Context, remote: string): UpgradeRequest {
  return {
    // A request without a Host header (app.request() in tests) is for the URL's host.
    header: (name) => c.req.header(name) ?? (name === 'host' ? new URL(c.req.url).host : undefined),
    query: () => c.req.query(),
    remote,
  };
}

/** What the browser door needs; the runtime adapter supplies `access`. */
export interface BrowserDoorOptions {
  hub: Hub;
  log: Log;
  /** Which pages may open the door. */
  origins: OriginPolicy;
  /** Sign-in: who the request's session belongs to. Without it, dev mode: the query names the user. */
  authenticate?: ((request: UpgradeRequest) => Promise<Authenticated | undefined>) | undefined;
  limits: Pick<Limits, 'maxBrowsers' | 'maxBrowsersPerIp' | 'rateBurst' | 'ratePerSecond' | 'floodTimeoutMs'>;
  access?: SocketAccess;
  /** Where connections, their ends and throttled frames are counted. */
  metrics?: Metrics | undefined;
}

/**
 * The close reason a runtime adapter gives `onClose` for a socket it ended because its heartbeat
 * lapsed (a terminated socket has no close frame of its own to say so).
 */
export const HEARTBEAT_LAPSED = 'heartbeat lapsed';

/** A name from a query string: trimmed, bounded, no invisible characters. */
const Name = (what: string) =>
  v.pipe(
    v.optional(v.string(), ''),
    v.transform((s) => s.trim()),
    v.check(
      (s) => nameProblem(s) === undefined,
      (issue) => `${what} ${nameProblem(String(issue.input))}`,
    ),
  );

const Since = v.optional(
  v.pipe(v.string(), v.regex(/^\d{1,15}$/u, 'since must be a sequence number'), v.transform(Number)),
);

// Dev mode: the browser says who it is in the query string.
const DevQuery = v.object({ user: Name('user'), room: Name('room'), since: Since });

// Signed in: the session says who; the query only chooses the room. A `user` parameter is ignored.
const SessionQuery = v.object({ room: Name('room'), since: Since });

const refusal = (
  status: 400 | 401 | 403 | 426 | 503,
  code: RefusalCode,
  message: string,
): Admission & { ok: false } => ({ ok: false, status, code, message });

/** The browser door of one server. */
export class BrowserDoor {
  readonly #options: BrowserDoorOptions;
  readonly #connections: ConnectionLimit;
  readonly #throttle: ThrottleLimits;
  readonly #access: SocketAccess;
  readonly #metrics: Metrics;

  constructor(options: BrowserDoorOptions) {
    this.#options = options;
    this.#connections = new ConnectionLimit(options.limits.maxBrowsers, options.limits.maxBrowsersPerIp);
    this.#throttle = throttleLimits(options.limits);
    this.#access = options.access ?? standardSocketAccess;
    this.#metrics = options.metrics ?? noMetrics;
  }

  /**
   * Whether, and as whom, a request may open a browser connection. Checks run cheapest and most
   * telling first; an admitted request holds a connection slot from here on, handshake included,
   * until `events(…).onClose` releases it.
   */
  async admit(request: UpgradeRequest): Promise<Admission> {
    const { hub, log, origins, authenticate } = this.#options;
    if (request.header('upgrade')?.toLowerCase() !== 'websocket') {
      return refusal(426, RefusalCode.UpgradeRequired, 'this endpoint speaks WebSocket');
    }
    if (!hub.accepting) return refusal(503, RefusalCode.ShuttingDown, 'server is restarting');
    // Before any identity: a page on another site must not ride on the visitor's cookie or name.
    const origin = request.header('origin');
    if (!origins.allowsOrigin(origin, request.header('host'))) {
      log.info('browser refused: origin not allowed', { origin });
      return refusal(403, RefusalCode.BadOrigin, 'cross-origin WebSocket refused');
    }
    const remote = request.remote;
    let identity: BrowserIdentity;
    if (authenticate) {
      const who = await authenticate(request);
      if (!who) return refusal(401, RefusalCode.Unauthenticated, 'sign in first');
      const parsed = v.safeParse(SessionQuery, request.query());
      if (!parsed.success) return refusal(400, RefusalCode.BadQuery, parsed.issues[0].message);
      const { room, since } = parsed.output;
      identity = { user: who.user, authenticated: true, room, since, remote, attach: who.attach };
    } else {
      const parsed = v.safeParse(DevQuery, request.query());
      if (!parsed.success) return refusal(400, RefusalCode.BadQuery, parsed.issues[0].message);
      const { user, room, since } = parsed.output;
      identity = { user, authenticated: false, room, since, remote };
    }
    const full = this.#connections.why(remote);
    const release = full ? undefined : this.#connections.acquire(remote);
    if (!release) {
      log.warn('browser refused: connection limit', { remote, limit: full });
      const message =
        full === 'total' ? 'the server is at its connection limit' : 'too many connections from your address';
      return refusal(503, RefusalCode.TooManyConnections, message);
    }
    return { ok: true, identity, release };
  }

  /**
   * The WebSocket events for an admitted browser. `onClose` may come without `onOpen` (a handshake
   * that never completed); either way it runs once and gives back the connection slot.
   */
  events(admitted: Admission & { ok: true }): WSEvents {
    const { hub, log } = this.#options;
    const who = admitted.identity;
    const access = this.#access;
    const metrics = this.#metrics;
    /** Why the server closed the socket, where it did. */
    let why: DisconnectReason | undefined;
    let opened = false;
    let peer: Peer | undefined;
    let handler: ConnectionHandler | undefined;
    let throttle: Throttle<unknown> | undefined;
    let detach: (() => void) | undefined;
    let closed = false;

    /** One frame, at most at the connection's rate. */
    const take = (data: unknown): void => {
      if (!peer || !handler) return;
      if (typeof data !== 'string') {
        hub.refuse(peer, ErrorCode.BinaryUnsupported, 'binary frames are not accepted; send JSON text');
        return;
      }
      const decoded = decodeClientFrame(data, true);
      if (!decoded.ok) {
        hub.refuse(peer, decoded.code, decoded.message, decoded.ref);
        return;
      }
      handler.handle(decoded.frame);
    };

    return {
      onOpen: (_event, ws) => {
        if (closed) return;
        opened = true;
        metrics.opened('browser');
        detach = who.attach?.((code, reason) => {
          why ??= reasonOfClose(code);
          ws.close(code, reason);
        });
        const joined: Peer = {
          user: who.user,
          via: 'browser',
          wantsBackscroll: true,
          optedIn: true,
          authenticated: who.authenticated,
          send: (frames) => access.send(ws, frames),
          bufferedAmount: () => access.bufferedAmount(ws),
          close: (code, reason) => {
            why ??= reasonOfClose(code);
            ws.close(code, reason);
            // The client's answering close frame is behind whatever it sent while reading was
            // paused; reading again lets the closing handshake finish instead of timing out.
            access.resume(ws);
          },
        };
        peer = joined;
        const reading = new ReadGate({
          stopReading: () => access.pause(ws),
          startReading: () => access.resume(ws),
        });
        handler = new ConnectionHandler(hub, joined, reading, who.room);
        throttle = new Throttle<unknown>(this.#throttle, {
          take,
          pause: () => reading.hold('rate'),
          resume: () => reading.release('rate'),
          slowed: (retryAfterMs) => {
            log.info('browser slowed: sending faster than its rate', { user: who.user, remote: who.remote });
            hub.notify(joined, rateLimitedNotice(retryAfterMs));
          },
          flood: (reason) => {
            log.warn('browser closed: kept sending faster than its rate', {
              user: who.user,
              remote: who.remote,
              reason,
            });
            hub.drop(joined, CloseCode.Flood, 'sending too fast for too long');
          },
          held: () => metrics.throttled('browser'),
        });
        log.info('browser joined', { room: who.room, user: who.user, remote: who.remote, since: who.since });
        handler.start(who.since, undefined);
      },
      onMessage: (event, ws) => {
        if (!throttle || ws.readyState !== 1) return;
        throttle.push(event.data, frameSize(event.data));
      },
      onClose: (event) => {
        if (closed) return;
        closed = true;
        throttle?.close();
        detach?.();
        admitted.release();
        if (opened) {
          const lapsed = event.reason === HEARTBEAT_LAPSED ? 'heartbeat' : undefined;
          metrics.disconnected('browser', why ?? lapsed ?? (event.code === 1009 ? 'too_large' : 'closed'));
        }
        if (!peer) return;
        handler?.stop();
        log.info('browser left', { user: peer.user, code: event.code });
        peer = undefined;
      },
      onError: (event) => {
        log.debug('browser socket error', {
          remote: who.remote,
          error: String((event as ErrorEvent).error ?? event.type),
        });
      },
    };
  }
}

/** A frame's size, near enough for the bound on held frames (UTF-16 units for text). */
function frameSize(data: unknown): number {
  if (typeof data === 'string') return data.length;
  if (data instanceof ArrayBuffer) return data.byteLength;
  if (data instanceof Blob) return data.size;
  return 0;
}
