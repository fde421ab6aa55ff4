// The console door: an NDJSON listener on localhost. The first valid frame, hello, binds identity.
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import type { Challenge, ConsoleIdentity, HelloVerdict } from '../auth/console-keys.ts';
import { DEFAULT_LIMITS } from '../config.ts';
import type { Hub } from '../hub/hub.ts';
import { Encoded, type Peer } from '../hub/peer.ts';
import type { Log } from '../log.ts';
import { type DisconnectReason, type Metrics, noMetrics, reasonOfClose } from '../metrics/metrics.ts';
import { CloseCode, ErrorCode } from '../protocol/codes.ts';
import { MAX_FRAME_BYTES } from '../protocol/constants.ts';
import {
  decodeAuthFrame,
  decodeClientFrame,
  type HelloExtras,
  type HelloFrame,
  helloExtras,
  PROTOCOL_VERSION,
} from '../protocol/frames.ts';
import { ConnectionHandler } from '../protocol/handler.ts';
import { ConnectionLimit } from './limits.ts';
import { decodeUtf8, LineSplitter, ndjsonLines } from './ndjson.ts';
import { ReadGate, rateLimitedNotice, Throttle, type ThrottleLimits, throttleLimits } from './throttle.ts';

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
  /** Rate of frames per connection; a faster sender is slowed, and closed if it never slows down. */
  throttle?: ThrottleLimits;
  /** A connection whose unsent data passes this many bytes is closed (before hello too). */
  maxUnsentBytes?: number;
  /** Who may use which name: console keys and the policy for hellos without one. Without it, anyone may. */
  identity?: ConsoleIdentity | undefined;
  /** Where connections, their ends and throttled frames are counted. */
  metrics?: Metrics | undefined;
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
  const metrics = options.metrics ?? noMetrics;
  /** Why the server ended a connection, where it did; the first reason given counts. */
  const why = new WeakMap<Socket, DisconnectReason>();
  const end = (socket: Socket, reason: DisconnectReason): void => {
    if (!why.has(socket)) why.set(socket, reason);
  };
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
      metrics.opened('console');
      socket.once('close', () => {
        sockets.delete(socket);
        heartbeats.delete(socket);
        release();
        metrics.disconnected('console', why.get(socket) ?? 'closed');
      });
      serveConsole(socket, options, heartbeats, (reason) => end(socket, reason));
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
        end(socket, 'heartbeat');
        socket.destroy();
        continue;
      }
      live.heard = false;
      socket.write(ndjsonLines(PING));
    }
  }, options.heartbeatMs ?? DEFAULT_LIMITS.heartbeatMs);
  timer.unref();

  // The address the socket really has, not the one asked for.
  const bound = server.address() as AddressInfo;
  return {
    address: { host: bound.address, port: bound.port },
    stopAccepting: () => {
      clearInterval(timer);
      server.close();
    },
    destroyAll: () => {
      for (const socket of sockets) {
        end(socket, 'shutdown');
        socket.destroy();
      }
    },
    get connections() {
      return sockets.size;
    },
  };
}

