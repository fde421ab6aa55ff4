// The Hub: rooms, members, presence, stamping and broadcast, whispers, typing and read markers. It
// knows peers, never sockets. A peer may be in several rooms; each (peer, room) is a member.

import { dropOldest } from '../bounded.ts';
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
import { withTimeout } from '../timeout.ts';
import { Admin, type AdminOptions, bannedFrame, type RestrictionChange } from './admin.ts';
import {
  applyPresence,
  type ClusterBus,
  type ClusterEvent,
  type ClusterListener,
  type KickedFrame,
  mergePresence,
  type Present,
  type RemotePresence,
  RoomOrder,
} from './cluster.ts';
import { type ExportRequest, exportRoom } from './export.ts';
import { FewMap, Grouped } from './grouped.ts';
import { newId } from './ids.ts';
import { ReadMarkers } from './markers.ts';
import { historyFrame, MessageFrames, richMessage, whisperFrame } from './outgoing.ts';
import { Encoded, EncodedRun, type Outgoing, type Peer } from './peer.ts';
import { ReadTurns, requesterOf } from './reads.ts';
import { bannedMessage, type Restriction, Restrictions } from './restrictions.ts';
import { Slots } from './slots.ts';
import {
  type Arrival,
  type Committed,
  conversationKey,
  GroupCommit,
  type NewMessage,
  type StoredMessage,
  type Transcript,
  yieldToIo,
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
  /** Conversations whose read markers are kept per connected user (MARKS_PER_USER). */
  marksPerUser?: number;
  /** Names known to have been here, kept to spare the store a question (SEEN_NAMES). */
  seenNames?: number;
  /** The group commit's wait before each batch: one turn of I/O unless given (tests hand out turns). */
  yieldToIo?: () => Promise<void>;
  /**
   * Least time between two commits at a modest rate, so a few messages share one (the operator's
   * CONSOLE_ROOM_COMMIT_DELAY). Off unless given. Measured at 2,000 msg/s over 500 rooms: 2 ms took
   * the server from 200 to 145 µs of CPU per message and p99 from 3.6 to 5.6 ms; 1 ms saved nothing,
   * since a commit and its round trip already take about that long.
   */
  commitSpacingMs?: number;
  /** Bans and mutes in force (loaded from the store at start). */
  restrictions?: Restrictions;
  /** Who the admins are, and where their actions are stored. */
  admin?: AdminOptions;
  /** Where joins, commits and deliveries are counted. */
  metrics?: Metrics;
  /** The other nodes of a cluster: messages, presence and admin actions are shared through it. */
  cluster?: ClusterBus | undefined;
  /** Cluster: how long a message ahead of a gap waits for the gap before it is filled from the store. */
  gapWaitMs?: number;
  /**
   * About how many bytes of the newest messages are kept for the open rooms, all together, so that a
   * join's backscroll needs no read of the store. None are kept in a cluster: a delete on another
   * node reaches this one only as an event, which the bus may lose.
   */
  recentBytes?: number;
  /** CONSOLE_ROOM_RETENTION in seconds: a message older than that is not shown from memory either. */
  retentionSeconds?: number | undefined;
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
  /**
   * Cluster: the member resumed after this seq, seen on another node, before this node had delivered
   * that far; messages up to it are not sent again. Undefined once the room is past it.
   */
  floor?: number | undefined;
}

interface Presence {
  connections: number;
  /** Of them, browser connections. */
  browsers: number;
  status: Status;
  /** When the status was set (ms): across nodes the newest wins. */
  at: number;
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
  /** Cluster: the room's presence on the other nodes; undefined until it has been read. */
  remote?: RemotePresence | undefined;
  /** Cluster: presence events that came while the room's presence was being read. */
  early?: Array<[string, ClusterEvent & { t: 'presence' }]> | undefined;
  /** Cluster: messages that came ahead of a gap, and the wait for it. */
  order?: RoomOrder | undefined;
  gap?: ReturnType<typeof setTimeout> | undefined;
  /**
   * The room's newest messages as the store has them, oldest first, at most a backscroll of them,
   * through seq `end`. While `end` is `reported` they are a join's backscroll without a read of the
   * store. Undefined when not known here.
   */
  recent?: Recent | undefined;
}

interface Recent {
  /**
   * Each kept message as an opted-in reader gets it (its broadcast made this JSON already): one string
   * each, which the garbage collector keeps for next to nothing, not the message and its encodings.
   */
  readonly json: string[];
  /** When each was sent (retention). */
  readonly ts: number[];
  /** The seq of the newest; the others precede it without a gap. */
  end: number;
  /** What the messages take (about), counted against the Hub's recentBytes. */
  bytes: number;
  /** Messages broadcast since a join last took them. */
  unused: number;
}

/** What a room with no messages yet keeps: its newest are known from the start. */
const noneYet = (): Recent => ({ json: [], ts: [], end: 0, bytes: 0, unused: 0 });

/**
 * A room forgets its kept messages once this many backscrolls' worth were broadcast without a join
 * taking them: a busy room nobody joins would otherwise move each of its messages into the old
 * generation of the heap for nothing.
 */
const UNUSED_BACKSCROLLS = 2;

/** What one kept message takes: its JSON (two bytes a character at most) and its place in the lists. */
const keptSize = (json: string): number => 2 * json.length + 32;

/** What a page costs its reader's budget (ReadTurns): the rows read for it, one more than it holds if it goes on; a read of nothing costs one. */
const pageCost = (page: { messages: readonly unknown[]; more: boolean }): number =>
  Math.max(1, page.messages.length + (page.more ? 1 : 0));

/** A join's backscroll or resume, as its peer gets it; `read` is what the store answered, if it was asked. */
interface Loaded {
  history: readonly Encoded[];
  complete: boolean;
  read?: readonly MessageFrames[];
  /** Rows the store read for it: what it costs the reader's budget (ReadTurns). */
  rows?: number;
}

interface Connection {
  /** The rooms this connection is in. */
  readonly rooms: FewMap<string, Member>;
  /** When this connection's typing was last relayed, per room. */
  typedAt: Map<string, number> | undefined;
}

