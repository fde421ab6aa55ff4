// Shared by the baselines: a minimal room hub speaking runspec-room's protocol, its console door and CLI.
import { randomUUID } from 'node:crypto';
import { createServer as createNetServer, type Socket } from 'node:net';
import { parseArgs } from 'node:util';

/** A message as broadcast. */
export interface Msg {
  id: string;
  room: string;
  sender: string;
  text: string;
  ts: number;
  seq: number;
}

/** A frame serialised once; doors take the string, the UTF-8 bytes or the NDJSON line. */
export class Frame {
  readonly value: Record<string, unknown>;
  readonly json: string;
  #utf8: Buffer | undefined;
  #line: Buffer | undefined;

  constructor(value: Record<string, unknown>) {
    this.value = value;
    this.json = JSON.stringify(value);
  }

  get utf8(): Buffer {
    this.#utf8 ??= Buffer.from(this.json);
    return this.#utf8;
  }

  get line(): Buffer {
    this.#line ??= Buffer.from(`${this.json}\n`);
    return this.#line;
  }
}

/** One connection in a room. */
export interface Member {
  readonly user: string;
  readonly room: string;
  readonly optedIn: boolean;
  readonly wantsBackscroll: boolean;
  /** Reached by the room-wide sink (Socket.IO rooms) instead of one send per member. */
  readonly viaSink?: boolean;
  send(frame: Frame): void;
  buffered(): number;
  close(code: number, reason: string): void;
  /** Called once the member is live (after its catch-up). */
  attach?(): void;
}

/** Where messages are kept: append returns the sequence number (synchronously when nothing is awaited). */
export interface Store {
  append(m: Omit<Msg, 'seq'>): number | Promise<number>;
  recent(room: string, limit: number): Msg[] | Promise<Msg[]>;
}

/** A room-wide broadcast path for members that are not sent to one by one. */
export type Sink = (room: string, frame: Frame, except?: Member) => void;

interface Room {
  members: Set<Member>;
  users: Map<string, number>;
}

const MAX_BUFFERED = 1024 * 1024;

/** Keeps the last 50 messages of each room in memory: no persistence. */
export class MemoryStore implements Store {
  #seq = 0;
  readonly #rooms = new Map<string, Msg[]>();

  append(m: Omit<Msg, 'seq'>): number {
    const stored = { ...m, seq: ++this.#seq };
    let list = this.#rooms.get(m.room);
    if (!list) {
      list = [];
      this.#rooms.set(m.room, list);
    }
    list.push(stored);
    if (list.length > 100) list.splice(0, 50);
    return stored.seq;
  }

  recent(room: string, limit: number): Msg[] {
    return (this.#rooms.get(room) ?? []).slice(-limit);
  }
}

/** Rooms, presence, stamping and broadcast, as small as the protocol allows. */
export class MiniHub {
  readonly #rooms = new Map<string, Room>();
  readonly #store: Store;
  readonly #sink: Sink | undefined;
  #seq = 0;

  constructor(store: Store, sink?: Sink) {
    this.#store = store;
    this.#sink = sink;
  }

  async join(m: Member): Promise<void> {
    const history = m.wantsBackscroll ? await this.#store.recent(m.room, 50) : [];
    let room = this.#rooms.get(m.room);
    if (!room) {
      room = { members: new Set(), users: new Map() };
      this.#rooms.set(m.room, room);
    }
    if (m.optedIn) {
      m.send(
        new Frame({
          type: 'welcome',
          protocol: 2,
          server: 'baseline',
          room: m.room,
          user: m.user,
          seq: this.#seq,
        }),
      );
    }
    for (const user of room.users.keys()) {
      if (user !== m.user) m.send(new Frame({ type: 'presence', room: m.room, user, status: 'available' }));
    }
    for (const h of history) m.send(messageFrame(h));
    const count = room.users.get(m.user) ?? 0;
    room.users.set(m.user, count + 1);
    if (count === 0) {
      this.#broadcast(
        room,
        m.room,
        new Frame({ type: 'presence', room: m.room, user: m.user, status: 'available' }),
        m,
      );
    }
    room.members.add(m);
    m.attach?.();
  }

  leave(m: Member): void {
    const room = this.#rooms.get(m.room);
    if (!room?.members.delete(m)) return;
    const count = (room.users.get(m.user) ?? 1) - 1;
    if (count > 0) room.users.set(m.user, count);
    else {
      room.users.delete(m.user);
      this.#broadcast(
        room,
        m.room,
        new Frame({ type: 'presence', room: m.room, user: m.user, status: 'away' }),
      );
    }
    if (room.members.size === 0) this.#rooms.delete(m.room);
  }

