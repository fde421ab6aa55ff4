// The console door: an NDJSON listener on localhost. The first valid frame, hello, binds identity.
import { createServer, type Server, type Socket } from 'node:net';
import { DEFAULT_LIMITS } from '../config.ts';
import type { Hub } from '../hub/hub.ts';
import { Encoded, type Peer } from '../hub/peer.ts';
import type { Log } from '../log.ts';
import { CloseCode, type ErrorCode } from '../protocol/codes.ts';
import { decodeClientFrame, type HelloFrame, PROTOCOL_VERSION } from '../protocol/frames.ts';
import { FrameHandler } from './dispatch.ts';
import { type FloodLimits, floodLimits } from './flood.ts';
import { ConnectionLimit } from './limits.ts';
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
  /** Opted-in consoles are pinged this often and closed after two silent intervals. */
  heartbeatMs?: number;
  /** Open connections at most; more are refused. */
  maxConnections?: number;
  flood?: FloodLimits;
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

const PING = new Encoded({ type: 'ping' });

/** What the door keeps per opted-in connection for its heartbeat. */
interface Live {
  /** Something arrived since the last ping. */
  heard: boolean;
}

/** Start listening; rejects with the listen error (for example EADDRINUSE). */
export async function startConsoleDoor(options: ConsoleDoorOptions): Promise<ConsoleDoor> {
  const { log } = options;
  const sockets = new Set<Socket>();
  const heartbeats = new Map<Socket, Live>();
  const limit = new ConnectionLimit(options.maxConnections ?? DEFAULT_LIMITS.maxConsoles);
  const server: Server = createServer(
    { noDelay: true, keepAlive: true, keepAliveInitialDelay: 30_000 },
    (socket) => {
      const release = limit.acquire('console');
      if (!release) {
        log.warn('console refused: connection limit reached', {
          remote: `${socket.remoteAddress}:${socket.remotePort}`,
        });
        socket.destroy();
        return;
      }
      sockets.add(socket);
      socket.once('close', () => {
        sockets.delete(socket);
        heartbeats.delete(socket);
        release();
      });
      serveConsole(socket, options, heartbeats);
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

  // Opted-in consoles are pinged each interval; one that said nothing since the last ping is gone,
  // so a dead console leaves its room within two intervals.
  const timer = setInterval(() => {
    for (const [socket, live] of heartbeats) {
      if (!live.heard) {
        log.info('console closed: no answer to ping', {
          remote: `${socket.remoteAddress}:${socket.remotePort}`,
        });
        socket.destroy();
        continue;
      }
      live.heard = false;
      socket.write(PING.line);
    }
  }, options.heartbeatMs ?? DEFAULT_LIMITS.heartbeatMs);
  timer.unref();

  const bound = server.address();
  const port = typeof bound === 'object' && bound ? bound.port : options.port;
  return {
    address: { host: options.host, port },
    stopAccepting: () => {
      clearInterval(timer);
      server.close();
    },
    destroyAll: () => {
      for (const socket of sockets) socket.destroy();
    },
    get connections() {
      return sockets.size;
    },
  };
}

function serveConsole(socket: Socket, options: ConsoleDoorOptions, heartbeats: Map<Socket, Live>): void {
  const { hub, log } = options;
  const remote = `${socket.remoteAddress}:${socket.remotePort}`;
  const splitter = new LineSplitter(options.maxLineBytes ?? 64 * 1024);
  let peer: Peer | undefined;
  let handler: FrameHandler | undefined;
  let optedIn = false;

  const helloTimer = setTimeout(() => {
    log.info('console closed: no hello in time', { remote });
    socket.destroy();
  }, options.helloTimeoutMs ?? DEFAULT_LIMITS.helloTimeoutMs);

  // Before hello there is no peer yet; an opted-in console is still answered with error frames.
  const refuse = (code: ErrorCode, message: string): void => {
    if (peer) hub.refuse(peer, code, message);
    else if (optedIn && !socket.destroyed) socket.write(new Encoded({ type: 'error', code, message }).line);
  };

  const bind = (hello: HelloFrame): void => {
    clearTimeout(helloTimer);
    const joined: Peer = {
      user: hello.user,
      room: hello.room,
      wantsBackscroll: false,
      optedIn: (hello.protocol ?? 1) >= PROTOCOL_VERSION,
      since: undefined,
      send: (frames) => {
        socket.write(frames.line);
      },
      bufferedAmount: () => socket.writableLength,
      close: (code) => {
        // A slow or flooding console's backlog is dropped; otherwise what is queued is flushed first.
        if (code === CloseCode.Slow || code === CloseCode.Flood) socket.destroy();
        else socket.end();
      },
    };
    peer = joined;
    handler = new FrameHandler(hub, joined, log, options.flood ?? floodLimits(DEFAULT_LIMITS), {
      pause: () => socket.pause(),
      resume: () => socket.resume(),
    });
    if (joined.optedIn) heartbeats.set(socket, { heard: true });
    log.info('console joined', { room: hello.room, user: hello.user, remote, protocol: hello.protocol ?? 1 });
    void hub.join(joined);
  };

  socket.on('data', (chunk: Buffer) => {
    const live = heartbeats.get(socket);
    if (live) live.heard = true;
    const { lines, overflow } = splitter.push(chunk);
    for (const bytes of lines) {
      if (socket.destroyed) return;
      const text = decodeUtf8(bytes);
      if (text === undefined) {
        log.warn('console line refused: invalid UTF-8', { remote });
        refuse('bad_utf8', 'line is not valid UTF-8; it was ignored');
        continue;
      }
      if (text.trim() === '') continue;
      const decoded = decodeClientFrame(text);
      if (!decoded.ok) {
        log.debug('console frame skipped', { remote, code: decoded.code, reason: decoded.message });
        if (!peer) optedIn ||= decoded.optedIn;
        refuse(decoded.code, decoded.message);
        continue;
      }
      if (handler) handler.handle(decoded.frame);
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
