// Load-generator connections for every door: NDJSON console, WebSocket browser, Socket.IO browser.
import { connect } from 'node:net';
import { io } from 'socket.io-client';
import WebSocket from 'ws';
import { frameKind, type Stamp, stampFromBytes, stampFromText } from './text.ts';

/** Where a server's doors are, and whether its browser door is Socket.IO. */
export interface Target {
  consolePort: number;
  httpUrl: string;
  socketIo: boolean;
}

/** What a connection reports back to its owner. */
export interface Handlers {
  /** A message frame whose text carries a stamp (or undefined when it does not). */
  onMessage(stamp: Stamp | undefined): void;
  onWelcome(): void;
  onClose(code: number): void;
  /** The transport is open (TCP connected, WebSocket upgraded, Socket.IO connected). */
  onOpen?(): void;
}

/** An open, joined connection. */
export interface Conn {
  send(text: string): void;
  /** Stop reading from the socket (the kernel buffers fill, then the server's do). */
  pause(): void;
  resume(): void;
  close(): void;
}

/** Open a connection of `door` into `room` as `user`; resolves once the server's welcome arrives. */
export function open(
  target: Target,
  door: 'console' | 'browser',
  room: string,
  user: string,
  handlers: Handlers,
): Promise<Conn> {
  if (door === 'console') return openConsole(target, room, user, handlers);
  return target.socketIo
    ? openSocketIo(target, room, user, handlers)
    : openBrowser(target, room, user, handlers);
}

function welcomed(handlers: Handlers, resolve: () => void): Handlers {
  let done = false;
  return {
    onMessage: (s) => handlers.onMessage(s),
    onClose: (code) => handlers.onClose(code),
    onOpen: () => handlers.onOpen?.(),
    onWelcome: () => {
      handlers.onWelcome();
      if (!done) {
        done = true;
        resolve();
      }
    },
  };
}

function openConsole(target: Target, room: string, user: string, handlers: Handlers): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port: target.consolePort, host: '127.0.0.1', noDelay: true });
    const conn: Conn = {
      send: (text) => {
        socket.write(`{"type":"message","room":${JSON.stringify(room)},"text":"${text}"}\n`);
      },
      pause: () => socket.pause(),
      resume: () => socket.resume(),
      close: () => socket.destroy(),
    };
    const h = welcomed(handlers, () => resolve(conn));
    let rest: Buffer | undefined;
    socket.on('connect', () => {
      h.onOpen?.();
      socket.write(`${JSON.stringify({ type: 'hello', room, user, protocol: 2 })}\n`);
    });
    socket.on('data', (chunk: Buffer) => {
      const buf = rest ? Buffer.concat([rest, chunk]) : chunk;
      let start = 0;
      for (;;) {
        const nl = buf.indexOf(0x0a, start);
        if (nl === -1) break;
        const kind = frameKind(buf, start);
        if (kind === 'message') h.onMessage(stampFromBytes(buf, start, nl));
        else if (kind === 'welcome') h.onWelcome();
        start = nl + 1;
      }
      rest = start < buf.length ? buf.subarray(start) : undefined;
    });
    socket.on('error', reject);
    socket.on('close', () => h.onClose(socket.errored ? 1006 : 1000));
  });
}

function openBrowser(target: Target, room: string, user: string, handlers: Handlers): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const q = new URLSearchParams({ user, room });
    const ws = new WebSocket(`${target.httpUrl.replace(/^http/u, 'ws')}/ws?${q}`, {
      perMessageDeflate: false,
    });
    const conn: Conn = {
      send: (text) => ws.send(`{"type":"message","text":"${text}"}`),
      pause: () => ws.pause(),
      resume: () => ws.resume(),
      close: () => ws.terminate(),
    };
    const h = welcomed(handlers, () => resolve(conn));
    ws.on('open', () => h.onOpen?.());
    ws.on('message', (data: Buffer) => {
      const kind = frameKind(data);
      if (kind === 'message') h.onMessage(stampFromBytes(data, 0, data.length));
      else if (kind === 'welcome') h.onWelcome();
    });
    ws.on('error', reject);
    ws.on('close', (code) => h.onClose(code));
  });
}

interface SioFrame {
  type?: string;
  text?: string;
}

function openSocketIo(target: Target, room: string, user: string, handlers: Handlers): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const socket = io(target.httpUrl, {
      transports: ['websocket'],
      query: { user, room },
      reconnection: false,
      forceNew: true,
    });
    const conn: Conn = {
      send: (text) => {
        socket.emit('frame', { type: 'message', text });
      },
      pause: () => {
        // engine.io-client exposes the underlying ws; stop reading it.
        (socket.io.engine.transport as unknown as { ws?: WebSocket }).ws?.pause();
      },
      resume: () => (socket.io.engine.transport as unknown as { ws?: WebSocket }).ws?.resume(),
      close: () => socket.disconnect(),
    };
    const h = welcomed(handlers, () => resolve(conn));
    socket.on('connect', () => h.onOpen?.());
    socket.on('frame', (f: SioFrame) => {
      if (f.type === 'message') h.onMessage(typeof f.text === 'string' ? stampFromText(f.text) : undefined);
      else if (f.type === 'welcome') h.onWelcome();
    });
    socket.on('connect_error', reject);
    socket.on('disconnect', (reason) => h.onClose(reason === 'io client disconnect' ? 1000 : 1006));
  });
}
