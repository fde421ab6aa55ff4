// The client core both clients share: one protocol-2 connection to the console door, kept up across
// drops (backoff, hello with since, joins with since, resends by cid), requests answered by ref, and each
// room's messages handed on exactly once and in order (seq == last + 1, gaps filled from history).
import { randomBytes } from 'node:crypto';
import { ErrorCode, NoticeCode } from '../protocol/codes.ts';
import { MAX_FRAME_BYTES } from '../protocol/constants.ts';
import type {
  HistoryOut,
  JoinedOut,
  MessageOut,
  NoticeOut,
  PresenceOut,
  ServerFrame,
  WelcomeOut,
  WhisperOut,
} from '../protocol/frames.ts';
import { capText, HISTORY_MAX, PROTOCOL_VERSION } from '../protocol/frames.ts';
import { Backoff } from './backoff.ts';
import type { KeySigner } from './keys.ts';
import type { Link, Opener } from './link.ts';
import { Sequence } from './sequence.ts';
import { type AnyErrorFrame, decodeLine } from './wire.ts';

/** Why a client stopped for good. */
export type StopReason =
  | { kind: 'closed' }
  /** The first connection failed and the client was told not to retry it. */
  | { kind: 'unreachable'; message: string }
  /** The key was refused at sign-in, or revoked while connected. */
  | { kind: 'auth_failed' | 'revoked'; message: string }
  /** The server refused the hello itself (a bad name): retrying cannot help. */
  | { kind: 'refused'; code: string; message: string };

/** A request the server refused: its error code and message. */
export class RequestError extends Error {
  override readonly name = 'RequestError';
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/** What a client reports; every handler is optional. */
export interface ClientEvents {
  /** A room message, once and in order per room (the sender's own echoes included). */
  message?(frame: MessageOut): void;
  /** A whisper to or from this user, once and in order per conversation. */
  whisper?(frame: WhisperOut): void;
  presence?(frame: PresenceOut): void;
  notice?(frame: NoticeOut): void;
  /** An error frame that answers no request of this client's. */
  error?(frame: AnyErrorFrame): void;
  /** Any other frame the server sent (not messages, whispers, or replies to the core's own requests). */
  frame?(raw: Record<string, unknown>): void;
  /** Connected and every room joined; `resumed` when it is a reconnect. */
  ready?(info: { user: string; resumed: boolean; welcome: WelcomeOut; authenticated: boolean }): void;
  /** The connection dropped; the next attempt is in `retryMs`. */
  disconnected?(info: { reason: string; retryMs: number }): void;
  /** Messages the server no longer has: `from` to `to` of a room (or whisper conversation) were skipped. */
  lost?(info: { room?: string; with?: string; from: number; to: number }): void;
  stopped?(reason: StopReason): void;
}

/** How a client connects. */
export interface ClientOptions {
  user: string;
  /** The rooms to be in; the first is the hello's. */
  rooms: readonly string[];
  open: Opener;
  key?: KeySigner | undefined;
  /** Stop instead of retrying when the very first connection fails. */
  failFast?: boolean | undefined;
  backoff?: Backoff | undefined;
  /** How long a connection may take to be welcomed. */
  helloTimeoutMs?: number | undefined;
  /** Silence after which the server is asked whether it is there; as long again without an answer drops the link. */
  idleProbeMs?: number | undefined;
  events?: ClientEvents | undefined;
}

interface Pending {
  frame: Record<string, unknown>;
  resolve(frame: ServerFrame): void;
  reject(error: Error): void;
  /** Bookkeeping of this connection only (joins, history fills, probes): dropped with it. */
  internal: boolean;
  /** The connection it was written on, or 0. */
  sentOn: number;
}

interface Outgoing {
  frame: { type: 'message'; room: string; text: string; cid: string; ref: string } | WhisperFrame;
  resolve(frame: MessageOut | WhisperOut): void;
  reject(error: Error): void;
  sentOn: number;
}

type WhisperFrame = { type: 'whisper'; to: string; text: string; cid: string; ref: string };

interface RoomState {
  readonly seq: Sequence<MessageOut>;
  /** The connection the room is joined on, or 0. */
  joinedOn: number;
  waiters: Array<{ resolve(frame: JoinedOut): void; reject(error: Error): void }>;
}

const HELLO_REF = 'hello';

/** Errors after which a send is tried again rather than given up: the message was not stored. */
const RETRIED: ReadonlySet<string> = new Set([ErrorCode.ShuttingDown, ErrorCode.StoreUnavailable]);

/** A protocol-2 connection to the room server that survives drops and never loses or doubles a message. */
export class RoomClient {
  readonly #options: ClientOptions;
  readonly #events: ClientEvents;
  readonly #backoff: Backoff;
  readonly #rooms = new Map<string, RoomState>();
  readonly #whispers = new Map<string, Sequence<WhisperOut>>();
  readonly #pending = new Map<string, Pending>();
  readonly #outbox = new Map<string, Outgoing>();
  readonly #cidPrefix = `c${randomBytes(6).toString('hex')}`;
  #user: string;
  #link: Link | undefined;
  #conn = 0;
  #readyOn = 0;
  #everReady = false;
  #upSince = 0;
  #authenticated = false;
  #counter = 0;
  #stopped: StopReason | undefined;
  #timers = new Set<NodeJS.Timeout>();
  #helloTimer: NodeJS.Timeout | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  #started: { resolve(): void; reject(error: Error): void } | undefined;
  #welcome: WelcomeOut | undefined;
  /** Why the client itself is dropping the link (no welcome, no answer), for the next `closed`. */
  #why: string | undefined;
  #drainWaiters: Array<() => void> = [];

