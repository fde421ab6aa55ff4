// The browser door: whether, and as whom, a request may open /ws (admission, in one place), and each
// admitted WebSocket adapted to a Hub peer through Hono's runtime-neutral WSContext.
import type { Context } from 'hono';
import type { WSContext, WSEvents } from 'hono/ws';
import * as v from 'valibot';
import type { Limits } from '../config.ts';
import type { OriginPolicy } from '../http/origins.ts';
import type { Hub } from '../hub/hub.ts';
import type { Outgoing, Peer } from '../hub/peer.ts';
import { addressRequester, requesterOf } from '../hub/reads.ts';
import type { Log } from '../log.ts';
import { type DisconnectReason, type Metrics, noMetrics, reasonOfClose } from '../metrics/metrics.ts';
import { CloseCode, ErrorCode, RefusalCode } from '../protocol/codes.ts';
import { decodeClientFrame, nameProblem } from '../protocol/frames.ts';
import { ConnectionHandler } from '../protocol/handler.ts';
import { type Acquired, addressGroup, ConnectionLimit, type SharedCounts } from './limits.ts';
import {
  type FloodReason,
  type Pausable,
  ReadGate,
  rateLimitedNotice,
  type SharedRates,
  Throttle,
  type ThrottleLimits,
  type ThrottleTarget,
  throttleLimits,
} from './throttle.ts';

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
  /** A cluster's connections per address, so the per-address limit holds across its nodes. */
  sharedAddresses?: SharedCounts | undefined;
  /** The rate all of one person's (or, not signed in, one address's) connections share (none unless given). */
  sharedRates?: SharedRates | undefined;
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
  /** What its connections share: one object for all of them. */
  #shared: DoorShared | undefined;

  constructor(options: BrowserDoorOptions) {
    this.#options = options;
    this.#connections = new ConnectionLimit(
      options.limits.maxBrowsers,
      options.limits.maxBrowsersPerIp,
      options.sharedAddresses,
    );
    this.#throttle = throttleLimits(options.limits);
    this.#access = options.access ?? standardSocketAccess;
    this.#metrics = options.metrics ?? noMetrics;
  }

  /**
   * Whether, and as whom, a request may open a browser connection. Checks run cheapest and most
   * telling first; an admitted request holds a connection slot from here on, handshake included,
   * until `events(…).onClose` releases it.
   */
  admit(request: UpgradeRequest): Admission | Promise<Admission> {
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
    if (authenticate) {
      return authenticate(request).then((who) => {
        if (!who) return refusal(401, RefusalCode.Unauthenticated, 'sign in first');
        const parsed = v.safeParse(SessionQuery, request.query());
        if (!parsed.success) return refusal(400, RefusalCode.BadQuery, parsed.issues[0].message);
        const { room, since } = parsed.output;
        return this.#hold({ user: who.user, authenticated: true, room, since, remote, attach: who.attach });
      });
    }
    const parsed = v.safeParse(DevQuery, request.query());
    if (!parsed.success) return refusal(400, RefusalCode.BadQuery, parsed.issues[0].message);
    const { user, room, since } = parsed.output;
    return this.#hold({ user, authenticated: false, room, since, remote });
  }

  /**
   * A connection slot for an identity, or a refusal: at once, unless the other nodes of a cluster
   * must be asked.
   */
  #hold(identity: BrowserIdentity): Admission | Promise<Admission> {
    const group = addressGroup(identity.remote);
    const acquired = this.#connections.acquireShared(group);
    return acquired instanceof Promise
      ? acquired.then((release) => this.#held(identity, group, release))
      : this.#held(identity, group, acquired);
  }

  #held(identity: BrowserIdentity, group: string, release: Acquired): Admission {
    if (typeof release !== 'string') return { ok: true, identity, release };
    const remote = identity.remote;
    this.#options.log.warn('browser refused: connection limit', {
      remote,
      ...(group === remote ? {} : { counted: group }),
      limit: release,
    });
    const message =
      release === 'total'
        ? 'the server is at its connection limit'
        : 'too many connections from your address';
    return refusal(503, RefusalCode.TooManyConnections, message);
  }

  /**
   * The WebSocket events for an admitted browser. `onClose` may come without `onOpen` (a handshake
   * that never completed); either way it runs once and gives back the connection slot.
   */
  events(admitted: Admission & { ok: true }): WSEvents {
    this.#shared ??= {
      hub: this.#options.hub,
      log: this.#options.log,
      access: this.#access,
      metrics: this.#metrics,
      throttle: this.#throttle,
      sharedRates: this.#options.sharedRates,
    };
    return new BrowserConnection(this.#shared, admitted);
  }
}

/** What every browser connection of one door shares. */
interface DoorShared {
  readonly hub: Hub;
  readonly log: Log;
  readonly access: SocketAccess;
  readonly metrics: Metrics;
  readonly throttle: ThrottleLimits;
  readonly sharedRates: SharedRates | undefined;
}

/**
 * One browser: its WebSocket's events, its frames at its rate, and its peer in the Hub. One object
 * with shared methods, not a closure per event: what an idle browser costs is what it holds.
 */
class BrowserConnection implements WSEvents, ThrottleTarget<unknown>, Pausable {
  readonly #door: DoorShared;
  readonly #admitted: Admission & { ok: true };
  #ws: WSContext | undefined;
  /** Why the server closed the socket, where it did. */
  #why: DisconnectReason | undefined;
  #peer: BrowserPeer | undefined;
  #handler: ConnectionHandler | undefined;
  #throttle: Throttle<unknown> | undefined;
  #reading: ReadGate | undefined;
  #detach: (() => void) | undefined;
  #opened = false;
  #closed = false;

