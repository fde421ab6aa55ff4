// Node's adapter for the browser door: the app on @hono/node-server, and WebSocket upgrades taken by
// the same door from Node's request and handed to ws. The door and the app are wired in web/start.ts,
// the same as on Deno.
import { type IncomingMessage, STATUS_CODES } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { serve } from '@hono/node-server';
import { WSContext, type WSEvents, type WSReadyState } from 'hono/ws';
import { type WebSocket, WebSocketServer } from 'ws';
import { type Admission, HEARTBEAT_LAPSED, type SocketAccess } from '../doors/browser-door.ts';
import { browserConnectionCap, connectionsPerAddress } from '../doors/limits.ts';
import { websocketFrames } from '../doors/websocket-frames.ts';
import type { PeerOf } from '../http/proxy.ts';
import { type Log, throttledWarning } from '../log.ts';
import { RefusalCode } from '../protocol/codes.ts';
import { MAX_FRAME_BYTES } from '../protocol/constants.ts';
import { countPerAddress } from './address-connections.ts';
import { tcpSocketOf } from './library-internals.ts';
import {
  type Listening,
  startWebOn,
  type WebDoor,
  type WebOptions,
  type WebRuntime,
  type Wiring,
} from './start.ts';

/** An upgraded socket that has not completed its WebSocket handshake by then is cut. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * A connection has this long to send a request's headers: from connecting (or, over TLS, from the
 * end of its handshake, which has as long), and from the first byte of each next request. Node
 * times only the second, so one that connects and sends nothing would otherwise keep its
 * descriptor for good. A request's body has REQUEST_TIMEOUT_MS. Checked every second.
 */
export const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 30_000;
const DEADLINES = {
  headersTimeout: HEADERS_TIMEOUT_MS,
  requestTimeout: REQUEST_TIMEOUT_MS,
  connectionsCheckingInterval: 1000,
};

// Every socket of a broadcast gets the same bytes, framed once, instead of ws building a header and
// writing header and payload for each socket. ws writes each of its own frames (pings, close) whole
// and at once, with compression off, so frames never interleave; once closing, sends go through ws,
// which refuses them as it should.
const access: SocketAccess = {
  send: (ws: WSContext, frames) => {
    const raw = ws.raw as WebSocket;
    const socket = tcpSocketOf(raw);
    if (socket && raw.readyState === raw.OPEN) socket.write(websocketFrames(frames));
    else for (const frame of frames.parts) raw.send(frame.json);
  },
  bufferedAmount: (ws) => (ws.raw as WebSocket).bufferedAmount,
  pause: (ws) => (ws.raw as WebSocket).pause(),
  resume: (ws) => (ws.raw as WebSocket).resume(),
};

interface NodeEnv {
  incoming?: { socket?: { remoteAddress?: string; encrypted?: boolean } & Partial<Socket> };
}

/** The request's own socket. */
const peer: PeerOf = (c) => {
  const socket = (c.env as NodeEnv | undefined)?.incoming?.socket;
  return { address: socket?.remoteAddress ?? '', encrypted: socket?.encrypted === true };
};

/** A header of Node's request, as one string. */
const headerOf = (request: IncomingMessage, name: string): string | undefined => {
  const value = request.headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
};

/** A WebSocket from ws as Hono's WSContext needs it: one object with shared methods, no closures. */
class NodeSocket {
  readonly raw: WebSocket;
  readonly url = null;
  readonly protocol: string | null;

  constructor(ws: WebSocket) {
    this.raw = ws;
    this.protocol = ws.protocol || null;
  }

  get readyState(): WSReadyState {
    return this.raw.readyState as WSReadyState;
  }

  send(data: string | ArrayBuffer | Uint8Array): void {
    this.raw.send(data);
  }

  close(code?: number, reason?: string): void {
    this.raw.close(code, reason);
  }
}

/** The door's events and context of a ws WebSocket, for the listeners every socket shares. */
const EVENTS = Symbol('events');
const CONTEXT = Symbol('context');
type Wired = WebSocket & { [EVENTS]: WSEvents; [CONTEXT]: WSContext<WebSocket> };

