// The console door: an NDJSON listener on localhost. The first valid frame, hello, binds identity.
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import type { Challenge, ConsoleIdentity, HelloVerdict, LiveConsole } from '../auth/console-keys.ts';
import { DEFAULT_LIMITS } from '../config.ts';
import type { Hub } from '../hub/hub.ts';
import { Encoded, type Outgoing, type Peer } from '../hub/peer.ts';
import { consoleRequester, requesterOf } from '../hub/reads.ts';
import { type Log, throttledWarning } from '../log.ts';
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
  /** The rate all of one person's connections share, both doors' (none unless given). */
  sharedRates?: SharedRates | undefined;
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

/** What every connection of one door shares. */
interface DoorState {
  readonly options: ConsoleDoorOptions;
  readonly log: Log;
  readonly metrics: Metrics;
  readonly limit: ConnectionLimit;
  readonly connections: Set<ConsoleConnection>;
  /** Opted-in connections: they are pinged. */
  readonly heartbeats: Set<ConsoleConnection>;
  readonly maxUnsent: number;
  readonly maxLine: number;
  readonly helloTimeoutMs: number;
  readonly throttle: ThrottleLimits;
}

/** Start listening; rejects with the listen error (for example EADDRINUSE). */
export async function startConsoleDoor(options: ConsoleDoorOptions): Promise<ConsoleDoor> {
  const { log } = options;
  const maxConnections = options.maxConnections ?? DEFAULT_LIMITS.maxConsoles;
  const door: DoorState = {
    options,
    log,
    metrics: options.metrics ?? noMetrics,
    limit: new ConnectionLimit(maxConnections),
    connections: new Set(),
    heartbeats: new Set(),
    maxUnsent: options.maxUnsentBytes ?? DEFAULT_LIMITS.maxUnsentBytes,
    maxLine: options.maxLineBytes ?? MAX_FRAME_BYTES,
    helloTimeoutMs: options.helloTimeoutMs ?? DEFAULT_LIMITS.helloTimeoutMs,
    throttle: options.throttle ?? throttleLimits(DEFAULT_LIMITS),
  };
  // No TCP keepalive: the door listens on loopback only, where the other end (sshd, or a local
  // client) cannot vanish without its kernel closing the socket; keepalive cost four setsockopt
  // calls per console. A silent opted-in console is ended by the heartbeat.
  // One line at once, then one each 10 s with how many more: a flood past the limit does not flood the log.
  const refused = throttledWarning(log, 'console refused: connection limit reached');
  const server: Server = createServer({ noDelay: true }, (socket) => {
    if (!door.limit.take(CONSOLE)) {
      refused({
        remote: `${socket.remoteAddress}:${socket.remotePort}`,
        limit: maxConnections,
      });
      socket.destroy();
      return;
    }
    door.metrics.opened('console');
    door.connections.add(new ConsoleConnection(socket, door));
  });
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
    for (const connection of door.heartbeats) connection.ping();
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
      for (const connection of door.connections) connection.destroy('shutdown');
    },
    get connections() {
      return door.connections.size;
    },
  };
}

/** The key every console counts under in the door's limit (consoles all come from localhost). */
const CONSOLE = 'console';

/** The connection a socket serves, for the listeners the door adds once for every socket. */
const CONNECTION = Symbol('console connection');
type ServedSocket = Socket & { [CONNECTION]: ConsoleConnection };

// Listeners shared by every socket (`this` is the socket): one function each for the whole door,
// where a closure per socket would cost every idle console its memory.
function onData(this: ServedSocket, chunk: Buffer): void {
  this[CONNECTION].data(chunk);
}
function onError(this: ServedSocket, error: Error): void {
  this[CONNECTION].error(error);
}
function onClose(this: ServedSocket): void {
  this[CONNECTION].closed();
}

/** A hello the keys are still deciding on, or the connection was let in with. */
interface Hello {
  readonly frame: HelloFrame;
  readonly since: number | undefined;
  readonly ref: string | undefined;
}

/**
 * One console: its socket read line by line at its rate, its hello (and a key's proof), then its
 * frames handed to the ConnectionHandler. The fields are what an idle console costs, so each is
 * made only when needed.
 */
