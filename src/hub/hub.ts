// The Hub: rooms, members, presence, stamping and broadcast, whispers, typing and read markers. It
// knows peers, never sockets. A peer may be in several rooms; each (peer, room) is a member.

import { type Log, silentLog } from '../log.ts';
import { type Metrics, noMetrics } from '../metrics/metrics.ts';
import { CloseCode, ErrorCode } from '../protocol/codes.ts';
import {
  type AdminFrame,
  HISTORY_DEFAULT,
  type MessageOut,
  PROTOCOL_VERSION,
  type RoomEntry,
  type ServerFrame,
  type Status,
  type TypingState,
  type WhoEntry,
} from '../protocol/frames.ts';
import { SEARCH_DEFAULT, searchTerms } from '../protocol/search.ts';
import { Admin, type AdminOptions } from './admin.ts';
import { type ExportRequest, exportRoom } from './export.ts';
import { newId } from './ids.ts';
import { ReadMarkers } from './markers.ts';
import { historyFrame, MessageFrames, richMessage, whisperFrame } from './outgoing.ts';
import { Encoded, EncodedRun, type Outgoing, type Peer } from './peer.ts';
import { Restrictions } from './restrictions.ts';
import {
  type Committed,
  conversationKey,
  GroupCommit,
  type NewMessage,
  type StoredMessage,
  type Transcript,
} from './transcript.ts';

/** Hub settings; every bound has a default. */
export interface HubOptions {
  transcript: Transcript;
  log?: Log;
  /** Server name and version sent in welcome frames. */
  serverName?: string;
  /** Messages a browser gets on join (the room's most recent, oldest first). */
  backscroll?: number;
  /** Most messages one resume (`since`) replays. */
  resumeLimit?: number;
  /** A member whose unsent data passes this many bytes is disconnected. */
  maxBufferedBytes?: number;
  /** Frames held for a member while its join loads; past this it is disconnected. */
  maxPendingFrames?: number;
  /** Most messages committed in one transaction. */
  maxBatch?: number;
  /** Rooms one connection may be in at once. */
  maxRooms?: number;
  /** Rooms one room list answers at most. */
  roomList?: number;
  /** A connection's `typing` is relayed at most this often per room. */
  typingEveryMs?: number;
  /** An `active` typing state not renewed within this long lapses to `idle`. */
  typingLapseMs?: number;
  /** Read markers are written to the store this long after they move. */
  markerFlushMs?: number;
  /** The group commit's wait before each batch: one turn of I/O unless given (tests hand out turns). */
  yieldToIo?: () => Promise<void>;
  /** Least time between two commits at a modest rate, so a few messages share one (1 ms). */
  commitSpacingMs?: number;
  /** Bans and mutes in force (loaded from the store at start). */
  restrictions?: Restrictions;
  /** Who the admins are, and where their actions are stored. */
  admin?: AdminOptions;
  /** Where joins, commits and deliveries are counted. */
  metrics?: Metrics;
}

/** How a join goes: resume after `since`, answer `ref`, and (the connection's first room) welcome it. */
export interface JoinOptions {
  since?: number | undefined;
  ref?: string | undefined;
  /** Send the connection's welcome first, answering this hello's ref if it had one. */
  welcome?: { ref?: string | undefined } | undefined;
}

interface Member {
  readonly peer: Peer;
  readonly room: Room;
  /** Frames that arrived while the join was loading; undefined once live. */
  pending: Encoded[] | undefined;
}

interface Presence {
  connections: number;
  /** Of them, browser connections. */
  browsers: number;
  status: Status;
  /** Its `active` typing lapses at this timer. */
  typing: ReturnType<typeof setTimeout> | undefined;
}

interface Room {
  readonly name: string;
  readonly members: Map<Peer, Member>;
  /** Presence per user: a user with several connections is present once. */
  readonly users: Map<string, Presence>;
  /** The newest seq broadcast to the room (or stored before the room had members). */
  reported: number;
  /**
   * While the store is asked for `reported` (a room that had no members and nothing in flight),
   * its messages wait for this, so nothing of the room commits before the answer is in.
   */
  ready: Promise<void> | undefined;
  /** Messages submitted and not yet answered: a room with some is kept, so `reported` stays true. */
  inflight: number;
}

interface Connection {
  /** The rooms this connection is in. */
  readonly rooms: Map<string, Member>;
  /** When this connection's typing was last relayed, per room. */
  typedAt: Map<string, number> | undefined;
}

/** A message echo waiting for its commit: who sent it, with which ref. */
interface Echo {
  readonly peer: Peer;
  readonly ref: string;
}

const BROWSER = 'browser';

/** Routes messages, whispers and presence between the members of each room. */
export class Hub {
  readonly #rooms = new Map<string, Room>();
  readonly #peers = new Map<Peer, Connection>();
  readonly #byUser = new Map<string, Set<Peer>>();
  readonly #echoes = new Map<string, Echo>();
  /** Echoes as encoded for their senders: a join's catch-up must not drop one as a duplicate. */
  readonly #echoFrames = new WeakSet<Encoded>();
  /** Names remembered this run; the rest of those ever seen are in the store. */
  readonly #seen = new Set<string>();
  /** Names seen and not yet written. */
  readonly #unremembered = new Set<string>();
  #rememberTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #markerFlushMs: number;
  readonly #transcript: Transcript;
  readonly #commit: GroupCommit;
  readonly #markers: ReadMarkers;
  readonly #log: Log;
  readonly #serverName: string;
  readonly #backscroll: number;
  readonly #resumeLimit: number;
  readonly #maxBuffered: number;
  readonly #maxPending: number;
  readonly #maxRooms: number;
  readonly #roomList: number;
  readonly #typingEveryMs: number;
  readonly #typingLapseMs: number;
  readonly #restrictions: Restrictions;
  readonly #admin: Admin;
  readonly #metrics: Metrics;
  #closing = false;