// Listeners shared by every socket (`this` is the socket), not three closures per socket.
function onWsMessage(this: WebSocket, data: Buffer, isBinary: boolean): void {
  const ws = this as Wired;
  ws[EVENTS].onMessage?.(
    { data: isBinary ? new Uint8Array(data).buffer : data.toString('utf8') } as MessageEvent,
    ws[CONTEXT],
  );
}
function onWsClose(this: WebSocket, code: number): void {
  const ws = this as Wired;
  ws[EVENTS].onClose?.({ code, reason: lapsed.has(ws) ? HEARTBEAT_LAPSED : '' } as CloseEvent, ws[CONTEXT]);
}
function onWsError(this: WebSocket, error: Error): void {
  const ws = this as Wired;
  ws[EVENTS].onError?.({ error, type: 'error' } as unknown as Event, ws[CONTEXT]);
}

/**
 * A WebSocket from ws as Hono's WSContext, with the door's events wired to it. Events are handed
 * over as `{ data }` or `{ code, reason }` only: that is all the door reads of them.
 */
function wire(ws: WebSocket, events: WSEvents): void {
  const wired = ws as Wired;
  wired[EVENTS] = events;
  wired[CONTEXT] = new WSContext<WebSocket>(new NodeSocket(ws));
  ws.on('message', onWsMessage);
  ws.on('close', onWsClose);
  ws.on('error', onWsError);
  events.onOpen?.(new Event('open'), wired[CONTEXT]);
}

/**
 * The door hears of the socket's close however the handshake went. Made apart from the upgrade, so
 * the listener, which lives as long as the connection, does not keep the upgrade request alive (a
 * closure holds the whole scope it was made in: the request, its headers and their arrays).
 */
function closeWith(socket: Socket, events: WSEvents): void {
  socket.once('close', () => events.onClose?.({ code: 1006 } as CloseEvent, undefined as never));
}

/** Sockets answered with 101: from then on they speak WebSocket, and a failure can only close them. */
const upgraded = new WeakSet<Socket>();

/** The 101 of a request that really came over https carries HSTS too. */
function addHsts(headers: string[]): void {
  headers.push('Strict-Transport-Security: max-age=31536000');
}

/**
 * The upgrade, as the Hono route would do it (app.ts), without the route: admission by the same
 * door from Node's request, then ws's own handshake. Taking upgrades before the app does keeps a
 * new browser connection within about a tenth of what a bare ws server spends on one (building a
 * web Request, routing and the page's security headers came to three times its whole cost).
 * Done at once when admission is (not signed in, one node): a promise only when it waits.
 */
function admitAndUpgrade(
  wiring: Wiring,
  wss: WebSocketServer,
  request: IncomingMessage,
  socket: Socket,
  head: Buffer,
  opened: () => void,
): undefined | Promise<void> {
  const hop = {
    address: request.socket.remoteAddress ?? '',
    encrypted: (request.socket as { encrypted?: boolean }).encrypted === true,
    header: (name: string) => headerOf(request, name),
  };
  const admission = wiring.door.admit({
    header: hop.header,
    query: () => queryOf(request.url ?? ''),
    remote: wiring.client.address(hop),
  });
  const upgrade = (admitted: Admission): void => {
    if (!admitted.ok) {
      refuseUpgrade(socket, admitted.status, admitted.code, admitted.message);
      return;
    }
    if (socket.destroyed) {
      admitted.release();
      return;
    }
    let events: WSEvents;
    try {
      events = wiring.door.events(admitted);
    } catch (error) {
      admitted.release();
      throw error;
    }
    closeWith(socket, events);
    const hsts = wiring.client.secure(hop);
    if (hsts) wss.once('headers', addHsts);
    try {
      wss.handleUpgrade(request, socket, head, (ws) => {
        opened();
        upgraded.add(socket);
        wss.emit('connection', ws, request);
        wire(ws, events);
      });
    } finally {
      if (hsts) wss.off('headers', addHsts);
    }
  };
  if (admission instanceof Promise) return admission.then(upgrade);
  upgrade(admission);
  return undefined;
}

