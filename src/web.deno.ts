// Deno's browser door: the same Hono app on Deno.serve, with Deno's own WebSocket upgrade.
import { fileURLToPath } from 'node:url';
import { defineWebSocketHelper, type UpgradeWebSocket, WSContext, type WSReadyState } from 'hono/ws';
import { createApp } from './app.ts';
import { standardSocketAccess } from './doors/ws-door.ts';
import { loadAssets } from './http/assets.ts';
import { clientInfo, type PeerOf, trustList } from './http/proxy.ts';
import type { WebDoor, WebOptions } from './web-types.ts';

const STATIC_DIR = fileURLToPath(new URL('../static/', import.meta.url));

/** The largest WebSocket frame taken, as on Node; a larger one closes that socket with 1009. */
const MAX_FRAME_BYTES = 64 * 1024;
const FRAME_TOO_LARGE = 1009;

const utf8 = new TextEncoder();

function frameBytes(data: unknown): number {
  if (typeof data === 'string') {
    // UTF-8 never takes fewer bytes than UTF-16 code units, nor more than three per unit.
    if (data.length > MAX_FRAME_BYTES) return data.length;
    return data.length * 3 <= MAX_FRAME_BYTES ? data.length : utf8.encode(data).byteLength;
  }
  if (data instanceof ArrayBuffer) return data.byteLength;
  if (data instanceof Blob) return data.size;
  return 0;
}

/**
 * What the Deno door hands the app as its env. Deno's request and handler info cannot be read once
 * the request is upgraded, and the app asks whether it was https after its handler ran (HSTS), so
 * both answers are taken before the upgrade.
 */
interface DenoEnv {
  remoteAddress: string;
  secure?: boolean;
}

/** Listen errors as Node names them, so the server reports a port in use the same way on both runtimes. */
function listenError(error: unknown): unknown {
  if (error instanceof Deno.errors.AddrInUse) return Object.assign(error, { code: 'EADDRINUSE' });
  if (error instanceof Deno.errors.PermissionDenied) return Object.assign(error, { code: 'EACCES' });
  if (error instanceof Deno.errors.AddrNotAvailable) return Object.assign(error, { code: 'EADDRNOTAVAIL' });
  return error;
}

/** Start the browser door on Deno.serve; rejects with the listen error (code EADDRINUSE and so on). */
export async function startWeb(options: WebOptions): Promise<WebDoor> {
  const { log } = options;
  const assets = await loadAssets(STATIC_DIR);
  const secure = options.tls !== undefined;
  const peer: PeerOf = (c) => ({
    address: (c.env as DenoEnv | undefined)?.remoteAddress ?? '',
    encrypted: secure,
  });
  const client = clientInfo(trustList(options.trustProxy), peer);
  const sockets = new Set<WebSocket>();
  // Deno's heartbeat: it pings after this many idle seconds and closes a socket whose pong does not come.
  const idleTimeout = Math.max(1, Math.round(options.limits.heartbeatMs / 1000));

  // Like hono/deno's helper, plus the 64 KiB frame limit and a register of open sockets for shutdown.
  const upgradeWebSocket: UpgradeWebSocket<WebSocket> = defineWebSocketHelper<WebSocket>((c, events) => {
    const env = c.env as DenoEnv;
    env.secure = client.isSecure(c);
    let upgraded: { response: Response; socket: WebSocket };
    try {
      upgraded = Deno.upgradeWebSocket(c.req.raw, { idleTimeout });
    } catch (error) {
      log.debug('websocket upgrade refused', { error: String(error) });
      return c.json({ error: { code: 'bad_upgrade', message: 'not a valid WebSocket upgrade' } }, 400);
    }
    const { response, socket } = upgraded;
    socket.binaryType = 'arraybuffer';
    const ws = new WSContext<WebSocket>({
      raw: socket,
      url: null,
      protocol: null,
      get readyState() {
        return socket.readyState as WSReadyState;
      },
      send: (data) => socket.send(data),
      close: (code, reason) => socket.close(code, reason),
    });
    socket.onopen = (event) => {
      sockets.add(socket);
      events.onOpen?.(event, ws);
    };
    socket.onmessage = (event) => {
      if (frameBytes(event.data) > MAX_FRAME_BYTES) {
        log.info('browser closed: frame larger than the limit', { bytes: frameBytes(event.data) });
        socket.close(FRAME_TOO_LARGE, 'frame too large');
        return;
      }
      events.onMessage?.(event, ws);
    };
    socket.onclose = (event) => {
      sockets.delete(socket);
      events.onClose?.(event, ws);
    };
    socket.onerror = (event) => events.onError?.(event, ws);
    return response;
  });

  const app = createApp({
    hub: options.hub,
    log,
    assets,
    upgradeWebSocket,
    checkDatabase: options.checkDatabase,
    remoteAddress: client.remoteAddress,
    isSecure: (c) => (c.env as DenoEnv).secure ?? client.isSecure(c),
    socketAccess: standardSocketAccess,
    auth: options.auth,
    limits: options.limits,
  });

  const pem = new TextDecoder();
  // Deno's server.shutdown() also ends upgraded sockets (with 1001), so the listener stays open until
  // the Hub has closed every socket with its own code; meanwhile new requests are turned away.
  let accepting = true;
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve(
      {
        hostname: options.host,
        port: options.port,
        ...(options.tls ? { cert: pem.decode(options.tls.cert), key: pem.decode(options.tls.key) } : {}),
        onListen: () => {},
        onError: (error) => {
          log.error('request failed', { error: String(error) });
          return new Response('internal error', { status: 500 });
        },
      },
      (request, info) =>
        accepting
          ? app.fetch(request, { remoteAddress: info.remoteAddr.hostname } satisfies DenoEnv)
          : Response.json(
              { error: { code: 'shutting_down', message: 'server is restarting' } },
              { status: 503, headers: { connection: 'close' } },
            ),
    );
  } catch (error) {
    throw listenError(error);
  }
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `${secure ? 'https' : 'http'}://${host}:${server.addr.port}`,
    stopAccepting: () => {
      accepting = false;
    },
    destroyAll: () => {
      for (const socket of sockets) socket.close(1001, 'server stopping');
      sockets.clear();
      server
        .shutdown()
        .catch((error: unknown) => log.debug('browser door shutdown', { error: String(error) }));
    },
  };
}
