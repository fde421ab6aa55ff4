// Baseline (c): a Socket.IO room server (browsers) plus the same NDJSON console door, no persistence.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import { installAgent } from '../agent.ts';
import {
  announce,
  baselineArgs,
  type ClientFrame,
  dispatch,
  type Member,
  MemoryStore,
  MiniHub,
  startConsoleDoor,
} from './core.ts';

installAgent({ eventLoopDelay: true });
const args = baselineArgs();
const http = createServer();
const io = new Server(http, { transports: ['websocket'], serveClient: false, perMessageDeflate: false });
const sioIds = new WeakMap<Member, string>();

// Room broadcasts go through io.to(room).emit: Socket.IO encodes the packet once per broadcast.
const hub = new MiniHub(new MemoryStore(), (room, frame, except) => {
  const id = except ? sioIds.get(except) : undefined;
  (id ? io.to(room).except(id) : io.to(room)).emit('frame', frame.value);
});

io.on('connection', (socket) => {
  const user = String(socket.handshake.query.user ?? '').trim();
  const room = String(socket.handshake.query.room ?? '').trim();
  if (!user || !room) {
    socket.disconnect(true);
    return;
  }
  const member: Member = {
    user,
    room,
    optedIn: true,
    wantsBackscroll: true,
    viaSink: true,
    send: (f) => {
      socket.emit('frame', f.value);
    },
    buffered: () => 0,
    close: () => socket.disconnect(true),
    attach: () => {
      void socket.join(room);
    },
  };
  sioIds.set(member, socket.id);
  void hub.join(member);
  socket.on('frame', (frame: ClientFrame) => {
    if (typeof frame === 'object' && frame !== null) dispatch(hub, member, frame);
  });
  socket.on('disconnect', () => hub.leave(member));
});

const consolePort = await startConsoleDoor(hub, args.ndjsonPort);
await new Promise<void>((resolve) => http.listen(args.port, '127.0.0.1', resolve));
announce(consolePort, (http.address() as AddressInfo).port);