  constructor(door: DoorShared, admitted: Admission & { ok: true }) {
    this.#door = door;
    this.#admitted = admitted;
  }

  /** The client's address, through trusted proxies. */
  get remote(): string {
    return this.#admitted.identity.remote;
  }

  onOpen(_event: Event, ws: WSContext): void {
    if (this.#closed) return;
    const { hub, log, metrics } = this.#door;
    const who = this.#admitted.identity;
    this.#opened = true;
    this.#ws = ws;
    metrics.opened('browser');
    this.#detach = who.attach?.((code, reason) => this.closeSocket(code, reason));
    const peer = new BrowserPeer(this, who.user, who.authenticated);
    this.#peer = peer;
    this.#reading = new ReadGate(this);
    this.#handler = new ConnectionHandler(hub, peer, this.#reading, who.room);
    this.#throttle = new Throttle<unknown>(this.#door.throttle, this);
    if (this.#door.sharedRates) this.#throttle.share(this.#door.sharedRates, requesterOf(peer));
    log.info('browser joined', { room: who.room, user: who.user, remote: who.remote, since: who.since });
    this.#handler.start(who.since, undefined);
  }

  onMessage(event: MessageEvent, ws: WSContext): void {
    if (!this.#throttle || ws.readyState !== 1) return;
    this.#throttle.push(event.data, frameSize(event.data));
  }

  onClose(event: CloseEvent): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#throttle?.close();
    this.#detach?.();
    this.#admitted.release();
    if (this.#opened) {
      const lapsed = event.reason === HEARTBEAT_LAPSED ? 'heartbeat' : undefined;
      this.#door.metrics.disconnected(
        'browser',
        this.#why ?? lapsed ?? (event.code === 1009 ? 'too_large' : 'closed'),
      );
    }
    const peer = this.#peer;
    if (!peer) return;
    this.#handler?.stop();
    this.#door.log.info('browser left', { user: peer.user, code: event.code });
    this.#peer = undefined;
  }

  onError(event: Event): void {
    this.#door.log.debug('browser socket error', {
      remote: this.#admitted.identity.remote,
      error: String((event as ErrorEvent).error ?? event.type),
    });
  }

  /** Close the socket with `code` (the session ended, or the Hub let the peer go). */
  closeSocket(code: number, reason: string): void {
    const ws = this.#ws;
    if (!ws) return;
    this.#why ??= reasonOfClose(code);
    ws.close(code, reason);
    // The client's answering close frame is behind whatever it sent while reading was paused;
    // reading again lets the closing handshake finish instead of timing out.
    this.#door.access.resume(ws);
  }

  send(frames: Outgoing): void {
    if (this.#ws) this.#door.access.send(this.#ws, frames);
  }

  get unsent(): number {
    return this.#ws ? this.#door.access.bufferedAmount(this.#ws) : 0;
  }

  stopReading(): void {
    if (this.#ws) this.#door.access.pause(this.#ws);
  }

  startReading(): void {
    if (this.#ws) this.#door.access.resume(this.#ws);
  }

  /** One frame, at most at the connection's rate. */
  take(data: unknown): void {
    const peer = this.#peer;
    const handler = this.#handler;
    if (!peer || !handler) return;
    const { hub } = this.#door;
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
  }

  pause(): void {
    this.#reading?.hold('rate');
  }

  resume(): void {
    this.#reading?.release('rate');
  }

  slowed(retryAfterMs: number): void {
    const who = this.#admitted.identity;
    this.#door.log.info('browser slowed: sending faster than its rate', {
      user: who.user,
      remote: who.remote,
    });
    if (this.#peer) this.#door.hub.notify(this.#peer, rateLimitedNotice(retryAfterMs));
  }

  flood(reason: FloodReason): void {
    const who = this.#admitted.identity;
    this.#door.log.warn('browser closed: kept sending faster than its rate', {
      user: who.user,
      remote: who.remote,
      reason,
    });
    if (this.#peer) this.#door.hub.drop(this.#peer, CloseCode.Flood, 'sending too fast for too long');
  }

  held(): void {
    this.#door.metrics.throttled('browser');
  }
}

/** A browser, as the Hub sees it. */
class BrowserPeer implements Peer {
  readonly #connection: BrowserConnection;
  readonly user: string;
  readonly authenticated: boolean;

  constructor(connection: BrowserConnection, user: string, authenticated: boolean) {
    this.#connection = connection;
    this.user = user;
    this.authenticated = authenticated;
  }

  get via(): 'browser' {
    return 'browser';
  }

  /** Browsers get the room's recent messages on join. */
  get wantsBackscroll(): boolean {
    return true;
  }

  /** Browsers always speak protocol 2. */
  get optedIn(): boolean {
    return true;
  }

  /** A name from the query string is anyone's to make up: such a browser's reads count for its address. */
  get reader(): string | undefined {
    return this.authenticated ? undefined : addressRequester(addressGroup(this.#connection.remote));
  }

  send(frames: Outgoing): void {
    this.#connection.send(frames);
  }

  bufferedAmount(): number {
    return this.#connection.unsent;
  }

  close(code: number, reason: string): void {
    this.#connection.closeSocket(code, reason);
  }
}

/** A frame's size, near enough for the bound on held frames (UTF-16 units for text). */
function frameSize(data: unknown): number {
  if (typeof data === 'string') return data.length;
  if (data instanceof ArrayBuffer) return data.byteLength;
  if (data instanceof Blob) return data.size;
  return 0;
}
