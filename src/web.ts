// Node's browser door: the Hono app on @hono/node-server with a `ws` server for WebSocket upgrades.
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { serve, upgradeWebSocket } from '@hono/node-server';
import type { Context } from 'hono';
import type { WSContext, WSEvents } from 'hono/ws';
import { type WebSocket, WebSocketServer } from 'ws';
import { createApp } from './app.ts';
import type { SocketAccess } from './doors/ws-door.ts';
import { loadAssets } from './http/assets.ts';
import { clientInfo, trustList } from './http/proxy.ts';
import type { Log } from './log.ts';
import type { WebDoor, WebOptions } from './web-types.ts';

const STATIC_DIR = fileURLToPath(new URL('../static/', import.meta.url));

// Every socket of a broadcast gets the same bytes, framed once (Encoded.wsText), instead of ws
// building a header and writing header and payload for each socket.
const nodeSocketAccess: SocketAccess = {
  send: (ws: WSContext, frames) => {
    const raw = ws.raw as WebSocket;
    const socket = tcp(ws);
    // Frames framed once per broadcast are written as they are, in one write. ws writes each of
    // its own frames (pings, close) whole and at once, with compression off, so frames never
    // interleave; once closing, sends go through ws, which refuses them as it should.
    if (socket && raw.readyState === raw.OPEN) socket.write(frames.wsText);
    else for (const frame of frames.parts) raw.send(frame.utf8, { binary: false });
  },
  bufferedAmount: (ws) => (ws.raw as WebSocket).bufferedAmount,
  pause: (ws) => (ws.raw as WebSocket).pause(),
  resume: (ws) => (ws.raw as WebSocket).resume(),
};

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

/**
 * @hono/node-server's upgrade keeps the context it is given for as long as the socket lives (its
 * per-socket handlers close over it), and with it the whole upgrade request: headers, URL objects,
 * the IncomingMessage. Everything the browser door needs was taken from the request before this
 * point, so the upgrade gets a stand-in holding only what the helper reads: the Upgrade header, the
 * URL and the server's bindings. Once the socket is open (the upgrade response, with its headers,
 * is written by then), the bindings let go of the request too.
 */
const leanUpgrade = async (c: Context, events: WSEvents): Promise<Response> => {
  const env = c.env as { incoming?: unknown };
  const upgrade = c.req.header('upgrade');
  const url = c.req.url;
  const stand = {
    env,
    req: { url, header: (name: string) => (name.toLowerCase() === 'upgrade' ? upgrade : undefined) },
  };
  return upgradeWebSocket(stand as unknown as Context, {
    ...events,
    onOpen: (event, ws) => {
      env.incoming = undefined;
      events.onOpen?.(event, ws);
    },
  });
};

/** The TCP socket under a ws WebSocket (a private field of ws, read defensively). */
function tcp(ws: WSContext): Socket | undefined {
  const socket = (ws.raw as { _socket?: unknown } | undefined)?._socket;
  return socket instanceof Socket ? socket : undefined;
}

/** Start the browser door; rejects with the listen error (for example EADDRINUSE). */
export async function startWeb(options: WebOptions): Promise<WebDoor> {
  const { log } = options;
  const assets = await loadAssets(STATIC_DIR);
  const client = clientInfo(trustList(options.trustProxy));
  const app = createApp({
    hub: options.hub,
    log,
    assets,
    upgradeWebSocket: leanUpgrade,
    checkDatabase: options.checkDatabase,
    remoteAddress: client.remoteAddress,
    isSecure: client.isSecure,
    socketAccess: nodeSocketAccess,
    auth: options.auth,
    limits: options.limits,
  });
  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024, perMessageDeflate: false });
  const common = { fetch: app.fetch, hostname: options.host, port: options.port, websocket: { server: wss } };
  const server = options.tls
    ? serve({
        ...common,
        createServer: createHttpsServer,
        serverOptions: { cert: options.tls.cert, key: options.tls.key },
      })
    : serve(common);
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
  const { port } = server.address() as AddressInfo;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `${options.tls ? 'https' : 'http'}://${host}:${port}`,
    stopAccepting: () => server.close(),
    destroyAll: () => {
      for (const ws of wss.clients) ws.terminate();
      if ('closeAllConnections' in server) server.closeAllConnections();
    },
  };
}