  constructor(options: ClientOptions) {
    if (options.rooms.length === 0) throw new Error('a client needs a room');
    this.#options = options;
    this.#events = options.events ?? {};
    this.#backoff = options.backoff ?? new Backoff();
    this.#user = options.user;
    for (const room of options.rooms) this.#addRoom(room);
  }

  /** The name the server bound (the key owner's, when signed in with a key). */
  get user(): string {
    return this.#user;
  }

  /** The rooms this client is in (or will be, once connected). */
  get rooms(): string[] {
    return [...this.#rooms.keys()];
  }

  /** Whether it is connected with every room joined. */
  get connected(): boolean {
    return this.#readyOn !== 0 && this.#readyOn === this.#conn;
  }

  /** Messages and whispers sent and not yet echoed (stored). */
  get unechoed(): number {
    return this.#outbox.size;
  }

  /** Why it stopped, once it has. */
  get stopped(): StopReason | undefined {
    return this.#stopped;
  }

  /** Resolves once no message waits for its echo. */
  drained(): Promise<void> {
    if (this.#outbox.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  /** The last seq of a room handed on, if any. */
  last(room: string): number | undefined {
    return this.#rooms.get(room)?.seq.last;
  }

  /** Connect; resolves once connected, or rejects when it stops first (failFast, a refused key). */
  start(): Promise<void> {
    const started = new Promise<void>((resolve, reject) => {
      this.#started = { resolve, reject };
    });
    this.#connect();
    return started;
  }

  /** Send a message to a room; resolves with its echo (stored, with its id and seq). */
  send(room: string, text: string): Promise<MessageOut> {
    if (!this.#rooms.has(room))
      return Promise.reject(new RequestError(ErrorCode.NotJoined, `not in ${room}`));
    const cid = this.#nextCid();
    return this.#enqueue({
      type: 'message',
      room,
      text: fitText(text),
      cid,
      ref: cid,
    }) as Promise<MessageOut>;
  }

  /** Whisper to one user; resolves with its echo. */
  whisper(to: string, text: string): Promise<WhisperOut> {
    const cid = this.#nextCid();
    return this.#enqueue({ type: 'whisper', to, text: fitText(text), cid, ref: cid }) as Promise<WhisperOut>;
  }

  /** A request answered by one frame (who, rooms, history, presence, typing, read); queued while disconnected. */
  request<T extends ServerFrame>(frame: Record<string, unknown>): Promise<T> {
    return this.#request(frame, false) as Promise<T>;
  }

  /** Join a room (kept across reconnects); resolves with `joined`. */
  join(room: string): Promise<JoinedOut> {
    if (this.#stopped) return Promise.reject(new Error('the client has stopped'));
    const known = this.#rooms.get(room);
    const state = known ?? this.#addRoom(room);
    const joined = new Promise<JoinedOut>((resolve, reject) => state.waiters.push({ resolve, reject }));
    if (known && known.joinedOn === this.#conn && this.connected) {
      // Already in it: the server answers a repeated join with joined again.
      void this.#request({ type: 'join', room }, true).catch(() => {});
    } else if (!known && this.connected) this.#sendJoin(room, state);
    return joined;
  }

  /** Leave a room; a client keeps at least one. */
  async leave(room: string): Promise<void> {
    if (!this.#rooms.has(room)) throw new RequestError(ErrorCode.NotJoined, `not in ${room}`);
    if (this.#rooms.size === 1)
      throw new RequestError('last_room', 'this is the only room; join another first');
    const state = this.#rooms.get(room);
    this.#rooms.delete(room);
    for (const waiter of state?.waiters ?? []) waiter.reject(new Error(`left ${room}`));
    if (!this.connected || state?.joinedOn !== this.#conn) return;
    // A leave cut off by a drop needs no answer: the next connection does not join the room again.
    await this.#request({ type: 'leave', room }, true).catch((error: unknown) => {
      if (error instanceof RequestError) throw error;
    });
  }

  /** Stop for good: close the connection, fail what waits. */
  close(): void {
    this.#stop({ kind: 'closed' });
  }

  #nextCid(): string {
    this.#counter += 1;
    return `${this.#cidPrefix}-${this.#counter.toString(36)}`;
  }

  #addRoom(room: string): RoomState {
    const state: RoomState = {
      joinedOn: 0,
      waiters: [],
      seq: new Sequence<MessageOut>({
        deliver: (frame) => this.#events.message?.(frame),
        fetchAfter: (after) => this.#fetchAfter<MessageOut>({ room }, after),
        lost: (from, to) => this.#events.lost?.({ room, from, to }),
      }),
    };
    this.#rooms.set(room, state);
    return state;
  }

  #whisperSequence(peer: string): Sequence<WhisperOut> {
    let seq = this.#whispers.get(peer);
    if (!seq) {
      seq = new Sequence<WhisperOut>({
        deliver: (frame) => this.#events.whisper?.(frame),
        fetchAfter: (after) => this.#fetchAfter<WhisperOut>({ with: peer }, after),
        lost: (from, to) => this.#events.lost?.({ with: peer, from, to }),
      });
      if (this.connected) seq.open();
      this.#whispers.set(peer, seq);
    }
    return seq;
  }

  async #fetchAfter<T extends MessageOut | WhisperOut>(
    where: { room: string } | { with: string },
    after: number,
  ): Promise<{ messages: T[]; more: boolean }> {
    const page = (await this.#request(
      { type: 'history', ...where, after, limit: HISTORY_MAX },
      true,
    )) as HistoryOut;
    return { messages: page.messages as T[], more: page.more };
  }