  constructor(options: HubOptions) {
    this.#transcript = options.transcript;
    this.#log = options.log ?? silentLog;
    this.#serverName = options.serverName ?? 'runspec-room';
    this.#backscroll = options.backscroll ?? 50;
    this.#resumeLimit = options.resumeLimit ?? 1000;
    this.#maxBuffered = options.maxBufferedBytes ?? 1024 * 1024;
    this.#maxPending = options.maxPendingFrames ?? 10_000;
    this.#maxRooms = options.maxRooms ?? 100;
    this.#roomList = options.roomList ?? 500;
    this.#typingEveryMs = options.typingEveryMs ?? 2000;
    this.#typingLapseMs = options.typingLapseMs ?? 6000;
    this.#markerFlushMs = options.markerFlushMs ?? 1000;
    this.#markers = new ReadMarkers(options.transcript, this.#log, this.#markerFlushMs);
    this.#restrictions = options.restrictions ?? new Restrictions();
    this.#admin = new Admin(options.admin ?? {}, this.#restrictions, this.#log);
    const metrics = options.metrics ?? noMetrics;
    this.#metrics = metrics;
    // A batch is a quarter of the unsent bound, so a member is dropped only when it falls behind
    // by several batches, never because one batch arrived at once.
    this.#commit = new GroupCommit(options.transcript, (batch) => this.#committed(batch), {
      maxBatch: options.maxBatch,
      maxBatchBytes: Math.max(16 * 1024, Math.floor(this.#maxBuffered / 4)),
      onReportError: (error) =>
        this.#log.error('broadcast of a committed batch failed', { error: String(error) }),
      yieldToIo: options.yieldToIo,
      commitSpacingMs: options.commitSpacingMs ?? 1,
      onCommitted: (batch, stored, seconds) => metrics.committed(batch, stored, seconds),
    });
  }