/** A message echo waiting for its commit: who sent it, with which ref. */
interface Echo {
  readonly peer: Peer;
  readonly ref: string;
}

const BROWSER = 'browser';
/** Whisper ids a node remembers having delivered (a whisper reaches it once per person it concerns). */
const WHISPERS_REMEMBERED = 10_000;
/**
 * Names kept as seen (about 100 bytes each). Names come from consoles' hellos too, so a run that
 * sees more (a script trying name after name) lets the oldest go rather than growing.
 */
export const SEEN_NAMES = 10_000;
/**
 * Searches the store is asked for at once at most, over every door: on a local file they run one
 * after another on the search thread, each from well under a millisecond to about a tenth of a
 * second, so the last of them waits about a second at worst. A store may take fewer (PostgreSQL).
 */
export const SEARCHES_AT_ONCE = 8;

/** Searches one person may have running (or waiting) at once, on every connection and door together. */
export const SEARCHES_PER_USER = 2;

/**
 * A search turned away, nothing done: as many as the store is asked for at once are running on this
 * node, or the person's own SEARCHES_PER_USER are.
 */
export class SearchesBusy extends Error {
  override readonly name = 'SearchesBusy';
}

/**
 * Exports streaming at once at most, over every door: each reads its room a page of 500 messages at
 * a time on the event loop, as fast as its reader takes them, so a few at once would take the loop
 * from the sockets (20 of a 50,000-message room held others' echoes 0.6 s at p50).
 */
export const EXPORTS_AT_ONCE = 2;

/** Exports one person may have streaming at once. */
export const EXPORTS_PER_USER = 1;

/** An export turned away before it began: EXPORTS_AT_ONCE are streaming, or the person's own is. */
export class ExportsBusy extends Error {
  override readonly name = 'ExportsBusy';
}

/** A room's export, a chunk at a time; `return()` ends it early (a reader that went away). */
export interface ExportStream {
  next(): Promise<IteratorResult<string, undefined>>;
  return(): Promise<IteratorResult<string, undefined>>;
}

/** Cluster: how often the store is asked for missed messages while the bus is down, and for how long after. */
const POLL_MS = 500;
const POLL_AFTER_MS = 2000;
/** How long a read of the bans and mutes, when the bus is back, may take before it is given up. */
const RESTRICTIONS_READ_MS = 10_000;