function serveConsole(
  socket: Socket,
  options: ConsoleDoorOptions,
  heartbeats: Map<Socket, Live>,
  end: (reason: DisconnectReason) => void,
): void {
  const { hub, log } = options;
  const remote = `${socket.remoteAddress}:${socket.remotePort}`;
  const splitter = new LineSplitter(options.maxLineBytes ?? MAX_FRAME_BYTES);
  const maxUnsent = options.maxUnsentBytes ?? DEFAULT_LIMITS.maxUnsentBytes;
  const reading = new ReadGate(
    () => socket.pause(),
    () => socket.resume(),
  );
  let peer: Peer | undefined;
  let handler: ConnectionHandler | undefined;
  let optedIn = false;

  let helloTimer = setTimeout(() => {
    log.info('console closed: no hello in time', { remote });
    end('hello_timeout');
    socket.destroy();
  }, options.helloTimeoutMs ?? DEFAULT_LIMITS.helloTimeoutMs);

  /** Every write of the door counts against the unsent bound, joined or not. */
  const write = (frame: Encoded): void => {
    if (socket.destroyed) return;
    if (socket.writableLength > maxUnsent) {
      log.warn('console closed: it does not read what it is sent', { remote, user: peer?.user });
      end('slow');
      socket.destroy();
      return;
    }
    socket.write(ndjsonLines(frame));
  };

  // Before hello there is no peer yet; an opted-in console is still answered with error frames.
  const refuse = (code: ErrorCode, message: string, ref?: string): void => {
    if (peer) hub.refuse(peer, code, message, ref);
    else if (optedIn)
      write(new Encoded({ type: 'error', code, message, ...(ref === undefined ? {} : { ref }) }));
  };

  /** A hello or an auth waits for an answer (the keys): lines that arrive meanwhile wait their turn. */
  let busy = false;
  let backlog: Uint8Array[] | undefined;
  /** Turned away: what it sends from now on is not read. */
  let over = false;
  let challenge: Challenge | undefined;
  let hello: { frame: HelloFrame; since: number | undefined; ref: string | undefined } | undefined;
  let detach: (() => void) | undefined;

  /** Refuse the hello or its proof: an opted-in console is told why; then the connection ends. */
  const turnAway = (code: ErrorCode, message: string, user: string, ref?: string): void => {
    log.warn('console refused', { remote, user, code, reason: message });
    refuse(code, message, ref);
    over = true;
    end('refused');
    socket.end();
  };

  /** Let the console in, under `user`: proven by a key (fingerprint), or as its hello claimed. */
  const join = (user: string, fingerprint: string | undefined): void => {
    if (!hello || socket.destroyed) return;
    clearTimeout(helloTimer);
    const { frame, since, ref } = hello;
    const joined: Peer = {
      user,
      via: 'console',
      wantsBackscroll: false,
      optedIn,
      authenticated: fingerprint !== undefined,
      send: (frames) => {
        socket.write(ndjsonLines(frames));
      },
      bufferedAmount: () => socket.writableLength,
      close: (code) => {
        end(reasonOfClose(code));
        // A slow or flooding console's backlog is dropped; otherwise what is queued is flushed first.
        if (code === CloseCode.Slow || code === CloseCode.Flood) socket.destroy();
        else socket.end();
      },
    };
    peer = joined;
    handler = new ConnectionHandler(hub, joined, reading, frame.room);
    if (joined.optedIn) heartbeats.set(socket, { heard: true });
    log.info('console joined', {
      room: frame.room,
      user,
      remote,
      protocol: frame.protocol ?? 1,
      ...(fingerprint === undefined ? {} : { key: fingerprint }),
    });
    handler.start(since, ref);
    detach = options.identity?.attach({
      user,
      fingerprint,
      close: (code, message) => {
        refuse(code, message);
        if (peer) hub.drop(peer, CloseCode.Unauthorized, message);
      },
    });
  };

  /** Act on what the keys say of a hello. */
  const decide = (verdict: HelloVerdict): void => {
    if (!hello || socket.destroyed) return;
    if (verdict.kind === 'plain') join(hello.frame.user, undefined);
    else if (verdict.kind === 'refused') turnAway(verdict.code, verdict.message, hello.frame.user, hello.ref);
    else {
      challenge = verdict.challenge;
      // The console may need a person to touch a key or unlock an agent: it has the nonce's lifetime.
      clearTimeout(helloTimer);
      helloTimer = setTimeout(() => {
        log.info('console closed: challenge not answered in time', { remote });
        end('hello_timeout');
        socket.destroy();
      }, challenge.expiresInMs);
      write(
        new Encoded({
          type: 'challenge',
          nonce: challenge.nonce,
          namespace: challenge.namespace,
          expires_in: Math.floor(challenge.expiresInMs / 1000),
        }),
      );
    }
  };

  /** Hold the lines that follow until `work` is done, then take them in order. */
  const await_ = (work: Promise<void>): void => {
    busy = true;
    reading.hold('identity');
    void work
      .catch((error: unknown) => {
        log.error('console identity failed', { remote, error: String(error) });
        end('error');
        socket.destroy();
      })
      .finally(() => {
        busy = false;
        reading.release('identity');
        while (!busy && backlog?.length && !socket.destroyed) take(backlog.shift() as Uint8Array);
      });
  };

  const bind = (frame: HelloFrame, text: string): void => {
    const opted = (frame.protocol ?? 1) >= PROTOCOL_VERSION;
    // A protocol-2 hello may resume its room, carry a ref and offer a key; a seed hello's other fields are ignored.
    const extras = opted ? helloExtras(text) : { ok: true as const, frame: {} as HelloExtras };
    optedIn = opted;
    if (!extras.ok) {
      refuse(extras.code, extras.message, extras.ref);
      return;
    }
    hello = { frame, since: extras.frame.since, ref: extras.frame.ref };
    const identity = options.identity;
    if (!identity) {
      join(frame.user, undefined);
      return;
    }
    const verdict = identity.admit({ user: frame.user, key: extras.frame.key });
    if (verdict instanceof Promise) await_(verdict.then(decide));
    else decide(verdict);
  };

  /** The console's answer to its challenge. */
  const answer = (text: string, current: Challenge): void => {
    const user = hello?.frame.user ?? '';
    const decoded = decodeAuthFrame(text);
    challenge = undefined;
    if (!decoded.ok) {
      turnAway(ErrorCode.AuthFailed, decoded.message, user, decoded.ref);
      return;
    }
    await_(
      current.prove(decoded.frame.signature).then((proof) => {
        if (proof.ok) join(proof.proven.user, proof.proven.fingerprint);
        else turnAway(ErrorCode.AuthFailed, proof.message, user, hello?.ref);
      }),
    );
  };

  /** One line, at most at the connection's rate. */
  const take = (bytes: Uint8Array): void => {
    if (socket.destroyed || over) return;
    if (busy) {
      backlog ??= [];
      backlog.push(bytes);
      return;
    }
    const text = decodeUtf8(bytes);
    if (text === undefined) {
      log.warn('console line refused: invalid UTF-8', { remote });
      refuse(ErrorCode.BadUtf8, 'line is not valid UTF-8; it was ignored');
      return;
    }
    if (text.trim() === '') return;
    if (challenge) {
      answer(text, challenge);
      return;
    }
    const decoded = decodeClientFrame(text, peer?.optedIn ?? false);
    if (!decoded.ok) {
      log.debug('console frame skipped', { remote, code: decoded.code, reason: decoded.message });
      if (!peer) optedIn ||= decoded.optedIn;
      refuse(decoded.code, decoded.message, decoded.ref);
      return;
    }
    if (handler) handler.handle(decoded.frame);
    else if (decoded.frame.type === 'hello' && !hello) bind(decoded.frame, text);
    // Frames before hello have no effect.
  };

  const throttle = new Throttle<Uint8Array>(options.throttle ?? throttleLimits(DEFAULT_LIMITS), {
    take,
    pause: () => reading.hold('rate'),
    resume: () => reading.release('rate'),
    slowed: (retryAfterMs) => {
      log.info('console slowed: sending faster than its rate', { remote, user: peer?.user });
      if (peer?.optedIn) write(rateLimitedNotice(retryAfterMs));
    },
    flood: (reason) => {
      log.warn('console closed: kept sending faster than its rate', { remote, user: peer?.user, reason });
      end('flood');
      socket.destroy();
    },
    held: () => options.metrics?.throttled('console'),
  });

  socket.on('data', (chunk: Buffer) => {
    const live = heartbeats.get(socket);
    if (live) live.heard = true;
    const { lines, overflow } = splitter.push(chunk);
    for (const bytes of lines) {
      if (socket.destroyed) return;
      // Blank lines are skipped without counting against the rate.
      if (isBlank(bytes)) continue;
      throttle.push(bytes, bytes.length + 1);
    }
    if (overflow) {
      log.warn('console closed: line longer than the limit', { remote, user: peer?.user });
      end('too_large');
      socket.destroy();
    }
  });

  socket.on('error', (error) => log.debug('console socket error', { remote, error: String(error) }));
  socket.on('close', () => {
    clearTimeout(helloTimer);
    throttle.close();
    detach?.();
    if (peer) {
      handler?.stop();
      log.info('console left', { user: peer.user, remote });
    }
  });
}

/** Whether a line holds nothing but ASCII spaces and tabs. */
function isBlank(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b !== 0x20 && b !== 0x09) return false;
  return true;
}