  #enqueue(frame: Outgoing['frame']): Promise<MessageOut | WhisperOut> {
    if (this.#stopped) return Promise.reject(new Error('the client has stopped'));
    return new Promise((resolve, reject) => {
      const out: Outgoing = { frame, resolve, reject, sentOn: 0 };
      this.#outbox.set(frame.cid, out);
      if (this.connected) this.#write(out);
    });
  }

  #request(frame: Record<string, unknown>, internal: boolean): Promise<ServerFrame> {
    if (this.#stopped) return Promise.reject(new Error('the client has stopped'));
    this.#counter += 1;
    const ref = `r${this.#counter.toString(36)}`;
    return new Promise((resolve, reject) => {
      const pending: Pending = { frame: { ...frame, ref }, resolve, reject, internal, sentOn: 0 };
      this.#pending.set(ref, pending);
      if (this.connected) this.#write(pending);
    });
  }

  #write(item: Pending | Outgoing): void {
    item.sentOn = this.#conn;
    this.#link?.write(JSON.stringify(item.frame));
  }

  #timer(ms: number, run: () => void): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      run();
    }, ms);
    this.#timers.add(timer);
    return timer;
  }

  #clearTimer(timer: NodeJS.Timeout | undefined): void {
    if (!timer) return;
    clearTimeout(timer);
    this.#timers.delete(timer);
  }

  #connect(): void {
    if (this.#stopped) return;
    const conn = ++this.#conn;
    const first = [...this.#rooms.keys()][0] as string;
    const since = this.#rooms.get(first)?.seq.last;
    this.#authenticated = false;
    this.#link = this.#options.open({
      line: (text) => conn === this.#conn && this.#receive(text),
      closed: (reason) => conn === this.#conn && this.#dropped(reason),
    });
    this.#link.write(
      JSON.stringify({
        type: 'hello',
        room: first,
        user: this.#options.user,
        protocol: PROTOCOL_VERSION,
        ...(since === undefined ? {} : { since }),
        ...(this.#options.key ? { key: this.#options.key.publicKey } : {}),
        ref: HELLO_REF,
      }),
    );
    const helloMs = this.#options.helloTimeoutMs ?? 15_000;
    this.#helloTimer = this.#timer(helloMs, () => this.#drop(`no welcome within ${helloMs / 1000} s`));
    this.#idle();
  }

  /** Restart the silence watch: after a quiet spell ask the server, and drop the link if it stays quiet. */
  #idle(): void {
    this.#clearTimer(this.#idleTimer);
    const quietMs = this.#options.idleProbeMs ?? 30_000;
    this.#idleTimer = this.#timer(quietMs, () => {
      if (this.connected) void this.#request({ type: 'pong' }, true).catch(() => {});
      this.#idleTimer = this.#timer(quietMs, () =>
        this.#drop(`no answer from the server for ${(2 * quietMs) / 1000} s`),
      );
    });
  }

  #drop(why: string): void {
    this.#why = why;
    this.#link?.close();
  }

  #receive(text: string): void {
    this.#idle();
    const incoming = decodeLine(text);
    if (!incoming) return;
    if (incoming.kind === 'challenge') {
      this.#events.frame?.(incoming.raw);
      const key = this.#options.key;
      if (!key) return;
      const conn = this.#conn;
      key.sign(incoming.frame.nonce).then(
        (signature) => conn === this.#conn && this.#link?.write(JSON.stringify({ type: 'auth', signature })),
        (error: unknown) => this.#stop({ kind: 'auth_failed', message: `could not sign: ${String(error)}` }),
      );
      return;
    }
    if (incoming.kind === 'error') {
      if (!this.#errorFrame(incoming.frame)) this.#events.frame?.(incoming.raw);
      return;
    }
    if (incoming.kind === 'other') {
      this.#events.frame?.(incoming.raw);
      return;
    }
    const frame = incoming.frame;
    switch (frame.type) {
      case 'welcome':
        this.#user = frame.user;
        this.#authenticated = incoming.raw.authenticated === true;
        this.#welcome = frame;
        this.#events.frame?.(incoming.raw);
        return;
      case 'joined': {
        const mine = this.#reply(frame);
        this.#joined(frame);
        if (!mine) this.#events.frame?.(incoming.raw);
        return;
      }
      case 'message':
        this.#echo(frame);
        this.#rooms.get(frame.room)?.seq.receive(frame);
        return;
      case 'whisper':
        this.#echo(frame);
        this.#whisperSequence(frame.from === this.#user ? frame.to : frame.from).receive(frame);
        return;
      case 'ping':
        this.#link?.write('{"type":"pong"}');
        this.#events.frame?.(incoming.raw);
        return;
      case 'presence':
        this.#events.presence?.(frame);
        this.#events.frame?.(incoming.raw);
        return;
      case 'notice':
        this.#events.notice?.(frame);
        this.#events.frame?.(incoming.raw);
        return;
      case 'error':
        if (!this.#errorFrame(frame)) this.#events.frame?.(incoming.raw);
        return;
      default:
        if (!this.#reply(frame)) this.#events.frame?.(incoming.raw);
    }
  }

  /** Settle the request a frame answers; true when it was one of the core's own. */
  #reply(frame: ServerFrame): boolean {
    const ref = 'ref' in frame ? frame.ref : undefined;
    const pending = ref === undefined ? undefined : this.#pending.get(ref);
    if (!pending || ref === undefined) return false;
    this.#pending.delete(ref);
    pending.resolve(frame);
    return pending.internal;
  }

  #echo(frame: MessageOut | WhisperOut): void {
    const out = frame.ref === undefined ? undefined : this.#outbox.get(frame.ref);
    if (!out || frame.ref === undefined) return;
    this.#outbox.delete(frame.ref);
    out.resolve(frame);
    this.#drainedCheck();
  }

  #drainedCheck(): void {
    if (this.#outbox.size > 0) return;
    for (const wake of this.#drainWaiters.splice(0)) wake();
  }

  #joined(frame: JoinedOut): void {
    const state = this.#rooms.get(frame.room);
    if (!state) return;
    state.joinedOn = this.#conn;
    state.seq.open(frame.seq);
    for (const waiter of state.waiters.splice(0)) waiter.resolve(frame);
    if (frame.room === [...this.#rooms.keys()][0] && this.#readyOn !== this.#conn) this.#ready();
  }

  /** Act on an error frame; true when it answered one of the core's own requests. */
  #errorFrame(frame: AnyErrorFrame): boolean {
    if (frame.code === ErrorCode.Revoked || frame.code === ErrorCode.AuthFailed) {
      this.#stop({ kind: frame.code, message: frame.message });
      return false;
    }
    if (frame.ref === HELLO_REF && this.#readyOn !== this.#conn) {
      this.#stop({ kind: 'refused', code: frame.code, message: frame.message });
      return false;
    }
    const out = frame.ref === undefined ? undefined : this.#outbox.get(frame.ref);
    if (out) {
      // Not stored: a stopping server's (sent again after reconnecting), or a failing disk's (tried
      // again shortly); any other refusal is final.
      if (frame.code === ErrorCode.StoreUnavailable) {
        const conn = this.#conn;
        this.#timer(1000, () => conn === this.#conn && this.#outbox.has(out.frame.cid) && this.#write(out));
      }
      if (RETRIED.has(frame.code)) return false;
      this.#outbox.delete(out.frame.cid);
      out.reject(new RequestError(frame.code, frame.message));
      this.#drainedCheck();
      return false;
    }
    const pending = frame.ref === undefined ? undefined : this.#pending.get(frame.ref);
    if (pending && frame.ref !== undefined) {
      this.#pending.delete(frame.ref);
      pending.reject(new RequestError(frame.code, frame.message));
      return pending.internal;
    }
    this.#events.error?.(frame);
    return false;
  }

  /** The hello's room is joined: join the others, send what waits, and say so. */
  #ready(): void {
    const resumed = this.#everReady;
    this.#readyOn = this.#conn;
    this.#everReady = true;
    this.#upSince = Date.now();
    this.#clearTimer(this.#helloTimer);
    const [, ...others] = this.#rooms.entries();
    for (const [room, state] of others) this.#sendJoin(room, state);
    for (const seq of this.#whispers.values()) seq.resync();
    for (const out of this.#outbox.values()) this.#write(out);
    // Requests made while connecting (a history fill of the hello's room included) go out now.
    for (const pending of this.#pending.values()) if (pending.sentOn !== this.#conn) this.#write(pending);
    if (this.#welcome)
      this.#events.ready?.({
        user: this.#user,
        resumed,
        welcome: this.#welcome,
        authenticated: this.#authenticated,
      });
    this.#started?.resolve();
    this.#started = undefined;
  }

  #sendJoin(room: string, state: RoomState): void {
    const since = state.seq.last;
    void this.#request({ type: 'join', room, ...(since === undefined ? {} : { since }) }, true).catch(
      (error: unknown) => {
        if (error instanceof RequestError && this.#rooms.get(room) === state) {
          this.#rooms.delete(room);
          for (const waiter of state.waiters.splice(0)) waiter.reject(error);
        }
      },
    );
  }

  #dropped(closedBecause: string): void {
    const reason = this.#why ?? closedBecause;
    this.#why = undefined;
    this.#link = undefined;
    this.#clearTimer(this.#helloTimer);
    this.#clearTimer(this.#idleTimer);
    const wasReady = this.#readyOn === this.#conn;
    this.#readyOn = 0;
    for (const state of this.#rooms.values()) state.seq.close();
    for (const seq of this.#whispers.values()) seq.close();
    for (const [ref, pending] of this.#pending) {
      if (!pending.internal) continue;
      this.#pending.delete(ref);
      pending.reject(new Error(`connection lost: ${reason}`));
    }
    if (this.#stopped) return;
    if (!this.#everReady && this.#options.failFast) {
      this.#stop({ kind: 'unreachable', message: reason });
      return;
    }
    if (wasReady) this.#backoff.ended(Date.now() - this.#upSince);
    const retryMs = this.#backoff.next();
    this.#events.disconnected?.({ reason, retryMs });
    this.#timer(retryMs, () => this.#connect());
  }

  #stop(reason: StopReason): void {
    if (this.#stopped) return;
    this.#stopped = reason;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#helloTimer = undefined;
    this.#idleTimer = undefined;
    this.#readyOn = 0;
    const link = this.#link;
    this.#link = undefined;
    this.#conn += 1;
    link?.close();
    const why = new Error(reason.kind === 'closed' ? 'the client has stopped' : stopMessage(reason));
    for (const pending of this.#pending.values()) pending.reject(why);
    this.#pending.clear();
    for (const out of this.#outbox.values()) out.reject(why);
    this.#outbox.clear();
    this.#drainedCheck();
    for (const state of this.#rooms.values())
      for (const waiter of state.waiters.splice(0)) waiter.reject(why);
    this.#started?.reject(why);
    this.#started = undefined;
    this.#events.stopped?.(reason);
  }
}

/** One line saying why a client stopped. */
export function stopMessage(reason: StopReason): string {
  switch (reason.kind) {
    case 'closed':
      return 'closed';
    case 'unreachable':
      return `could not connect: ${reason.message}`;
    case 'auth_failed':
      return `the server refused the key: ${reason.message}`;
    case 'revoked':
      return `access revoked: ${reason.message}`;
    case 'refused':
      return `the server refused the hello (${reason.code}): ${reason.message}`;
  }
}

/** Whether a notice says the connection is being slowed (shown calmly: nothing is lost). */
export const isRateLimited = (frame: NoticeOut): boolean => frame.code === NoticeCode.RateLimited;

/**
 * Text that fits one frame: the server cuts text at 20,000 characters anyway, but a line over 64 KiB
 * closes the connection, so text that would make one is cut (and marked) before it is sent.
 */
export function fitText(text: string): string {
  let fitted = capText(text);
  while (Buffer.byteLength(JSON.stringify(fitted)) > MAX_FRAME_BYTES - 1024) {
    const chars = [...fitted];
    fitted = `${chars.slice(0, Math.floor(chars.length * 0.9)).join('')}…`;
  }
  return fitted;
}
