// The Hub: rooms, members, presence, stamping and broadcast. It knows peers, never sockets.

import { type Log, silentLog } from '../log.ts';
import { CloseCode, ErrorCode } from '../protocol/codes.ts';
import { PROTOCOL_VERSION, type ServerFrame, type Status } from '../protocol/frames.ts';
import { newId } from './ids.ts';
import { Encoded, EncodedRun, type Outgoing, type Peer } from './peer.ts';
import { GroupCommit, type NewMessage, type StoredMessage, type Transcript } from './transcript.ts';

/** Hub settings; every bound has a default. */
export interface HubOptions {
  transcript: Transcript;
  /** The transcript's newest sequence number at start-up. */
  lastSeq: number;
  log?: Log;
  /** Server name and version sent in welcome frames. */
  serverName?: string;
  /** Messages a browser gets on join (the room's most recent, oldest first). */
  backscroll?: number;
  /** Most messages one resume (`since`) replays. */
  resumeLimit?: number;
  /** A member whose unsent data passes this many bytes is disconnected. */
  maxBufferedBytes?: number;
  /** Frames held for a member while its backscroll loads; past this it is disconnected. */
  maxPendingFrames?: number;
  /** Most messages committed in one transaction. */
  maxBatch?: number;
  /** What the group commit waits for before each batch (one turn of I/O); tests give their own. */
  yieldToIo?: () => Promise<void>;
}

interface Member {
  readonly peer: Peer;
  /** Frames that arrived while the join was loading history; undefined once live. */
  pending: Encoded[] | undefined;
}

interface Presence {
  connections: number;
  status: Status;
}

interface Room {
  readonly members: Map<Peer, Member>;
  /** Presence per user: a user with several connections is present once. */
  readonly users: Map<string, Presence>;
}

/** Routes messages and presence between the members of each room. */
export class Hub {
  readonly #rooms = new Map<string, Room>();
  readonly #transcript: Transcript;
  readonly #commit: GroupCommit;
  readonly #log: Log;
  readonly #serverName: string;
  readonly #backscroll: number;
  readonly #resumeLimit: number;
  readonly #maxBuffered: number;
  readonly #maxPending: number;
  #committedSeq: number;
  #closing = false;
  #connections = 0;

  constructor(options: HubOptions) {
    this.#transcript = options.transcript;
    this.#committedSeq = options.lastSeq;
    this.#log = options.log ?? silentLog;
    this.#serverName = options.serverName ?? 'runspec-room';
    this.#backscroll = options.backscroll ?? 50;
    this.#resumeLimit = options.resumeLimit ?? 1000;
    this.#maxBuffered = options.maxBufferedBytes ?? 1024 * 1024;
    this.#maxPending = options.maxPendingFrames ?? 10_000;
    // A batch is a quarter of the unsent bound, so a member is dropped only when it falls behind
    // by several batches, never because one batch arrived at once.
    this.#commit = new GroupCommit(options.transcript, (batch) => this.#committed(batch), {
      maxBatch: options.maxBatch,
      maxBatchBytes: Math.max(16 * 1024, Math.floor(this.#maxBuffered / 4)),
      yieldToIo: options.yieldToIo,
      onReportError: (error) =>
        this.#log.error('broadcast of a committed batch failed', { error: String(error) }),
    });
  }

