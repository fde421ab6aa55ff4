// Node's adapter for the browser door: @hono/node-server with a `ws` server for WebSocket upgrades.
// It only adapts: the door and the app are wired in web/start.ts, the same as on Deno.
import type { IncomingMessage } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { serve, upgradeWebSocket } from '@hono/node-server';
import type { Context } from 'hono';
import type { WSContext, WSEvents } from 'hono/ws';
import { type WebSocket, WebSocketServer } from 'ws';
import type { SocketAccess } from '../doors/browser-door.ts';
import { websocketFrames } from '../doors/websocket-frames.ts';
import type { PeerOf } from '../http/proxy.ts';
import type { Log } from '../log.ts';
import { RefusalCode } from '../protocol/codes.ts';
import { MAX_FRAME_BYTES } from '../protocol/constants.ts';
import { leanUpgrade, tcpSocketOf } from './library-internals.ts';
import { type Listening, startWebOn, type WebDoor, type WebOptions, type WebRuntime } from './start.ts';

/** An upgraded socket that has not completed its WebSocket handshake by then is cut. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

// Every socket of a broadcast gets the same bytes, framed once, instead of ws building a header and
// writing header and payload for each socket. ws writes each of its own frames (pings, close) whole
// and at once, with compression off, so frames never interleave; once closing, sends go through ws,
// which refuses them as it should.
const access: SocketAccess = {
  send: (ws: WSContext, frames) => {
    const raw = ws.raw as WebSocket;
    const socket = tcpSocketOf(raw);
    if (socket && raw.readyState === raw.OPEN) socket.write(websocketFrames(frames));
    else for (const frame of frames.parts) raw.send(frame.utf8, { binary: false });
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

/**
 * The upgrade, through node-server's helper with a lean context. node-server creates the WebSocket
 * (and so calls onClose) only once the handshake succeeds; a socket that closes before that still
 * gets one onClose here, so the door gives its connection slot back.
 */
const upgrade = (c: Context, events: WSEvents): Promise<Response | undefined> => {
  const socket = (c.env as NodeEnv | undefined)?.incoming?.socket;
  let state: 'waiting' | 'open' | 'closed' = 'waiting';
  const abandoned = (): void => {
    if (state !== 'waiting') return;
    state = 'closed';
    events.onClose?.({ code: 1006, reason: 'handshake did not complete' } as CloseEvent, undefined as never);
  };
  socket?.once?.('close', abandoned);
  return leanUpgrade(upgradeWebSocket, c, {
    ...events,
    onOpen: (event, ws) => {
      if (state !== 'waiting') return;
      state = 'open';
      socket?.off?.('close', abandoned);
      events.onOpen?.(event, ws);
    },
  });
};

/** Why an upgrade request is not a WebSocket upgrade this server takes, or undefined when it is. */
function upgradeProblem(request: IncomingMessage): { status: 400 | 404 | 426; message: string } | undefined {
  const protocols = (request.headers.upgrade ?? '').split(',').map((p) => p.trim().toLowerCase());
  if (protocols.length !== 1 || protocols[0] !== 'websocket')
    return { status: 400, message: `this server does not upgrade to ${request.headers.upgrade ?? 'that'}` };
  const path = (request.url ?? '').split('?')[0];
  if (path !== '/ws') return { status: 404, message: 'WebSocket connections are taken at /ws only' };
  if (request.method !== 'GET') return { status: 400, message: 'a WebSocket upgrade is a GET' };
  if (request.headers['sec-websocket-version'] !== '13' || !request.headers['sec-websocket-key'])
    return { status: 426, message: 'WebSocket version 13 required' };
  return undefined;
}

/** Answer an upgrade request that will not be upgraded, and let go of its socket. */
function refuseUpgrade(socket: Socket, status: 400 | 404 | 426, message: string): void {
  const body = JSON.stringify({ error: { code: RefusalCode.BadUpgrade, message } });
  const reason = { 400: 'Bad Request', 404: 'Not Found', 426: 'Upgrade Required' }[status];
  const extra = status === 426 ? 'Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n' : '';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\n${extra}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  // A client that never closes its side must not keep the descriptor.
  setTimeout(() => socket.destroy(), 1000).unref();
}

const alive = new WeakSet<WebSocket>();

/**
 * Ping every browser each interval; one that has not answered the previous ping is terminated (it
 * cannot take part in a closing handshake), so a dead peer leaves its room within two intervals.
 */
function startHeartbeat(wss: WebSocketServer, intervalMs: number, log: Log): ReturnType<typeof setInterval> {
  wss.on('connection', (ws: WebSocket) => {
    alive.add(ws);
    ws.on('pong', () => alive.add(ws));
  });
  const timer = setInterval(() => {
    for (const ws of wss.clients) {
      if (!alive.has(ws)) {
        log.info('browser closed: no answer to ping');
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
): Promise<Listening> {
  const { log } = options;
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES, perMessageDeflate: false });
  const common = { fetch: app.fetch, hostname: options.host, port: options.port, websocket: { server: wss } };
  const server = options.tls
    ? serve({
        ...common,
        createServer: createHttpsServer,
        serverOptions: { cert: Buffer.from(options.tls.cert), key: Buffer.from(options.tls.key) },
      })
    : serve(common);

  // node-server ignores an upgrade that is not "websocket", and Node then hands the socket to nobody:
  // each such request kept a descriptor until the process ran out. Every upgrade is answered here
  // first: only a WebSocket upgrade of /ws goes on to node-server, and only for so long.
  const [nodeServerUpgrade] = server.listeners('upgrade') as Array<
    (request: IncomingMessage, socket: Socket, head: Buffer) => void
  >;
  server.removeAllListeners('upgrade');
  const handshakes = new WeakMap<IncomingMessage, ReturnType<typeof setTimeout>>();
  wss.on('connection', (_ws, request: IncomingMessage) => clearTimeout(handshakes.get(request)));
  server.on('upgrade', (request: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', () => {});
    const problem = upgradeProblem(request);
    if (problem || !nodeServerUpgrade) {
      log.debug('upgrade refused', { path: request.url?.split('?')[0], upgrade: request.headers.upgrade });
      refuseUpgrade(socket, problem?.status ?? 400, problem?.message ?? 'no WebSocket server');
      return;
    }
    const timer = setTimeout(() => {
      log.info('browser closed: WebSocket handshake took too long');
      socket.destroy();
    }, options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS);
    timer.unref();
    handshakes.set(request, timer);
    socket.once('close', () => clearTimeout(timer));
    nodeServerUpgrade.call(server, request, socket, head);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.once('listening', () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (error) => log.error('browser door error', { error: String(error) }));
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

/** Node's part of the browser door. */
export const nodeRuntime: WebRuntime = { upgradeWebSocket: upgrade, access, peer, listen };

/** Start the browser door on Node; rejects with the listen error (for example EADDRINUSE). */
export const startWeb = (options: WebOptions): Promise<WebDoor> => startWebOn(nodeRuntime, options);