/** The first value of each of a request target's query parameters, as Hono's `c.req.query()` gives them. */
function queryOf(target: string): Record<string, string> {
  const start = target.indexOf('?');
  if (start < 0) return {};
  const end = target.indexOf('#', start);
  const first = new Map<string, string>();
  for (const [name, value] of new URLSearchParams(target.slice(start + 1, end < 0 ? undefined : end)))
    if (!first.has(name)) first.set(name, value);
  return Object.fromEntries(first);
}

/** Why an upgrade request is not a WebSocket upgrade this server takes, or undefined when it is. */
function upgradeProblem(request: IncomingMessage): { status: 400 | 404 | 426; message: string } | undefined {
  // One protocol, websocket, in any case: a list (with a comma) is never that.
  if ((request.headers.upgrade ?? '').trim().toLowerCase() !== 'websocket')
    return { status: 400, message: `this server does not upgrade to ${request.headers.upgrade ?? 'that'}` };
  const target = request.url ?? '';
  const query = target.indexOf('?');
  const path = query < 0 ? target : target.slice(0, query);
  if (path !== '/ws') return { status: 404, message: 'WebSocket connections are taken at /ws only' };
  if (request.method !== 'GET') return { status: 400, message: 'a WebSocket upgrade is a GET' };
  if (request.headers['sec-websocket-version'] !== '13' || !request.headers['sec-websocket-key'])
    return { status: 426, message: 'WebSocket version 13 required' };
  return undefined;
}

/** Answer an upgrade request that will not be upgraded, and let go of its socket. */
function refuseUpgrade(socket: Socket, status: number, code: RefusalCode, message: string): void {
  if (socket.destroyed) return;
  const body = JSON.stringify({ error: { code, message } });
  const reason = STATUS_CODES[status] ?? '';
  const extra = status === 426 ? 'Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n' : '';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\n${extra}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  // A client that never closes its side must not keep the descriptor.
  setTimeout(() => socket.destroy(), 1000).unref();
}

/** For errors of a socket that its close handles (made once: a closure made per upgrade would keep the upgrade's scope alive). */
function ignore(): void {}

const alive = new WeakSet<WebSocket>();

/** A browser answered its ping (`this` is its socket). */
function onPong(this: WebSocket): void {
  alive.add(this);
}
/** Sockets terminated because they did not answer a ping. */
const lapsed = new WeakSet<WebSocket>();

/**
 * Ping every browser each interval; one that has not answered the previous ping is terminated (it
 * cannot take part in a closing handshake), so a dead peer leaves its room within two intervals.
 */
function startHeartbeat(wss: WebSocketServer, intervalMs: number, log: Log): ReturnType<typeof setInterval> {
  wss.on('connection', (ws: WebSocket) => {
    alive.add(ws);
    ws.on('pong', onPong);
  });
  const timer = setInterval(() => {
    for (const ws of wss.clients) {
      if (!alive.has(ws)) {
        log.info('browser closed: no answer to ping');
        lapsed.add(ws);
        ws.terminate();
        continue;
      }
      alive.delete(ws);
      ws.ping();
    }
  }, intervalMs);
  timer.unref();
  return timer;
}