/** Routes messages, whispers and presence between the members of each room. */
export class Hub {
  readonly #rooms = new Map<string, Room>();
  readonly #peers = new Map<Peer, Connection>();
  readonly #byUser = new Grouped<string, Peer>();
  readonly #echoes = new Map<string, Echo>();
  /** Echoes as encoded for their senders: a join's catch-up must not drop one as a duplicate. */
  readonly #echoFrames = new WeakSet<Encoded>();
  /**
   * Names seen this run, in the order first seen, at most #seenCap (SEEN_NAMES): a name seen is in the
   * store or about to be. One let go is written again when it comes back (nothing changes in the
   * store) and a whisper to it asks the store.
   */
  readonly #seen = new Set<string>();
  /** Searches running or waiting, and exports streaming: how many, and whose. */
  readonly #searches = new Slots(SEARCHES_PER_USER);
  readonly #exports = new Slots(EXPORTS_PER_USER);
  readonly #seenCap: number;
  /** Names seen and not yet written. */
  readonly #unremembered = new Set<string>();
  /** Names in a write that has not answered yet. */
  readonly #remembering = new Set<string>();
  #rememberTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #markerFlushMs: number;
  readonly #transcript: Transcript;
  readonly #commit: GroupCommit;
  /** History pages, read in turns: one person's burst of them does not hold up everyone else. */
  readonly #readTurns: ReadTurns;
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
  /** Where bans and mutes are stored: read again when the cluster's bus is back. */
  readonly #restrictionStore: AdminOptions['store'];
  /** While they are read again: the changes made or heard meanwhile, applied again after the read. */
  #restrictionsMeanwhile: RestrictionChange[] | undefined;
  /** Asked to read them again while a read ran. */
  #restrictionsAgain = false;
  readonly #admin: Admin;
  readonly #metrics: Metrics;
  readonly #bus: ClusterBus | undefined;
  readonly #gapWaitMs: number;
  readonly #whispersSeen = new Set<string>();
  readonly #recentBudget: number;
  readonly #retentionSeconds: number | undefined;
  /** Bytes of every room's kept messages. */
  #recentBytes = 0;
  /** Moves on a delete: a read of the store begun before it is not kept. */
  #recentEpoch = 0;
  #poll: ReturnType<typeof setInterval> | undefined;
  #pollUntil = 0;
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
    this.#seenCap = options.seenNames ?? SEEN_NAMES;
    this.#markers = new ReadMarkers(options.transcript, this.#log, (user) => this.#byUser.has(user), {
      flushMs: this.#markerFlushMs,
      ...(options.marksPerUser === undefined ? {} : { perUser: options.marksPerUser }),
    });
    this.#readTurns = new ReadTurns(yieldToIo, {
      atOnce: options.transcript.readsAtOnce,
      onHeld: () => this.#metrics.readHeld(),
    });
    this.#restrictions = options.restrictions ?? new Restrictions();
    this.#admin = new Admin(options.admin ?? {}, this.#restrictions, this.#log);
    this.#restrictionStore = options.admin?.store;
    const metrics = options.metrics ?? noMetrics;
    this.#metrics = metrics;
    this.#bus = options.cluster;
    this.#gapWaitMs = options.gapWaitMs ?? 50;
    this.#recentBudget = options.recentBytes ?? 64 * 1024 * 1024;
    this.#retentionSeconds = options.retentionSeconds;
    // A batch is a quarter of the unsent bound, so a member is dropped only when it falls behind
    // by several batches, never because one batch arrived at once.
    this.#commit = new GroupCommit(options.transcript, (batch) => this.#committed(batch), {
      maxBatch: options.maxBatch,
      maxBatchBytes: Math.max(16 * 1024, Math.floor(this.#maxBuffered / 4)),
      onReportError: (error) =>
        this.#log.error('broadcast of a committed batch failed', { error: String(error) }),
      yieldToIo: options.yieldToIo,
      commitSpacingMs: options.commitSpacingMs ?? 0,
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

  /** Whether `peer` is in `room` and still being caught up there (its join has not completed). */
  joining(peer: Peer, room: string): boolean {
    return this.#peers.get(peer)?.rooms.get(room)?.pending !== undefined;
  }

  /** A new connection, in no room yet. Its user's name is remembered, for whispers. */
  connect(peer: Peer): void {
    if (this.#peers.has(peer)) return;
    // typedAt only once the connection types: most never do, and an empty Map costs 200 bytes.
    this.#peers.set(peer, { rooms: new FewMap(), typedAt: undefined });
    if (this.#byUser.add(peer.user, peer)) this.#bus?.watchUser(peer.user);
    if (!this.#seen.has(peer.user)) {
      this.#see(peer.user);
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
    if (this.#byUser.delete(peer.user, peer)) {
      this.#markers.forget(peer.user);
      this.#bus?.unwatchUser(peer.user);
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
      this.#log.info('join refused: banned', { room: name, user: peer.user });
      if (options.welcome) {
        // The room the connection was opened for: it has nowhere to be, and must not come straight back.
        this.#error(peer, ErrorCode.Banned, bannedMessage(ban), options.welcome.ref);
        this.#drop(peer, CloseCode.Forbidden, 'banned from the room');
      } else this.#error(peer, ErrorCode.Banned, bannedMessage(ban), options.ref);
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
    /** Left (or was put out) while the join waited: it is still answered, once. */
    const leftMeanwhile = (): void => {
      if (this.#peers.has(peer) && !options.welcome)
        this.#error(
          peer,
          ErrorCode.NotJoined,
          `left ${JSON.stringify(name)} before the join completed`,
          options.ref,
        );
    };
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
      if (room.members.get(peer) !== member) {
        leftMeanwhile();
        return;
      }
    }
    // Everything reported from here on reaches the member as held frames.
    const addedAt = room.reported;

    const since = options.since;
    // The backscroll through addedAt, when the room holds it here; otherwise the store's answer is
    // kept for the next joins, unless a delete happened while it was read.
    const keeps = since === undefined && peer.wantsBackscroll && peer.optedIn;
    const kept = keeps ? this.#recentOf(room) : undefined;
    const fromMemory: Loaded | undefined = kept && { history: kept, complete: true };
    const epoch = this.#recentEpoch;
    let history: readonly Encoded[] = [];
    let fromStore: readonly MessageFrames[] | undefined;
    let complete = true;
    let historyFailed = false;
    let read = 0;
    let whispers = 0;
    try {
      const loading =
        fromMemory ??
        (since !== undefined || peer.wantsBackscroll
          ? // In the joiner's turn, with everyone else's history reads; not once it has left.
            this.#readTurns.runIfWanted(
              requesterOf(peer),
              () => this.#history(name, since, addedAt, peer.optedIn),
              () => room.members.get(peer) === member,
              (loaded) => Math.max(1, loaded.rows ?? loaded.history.length),
            )
          : undefined);
      const arriving = !peer.optedIn
        ? undefined
        : this.#arrival(peer.user, name, options.welcome !== undefined);
      // Most joins need no read (a backscroll kept here, nobody's marker stored): they complete
      // here and now, without waiting for a promise.
      const [loaded, arrival] =
        loading instanceof Promise || arriving instanceof Promise
          ? await Promise.all([loading, arriving])
          : [loading, arriving];
      if (loaded) ({ history, complete, read: fromStore } = loaded);
      read = arrival?.read ?? 0;
      whispers = arrival?.whispers ?? 0;
    } catch (error) {
      historyFailed = true;
      this.#log.warn('history unavailable', { room: name, error: String(error) });
    }
    if (room.members.get(peer) !== member) {
      leftMeanwhile();
      return;
    }

    // A message the read saw whose broadcast has not come yet will come with it: it is left out
    // here, or it would arrive twice; what was broadcast while loading is held, and follows.
    const horizon = room.reported;
    if (keeps && fromStore) this.#keepRecent(room, fromStore, horizon, epoch);
    const held = member.pending ?? [];
    member.pending = undefined;
    const catchUp: Encoded[] = [];
    let lastSeq = addedAt;
    const shown: Encoded[] = [];
    const shownAt = new Map<number, number>();
    for (const frame of history) {
      const seq = frame.seq ?? 0;
      if (seq > horizon) break;
      shownAt.set(seq, shown.length);
      shown.push(frame);
      if (seq > lastSeq) lastSeq = seq;
    }
    // The echo of a message this connection sent while joining answers its ref: it takes the place
    // of the catch-up's copy of that message, or follows joined when the catch-up has none.
    const live: Encoded[] = [];
    // In a cluster the client may have seen, on another node, messages this node has not delivered
    // yet: what it resumes after is not sent again when it comes.
    const seen = this.#bus && since !== undefined ? Math.max(lastSeq, since) : lastSeq;
    if (seen > room.reported) member.floor = seen;
    for (const frame of held) {
      if (frame.seq === undefined || frame.seq > seen) live.push(frame);
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
    for (const [user, presence] of this.#present(room)) {
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
   * The joiner's read marker of the room and, arriving (a welcome), its unread whispers: at once
   * where the store need not be read, else once it is.
   */
  #arrival(user: string, room: string, arriving: boolean): Arrival | Promise<Arrival> {
    // In a cluster other nodes write markers and whispers: the store is always asked.
    const known = !this.#bus;
    if (arriving) return (known && this.#markers.arrivalNow(user, room)) || this.#markers.arrival(user, room);
    const read = known ? this.#markers.getNow(user, room) : undefined;
    if (read !== undefined) return { read, whispers: 0 };
    return this.#markers.get(user, room).then((marker) => ({ read: marker, whispers: 0 }));
  }

  /**
   * The room's backscroll as kept here, through `reported` (what the store would answer). Undefined
   * when the store must be asked.
   */
  #recentOf(room: Room): Encoded[] | undefined {
    const recent = room.recent;
    // `end` moves with `reported` as each message is broadcast; should they ever part, ask the store.
    if (!recent || recent.end !== room.reported) return undefined;
    this.#expire(recent);
    recent.unused = 0;
    const first = recent.end - recent.json.length + 1;
    return recent.json.map((json, i) => new Encoded({ json, seq: first + i }));
  }

  /**
   * Keep a join's read of the room's newest messages when it is exactly those through `horizon`
   * (nothing newer, no delete since the read began) and the budget has room for it.
   */
  #keepRecent(room: Room, read: readonly MessageFrames[], horizon: number, epoch: number): void {
    if (this.#bus || room.recent || epoch !== this.#recentEpoch) return;
    if ((read.at(-1)?.message.seq ?? 0) !== horizon) return;
    const json = read.map((f) => f.rich.json);
    let bytes = 0;
    for (const j of json) bytes += keptSize(j);
    if (this.#recentBytes + bytes > this.#recentBudget) return;
    room.recent = { json, ts: read.map((f) => f.message.ts), end: horizon, bytes, unused: 0 };
    this.#recentBytes += bytes;
  }

  /**
   * Let go of kept messages older than the retention: the store deletes them (if it has not yet, its
   * next pass does), and they are not shown from here.
   */
  #expire(recent: Recent): void {
    const keep = this.#retentionSeconds;
    if (keep === undefined) return;
    const before = Date.now() / 1000 - keep;
    while ((recent.ts[0] ?? before) < before) {
      const gone = keptSize(recent.json.shift() as string);
      recent.ts.shift();
      recent.bytes -= gone;
      this.#recentBytes -= gone;
    }
  }

  /** A message broadcast to the room joins its kept ones when it is the next; after a gap they go. */
  #extendRecent(room: Room, recent: Recent, frames: MessageFrames): void {
    const { message } = frames;
    if (message.seq <= recent.end) return;
    recent.unused += 1;
    if (message.seq !== recent.end + 1 || recent.unused > UNUSED_BACKSCROLLS * this.#backscroll) {
      this.#dropRecent(room);
      return;
    }
    const { json } = frames.rich;
    recent.json.push(json);
    recent.ts.push(message.ts);
    recent.end = message.seq;
    let size = keptSize(json);
    if (recent.json.length > this.#backscroll) {
      size -= keptSize(recent.json.shift() as string);
      recent.ts.shift();
    }
    recent.bytes += size;
    this.#recentBytes += size;
    if (this.#recentBytes > this.#recentBudget) this.#dropRecent(room);
  }

  #dropRecent(room: Room): void {
    if (!room.recent) return;
    this.#recentBytes -= room.recent.bytes;
    room.recent = undefined;
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
    optedIn: boolean,
  ): Promise<Loaded> {
    const loaded = (messages: StoredMessage[], complete: boolean, rows = messages.length): Loaded => {
      const read = messages.map((m) => new MessageFrames(m));
      return { history: read.map((f) => f.for(optedIn)), complete, read, rows };
    };
    if (since === undefined) return loaded(await this.#transcript.recent(room, this.#backscroll), true);
    const missed = await this.#transcript.after(room, since, this.#resumeLimit + 1);
    if (missed.length > this.#resumeLimit) {
      const newest = await this.#transcript.recent(room, this.#resumeLimit);
      return loaded(newest, false, missed.length + newest.length);
    }
    const first = missed[0]?.seq;
    const gap = first === undefined ? since < reported : first > since + 1;
    return loaded(missed, !gap);
  }

  #see(name: string): void {
    this.#seen.add(name);
    dropOldest(this.#seen, this.#seenCap);
  }

  /** Write the names seen since the last time. */
  async #remember(): Promise<void> {
    clearTimeout(this.#rememberTimer);
    this.#rememberTimer = undefined;
    if (this.#unremembered.size === 0) return;
    const names = [...this.#unremembered];
    this.#unremembered.clear();
    for (const name of names) this.#remembering.add(name);
    try {
      await this.#transcript.remember(names);
    } catch (error) {
      this.#log.warn('names not remembered; trying again', { error: String(error) });
      // Kept for the next try up to the bound of names seen; past it (the store down for long, new
      // names all the while), the oldest are let go: they are written when they come back.
      for (const name of names) this.#unremembered.add(name);
      dropOldest(this.#unremembered, this.#seenCap);
      this.#rememberTimer ??= setTimeout(() => void this.#remember(), this.#markerFlushMs);
    } finally {
      for (const name of names) this.#remembering.delete(name);
    }
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
        // Away only when the user has no connection left in the room on any node.
        if (!this.#closing && !this.#view(room, peer.user))
          this.#broadcast(room, presenceFrame(room.name, peer.user, 'away'));
      }
      this.#share(room, peer.user);
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
    // A room the store has never had (a name it has never written) is ready at once.
    if (!this.#bus && this.#transcript.lastSeqKnown?.(name) === 0) {
      room.recent = noneYet();
      this.#rooms.set(name, room);
      return room;
    }
    // In a cluster the room's events are heard before its newest seq is read: whatever commits after
    // the read arrives as an event, whatever before is in the store.
    const lastSeq = this.#bus
      ? this.#bus.watchRoom(name).then((remote) => {
          this.#learnRemote(room, remote);
          return this.#transcript.lastSeq(name);
        })
      : this.#transcript.lastSeq(name);
    room.ready = lastSeq.then(
      (latest) => {
        room.reported = Math.max(room.reported, latest);
        if (room.reported === 0 && !this.#bus) room.recent = noneYet();
        room.ready = undefined;
        if (room.order) this.#broadcastBatch(this.#release(room));
      },
      (error: unknown) => {
        this.#log.warn('room unavailable', { room: name, error: String(error) });
        if (this.#rooms.get(name) === room) {
          this.#rooms.delete(name);
          this.#bus?.unwatchRoom(name);
        }
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
    if (room.members.size === 0 && room.inflight === 0 && this.#rooms.get(room.name) === room) {
      this.#rooms.delete(room.name);
      this.#dropRecent(room);
      if (this.#bus) {
        this.#bus.unwatchRoom(room.name);
        clearTimeout(room.gap);
        for (const m of room.order?.clear() ?? []) this.#echoes.delete(m.id);
      }
    }
  }

  /** A user arrives in a room (or gains a connection there); the others hear of it once. */
  #arrive(room: Room, peer: Peer): void {
    const presence = room.users.get(peer.user);
    const browser = peer.via === BROWSER ? 1 : 0;
    // Announced only when the user was not present, or not available, on any node.
    const before = this.#view(room, peer.user);
    const announce = before?.status !== 'available';
    if (!presence) {
      room.users.set(peer.user, {
        connections: 1,
        browsers: browser,
        status: 'available',
        at: Date.now(),
        typing: undefined,
      });
    } else {
      presence.connections += 1;
      presence.browsers += browser;
      if (presence.status !== 'available') {
        presence.status = 'available';
        presence.at = Date.now();
      }
    }
    if (announce) this.#broadcast(room, presenceFrame(room.name, peer.user, 'available'), peer);
    this.#share(room, peer.user);
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
    if (
      !this.#byUser.has(to) &&
      !this.#seen.has(to) &&
      !this.#unremembered.has(to) &&
      !this.#remembering.has(to)
    ) {
      let known: boolean;
      try {
        // A name first seen on another node a moment ago may not be stored yet.
        known = (await this.#transcript.knows(to)) || ((await this.#bus?.online(to)) ?? false);
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
      this.#see(to);
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
      presence.at = Date.now();
      this.#broadcast(member.room, presenceFrame(name, peer.user, status), peer);
      this.#share(member.room, peer.user);
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
    const relay = (to: TypingState): void => {
      this.#broadcast(member.room, { type: 'typing', room, user: peer.user, state: to }, peer, true, true);
      this.#bus?.publish({ room }, { t: 'typing', room, user: peer.user, state: to });
    };
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
    for (const other of this.#byUser.get(peer.user)) {
      if (other !== peer && other.optedIn) this.#reply(other, frame);
    }
    this.#bus?.publish({ user: peer.user }, { t: 'read', user: peer.user, target, seq: now });
    this.#reply(peer, ref === undefined ? frame : { ...frame, ref });
  }

  /** Who is present in a room (any room, joined or not), on every node. */
  who(peer: Peer, room: string, ref?: string): void {
    const found = this.#rooms.get(room);
    if (this.#bus && !found?.remote) {
      void this.#whoElsewhere(peer, room, ref);
      return;
    }
    this.#answerWho(peer, room, found ? this.#present(found) : [], ref);
  }

  /** The `who` answer: everyone present, by name. */
  #answerWho(peer: Peer, room: string, present: Iterable<[string, Present]>, ref: string | undefined): void {
    const users: WhoEntry[] = [];
    for (const [user, p] of present)
      users.push({
        user,
        status: p.status,
        kind: p.browsers > 0 ? 'human' : 'console',
        connections: p.connections,
      });
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
    const elsewhere = await this.#membersElsewhere(stored.map((head) => head.key));
    const entries = new Map<string, RoomEntry>();
    for (const head of stored) {
      const here = this.#rooms.get(head.key);
      entries.set(head.key, {
        room: head.key,
        members: here ? this.#memberCount(here) : (elsewhere.get(head.key) ?? 0),
        seq: head.seq,
        ts: head.ts,
      });
    }
    const live = [...this.#rooms.values()].filter((r) => this.#memberCount(r) > 0 && !entries.has(r.name));
    const list = [
      ...live.map((r) => ({ room: r.name, members: this.#memberCount(r), seq: r.reported })),
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
    const room = 'room' in target ? target.room : undefined;
    const joined = () => room === undefined || this.#peers.get(peer)?.rooms.has(room) === true;
    if (!joined()) {
      this.#error(peer, ErrorCode.NotJoined, `not in room ${JSON.stringify(room)}`, ref);
      return;
    }
    const key = 'room' in target ? target.room : conversationKey(peer.user, target.with);
    let found: { messages: StoredMessage[]; more: boolean } | undefined;
    try {
      // Asked again when the turn comes: a connection gone, or out of the room (left, kicked, banned)
      // while it waited, is not read for.
      found = await this.#readTurns.runIfWanted(
        requesterOf(peer),
        () => this.#page(key, page),
        () => this.#peers.has(peer) && joined(),
        pageCost,
      );
    } catch (error) {
      this.#log.warn('history unavailable', { error: String(error) });
      this.#error(peer, ErrorCode.StoreUnavailable, 'the history could not be loaded', ref);
      return;
    }
    if (!found) {
      if (this.#peers.has(peer))
        this.#error(peer, ErrorCode.NotJoined, `not in room ${JSON.stringify(room)}`, ref);
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

  /**
   * The ban keeping `user` out of `room` now, if any. A banned user may not read the room either: the
   * HTTP history, search and export ask this before they answer.
   */
  banOf(room: string, user: string): Restriction | undefined {
    return this.#restrictions.find('ban', room, user);
  }

  /**
   * A page of a conversation, as `history` answers it (also for the browser's HTTP history), read in
   * `requester`'s turn (ReadTurns): the person asking, or for HTTP without sign-in, the address.
   */
  page(
    key: string,
    page: { before?: number | undefined; after?: number | undefined; limit?: number | undefined },
    requester: string,
  ): Promise<{ messages: StoredMessage[]; more: boolean }> {
    return this.#readTurns.run(requester, () => this.#page(key, page), pageCost);
  }

  async #page(
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
    const ban = this.#restrictions.find('ban', room, peer.user);
    if (ban) {
      this.#error(peer, ErrorCode.Banned, bannedMessage(ban), ref);
      return;
    }
    let found: { messages: StoredMessage[]; more: boolean };
    try {
      found = await this.find(room, q, page, peer.user);
    } catch (error) {
      if (error instanceof SearchesBusy) {
        this.#error(peer, ErrorCode.Busy, error.message, ref);
        return;
      }
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
    user?: string,
  ): Promise<{ messages: StoredMessage[]; more: boolean }> {
    const limit = page.limit ?? SEARCH_DEFAULT;
    const atOnce = Math.min(SEARCHES_AT_ONCE, this.#transcript.searchesAtOnce ?? SEARCHES_AT_ONCE);
    // One person's burst of searches takes at most their share of the store's, not all of it.
    const release = this.#searches.take(atOnce, user);
    if (typeof release === 'string') {
      this.#metrics.searchRefused(release);
      throw new SearchesBusy(
        release === 'server'
          ? `${atOnce} searches are running; try again in a moment`
          : `at most ${SEARCHES_PER_USER} searches of one person run at once; try again in a moment`,
      );
    }
    let found: StoredMessage[];
    try {
      found = await this.#transcript.search(room, searchTerms(q), page.before, limit + 1);
    } finally {
      release();
    }
    this.#metrics.searched();
    // What is newer than the room's broadcast is left for the live stream, as in a history page.
    const reported = this.#rooms.get(room)?.reported;
    const messages = reported === undefined ? found : found.filter((m) => m.seq <= reported);
    return { messages: messages.slice(0, limit), more: found.length > limit };
  }

  /**
   * A room's transcript after `since`, in seq order, as text chunks in the format asked for; `user`
   * (when known) for the per-person bound. Throws ExportsBusy when it may not start now. Its slot is
   * given back when the stream ends, fails or is ended early, started or not.
   */
  export(request: ExportRequest, user?: string): ExportStream {
    const release = this.#exports.take(EXPORTS_AT_ONCE, user);
    if (typeof release === 'string') {
      this.#metrics.exportRefused(release);
      throw new ExportsBusy(
        release === 'server'
          ? `${EXPORTS_AT_ONCE} exports are running; try again in a moment`
          : `at most ${EXPORTS_PER_USER} export of one person runs at once; try again when it is done`,
      );
    }
    const chunks = exportRoom(this.#transcript, request);
    return {
      next: async () => {
        try {
          const next = await chunks.next();
          if (next.done) release();
          return next;
        } catch (error) {
          release();
          throw error;
        }
      },
      return: () => {
        release();
        return chunks.return(undefined);
      },
    };
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
  expel(room: string, user: string, frame: KickedFrame): number | Promise<number> {
    if (this.#bus) return this.#expelEverywhere(this.#bus, room, user, frame);
    return this.#expelHere(room, user, frame);
  }

  /** Take the user's connections on this node out of the room; how many there were. */
  #expelHere(room: string, user: string, frame: KickedFrame): number {
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

  /** Tell a room's opted-in members, on every node, that a message is deleted. */
  announceDeleted(room: string, id: string, seq: number): void {
    const found = this.#rooms.get(room);
    this.#recentEpoch += 1;
    if (found) {
      this.#dropRecent(found);
      this.#broadcast(found, { type: 'deleted', room, id, seq }, undefined, true);
    }
    this.#bus?.publish({ room }, { t: 'deleted', room, id, seq });
  }

  /** A ban or mute was set or lifted here: the other nodes enforce it too. */
  restricted(change: RestrictionChange): void {
    this.#restrictionsMeanwhile?.push(change);
    if (!this.#bus) return;
    if ('set' in change) this.#bus.publish('all', { t: 'restrict', restriction: change.set });
    else this.#bus.publish('all', { t: 'lift', ...change.lift });
  }

  /** Tell an opted-in peer that a frame was refused (plain consoles get nothing). */
  refuse(peer: Peer, code: ErrorCode, message: string, ref?: string): void {
    this.#error(peer, code, message, ref);
  }

  /** A history page past the `waiting` ones its connection may have: answered `busy` at once, and counted. */
  historyBusy(peer: Peer, waiting: number, ref?: string): void {
    this.#metrics.historyRefused();
    this.#error(
      peer,
      ErrorCode.Busy,
      `${waiting} history pages are waiting on this connection; ask for another when one is answered`,
      ref,
    );
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
    if (this.#bus) {
      this.#publishCommitted(this.#bus, batch);
      this.#ordered(batch);
      return;
    }
    this.#broadcastBatch(batch);
  }

  /** Broadcast messages in order: each room's share in seq order, each whisper to its two people. */
  #broadcastBatch(batch: StoredMessage[]): void {
    if (batch.length === 0) return;
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
      if (room.recent) this.#extendRecent(room, room.recent, frames);
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
    const to = new Set([...this.#byUser.get(message.sender), ...this.#byUser.get(message.recipient ?? '')]);
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
    if (member.floor !== undefined) {
      const floor = member.floor;
      if (member.room.reported >= floor) member.floor = undefined;
      const kept = frames.parts.filter(
        (f) => f.seq === undefined || f.seq > floor || this.#echoFrames.has(f),
      );
      if (kept.length === 0) return;
      if (kept.length < frames.parts.length)
        frames = kept.length === 1 ? (kept[0] as Encoded) : new EncodedRun(kept);
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

  /** A user's presence in a room on every node (this node's alone without a cluster). */
  #view(room: Room, user: string): Present | undefined {
    const local = room.users.get(user);
    if (!room.remote) return local;
    const entry = local && { c: local.connections, b: local.browsers, s: local.status, at: local.at };
    return mergePresence(entry, room.remote.get(user));
  }

  /** Everyone present in a room, on every node. */
  *#present(room: Room): Iterable<[string, Present]> {
    if (!room.remote) {
      yield* room.users;
      return;
    }
    for (const user of new Set([...room.users.keys(), ...room.remote.keys()])) {
      const present = this.#view(room, user);
      if (present) yield [user, present];
    }
  }

  #memberCount(room: Room): number {
    if (!room.remote) return room.users.size;
    let n = 0;
    for (const _ of this.#present(room)) n += 1;
    return n;
  }

  /** Cluster: tell the other nodes this node's share of a user's presence in a room. */
  #share(room: Room, user: string): void {
    if (!this.#bus) return;
    const p = room.users.get(user);
    this.#bus.setPresence(
      room.name,
      user,
      p ? { c: p.connections, b: p.browsers, s: p.status, at: p.at } : null,
    );
  }

  /** Broadcast what changed in a user's presence across nodes since `before`. */
  #presenceMoved(room: Room, user: string, before: Present | undefined): void {
    const after = this.#view(room, user);
    if (after && after.status !== before?.status)
      this.#broadcast(room, presenceFrame(room.name, user, after.status));
    else if (!after && before && !this.#closing)
      this.#broadcast(room, presenceFrame(room.name, user, 'away'));
  }

  /**
   * The room's presence on the other nodes as read when it was opened, then the events that came
   * meanwhile. Nobody has been told anything of the room yet, so nothing is broadcast.
   */
  #learnRemote(room: Room, remote: RemotePresence): void {
    room.remote = remote;
    for (const [node, event] of room.early ?? []) applyPresence(remote, node, event.user, event.entry);
    room.early = undefined;
  }

  /** Cluster: hand a committed batch to the nodes with members in its rooms, and its whispers to both people. */
  #publishCommitted(bus: ClusterBus, batch: StoredMessage[]): void {
    const byRoom = new Map<string, StoredMessage[]>();
    for (const m of batch) {
      if (m.recipient !== undefined) {
        this.#sawWhisper(m.id);
        bus.publish({ user: m.sender }, { t: 'whisper', message: m });
        if (m.recipient !== m.sender) bus.publish({ user: m.recipient }, { t: 'whisper', message: m });
        continue;
      }
      const share = byRoom.get(m.room);
      if (share) share.push(m);
      else byRoom.set(m.room, [m]);
    }
    for (const [room, messages] of byRoom) bus.publish({ room }, { t: 'messages', messages });
  }

  /** Whether a whisper was delivered here already; remembers it if not. */
  #sawWhisper(id: string): boolean {
    if (this.#whispersSeen.has(id)) return true;
    this.#whispersSeen.add(id);
    dropOldest(this.#whispersSeen, WHISPERS_REMEMBERED);
    return false;
  }

  /**
   * Cluster: messages from this node's commits, other nodes' and the store, delivered to each room
   * strictly in seq order: one ahead of a gap waits, a duplicate is dropped.
   */
  #ordered(messages: readonly StoredMessage[]): void {
    const ready: StoredMessage[] = [];
    const touched = new Set<Room>();
    for (const m of messages) {
      if (m.recipient !== undefined) {
        ready.push(m);
        continue;
      }
      const room = this.#rooms.get(m.room);
      if (!room) {
        this.#echoes.delete(m.id);
        continue;
      }
      room.order ??= new RoomOrder();
      room.order.offer(m, room.reported);
      touched.add(room);
    }
    for (const room of touched) ready.push(...this.#release(room));
    this.#broadcastBatch(ready);
  }

  /** The room's held messages that now follow without a gap; waits for the gap if some remain. */
  #release(room: Room): StoredMessage[] {
    if (room.ready || !room.order) return [];
    const out = room.order.release(room.reported);
    const last = out.at(-1);
    if (last) room.reported = last.seq;
    if (room.order.waiting > 0) room.gap ??= setTimeout(() => void this.#fill(room), this.#gapWaitMs);
    else {
      clearTimeout(room.gap);
      room.gap = undefined;
    }
    return out;
  }

  /** A gap waited long enough: what is missing is read from the store. */
  async #fill(room: Room): Promise<void> {
    room.gap = undefined;
    if (this.#rooms.get(room.name) !== room || !room.order?.waiting) return;
    await this.#catchUp(room);
    if (!room.gap && room.order.waiting > 0 && this.#rooms.get(room.name) === room)
      room.gap = setTimeout(() => void this.#fill(room), this.#gapWaitMs);
  }

  /** Read the room's messages after the newest delivered here, and deliver them in order. */
  async #catchUp(room: Room): Promise<void> {
    if (room.ready) return;
    let found: StoredMessage[];
    try {
      found = await this.#transcript.after(room.name, room.reported, this.#resumeLimit);
    } catch (error) {
      this.#log.warn('missed messages could not be read', { room: room.name, error: String(error) });
      return;
    }
    if (this.#rooms.get(room.name) !== room || found.length === 0) return;
    room.order ??= new RoomOrder();
    for (const m of found) room.order.offer(m, room.reported);
    this.#broadcastBatch(this.#release(room));
  }

  /** `who` for a room this node has no members in: its presence on the other nodes. */
  async #whoElsewhere(peer: Peer, room: string, ref: string | undefined): Promise<void> {
    let remote: RemotePresence | undefined;
    try {
      remote = (await this.#bus?.presenceOf([room]))?.get(room);
    } catch (error) {
      this.#log.warn('presence of other nodes unavailable', { room, error: String(error) });
    }
    const present: Array<[string, Present]> = [];
    for (const [user, nodes] of remote ?? []) {
      const merged = mergePresence(undefined, nodes);
      if (merged) present.push([user, merged]);
    }
    this.#answerWho(peer, room, present, ref);
  }

  /** Cluster: how many users are present in each of these rooms that this node has no members in. */
  async #membersElsewhere(rooms: readonly string[]): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    const wanted = rooms.filter((r) => !this.#rooms.has(r));
    if (!this.#bus || wanted.length === 0) return counts;
    try {
      for (const [room, remote] of await this.#bus.presenceOf(wanted)) {
        let n = 0;
        for (const nodes of remote.values()) if (mergePresence(undefined, nodes)) n += 1;
        counts.set(room, n);
      }
    } catch (error) {
      this.#log.warn('presence of other nodes unavailable', { error: String(error) });
    }
    return counts;
  }

  /** Kick or ban on every node: this node's connections now, the others' through the bus. */
  async #expelEverywhere(bus: ClusterBus, room: string, user: string, frame: KickedFrame): Promise<number> {
    const found = this.#rooms.get(room);
    let remote = found?.remote;
    if (!remote)
      remote = await bus.presenceOf([room]).then(
        (all) => all.get(room),
        () => undefined,
      );
    let elsewhere = 0;
    for (const entry of remote?.get(user)?.values() ?? []) elsewhere += entry.c;
    bus.publish({ room }, { t: 'kick', room, user, frame });
    return this.#expelHere(room, user, frame) + elsewhere;
  }

  /** What the cluster bus reports to this Hub. */
  get clusterListener(): ClusterListener {
    return {
      event: (node, event) => this.#clusterEvent(node, event),
      nodeLost: (node) => this.#nodeLost(node),
      connection: (up) => this.#busConnection(up),
    };
  }

  #clusterEvent(node: string, event: ClusterEvent): void {
    switch (event.t) {
      case 'messages':
        this.#ordered(event.messages);
        return;
      case 'whisper':
        if (!this.#sawWhisper(event.message.id)) this.#broadcastBatch([event.message]);
        return;
      case 'presence': {
        const room = this.#rooms.get(event.room);
        if (!room) return;
        if (!room.remote) {
          room.early ??= [];
          room.early.push([node, event]);
          return;
        }
        const before = this.#view(room, event.user);
        applyPresence(room.remote, node, event.user, event.entry);
        this.#presenceMoved(room, event.user, before);
        return;
      }
      case 'typing': {
        const room = this.#rooms.get(event.room);
        if (!room) return;
        const frame = new Encoded({ type: 'typing', room: event.room, user: event.user, state: event.state });
        for (const member of [...room.members.values()])
          if (member.peer.optedIn && member.peer.user !== event.user) this.#deliver(member, frame);
        return;
      }
      case 'deleted': {
        const room = this.#rooms.get(event.room);
        if (room)
          this.#broadcast(
            room,
            { type: 'deleted', room: event.room, id: event.id, seq: event.seq },
            undefined,
            true,
          );
        return;
      }
      case 'kick':
        this.#expelHere(event.room, event.user, event.frame);
        return;
      case 'read': {
        const key =
          'room' in event.target ? event.target.room : conversationKey(event.user, event.target.with);
        this.#markers.learn(event.user, key, event.seq);
        const frame: ServerFrame = { type: 'read', ...event.target, seq: event.seq };
        for (const peer of this.#byUser.get(event.user)) if (peer.optedIn) this.#reply(peer, frame);
        return;
      }
      case 'restrict':
        this.#heardRestriction({ set: event.restriction });
        return;
      case 'lift':
        this.#heardRestriction({ lift: { kind: event.kind, room: event.room, user: event.user } });
        return;
    }
  }

  /** A node is gone: its users are away wherever they have no other connection. */
  #nodeLost(node: string): void {
    for (const room of this.#rooms.values()) {
      if (!room.remote) continue;
      for (const [user, nodes] of [...room.remote]) {
        if (!nodes.has(node)) continue;
        const before = this.#view(room, user);
        applyPresence(room.remote, node, user, null);
        this.#presenceMoved(room, user, before);
      }
    }
  }

  /**
   * While the bus is down, events are missed: the store is asked for each room's messages every
   * POLL_MS. Once it is back, this node's presence is announced again (a restarted bus has none),
   * the other nodes' presence is read again, and polling goes on a little longer, until the
   * subscriptions are surely in place; then both once more.
   */
  #busConnection(up: boolean): void {
    this.#pollUntil = up ? Date.now() + POLL_AFTER_MS : Number.POSITIVE_INFINITY;
    this.#poll ??= setInterval(() => {
      if (Date.now() > this.#pollUntil) {
        clearInterval(this.#poll);
        this.#poll = undefined;
      }
      for (const room of this.#rooms.values()) void this.#catchUp(room);
    }, POLL_MS);
    this.#poll.unref?.();
    if (!up) return;
    // Once now, and once more when every node's subscriptions are surely back: an announcement made
    // before another node listened again is missed by it, and its read of the presence may precede it.
    void this.#reannounce();
    setTimeout(() => void this.#reannounce(), POLL_AFTER_MS).unref?.();
  }

  async #reannounce(): Promise<void> {
    const bus = this.#bus;
    if (!bus) return;
    void this.#reloadRestrictions();
    const rooms = [...this.#rooms.values()].filter((r) => r.remote);
    for (const room of rooms) for (const user of room.users.keys()) this.#share(room, user);
    let fresh: Map<string, RemotePresence>;
    try {
      fresh = await bus.presenceOf(rooms.map((r) => r.name));
    } catch (error) {
      this.#log.warn('presence of other nodes unavailable', { error: String(error) });
      return;
    }
    for (const room of rooms) {
      if (this.#rooms.get(room.name) !== room || !room.remote) continue;
      const now = fresh.get(room.name) ?? new Map();
      const users = new Set([...room.remote.keys(), ...now.keys()]);
      const before = new Map([...users].map((u) => [u, this.#view(room, u)] as const));
      room.remote = now;
      for (const user of users) this.#presenceMoved(room, user, before.get(user));
    }
  }

  /** Another node set or lifted a ban or mute: it holds here too (and again after a read under way). */
  #heardRestriction(change: RestrictionChange): void {
    this.#applyRestriction(change);
    this.#restrictionsMeanwhile?.push(change);
  }

  #applyRestriction(change: RestrictionChange): void {
    if ('set' in change) this.#restrictions.set(change.set);
    else this.#restrictions.lift(change.lift.kind, change.lift.room, change.lift.user);
  }

  /**
   * Bans and mutes as the store has them, in place of what this node holds: one set or lifted on
   * another node while the bus was down reached this node only as an event, which was lost. What
   * changes while they are read is applied again after. Asked again while a read runs, it reads once
   * more when that one is done (that read may predate what was lost meanwhile); a read gets
   * RESTRICTIONS_READ_MS.
   */
  async #reloadRestrictions(): Promise<void> {
    const store = this.#restrictionStore;
    if (!store) return;
    if (this.#restrictionsMeanwhile) {
      this.#restrictionsAgain = true;
      return;
    }
    do {
      this.#restrictionsAgain = false;
      const meanwhile: RestrictionChange[] = [];
      this.#restrictionsMeanwhile = meanwhile;
      try {
        const stored = await withTimeout(store.restrictions(), RESTRICTIONS_READ_MS);
        const known = (r: Restriction) => this.#restrictions.find(r.kind, r.room, r.user) !== undefined;
        const banned = stored.filter((r) => r.kind === 'ban' && !known(r));
        this.#restrictions.replace(stored);
        for (const change of meanwhile) this.#applyRestriction(change);
        // A ban not heard of: whoever it names is taken out of the room here, as on the admin's node.
        for (const ban of banned)
          if (this.#restrictions.find('ban', ban.room, ban.user))
            this.#expelHere(ban.room, ban.user, bannedFrame(ban));
      } catch (error) {
        this.#log.warn('bans and mutes not read again', { error: String(error) });
      } finally {
        this.#restrictionsMeanwhile = undefined;
      }
    } while (this.#restrictionsAgain);
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