  message(m: Member, text: string): void {
    const stamped = {
      id: randomUUID().replaceAll('-', ''),
      room: m.room,
      sender: m.user,
      text,
      ts: Date.now() / 1000,
    };
    const seq = this.#store.append(stamped);
    if (typeof seq === 'number') this.#publish({ ...stamped, seq });
    else
      seq.then(
        (s) => this.#publish({ ...stamped, seq: s }),
        (error: unknown) => process.stderr.write(`message not stored: ${String(error)}\n`),
      );
  }

  presence(m: Member, status: unknown): void {
    const room = this.#rooms.get(m.room);
    if (!room?.members.has(m)) return;
    const s = status === 'available' ? 'available' : 'away';
    this.#broadcast(room, m.room, new Frame({ type: 'presence', room: m.room, user: m.user, status: s }), m);
  }

  #publish(msg: Msg): void {
    if (msg.seq > this.#seq) this.#seq = msg.seq;
    const room = this.#rooms.get(msg.room);
    if (room) this.#broadcast(room, msg.room, messageFrame(msg));
  }

  #broadcast(room: Room, name: string, frame: Frame, except?: Member): void {
    for (const member of room.members) {
      if (member === except || member.viaSink) continue;
      if (member.buffered() > MAX_BUFFERED) {
        process.stderr.write(`dropping member room=${member.room} user=${member.user} reason=slow\n`);
        this.leave(member);
        member.close(4008, 'slow consumer');
        continue;
      }
      member.send(frame);
    }
    this.#sink?.(name, frame, except);
  }
}

function messageFrame(m: Msg): Frame {
  return new Frame({
    type: 'message',
    room: m.room,
    sender: m.sender,
    text: m.text,
    id: m.id,
    ts: m.ts,
    seq: m.seq,
  });
}

/** A client frame, loosely checked. */
export interface ClientFrame {
  type?: unknown;
  room?: unknown;
  user?: unknown;
  text?: unknown;
  status?: unknown;
  protocol?: unknown;
}

/** Hand a decoded client frame of a joined member to the hub. */
export function dispatch(hub: MiniHub, m: Member, frame: ClientFrame): void {
  if (frame.type === 'message' && typeof frame.text === 'string') hub.message(m, frame.text);
  else if (frame.type === 'presence') hub.presence(m, frame.status);
}

function parse(text: string): ClientFrame | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null ? (value as ClientFrame) : undefined;
  } catch {
    return undefined;
  }
}

/** Parse one JSON text frame; undefined when it is not an object. */
export const parseFrame = parse;

/** The NDJSON console door on 127.0.0.1: hello first, then messages and presence. */
export function startConsoleDoor(hub: MiniHub, port: number): Promise<number> {
  const server = createNetServer({ noDelay: true }, (socket: Socket) => {
    let member: Member | undefined;
    let rest = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      rest += chunk;
      let nl = rest.indexOf('\n');
      while (nl !== -1) {
        const frame = parse(rest.slice(0, nl));
        rest = rest.slice(nl + 1);
        nl = rest.indexOf('\n');
        if (!frame) continue;
        if (member) dispatch(hub, member, frame);
        else if (frame.type === 'hello' && typeof frame.room === 'string' && frame.room.trim()) {
          member = {
            user: typeof frame.user === 'string' && frame.user.trim() ? frame.user.trim() : 'unknown',
            room: frame.room.trim(),
            optedIn: frame.protocol === 2,
            wantsBackscroll: false,
            send: (f) => {
              socket.write(f.line);
            },
            buffered: () => socket.writableLength,
            close: (code) => (code === 4008 ? socket.destroy() : socket.end()),
          };
          void hub.join(member);
        }
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      if (member) hub.leave(member);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    });
  });
}

/** Flags every baseline takes. */
export function baselineArgs(): { port: number; ndjsonPort: number; db: string } {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      'ndjson-port': { type: 'string', default: '0' },
      db: { type: 'string', default: './baseline.db' },
    },
  });
  return { port: Number(values.port), ndjsonPort: Number(values['ndjson-port']), db: values.db };
}

/** Print the same start-up lines as runspec-room, so the runner finds ports the same way. */
export function announce(consolePort: number, httpPort: number): void {
  process.stderr.write(`console door listening address=127.0.0.1:${consolePort}\n`);
  process.stderr.write(`browser door listening url=http://127.0.0.1:${httpPort}\n`);
  process.stderr.write('baseline ready \n');
  const stop = (): void => process.exit(0);
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
