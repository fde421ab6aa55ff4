// Deno's adapter for the browser door: Deno.serve with Deno's own WebSocket upgrade. It only adapts:
// the door and the app are wired in web/start.ts, the same as on Node.
import { defineWebSocketHelper, type UpgradeWebSocket, WSContext, type WSReadyState } from 'hono/ws';
import { standardSocketAccess } from '../doors/browser-door.ts';
import type { PeerOf } from '../http/proxy.ts';
import { CloseCode, RefusalCode } from '../protocol/codes.ts';
import { MAX_FRAME_BYTES } from '../protocol/constants.ts';
import { type Listening, startWebOn, type WebDoor, type WebOptions, type WebRuntime } from './start.ts';

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

/** What the Deno adapter hands the app as its env: the peer's address, read before any upgrade. */
interface DenoEnv {
  remoteAddress: string;
}

/** Listen errors as Node names them, so the server reports a port in use the same way on both runtimes. */
function listenError(error: unknown): unknown {
  if (error instanceof Deno.errors.AddrInUse) return Object.assign(error, { code: 'EADDRINUSE' });
  if (error instanceof Deno.errors.PermissionDenied) return Object.assign(error, { code: 'EACCES' });
  if (error instanceof Deno.errors.AddrNotAvailable) return Object.assign(error, { code: 'EADDRNOTAVAIL' });
  return error;
}

/** Deno's part of the browser door, for one server. */
function denoRuntime(options: WebOptions): WebRuntime {
  const { log } = options;
  const secure = options.tls !== undefined;
  const peer: PeerOf = (c) => ({
    address: (c.env as DenoEnv | undefined)?.remoteAddress ?? '',
    encrypted: secure,
  });
  const sockets = new Set<WebSocket>();
  // Deno's heartbeat: it pings after this many idle seconds and closes a socket whose pong does not come.
  const idleTimeout = Math.max(1, Math.round(options.limits.heartbeatMs / 1000));

  // Like hono/deno's helper, plus the frame limit and a register of open sockets for shutdown. Deno
  // fires `close` for a socket whose handshake never completes too, so onClose always comes.
  const upgradeWebSocket: UpgradeWebSocket<WebSocket> = defineWebSocketHelper<WebSocket>((c, events) => {
    let upgraded: { response: Response; socket: WebSocket };
    try {
      upgraded = Deno.upgradeWebSocket(c.req.raw, { idleTimeout });
    } catch (error) {
      log.debug('websocket upgrade refused', { error: String(error) });
      return c.json(
        { error: { code: RefusalCode.BadUpgrade, message: 'not a valid WebSocket upgrade' } },
        400,
      );
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
        socket.close(CloseCode.FrameTooLarge, 'frame too large');
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

  const listen = async (app: {
    fetch: (request: Request, env: DenoEnv) => Response | Promise<Response>;
  }): Promise<Listening> => {
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
            ? app.fetch(request, { remoteAddress: info.remoteAddr.hostname })
            : Response.json(
                { error: { code: RefusalCode.ShuttingDown, message: 'server is restarting' } },
                { status: 503, headers: { connection: 'close' } },
              ),
      );
    } catch (error) {
      throw listenError(error);
    }
    return {
      port: server.addr.port,
      stopAccepting: () => {
        accepting = false;
      },
      destroyAll: () => {
        for (const socket of sockets) socket.close(CloseCode.GoingAway, 'server stopping');
        sockets.clear();
        server
          .shutdown()
          .catch((error: unknown) => log.debug('browser door shutdown', { error: String(error) }));
      },
    };
  };

  return {
    upgradeWebSocket: upgradeWebSocket as WebRuntime['upgradeWebSocket'],
    access: standardSocketAccess,
    peer,
    listen: listen as WebRuntime['listen'],
  };
}

/** Start the browser door on Deno.serve; rejects with the listen error (code EADDRINUSE and so on). */
export const startWeb = (options: WebOptions): Promise<WebDoor> => startWebOn(denoRuntime(options), options);