  /** Rooms with at least one member, and members across all rooms. */
  get stats(): { rooms: number; connections: number } {
    return { rooms: this.#rooms.size, connections: this.#connections };
  }

  /** Connections currently in `room`. */
  roomSize(room: string): number {
    return this.#rooms.get(room)?.members.size ?? 0;
  }

  /** Whether the Hub still takes joins and messages. */
  get accepting(): boolean {
    return !this.#closing;
  }

  /**
   * Add a peer to its room: announce it to the others, then send it (opted in: a welcome first) who is
   * present, its backscroll or resume if it wants one, and whatever was broadcast meanwhile, with no
   * gap and no duplicate.
   */
  async join(peer: Peer): Promise<void> {
    if (this.#closing) {
      peer.close(CloseCode.ServiceRestart, 'server is shutting down');
      return;
    }
    let room = this.#rooms.get(peer.room);
    if (!room) {
      room = { members: new Map(), users: new Map() };
      this.#rooms.set(peer.room, room);
    }
    const member: Member = { peer, pending: [] };
    room.members.set(peer, member);
    this.#connections += 1;
    const presence = room.users.get(peer.user);
    if (!presence) {
      room.users.set(peer.user, { connections: 1, status: 'available' });
      this.#broadcast(room, presenceFrame(peer.room, peer.user, 'available'), peer);
    } else {
      presence.connections += 1;
      if (presence.status !== 'available') {
        presence.status = 'available';
        this.#broadcast(room, presenceFrame(peer.room, peer.user, 'available'), peer);
      }
    }
    this.#log.debug('joined', { room: peer.room, user: peer.user });

    let history: StoredMessage[] = [];
    let complete: boolean | undefined;
    let historyFailed = false;
    if (peer.since !== undefined || peer.wantsBackscroll) {
      try {
        ({ history, complete } = await this.#history(peer));
      } catch (error) {
        historyFailed = true;
        this.#log.warn('history unavailable', { room: peer.room, error: String(error) });
      }
    }
    if (room.members.get(peer) !== member) return; // left while history loaded

    // A message the read saw whose commit has not been reported yet is still to be broadcast, and
    // the broadcast will bring it: leave it out here, or it would arrive twice.
    const horizon = this.#committedSeq;
    const held = member.pending ?? [];
    member.pending = undefined;
    const catchUp: Encoded[] = [];
    if (peer.optedIn) {
      catchUp.push(new Encoded(welcomeFrame(this.#serverName, peer, horizon, complete)));
      if (historyFailed)
        catchUp.push(errorFrame(ErrorCode.StoreUnavailable, 'recent messages could not be loaded'));
    }
    for (const [user, p] of room.users) {
      if (user !== peer.user) catchUp.push(new Encoded(presenceFrame(peer.room, user, p.status)));
    }
    let lastSeq = 0;
    for (const m of history) {
      if (m.seq > horizon) break;
      catchUp.push(new Encoded(messageFrame(m)));
      lastSeq = m.seq;
    }
    for (const frame of held) {
      if (frame.seq === undefined || frame.seq > lastSeq) catchUp.push(frame);
    }
    // The catch-up is bounded (backscroll or one resume) and arrives at once by design, so it is
    // not judged for slowness; later batches are.
    for (const frame of catchUp) {
      this.#deliver(member, frame, false);
      if (room.members.get(peer) !== member) return; // dropped: stop sending to it
    }
  }

  /**
   * What a joining peer sees of the past: the messages after its resume point, or the recent
   * backscroll. When more were missed than one resume replays, it gets the newest ones instead and
   * `complete: false`, so the gap is in the past and the live stream continues without one.
   */
  async #history(peer: Peer): Promise<{ history: StoredMessage[]; complete: boolean | undefined }> {
    if (peer.since === undefined) {
      return { history: await this.#transcript.recent(peer.room, this.#backscroll), complete: undefined };
    }
    const missed = await this.#transcript.after(peer.room, peer.since, this.#resumeLimit + 1);
    if (missed.length <= this.#resumeLimit) return { history: missed, complete: true };
    return { history: await this.#transcript.recent(peer.room, this.#resumeLimit), complete: false };
  }

  /** Remove a peer; its user is announced away once its last connection in the room has left. */
  leave(peer: Peer): void {
    const room = this.#rooms.get(peer.room);
    if (!room?.members.delete(peer)) return;
    this.#connections -= 1;
    const presence = room.users.get(peer.user);
    if (presence && --presence.connections === 0) {
      room.users.delete(peer.user);
      if (!this.#closing) this.#broadcast(room, presenceFrame(peer.room, peer.user, 'away'));
    }
    if (room.members.size === 0) this.#rooms.delete(peer.room);
    this.#log.debug('left', { room: peer.room, user: peer.user });
  }

  /** Stamp a message, commit it, then broadcast it to the whole room, sender included. */
  async message(peer: Peer, text: string): Promise<void> {
    const member = this.#rooms.get(peer.room)?.members.get(peer);
    if (!member) return;
    if (this.#closing) {
      this.#deliverError(
        member,
        ErrorCode.ShuttingDown,
        'the server is shutting down; the message was not stored',
      );
      return;
    }
    const now = Date.now();
    const message: NewMessage = {
      id: newId(now),
      room: peer.room,
      sender: peer.user,
      text,
      ts: now / 1000,
    };
    try {
      await this.#commit.submit(message);
    } catch (error) {
      this.#log.error('message not stored', { room: peer.room, sender: peer.user, error: String(error) });
      const stillHere = this.#rooms.get(peer.room)?.members.get(peer);
      if (stillHere)
        this.#deliverError(
          stillHere,
          ErrorCode.StoreUnavailable,
          'the message could not be stored and was not delivered',
        );
    }
  }

  /** Record a member's presence and relay it to the rest of the room. */
  presence(peer: Peer, status: Status): void {
    const room = this.#rooms.get(peer.room);
    const presence = room?.users.get(peer.user);
    if (!room || !presence || !room.members.has(peer)) return;
    presence.status = status;
    this.#broadcast(room, presenceFrame(peer.room, peer.user, status), peer);
  }

  /** Tell an opted-in peer that a frame was refused (plain consoles get nothing). */
  refuse(peer: Peer, code: ErrorCode, message: string): void {
    if (!peer.optedIn) return;
    const member = this.#rooms.get(peer.room)?.members.get(peer);
    if (member) this.#deliverError(member, code, message);
    else sendError(peer, code, message);
  }

  /** Hand an opted-in member a frame about its own connection, within the same bounds as any other. */
  notify(peer: Peer, frame: Encoded): void {
    if (!peer.optedIn) return;
    const member = this.#rooms.get(peer.room)?.members.get(peer);
    if (member) this.#deliver(member, frame);
  }

  /** Remove a member and close its connection with `code` (a door's own verdict, such as a flood). */
  drop(peer: Peer, code: number, reason: string): void {
    this.#drop(peer, code, reason);
  }

  /** Stop taking messages, finish committing and broadcasting what was taken, then close every peer. */
  async shutdown(code: number = CloseCode.ServiceRestart, reason = 'server restart'): Promise<void> {
    this.#closing = true;
    await this.#commit.flushed();
    for (const room of [...this.#rooms.values()]) {
      for (const peer of [...room.members.keys()]) peer.close(code, reason);
    }
  }

  #committed(batch: StoredMessage[]): void {
    // Each room's share of the batch, in commit order, encoded once.
    const byRoom = new Map<string, Encoded[]>();
    for (const message of batch) {
      if (message.seq > this.#committedSeq) this.#committedSeq = message.seq;
      if (!this.#rooms.has(message.room)) continue;
      const frame = new Encoded(messageFrame(message));
      const frames = byRoom.get(message.room);
      if (frames) frames.push(frame);
      else byRoom.set(message.room, [frame]);
    }
    for (const [name, frames] of byRoom) {
      const room = this.#rooms.get(name);
      if (!room) continue;
      // A member's share leaves in one write, the same bytes for every member of the room.
      const run = frames.length === 1 ? (frames[0] as Encoded) : new EncodedRun(frames);
      for (const member of [...room.members.values()]) {
        // A drop announces the leaver to the room, which can drop another member in turn.
        if (room.members.get(member.peer) !== member) continue;
        // Slowness is judged before the share is handed over: on what the member still holds from
        // earlier batches, not on what is arriving now. A joining member holds the frames one by one.
        this.#deliver(member, run);
      }
    }
  }

  #broadcast(room: Room, frame: ServerFrame, except?: Peer): void {
    const encoded = new Encoded(frame);
    for (const member of room.members.values()) {
      if (member.peer !== except) this.#deliver(member, encoded);
    }
  }

  #deliverError(member: Member, code: ErrorCode, message: string): void {
    if (member.peer.optedIn) this.#deliver(member, errorFrame(code, message));
  }

  /**
   * Hand frames to one member; a slow or broken member is dropped, never waited for. A joining
   * member holds them (one by one: the join drops those its history already has) until it is live.
   */
  #deliver(member: Member, frames: Outgoing, checkSlow = true): void {
    const { peer } = member;
    if (member.pending) {
      for (const frame of frames.parts) {
        if (member.pending.length < this.#maxPending) member.pending.push(frame);
        else {
          this.#drop(peer, CloseCode.Slow, 'too many frames while joining');
          return;
        }
      }
      return;
    }
    if (checkSlow && peer.bufferedAmount() > this.#maxBuffered) {
      this.#drop(peer, CloseCode.Slow, 'slow consumer');
      return;
    }
    try {
      peer.send(frames);
    } catch (error) {
      this.#log.warn('send failed', { room: peer.room, user: peer.user, error: String(error) });
      this.#drop(peer, CloseCode.InternalError, 'send failed');
    }
  }

  #drop(peer: Peer, code: number, reason: string): void {
    this.#log.warn('dropping member', { room: peer.room, user: peer.user, reason });
    this.leave(peer);
    try {
      peer.close(code, reason);
    } catch {
      // The transport is already gone; leaving the room was all that mattered.
    }
  }
}

function errorFrame(code: ErrorCode, message: string): Encoded {
  return new Encoded({ type: 'error', code, message });
}

function sendError(peer: Peer, code: ErrorCode, message: string): void {
  try {
    peer.send(errorFrame(code, message));
  } catch {
    // Nothing more to tell a peer whose transport has failed.
  }
}

function presenceFrame(room: string, user: string, status: Status): ServerFrame {
  return { type: 'presence', room, user, status };
}

function messageFrame(m: StoredMessage): ServerFrame {
  return { type: 'message', room: m.room, sender: m.sender, text: m.text, id: m.id, ts: m.ts, seq: m.seq };
}

function welcomeFrame(server: string, peer: Peer, seq: number, complete: boolean | undefined): ServerFrame {
  const frame: ServerFrame = {
    type: 'welcome',
    protocol: PROTOCOL_VERSION,
    server,
    room: peer.room,
    user: peer.user,
    seq,
  };
  if (complete !== undefined) frame.complete = complete;
  return frame;
}