  /** Rooms with at least one member, and connections. */
  get stats(): { rooms: number; connections: number } {
    let rooms = 0;
    for (const room of this.#rooms.values()) if (room.members.size > 0) rooms += 1;
    return { rooms, connections: this.#peers.size };
  }

  /** Connections currently in `room`. */
  roomSize(room: string): number {
    return this.#rooms.get(room)?.members.size ?? 0;
  }

  /** Whether the Hub still takes joins and messages. */
  get accepting(): boolean {
    return !this.#closing;
  }

  /** The rooms a connection is in. */
  roomsOf(peer: Peer): string[] {
    return [...(this.#peers.get(peer)?.rooms.keys() ?? [])];
  }

  /** A new connection, in no room yet. Its user's name is remembered, for whispers. */
  connect(peer: Peer): void {
    if (this.#peers.has(peer)) return;
    // typedAt only once the connection types: most never do, and an empty Map costs 200 bytes.
    this.#peers.set(peer, { rooms: new Map(), typedAt: undefined });
    let mine = this.#byUser.get(peer.user);
    if (!mine) {
      mine = new Set();
      this.#byUser.set(peer.user, mine);
    }
    mine.add(peer);
    if (!this.#seen.has(peer.user)) {
      this.#seen.add(peer.user);
      // Written behind, many names to a commit: one commit per new connection would cost an fsync each.
      this.#unremembered.add(peer.user);
      this.#rememberTimer ??= setTimeout(() => void this.#remember(), this.#markerFlushMs);
      this.#rememberTimer.unref?.();
    }
  }

  /** A connection has gone: it leaves every room, its user is away where it was the last connection. */
  disconnect(peer: Peer): void {
    const connection = this.#peers.get(peer);
    if (!connection) return;
    for (const member of [...connection.rooms.values()]) this.#leave(member);
    this.#peers.delete(peer);
    const mine = this.#byUser.get(peer.user);
    mine?.delete(peer);
    if (mine?.size === 0) {
      this.#byUser.delete(peer.user);
      this.#markers.forget(peer.user);
    }
  }

  /**
   * Add a connection to a room: announce it to the others, then send it (the first room of an
   * opted-in connection: a welcome first) who is present, its backscroll or resume if it wants one,
   * `joined` (opted-in), and whatever was broadcast meanwhile, with no gap and no duplicate.
   */
  async join(peer: Peer, name: string, options: JoinOptions = {}): Promise<void> {
    const connection = this.#peers.get(peer);
    if (!connection) return;
    if (this.#closing) {
      // A connection just arriving, or a seed console (which cannot be told), is let go at once;
      // shutdown may have closed the others already.
      if (options.welcome || !peer.optedIn)
        this.#drop(peer, CloseCode.ServiceRestart, 'server is shutting down');
      else this.#error(peer, ErrorCode.ShuttingDown, 'the server is shutting down', options.ref);
      return;
    }
    const already = connection.rooms.get(name);
    if (already) {
      // Joined before: say so again, without a second catch-up.
      let read: number;
      try {
        read = await this.#markers.get(peer.user, name);
      } catch (error) {
        this.#log.warn('read marker unavailable', { room: name, error: String(error) });
        this.#error(peer, ErrorCode.StoreUnavailable, 'the read marker could not be loaded', options.ref);
        return;
      }
      // Through the member, so while its first join is still loading this answer follows that one's.
      if (peer.optedIn)
        this.#deliver(
          already,
          new Encoded(this.#joinedFrame(name, already.room.reported, true, read, options.ref)),
        );
      return;
    }
    const ban = this.#restrictions.find('ban', name, peer.user);
    if (ban) {
      const until = ban.until === undefined ? '' : ` until ${new Date(ban.until * 1000).toISOString()}`;
      this.#log.info('join refused: banned', { room: name, user: peer.user });
      if (options.welcome) {
        // The room the connection was opened for: it has nowhere to be, and must not come straight back.
        this.#error(peer, ErrorCode.Banned, `you are banned from ${name}${until}`, options.welcome.ref);
        this.#drop(peer, CloseCode.Forbidden, 'banned from the room');
      } else this.#error(peer, ErrorCode.Banned, `you are banned from ${name}${until}`, options.ref);
      return;
    }
    if (connection.rooms.size >= this.#maxRooms) {
      this.#error(
        peer,
        ErrorCode.TooManyRooms,
        `a connection may be in at most ${this.#maxRooms} rooms`,
        options.ref,
      );
      return;
    }
    const room = this.#rooms.get(name) ?? this.#open(name);
    const member: Member = { peer, room, pending: [] };
    room.members.set(peer, member);
    connection.rooms.set(name, member);
    this.#arrive(room, peer);
    this.#log.debug('joined', { room: name, user: peer.user });
    if (room.ready) {
      try {
        await room.ready;
      } catch {
        if (room.members.get(peer) !== member) return;
        this.#leave(member);
        if (options.welcome) peer.close(CloseCode.InternalError, 'the room could not be opened');
        else this.#error(peer, ErrorCode.StoreUnavailable, 'the room could not be opened', options.ref);
        return;
      }
      if (room.members.get(peer) !== member) return;
    }
    // Everything reported from here on reaches the member as held frames.
    const addedAt = room.reported;

    const since = options.since;
    let history: StoredMessage[] = [];
    let complete = true;
    let historyFailed = false;
    let read = 0;
    let whispers = 0;
    try {
      const [loaded, marker, unreadWhispers] = await Promise.all([
        since !== undefined || peer.wantsBackscroll ? this.#history(name, since, addedAt) : undefined,
        peer.optedIn ? this.#markers.get(peer.user, name) : 0,
        options.welcome && peer.optedIn ? this.#unreadWhispers(peer.user) : 0,
      ]);
      if (loaded) ({ history, complete } = loaded);
      read = marker;
      whispers = unreadWhispers;
    } catch (error) {
      historyFailed = true;
      this.#log.warn('history unavailable', { room: name, error: String(error) });
    }
    if (room.members.get(peer) !== member) return; // left while history loaded

    // A message the read saw whose broadcast has not come yet will come with it: it is left out
    // here, or it would arrive twice; what was broadcast while loading is held, and follows.
    const horizon = room.reported;
    const held = member.pending ?? [];
    member.pending = undefined;
    const catchUp: Encoded[] = [];
    let lastSeq = addedAt;
    const shown: Encoded[] = [];
    const shownAt = new Map<number, number>();
    for (const m of history) {
      if (m.seq > horizon) break;
      shownAt.set(m.seq, shown.length);
      shown.push(new MessageFrames(m).for(peer.optedIn));
      if (m.seq > lastSeq) lastSeq = m.seq;
    }
    // The echo of a message this connection sent while joining answers its ref: it takes the place
    // of the catch-up's copy of that message, or follows joined when the catch-up has none.
    const live: Encoded[] = [];
    for (const frame of held) {
      if (frame.seq === undefined || frame.seq > lastSeq) live.push(frame);
      else if (this.#echoFrames.has(frame)) {
        const at = shownAt.get(frame.seq);
        if (at === undefined || this.#echoFrames.has(shown[at] as Encoded)) live.push(frame);
        else shown[at] = frame;
      }
    }
    if (peer.optedIn) {
      if (options.welcome) {
        catchUp.push(
          new Encoded(
            this.#welcomeFrame(
              peer,
              name,
              lastSeq,
              since === undefined ? undefined : complete,
              read,
              whispers,
              options.welcome.ref,
            ),
          ),
        );
      }
      if (historyFailed)
        catchUp.push(errorEncoded(ErrorCode.StoreUnavailable, 'recent messages could not be loaded'));
    }
    for (const [user, presence] of room.users) {
      if (user !== peer.user) catchUp.push(new Encoded(presenceFrame(name, user, presence.status)));
    }
    catchUp.push(...shown);
    if (peer.optedIn)
      catchUp.push(new Encoded(this.#joinedFrame(name, lastSeq, complete, read, options.ref)));
    catchUp.push(...live);
    // The catch-up is bounded (backscroll or one resume) and arrives at once, in one write, by
    // design, so it is not judged for slowness; later batches are.
    if (catchUp.length > 0)
      this.#deliver(member, catchUp.length === 1 ? (catchUp[0] as Encoded) : new EncodedRun(catchUp), false);
    this.#metrics.joined();
  }

  /**
   * What a joining peer sees of the past: the messages after its resume point, or the recent
   * backscroll. When more were missed than one resume replays, it gets the newest ones instead and
   * `complete: false`, so the gap is in the past and the live stream continues without one. A resume
   * from before what retention kept (the first message after `since` is not `since + 1`, or none is
   * left of the `reported` ones) is `complete: false` too.
   */
  async #history(
    room: string,
    since: number | undefined,
    reported: number,
  ): Promise<{ history: StoredMessage[]; complete: boolean }> {
    if (since === undefined)
      return { history: await this.#transcript.recent(room, this.#backscroll), complete: true };
    const missed = await this.#transcript.after(room, since, this.#resumeLimit + 1);
    if (missed.length > this.#resumeLimit)
      return { history: await this.#transcript.recent(room, this.#resumeLimit), complete: false };
    const first = missed[0]?.seq;
    const gap = first === undefined ? since < reported : first > since + 1;
    return { history: missed, complete: !gap };
  }

  /** Write the names seen since the last time. */
  async #remember(): Promise<void> {
    clearTimeout(this.#rememberTimer);
    this.#rememberTimer = undefined;
    if (this.#unremembered.size === 0) return;
    const names = [...this.#unremembered];
    this.#unremembered.clear();
    try {
      await this.#transcript.remember(names);
    } catch (error) {
      this.#log.warn('names not remembered; trying again', { error: String(error) });
      for (const name of names) this.#unremembered.add(name);
      this.#rememberTimer ??= setTimeout(() => void this.#remember(), this.#markerFlushMs);
    }
  }

  /** Whispers to `user` it has not read: markers moved but not yet written are written first. */
  async #unreadWhispers(user: string): Promise<number> {
    await this.#markers.flush();
    return this.#transcript.unreadWhispers(user);
  }

  /** Take a connection out of a room; it is told `left` (opted-in) and the others see it go. */
  leave(peer: Peer, room: string, ref?: string): void {
    const member = this.#peers.get(peer)?.rooms.get(room);
    if (!member) {
      this.#error(peer, ErrorCode.NotJoined, `not in room ${JSON.stringify(room)}`, ref);
      return;
    }
    this.#leave(member);
    this.#reply(peer, { type: 'left', room, ...(ref === undefined ? {} : { ref }) });
  }

  #leave(member: Member): void {
    const { peer, room } = member;
    if (room.members.get(peer) !== member) return;
    room.members.delete(peer);
    this.#peers.get(peer)?.rooms.delete(room.name);
    this.#peers.get(peer)?.typedAt?.delete(room.name);
    const presence = room.users.get(peer.user);
    if (presence) {
      presence.connections -= 1;
      if (peer.via === BROWSER) presence.browsers -= 1;
      if (presence.connections === 0) {
        clearTimeout(presence.typing);
        room.users.delete(peer.user);
        if (!this.#closing) this.#broadcast(room, presenceFrame(room.name, peer.user, 'away'));
      }
    }
    this.#forgetIfIdle(room);
    this.#log.debug('left', { room: room.name, user: peer.user });
  }

  /**
   * A room object for a room that had none: its newest seq comes from the store. No member of it can
   * have sent anything that is not yet reported (it had no members), and what its new members send
   * waits for the answer, so the answer is exact.
   */
  #open(name: string): Room {
    const room: Room = {
      name,
      members: new Map(),
      users: new Map(),
      reported: 0,
      inflight: 0,
      ready: undefined,
    };
    room.ready = this.#transcript.lastSeq(name).then(
      (latest) => {
        room.reported = Math.max(room.reported, latest);
        room.ready = undefined;
      },
      (error: unknown) => {
        this.#log.warn('room unavailable', { room: name, error: String(error) });
        if (this.#rooms.get(name) === room) this.#rooms.delete(name);
        throw error;
      },
    );
    // Whoever waits for it hears of a failure; nobody else needs to.
    room.ready.catch(() => {});
    this.#rooms.set(name, room);
    return room;
  }

  /** A room with no members and nothing in flight is forgotten (its state is in the store). */
  #forgetIfIdle(room: Room): void {
    if (room.members.size === 0 && room.inflight === 0 && this.#rooms.get(room.name) === room)
      this.#rooms.delete(room.name);
  }

  /** A user arrives in a room (or gains a connection there); the others hear of it once. */
  #arrive(room: Room, peer: Peer): void {
    const presence = room.users.get(peer.user);
    const browser = peer.via === BROWSER ? 1 : 0;
    if (!presence) {
      room.users.set(peer.user, {
        connections: 1,
        browsers: browser,
        status: 'available',
        typing: undefined,
      });
      this.#broadcast(room, presenceFrame(room.name, peer.user, 'available'), peer);
      return;
    }
    presence.connections += 1;
    presence.browsers += browser;
    if (presence.status !== 'available') {
      presence.status = 'available';
      this.#broadcast(room, presenceFrame(room.name, peer.user, 'available'), peer);
    }
  }

  /** Stamp a message, commit it, then broadcast it to the whole room, sender included. */
  async message(
    peer: Peer,
    room: string,
    text: string,
    options: { cid?: string | undefined; ref?: string | undefined } = {},
  ): Promise<void> {
    const member = this.#peers.get(peer)?.rooms.get(room);
    if (!member) {
      this.#error(peer, ErrorCode.NotJoined, `not in room ${JSON.stringify(room)}`, options.ref);
      return;
    }
    if (this.#restrictions.find('mute', room, peer.user)) {
      this.#log.info('message refused: muted', { room, user: peer.user });
      this.#error(peer, ErrorCode.Muted, `you are muted in ${room}; the message was not stored`, options.ref);
      return;
    }
    const message: NewMessage = this.#stamp(peer, room, text, options.cid);
    await this.#submit(peer, message, options.ref, member.room);
  }

  /** A whisper: stored in the pair's own conversation, shown to both people's opted-in connections only. */
  async whisper(
    peer: Peer,
    to: string,
    text: string,
    options: { cid?: string | undefined; ref?: string | undefined } = {},
  ): Promise<void> {
    if (!this.#byUser.has(to) && !this.#seen.has(to)) {
      let known: boolean;
      try {
        known = await this.#transcript.knows(to);
      } catch (error) {
        this.#log.warn('whisper refused: names unavailable', { error: String(error) });
        this.#error(peer, ErrorCode.StoreUnavailable, 'the whisper could not be stored', options.ref);
        return;
      }
      if (!known) {
        this.#error(
          peer,
          ErrorCode.UnknownUser,
          `nobody called ${JSON.stringify(to)} has been here`,
          options.ref,
        );
        return;
      }
      this.#seen.add(to);
    }
    const message = this.#stamp(peer, conversationKey(peer.user, to), text, options.cid);
    message.recipient = to;
    await this.#submit(peer, message, options.ref, undefined);
  }

  #stamp(peer: Peer, room: string, text: string, cid: string | undefined): NewMessage {
    const now = Date.now();
    const message: NewMessage = {
      id: newId(now),
      room,
      sender: peer.user,
      text,
      ts: now / 1000,
      via: peer.via,
    };
    if (cid !== undefined) message.cid = cid;
    return message;
  }

  async #submit(
    peer: Peer,
    message: NewMessage,
    ref: string | undefined,
    room: Room | undefined,
  ): Promise<void> {
    if (this.#closing) {
      this.#error(
        peer,
        ErrorCode.ShuttingDown,
        'the server is shutting down; the message was not stored',
        ref,
      );
      return;
    }
    if (ref !== undefined && peer.optedIn) this.#echoes.set(message.id, { peer, ref });
    if (room) room.inflight += 1;
    let committed: Committed;
    try {
      if (room?.ready) await room.ready;
      committed = await this.#commit.submit(message);
    } catch (error) {
      this.#echoes.delete(message.id);
      this.#log.error('message not stored', { room: message.room, sender: peer.user, error: String(error) });
      this.#error(
        peer,
        ErrorCode.StoreUnavailable,
        'the message could not be stored and was not delivered',
        ref,
      );
      return;
    } finally {
      if (room) {
        room.inflight -= 1;
        this.#forgetIfIdle(room);
      }
    }
    if ('duplicate' in committed) {
      // Sent before (the same cid): the sender gets the original's echo, nobody else anything.
      this.#echoes.delete(message.id);
      if (!peer.optedIn) return;
      const original = committed.duplicate;
      const frame =
        original.recipient !== undefined ? whisperFrame(original, ref) : richMessage(original, ref);
      const member = room ? this.#peers.get(peer)?.rooms.get(room.name) : undefined;
      if (member) this.#deliver(member, this.#echo(frame));
      else this.#reply(peer, frame);
    }
  }

  /** Record a presence change for one room (or each of the connection's rooms) and relay it. */
  presence(peer: Peer, rooms: readonly string[] | undefined, status: Status, ref?: string): void {
    const connection = this.#peers.get(peer);
    if (!connection) return;
    for (const name of rooms ?? connection.rooms.keys()) {
      const member = connection.rooms.get(name);
      const presence = member?.room.users.get(peer.user);
      if (!member || !presence) {
        this.#error(peer, ErrorCode.NotJoined, `not in room ${JSON.stringify(name)}`, ref);
        return;
      }
      presence.status = status;
      this.#broadcast(member.room, presenceFrame(name, peer.user, status), peer);
    }
    if (ref !== undefined) this.#reply(peer, { type: 'ack', ref });
  }

  /**
   * Relay that someone is typing to the room's other opted-in members, at most once per interval per
   * connection; an `active` not renewed lapses to `idle` by itself.
   */
  typing(peer: Peer, room: string, state: TypingState, ref?: string): void {
    const connection = this.#peers.get(peer);
    const member = connection?.rooms.get(room);
    const presence = member?.room.users.get(peer.user);
    if (!connection || !member || !presence) {
      this.#error(peer, ErrorCode.NotJoined, `not in room ${JSON.stringify(room)}`, ref);
      return;
    }
    const now = Date.now();
    // To the others: the typist's own other connections do not need to hear it is typing.
    const relay = (to: TypingState): void =>
      this.#broadcast(member.room, { type: 'typing', room, user: peer.user, state: to }, peer, true, true);
    if (state === 'active') {
      const last = connection.typedAt?.get(room) ?? Number.NEGATIVE_INFINITY;
      if (now - last >= this.#typingEveryMs) {
        connection.typedAt ??= new Map();
        connection.typedAt.set(room, now);
        relay('active');
      }
      clearTimeout(presence.typing);
      presence.typing = setTimeout(() => {
        presence.typing = undefined;
        if (member.room.users.get(peer.user) === presence) relay('idle');
      }, this.#typingLapseMs);
      presence.typing.unref?.();
    } else if (presence.typing !== undefined) {
      clearTimeout(presence.typing);
      presence.typing = undefined;
      connection.typedAt?.delete(room);
      relay('idle');
    }
    if (ref !== undefined) this.#reply(peer, { type: 'ack', ref });
  }

  /**
   * Move the user's read marker of a room (or of its whispers `with` someone) forward; the user's
   * other connections are told, so another device clears its badge. The sender's answer carries the
   * marker where it now is.
   */
  async read(
    peer: Peer,
    target: { room: string } | { with: string },
    seq: number,
    ref?: string,
  ): Promise<void> {
    const key = 'room' in target ? target.room : conversationKey(peer.user, target.with);
    const member = 'room' in target ? this.#peers.get(peer)?.rooms.get(target.room) : undefined;
    if ('room' in target && !member) {
      this.#error(peer, ErrorCode.NotJoined, `not in room ${JSON.stringify(target.room)}`, ref);
      return;
    }
    // Nobody has read past the room's newest message: a marker there would hide the next ones.
    const upTo = member ? Math.min(seq, member.room.reported) : seq;
    let now: number;
    try {
      now = await this.#markers.advance(peer.user, key, upTo);
    } catch (error) {
      this.#log.warn('read marker unavailable', { error: String(error) });
      this.#error(peer, ErrorCode.StoreUnavailable, 'the read marker could not be loaded', ref);
      return;
    }
    const frame: ServerFrame = { type: 'read', ...target, seq: now };
    for (const other of this.#byUser.get(peer.user) ?? []) {
      if (other !== peer && other.optedIn) this.#reply(other, frame);
    }
    this.#reply(peer, ref === undefined ? frame : { ...frame, ref });
  }

  /** Who is present in a room (any room, joined or not). */
  who(peer: Peer, room: string, ref?: string): void {
    const users: WhoEntry[] = [];
    for (const [user, presence] of this.#rooms.get(room)?.users ?? []) {
      users.push({
        user,
        status: presence.status,
        kind: presence.browsers > 0 ? 'human' : 'console',
        connections: presence.connections,
      });
    }
    users.sort((a, b) => a.user.localeCompare(b.user));
    this.#reply(peer, { type: 'who', room, users, ...(ref === undefined ? {} : { ref }) });
  }

  /** The rooms with members or stored messages, most recently active first. */
  async rooms(peer: Peer, ref?: string): Promise<void> {
    let stored: Awaited<ReturnType<Transcript['rooms']>>;
    try {
      stored = await this.#transcript.rooms(this.#roomList + 1);
    } catch (error) {
      this.#log.warn('room list unavailable', { error: String(error) });
      this.#error(peer, ErrorCode.StoreUnavailable, 'the room list could not be loaded', ref);
      return;
    }
    const entries = new Map<string, RoomEntry>();
    for (const head of stored) {
      entries.set(head.key, {
        room: head.key,
        members: this.#rooms.get(head.key)?.users.size ?? 0,
        seq: head.seq,
        ts: head.ts,
      });
    }
    const live = [...this.#rooms.values()].filter((r) => r.users.size > 0 && !entries.has(r.name));
    const list = [
      ...live.map((r) => ({ room: r.name, members: r.users.size, seq: r.reported })),
      ...entries.values(),
    ];
    this.#reply(peer, {
      type: 'rooms',
      rooms: list.slice(0, this.#roomList),
      more: list.length > this.#roomList,
      ...(ref === undefined ? {} : { ref }),
    });
  }

  /**
   * A page of a room's transcript (or of the whispers `with` someone): `before` a seq (newest first
   * page), `after` one, or the newest; oldest first, with `more` when the transcript goes on.
   */
  async history(
    peer: Peer,
    target: { room: string } | { with: string },
    page: { before?: number | undefined; after?: number | undefined; limit?: number | undefined },
    ref?: string,
  ): Promise<void> {
    if ('room' in target && !this.#peers.get(peer)?.rooms.has(target.room)) {
      this.#error(peer, ErrorCode.NotJoined, `not in room ${JSON.stringify(target.room)}`, ref);
      return;
    }
    const key = 'room' in target ? target.room : conversationKey(peer.user, target.with);
    let found: { messages: StoredMessage[]; more: boolean };
    try {
      found = await this.page(key, page);
    } catch (error) {
      this.#log.warn('history unavailable', { error: String(error) });
      this.#error(peer, ErrorCode.StoreUnavailable, 'the history could not be loaded', ref);
      return;
    }
    this.#reply(peer, {
      type: 'history',
      ...target,
      messages: found.messages.map(historyFrame),
      more: found.more,
      ...(ref === undefined ? {} : { ref }),
    });
  }

  /** A page of a conversation, as `history` answers it (also for the browser's HTTP history). */
  async page(
    key: string,
    page: { before?: number | undefined; after?: number | undefined; limit?: number | undefined },
  ): Promise<{ messages: StoredMessage[]; more: boolean }> {
    const limit = page.limit ?? HISTORY_DEFAULT;
    // One more than asked tells whether the transcript goes on past the page.
    let messages: StoredMessage[];
    let more: boolean;
    if (page.after !== undefined) {
      messages = await this.#transcript.after(key, page.after, limit + 1);
      more = messages.length > limit;
      messages = messages.slice(0, limit);
    } else {
      messages =
        page.before !== undefined
          ? await this.#transcript.before(key, page.before, limit + 1)
          : await this.#transcript.recent(key, limit + 1);
      more = messages.length > limit;
      messages = messages.slice(-limit);
    }
    // A room's page stops where broadcast has got to: what is newer comes live, not twice.
    const room = this.#rooms.get(key);
    if (room) messages = messages.filter((m) => m.seq <= room.reported);
    return { messages, more };
  }

  /**
   * The messages of a room (joined or not, unless banned from it) that match a search, newest first,
   * with `more` when older ones match too. Whispers are never searched.
   */
  async search(
    peer: Peer,
    room: string,
    q: string,
    page: { before?: number | undefined; limit?: number | undefined },
    ref?: string,
  ): Promise<void> {
    if (this.#restrictions.find('ban', room, peer.user)) {
      this.#error(peer, ErrorCode.Banned, `you are banned from ${room}`, ref);
      return;
    }
    let found: { messages: StoredMessage[]; more: boolean };
    try {
      found = await this.find(room, q, page);
    } catch (error) {
      this.#log.warn('search unavailable', { error: String(error) });
      this.#error(peer, ErrorCode.StoreUnavailable, 'the search could not be done', ref);
      return;
    }
    this.#reply(peer, {
      type: 'search',
      room,
      q,
      messages: found.messages.map((m) => richMessage(m) as MessageOut),
      more: found.more,
      ...(ref === undefined ? {} : { ref }),
    });
  }

  /** A room's messages matching `q` (checked already: searchProblem), as `search` answers them (also over HTTP). */
  async find(
    room: string,
    q: string,
    page: { before?: number | undefined; limit?: number | undefined },
  ): Promise<{ messages: StoredMessage[]; more: boolean }> {
    const limit = page.limit ?? SEARCH_DEFAULT;
    const found = await this.#transcript.search(room, searchTerms(q), page.before, limit + 1);
    this.#metrics.searched();
    // What is newer than the room's broadcast is left for the live stream, as in a history page.
    const reported = this.#rooms.get(room)?.reported;
    const messages = reported === undefined ? found : found.filter((m) => m.seq <= reported);
    return { messages: messages.slice(0, limit), more: found.length > limit };
  }

  /** A room's transcript after `since`, in seq order, as text chunks in the format asked for. */
  export(request: ExportRequest): AsyncGenerator<string> {
    return exportRoom(this.#transcript, request);
  }

  /** Whether a connection may send admin frames. */
  isAdmin(peer: Peer): boolean {
    return this.#admin.isAdmin(peer);
  }

  /** Carry out an admin frame (refused with `forbidden` for anyone but an admin). */
  admin(peer: Peer, frame: AdminFrame): Promise<void> {
    return this.#admin.handle(this, peer, frame);
  }

  /**
   * Take every connection of `user` out of `room` (an admin's kick or ban): an opted-in one is told
   * with `frame` and stays in its other rooms; a seed console, which knows one room and cannot be
   * told, is closed. Returns how many connections there were.
   */
  expel(room: string, user: string, frame: ServerFrame & { type: 'kicked' }): number {
    const found = this.#rooms.get(room);
    if (!found) return 0;
    const theirs = [...found.members.values()].filter((m) => m.peer.user === user);
    for (const member of theirs) {
      if (!member.peer.optedIn) {
        this.#drop(member.peer, CloseCode.Forbidden, frame.banned ? 'banned from the room' : 'kicked');
        continue;
      }
      this.#leave(member);
      this.#reply(member.peer, frame);
    }
    return theirs.length;
  }

  /** Tell a room's opted-in members that a message is deleted. */
  announceDeleted(room: string, id: string, seq: number): void {
    const found = this.#rooms.get(room);
    if (found) this.#broadcast(found, { type: 'deleted', room, id, seq }, undefined, true);
  }

  /** Tell an opted-in peer that a frame was refused (plain consoles get nothing). */
  refuse(peer: Peer, code: ErrorCode, message: string, ref?: string): void {
    this.#error(peer, code, message, ref);
  }

  /** Hand an opted-in peer a frame about its own connection, within the same bounds as any other. */
  notify(peer: Peer, frame: Encoded): void {
    if (peer.optedIn) this.#send(peer, frame, true);
  }

  /** An answer to an opted-in peer's request. */
  reply(peer: Peer, frame: ServerFrame): void {
    this.#reply(peer, frame);
  }

  /** Remove a connection and close it with `code` (a door's own verdict, such as a flood). */
  drop(peer: Peer, code: number, reason: string): void {
    this.#drop(peer, code, reason);
  }

  /** Stop taking messages, finish committing and broadcasting what was taken, then close every peer. */
  async shutdown(code: number = CloseCode.ServiceRestart, reason = 'server restart'): Promise<void> {
    this.#closing = true;
    await this.#commit.flushed();
    await this.#markers.flush();
    await this.#remember();
    for (const peer of [...this.#peers.keys()]) peer.close(code, reason);
  }

  #committed(batch: StoredMessage[]): void {
    // Each room's share of the batch, in commit order, encoded at most once per kind of reader.
    const byRoom = new Map<Room, MessageFrames[]>();
    for (const message of batch) {
      if (message.recipient !== undefined) {
        this.#whispered(message);
        continue;
      }
      const room = this.#rooms.get(message.room);
      if (!room) continue;
      if (message.seq > room.reported) room.reported = message.seq;
      const frames = new MessageFrames(message);
      const share = byRoom.get(room);
      if (share) share.push(frames);
      else byRoom.set(room, [frames]);
    }
    let delivered = 0;
    for (const [room, share] of byRoom) {
      // A member's share leaves in one write, the same bytes for every member of its kind.
      const runs = { plain: undefined as Outgoing | undefined, rich: undefined as Outgoing | undefined };
      const run = (optedIn: boolean): Outgoing => {
        const kind = optedIn ? 'rich' : 'plain';
        runs[kind] ??=
          share.length === 1
            ? (share[0] as MessageFrames).for(optedIn)
            : new EncodedRun(share.map((f) => f.for(optedIn)));
        return runs[kind];
      };
      for (const member of [...room.members.values()]) {
        // A drop announces the leaver to the room, which can drop another member in turn.
        if (room.members.get(member.peer) !== member) continue;
        // Slowness is judged before the share is handed over: on what the member still holds from
        // earlier batches, not on what is arriving now. A joining member holds the frames one by one.
        this.#deliver(member, this.#echoesIn(share, member.peer) ?? run(member.peer.optedIn));
        delivered += share.length;
      }
    }
    if (delivered > 0) this.#metrics.delivered(delivered);
    for (const message of batch) this.#echoes.delete(message.id);
  }

  /** The share as its sender sees it when some of it answers a ref; undefined when none does. */
  #echoesIn(share: MessageFrames[], peer: Peer): Outgoing | undefined {
    if (!peer.optedIn || this.#echoes.size === 0) return undefined;
    let mine = false;
    const parts = share.map((f) => {
      const echo = this.#echoes.get(f.message.id);
      if (echo?.peer !== peer) return f.rich;
      mine = true;
      return this.#echo(richMessage(f.message, echo.ref));
    });
    if (!mine) return undefined;
    return parts.length === 1 ? (parts[0] as Encoded) : new EncodedRun(parts);
  }

  /** A stored whisper goes to every opted-in connection of both people, and nowhere else. */
  #whispered(message: StoredMessage): void {
    const frame = new Encoded(whisperFrame(message));
    const echo = this.#echoes.get(message.id);
    const to = new Set([
      ...(this.#byUser.get(message.sender) ?? []),
      ...(this.#byUser.get(message.recipient ?? '') ?? []),
    ]);
    let delivered = 0;
    for (const peer of to) {
      if (!peer.optedIn) continue;
      this.#send(peer, echo?.peer === peer ? new Encoded(whisperFrame(message, echo.ref)) : frame, true);
      delivered += 1;
    }
    this.#metrics.delivered(delivered);
  }

  /** A message frame as its sender sees it, with the ref it answers. */
  #echo(frame: ServerFrame): Encoded {
    const encoded = new Encoded(frame);
    this.#echoFrames.add(encoded);
    return encoded;
  }

  #broadcast(room: Room, frame: ServerFrame, except?: Peer, optedInOnly = false, exceptUser = false): void {
    const encoded = new Encoded(frame);
    for (const member of [...room.members.values()]) {
      if (member.peer === except || (optedInOnly && !member.peer.optedIn)) continue;
      if (exceptUser && except && member.peer.user === except.user) continue;
      if (room.members.get(member.peer) === member) this.#deliver(member, encoded);
    }
  }

  #reply(peer: Peer, frame: ServerFrame): void {
    if (peer.optedIn) this.#send(peer, new Encoded(frame), true);
  }

  #error(peer: Peer, code: ErrorCode, message: string, ref?: string): void {
    if (peer.optedIn) this.#send(peer, errorEncoded(code, message, ref), true);
  }

  /**
   * Hand frames to one member; a slow or broken member is dropped, never waited for. A joining
   * member holds them (one by one: the join drops those its history already has) until it is live.
   */
  #deliver(member: Member, frames: Outgoing, checkSlow = true): void {
    if (member.pending) {
      for (const frame of frames.parts) {
        if (member.pending.length < this.#maxPending) member.pending.push(frame);
        else {
          this.#drop(member.peer, CloseCode.Slow, 'too many frames while joining');
          return;
        }
      }
      return;
    }
    this.#send(member.peer, frames, checkSlow);
  }

  /** Write to a connection, unless it holds too much unsent already (then it is dropped). */
  #send(peer: Peer, frames: Outgoing, checkSlow: boolean): void {
    if (checkSlow && peer.bufferedAmount() > this.#maxBuffered) {
      this.#drop(peer, CloseCode.Slow, 'slow consumer');
      return;
    }
    try {
      peer.send(frames);
    } catch (error) {
      this.#log.warn('send failed', { user: peer.user, error: String(error) });
      this.#drop(peer, CloseCode.InternalError, 'send failed');
    }
  }

  #drop(peer: Peer, code: number, reason: string): void {
    if (!this.#peers.has(peer)) return;
    this.#log.warn('dropping connection', { user: peer.user, rooms: this.roomsOf(peer).length, reason });
    this.disconnect(peer);
    try {
      peer.close(code, reason);
    } catch {
      // The transport is already gone; leaving the rooms was all that mattered.
    }
  }

  #welcomeFrame(
    peer: Peer,
    room: string,
    seq: number,
    complete: boolean | undefined,
    read: number,
    whispers: number,
    ref: string | undefined,
  ): ServerFrame {
    return {
      type: 'welcome',
      protocol: PROTOCOL_VERSION,
      server: this.#serverName,
      room,
      user: peer.user,
      seq,
      ...(complete === undefined ? {} : { complete }),
      read,
      unread: Math.max(0, seq - read),
      whispers,
      authenticated: peer.authenticated === true,
      admin: this.#admin.isAdmin(peer),
      ...(ref === undefined ? {} : { ref }),
    };
  }

  #joinedFrame(
    room: string,
    seq: number,
    complete: boolean,
    read: number,
    ref: string | undefined,
  ): ServerFrame {
    return {
      type: 'joined',
      room,
      seq,
      complete,
      read,
      unread: Math.max(0, seq - read),
      ...(ref === undefined ? {} : { ref }),
    };
  }
}

function errorEncoded(code: ErrorCode, message: string, ref?: string): Encoded {
  return new Encoded({ type: 'error', code, message, ...(ref === undefined ? {} : { ref }) });
}

function presenceFrame(room: string, user: string, status: Status): ServerFrame {
  return { type: 'presence', room, user, status };
}
