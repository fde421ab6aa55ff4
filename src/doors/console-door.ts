// The console door: an NDJSON listener on localhost. The first valid frame, hello, binds identity.
import { createServer, type Server, type Socket } from 'node:net';
import type { Hub } from '../hub/hub.ts';
import type { Encoded, Peer } from '../hub/peer.ts';
import { Encoded as Frame } from '../hub/peer.ts';
import type { Log } from '../log.ts';
import { CloseCode } from '../protocol/codes.ts';
import { decodeClientFrame, type HelloFrame, PROTOCOL_VERSION } from '../protocol/frames.ts';
import { dispatch, Inflight } from './dispatch.ts';
import { decodeUtf8, LineSplitter } from './ndjson.ts';

/** Console door settings. */
export interface ConsoleDoorOptions {
  hub: Hub;
  log: Log;
  host: string;
  port: number;
  /** Longest line in bytes; a longer one closes the connection. */
  maxLineBytes?: number;
  /** A connection that has not sent a valid hello by then is closed. */
  helloTimeoutMs?: number;
}

/** A listening console door. */
export interface ConsoleDoor {
  readonly address: { host: string; port: number };
  /** Stop accepting connections (open ones stay until the Hub closes them). */
  stopAccepting(): void;
  /** Destroy every connection still open. */
  destroyAll(): void;
  /** Connections currently open, joined or not. */
  readonly connections: number;
}

/** Start listening; rejects with the listen error (for example EADDRINUSE). */
export async function startConsoleDoor(options: ConsoleDoorOptions): Promise<ConsoleDoor> {
  const { log } = options;
  const sockets = new Set<Socket>();
  const server: Server = createServer(
    { noDelay: true, keepAlive: true, keepAliveInitialDelay: 30_000 },
    (socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      serveConsole(socket, options);
    },
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (error) => log.error('console door error', { error: String(error) }));
  const bound = server.address();
  const port = typeof bound === 'object' && bound ? bound.port : options.port;
  return {
    address: { host: options.host, port },
    stopAccepting: () => server.close(),
    destroyAll: () => {
      for (const socket of sockets) socket.destroy();
    },
    get connections() {
      return sockets.size;
    },
  };
}

function serveConsole(socket: Socket, options: ConsoleDoorOptions): void {
  const { hub, log } = options;
  const remote = `${socket.remoteAddress}:${socket.remotePort}`;
  const splitter = new LineSplitter(options.maxLineBytes ?? 64 * 1024);
  const inflight = new Inflight(
    () => socket.pause(),
    () => socket.resume(),
  );
  let peer: Peer | undefined;
  let optedIn = false;

  const helloTimer = setTimeout(() => {
    log.info('console closed: no hello in time', { remote });
    socket.destroy();
  }, options.helloTimeoutMs ?? 10_000);

  // Before hello there is no peer yet; an opted-in console is still answered with error frames.
  const tellUnjoined = (code: Parameters<Hub['refuse']>[1], message: string): void => {
    if (optedIn && !socket.destroyed) socket.write(new Frame({ type: 'error', code, message }).line);
  };

  const bind = (hello: HelloFrame): void => {
    clearTimeout(helloTimer);
    const joined: Peer = {
      user: hello.user,
      room: hello.room,
      wantsBackscroll: false,
      optedIn: (hello.protocol ?? 1) >= PROTOCOL_VERSION,
      since: undefined,
      send: (frame: Encoded) => {
        socket.write(frame.line);
      },
      bufferedAmount: () => socket.writableLength,
      close: (code: number) => {
        // A slow console's backlog is dropped; otherwise what was queued is flushed before FIN.
        if (code === CloseCode.Slow) socket.destroy();
        else socket.end();
      },
    };
    peer = joined;
    log.info('console joined', { room: hello.room, user: hello.user, remote, protocol: hello.protocol ?? 1 });
    void hub.join(joined);
  };

  socket.on('data', (chunk: Buffer) => {
    const { lines, overflow } = splitter.push(chunk);
    for (const bytes of lines) {
      if (socket.destroyed) return;
      const text = decodeUtf8(bytes);
      if (text === undefined) {
        log.warn('console line refused: invalid UTF-8', { remote });
        if (peer) hub.refuse(peer, 'bad_utf8', 'line is not valid UTF-8; it was ignored');
        else tellUnjoined('bad_utf8', 'line is not valid UTF-8; it was ignored');
        continue;
      }
      if (text.trim() === '') continue;
      const decoded = decodeClientFrame(text);
      if (!decoded.ok) {
        log.debug('console frame skipped', { remote, code: decoded.code, reason: decoded.message });
        if (peer) hub.refuse(peer, decoded.code, decoded.message);
        else {
          optedIn ||= decoded.optedIn;
          tellUnjoined(decoded.code, decoded.message);
        }
        continue;
      }
      if (peer) dispatch(hub, peer, decoded.frame, inflight);
      else if (decoded.frame.type === 'hello') bind(decoded.frame);
      // Frames before hello have no effect.
    }
    if (overflow) {
      log.warn('console closed: line longer than the limit', { remote, user: peer?.user });
      socket.destroy();
    }
  });

  socket.on('error', (error) => log.debug('console socket error', { remote, error: String(error) }));
  socket.on('close', () => {
    clearTimeout(helloTimer);
    if (peer) {
      hub.leave(peer);
      log.info('console left', { room: peer.room, user: peer.user, remote });
    }
  });
}