async function listen(
  app: { fetch: (request: Request, env: unknown) => Response | Promise<Response> },
  options: WebOptions,
  wiring: Wiring,
): Promise<Listening> {
  const { log } = options;
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES, perMessageDeflate: false });
  const common = { fetch: app.fetch, hostname: options.host, port: options.port };
  const server = options.tls
    ? serve({
        ...common,
        createServer: createHttpsServer,
        serverOptions: {
          ...DEADLINES,
          handshakeTimeout: HEADERS_TIMEOUT_MS,
          cert: Buffer.from(options.tls.cert),
          key: Buffer.from(options.tls.key),
        },
      })
    : serve({ ...common, serverOptions: DEADLINES });

  // The door holds at most its WebSockets' limit and PAGE_CONNECTIONS more, and an address that is
  // not a trusted proxy at most connectionsPerAddress that are not WebSockets (its idle kept-alive
  // ones make room first): past either, a new connection is closed as it comes. Connections, bare or
  // kept busy with requests, can then take neither the descriptors both doors need nor everyone
  // else's way in.
  server.maxConnections = browserConnectionCap(options.limits);
  const full = throttledWarning(log, 'browser connections refused: the door holds all it may');
  server.on('drop', () => full({ limit: server.maxConnections }));
  const perAddress = countPerAddress(server, {
    limit: connectionsPerAddress(options.limits),
    trusted: wiring.client.trusted,
    log,
  });

  // A connection that has sent no request by the deadline is cut (Node's own clock starts at the
  // first byte): connections wait here, oldest first, until their first request or upgrade.
  const unspoken = new Map<Socket, number>();
  server.on(options.tls ? 'secureConnection' : 'connection', (socket: Socket) => {
    if (!socket.destroyed) unspoken.set(socket, performance.now() + HEADERS_TIMEOUT_MS);
  });
  server.on('request', (request: IncomingMessage) => unspoken.delete(request.socket));
  const silence = setInterval(() => {
    const now = performance.now();
    for (const [socket, deadline] of unspoken) {
      if (!socket.destroyed && deadline > now) break;
      unspoken.delete(socket);
      socket.destroy();
    }
  }, 1000);
  silence.unref();
  server.once('close', () => clearInterval(silence));

  // Every upgrade is answered here. With a listener for them, Node hands each upgrade's socket to it
  // alone: one not answered keeps its descriptor until the process runs out. A WebSocket upgrade of
  // /ws is admitted by the door and handed to ws, and has so long to become a WebSocket.
  server.on('upgrade', (request: IncomingMessage, socket: Socket, head: Buffer) => {
    unspoken.delete(socket);
    socket.on('error', ignore);
    const problem = upgradeProblem(request);
    if (problem) {
      log.debug('upgrade refused', { path: request.url?.split('?')[0], upgrade: request.headers.upgrade });
      refuseUpgrade(socket, problem.status, RefusalCode.BadUpgrade, problem.message);
      return;
    }
    const failed = (error: unknown): void => {
      log.error('upgrade failed', { error: String(error) });
      // An HTTP answer after the 101 would be read as WebSocket frames: a socket upgraded already is
      // closed (its close gives the connection slot back).
      if (upgraded.has(socket)) socket.destroy();
      else refuseUpgrade(socket, 500, RefusalCode.Internal, 'internal error');
    };
    let waiting: Promise<void> | undefined;
    try {
      waiting = admitAndUpgrade(wiring, wss, request, socket, head, () => perAddress.upgraded(socket));
    } catch (error) {
      failed(error);
      return;
    }
    // Answered already (opened or refused), unless admission waits for something (a session, the
    // cluster's count): then the socket has so long.
    if (!waiting) return;
    const timer = setTimeout(() => {
      log.info('browser closed: WebSocket handshake took too long');
      socket.destroy();
    }, options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS);
    timer.unref();
    // Settled when this socket's upgrade is done (opened or refused) or the socket closed; nothing of
    // it stays on the socket afterwards.
    const settled = (): void => {
      clearTimeout(timer);
      socket.off('close', settled);
    };
    socket.once('close', settled);
    waiting.then(settled, (error: unknown) => {
      settled();
      failed(error);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.once('listening', () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (error) => log.error('browser door error', { error: String(error) }));
  server.once('close', () => wss.close());
  const heartbeat = startHeartbeat(wss, options.limits.heartbeatMs, log);
  server.once('close', () => clearInterval(heartbeat));
  return {
    port: (server.address() as AddressInfo).port,
    stopAccepting: () => server.close(),
    destroyAll: () => {
      for (const ws of wss.clients) ws.terminate();
      if ('closeAllConnections' in server) server.closeAllConnections();
    },
  };
}

/** Node's part of the browser door. Upgrades never reach the app's /ws route on Node (see listen). */
export const nodeRuntime: WebRuntime = { upgradeWebSocket: async () => undefined, access, peer, listen };

/** Start the browser door on Node; rejects with the listen error (for example EADDRINUSE). */
export const startWeb = (options: WebOptions): Promise<WebDoor> => startWebOn(nodeRuntime, options);