class ConsoleConnection implements ThrottleTarget<Uint8Array>, Pausable {
  readonly #socket: ServedSocket;
  readonly #door: DoorState;
  readonly #splitter: LineSplitter;
  readonly #reading: ReadGate;
  readonly #throttle: Throttle<Uint8Array>;
  #peer: ConsolePeer | undefined;
  #handler: ConnectionHandler | undefined;
  /** The console asked for protocol 2 (before hello: a refused hello that asked for it). */
  #optedIn = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Something arrived since the last ping. */
  heard = true;
  /** Why the server ended the connection, where it did; the first reason given counts. */
  #ending: DisconnectReason | undefined;
  /** A hello or an auth waits for an answer (the keys): lines that arrive meanwhile wait their turn. */
  #busy = false;
  #backlog: Uint8Array[] | undefined;
  /** Turned away: what it sends from now on is not read. */
  #over = false;
  #challenge: Challenge | undefined;
  #hello: Hello | undefined;
  #detach: (() => void) | undefined;

  constructor(socket: Socket, door: DoorState) {
    this.#socket = socket as ServedSocket;
    this.#socket[CONNECTION] = this;
    this.#door = door;
    this.#splitter = new LineSplitter(door.maxLine);
    this.#reading = new ReadGate(this);
    this.#throttle = new Throttle<Uint8Array>(door.throttle, this);
    this.#timer = setTimeout(
      () => this.#giveUp('console closed: no hello in time', 'hello_timeout'),
      door.helloTimeoutMs,
    );
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
  }

  get #remote(): string {
    return `${this.#socket.remoteAddress}:${this.#socket.remotePort}`;
  }

  get #log(): Log {
    return this.#door.log;
  }

  /** Reading stops (ReadGate). */
  stopReading(): void {
    this.#socket.pause();
  }

  startReading(): void {
    this.#socket.resume();
  }

  /** End the connection at once, for `reason`. */
  destroy(reason: DisconnectReason): void {
    this.#end(reason);
    this.#socket.destroy();
  }

  /** Flush what is queued, then end the connection. */
  finish(reason: DisconnectReason): void {
    this.#end(reason);
    this.#socket.end();
  }

  #end(reason: DisconnectReason): void {
    this.#ending ??= reason;
  }

  #giveUp(why: string, reason: DisconnectReason): void {
    this.#log.info(why, { remote: this.#remote });
    this.destroy(reason);
  }

  /** The heartbeat: ping, or end a console that said nothing since the last one. */
  ping(): void {
    if (!this.heard) {
      this.#log.info('console closed: no answer to ping', { remote: this.#remote });
      this.destroy('heartbeat');
      return;
    }
    this.heard = false;
    if (this.#socket.writable) this.#socket.write(ndjsonLines(PING));
  }

  /** Every write of the door counts against the unsent bound, joined or not. */
  write(frames: Outgoing): void {
    const socket = this.#socket;
    // Ended (the console hung up, or the door is closing it): a write would only make an error.
    if (!socket.writable) return;
    if (socket.writableLength > this.#door.maxUnsent) {
      this.#log.warn('console closed: it does not read what it is sent', {
        remote: this.#remote,
        user: this.#peer?.user,
      });
      this.destroy('slow');
      return;
    }
    socket.write(ndjsonLines(frames));
  }

  /** What the Hub sends: written as it is (the Hub judges slowness itself). */
  send(frames: Outgoing): void {
    if (this.#socket.writable) this.#socket.write(ndjsonLines(frames));
  }

  get unsent(): number {
    return this.#socket.writableLength;
  }

  /** Before hello there is no peer yet; an opted-in console is still answered with error frames. */
  #refuse(code: ErrorCode, message: string, ref?: string): void {
    if (this.#peer) this.#door.options.hub.refuse(this.#peer, code, message, ref);
    else if (this.#optedIn)
      this.write(new Encoded({ type: 'error', code, message, ...(ref === undefined ? {} : { ref }) }));
  }

  /** Refuse the hello or its proof: an opted-in console is told why; then the connection ends. */
  #turnAway(code: ErrorCode, message: string, ref?: string): void {
    this.#log.warn('console refused', {
      remote: this.#remote,
      user: this.#hello?.frame.user,
      code,
      reason: message,
    });
    this.#refuse(code, message, ref);
    this.#over = true;
    this.finish('refused');
  }

  /** Let the console in, under `user`: proven by a key (fingerprint), or as its hello claimed. */
  #join(user: string, fingerprint: string | undefined): void {
    const hello = this.#hello;
    if (!hello || this.#socket.destroyed) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const { hub, identity } = this.#door.options;
    const peer = new ConsolePeer(this, user, this.#optedIn, fingerprint !== undefined);
    this.#peer = peer;
    this.#handler = new ConnectionHandler(hub, peer, this.#reading, hello.frame.room);
    if (peer.optedIn) this.#door.heartbeats.add(this);
    if (this.#door.options.sharedRates)
      this.#throttle.share(this.#door.options.sharedRates, requesterOf(peer));
    this.#log.info('console joined', {
      room: hello.frame.room,
      user,
      remote: this.#remote,
      protocol: hello.frame.protocol ?? 1,
      ...(fingerprint === undefined ? {} : { key: fingerprint }),
    });
    this.#handler.start(hello.since, hello.ref);
    if (identity) this.#detach = identity.attach(new WatchedConsole(this, user, fingerprint));
  }

  /** The keys no longer let this console in (its key was removed, its name got one). */
  shutOut(code: ErrorCode, message: string): void {
    this.#refuse(code, message);
    if (this.#peer) this.#door.options.hub.drop(this.#peer, CloseCode.Unauthorized, message);
  }

  /** Act on what the keys say of a hello. */
  #decide(verdict: HelloVerdict): void {
    const hello = this.#hello;
    if (!hello || this.#socket.destroyed) return;
    if (verdict.kind === 'plain') this.#join(hello.frame.user, undefined);
    else if (verdict.kind === 'refused') this.#turnAway(verdict.code, verdict.message, hello.ref);
    else {
      const challenge = verdict.challenge;
      this.#challenge = challenge;
      // The console may need a person to touch a key or unlock an agent: it has the nonce's lifetime.
      clearTimeout(this.#timer);
      this.#timer = setTimeout(
        () => this.#giveUp('console closed: challenge not answered in time', 'hello_timeout'),
        challenge.expiresInMs,
      );
      this.write(
        new Encoded({
          type: 'challenge',
          nonce: challenge.nonce,
          namespace: challenge.namespace,
          expires_in: Math.floor(challenge.expiresInMs / 1000),
        }),
      );
    }
  }

  /** Hold the lines that follow until `work` is done, then take them in order. */
  #wait(work: Promise<void>): void {
    this.#busy = true;
    this.#reading.hold('identity');
    void work
      .catch((error: unknown) => {
        this.#log.error('console identity failed', { remote: this.#remote, error: String(error) });
        this.destroy('error');
      })
      .finally(() => {
        this.#busy = false;
        this.#reading.release('identity');
        const backlog = this.#backlog;
        while (!this.#busy && backlog?.length && !this.#socket.destroyed)
          this.take(backlog.shift() as Uint8Array);
      });
  }

  #bind(frame: HelloFrame, text: string): void {
    const opted = (frame.protocol ?? 1) >= PROTOCOL_VERSION;
    // A protocol-2 hello may resume its room, carry a ref and offer a key; a seed hello's other fields are ignored.
    const extras = opted ? helloExtras(text) : { ok: true as const, frame: {} as HelloExtras };
    this.#optedIn = opted;
    if (!extras.ok) {
      this.#refuse(extras.code, extras.message, extras.ref);
      return;
    }
    this.#hello = { frame, since: extras.frame.since, ref: extras.frame.ref };
    const identity = this.#door.options.identity;
    if (!identity) {
      this.#join(frame.user, undefined);
      return;
    }
    const verdict = identity.admit({ user: frame.user, key: extras.frame.key });
    if (verdict instanceof Promise) this.#wait(verdict.then((v) => this.#decide(v)));
    else this.#decide(verdict);
  }

  /** The console's answer to its challenge. */
  #answer(text: string, challenge: Challenge): void {
    const decoded = decodeAuthFrame(text);
    this.#challenge = undefined;
    if (!decoded.ok) {
      this.#turnAway(ErrorCode.AuthFailed, decoded.message, decoded.ref);
      return;
    }
    this.#wait(
      challenge.prove(decoded.frame.signature).then((proof) => {
        if (proof.ok) this.#join(proof.proven.user, proof.proven.fingerprint);
        else this.#turnAway(ErrorCode.AuthFailed, proof.message, this.#hello?.ref);
      }),
    );
  }

  /** One line, at most at the connection's rate (ThrottleTarget). */
  take(bytes: Uint8Array): void {
    if (this.#socket.destroyed || this.#over) return;
    if (this.#busy) {
      this.#backlog ??= [];
      this.#backlog.push(bytes);
      return;
    }
    const text = decodeUtf8(bytes);
    if (text === undefined) {
      this.#log.warn('console line refused: invalid UTF-8', { remote: this.#remote });
      this.#refuse(ErrorCode.BadUtf8, 'line is not valid UTF-8; it was ignored');
      return;
    }
    if (text.trim() === '') return;
    if (this.#challenge) {
      this.#answer(text, this.#challenge);
      return;
    }
    const decoded = decodeClientFrame(text, this.#peer?.optedIn ?? false);
    if (!decoded.ok) {
      this.#log.debug('console frame skipped', {
        remote: this.#remote,
        code: decoded.code,
        reason: decoded.message,
      });
      if (!this.#peer) this.#optedIn ||= decoded.optedIn;
      this.#refuse(decoded.code, decoded.message, decoded.ref);
      return;
    }
    if (this.#handler) this.#handler.handle(decoded.frame);
    else if (decoded.frame.type === 'hello' && !this.#hello) this.#bind(decoded.frame, text);
    // Frames before hello have no effect.
  }

  pause(): void {
    this.#reading.hold('rate');
  }

  resume(): void {
    this.#reading.release('rate');
  }

  slowed(retryAfterMs: number): void {
    this.#log.info('console slowed: sending faster than its rate', {
      remote: this.#remote,
      user: this.#peer?.user,
    });
    if (this.#peer?.optedIn) this.write(rateLimitedNotice(retryAfterMs));
  }

  flood(reason: FloodReason): void {
    this.#log.warn('console closed: kept sending faster than its rate', {
      remote: this.#remote,
      user: this.#peer?.user,
      reason,
    });
    this.destroy('flood');
  }

  held(): void {
    this.#door.metrics.throttled('console');
  }

  data(chunk: Buffer): void {
    this.heard = true;
    const { lines, overflow } = this.#splitter.push(chunk);
    for (const bytes of lines) {
      if (this.#socket.destroyed) return;
      // Blank lines are skipped without counting against the rate.
      if (isBlank(bytes)) continue;
      this.#throttle.push(bytes, bytes.length + 1);
    }
    if (overflow) {
      this.#log.warn('console closed: line longer than the limit', {
        remote: this.#remote,
        user: this.#peer?.user,
      });
      this.destroy('too_large');
    }
  }

  error(error: Error): void {
    this.#log.debug('console socket error', { remote: this.#remote, error: String(error) });
  }

  closed(): void {
    const door = this.#door;
    door.connections.delete(this);
    door.heartbeats.delete(this);
    door.limit.give(CONSOLE);
    door.metrics.disconnected('console', this.#ending ?? 'closed');
    clearTimeout(this.#timer);
    this.#throttle.close();
    this.#detach?.();
    if (this.#peer) {
      this.#handler?.stop();
      this.#log.info('console left', { user: this.#peer.user, remote: this.#remote });
    }
  }
}

/** A joined console, as the Hub sees it. */
class ConsolePeer implements Peer {
  readonly #connection: ConsoleConnection;
  readonly user: string;
  readonly optedIn: boolean;
  readonly authenticated: boolean;

  constructor(connection: ConsoleConnection, user: string, optedIn: boolean, authenticated: boolean) {
    this.#connection = connection;
    this.user = user;
    this.optedIn = optedIn;
    this.authenticated = authenticated;
  }

  get via(): 'console' {
    return 'console';
  }

  /** Consoles never get backscroll unasked. */
  get wantsBackscroll(): boolean {
    return false;
  }

  /**
   * A console that proved no key counts apart from the person of its name (a signed-in browser, a
   * console with their key): its name is a claim, and must not spend that person's rates.
   */
  get reader(): string | undefined {
    return this.authenticated ? undefined : consoleRequester(this.user);
  }

  send(frames: Outgoing): void {
    this.#connection.send(frames);
  }

  bufferedAmount(): number {
    return this.#connection.unsent;
  }

  close(code: number): void {
    // A slow or flooding console's backlog is dropped; otherwise what is queued is flushed first.
    if (code === CloseCode.Slow || code === CloseCode.Flood) this.#connection.destroy(reasonOfClose(code));
    else this.#connection.finish(reasonOfClose(code));
  }
}

/** A joined console, as the keys watch it. */
class WatchedConsole implements LiveConsole {
  readonly #connection: ConsoleConnection;
  readonly user: string;
  readonly fingerprint: string | undefined;

  constructor(connection: ConsoleConnection, user: string, fingerprint: string | undefined) {
    this.#connection = connection;
    this.user = user;
    this.fingerprint = fingerprint;
  }

  close(code: ErrorCode, message: string): void {
    this.#connection.shutOut(code, message);
  }
}

/** Whether a line holds nothing but ASCII spaces and tabs. */
function isBlank(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b !== 0x20 && b !== 0x09) return false;
  return true;
}
