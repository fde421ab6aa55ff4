// Test clients for both doors over real sockets, with a frame log that tests can wait on.
import { connect, type Socket } from 'node:net';
import * as v from 'valibot';
import WebSocket from 'ws';
import { ServerFrame } from '../../src/protocol/frames.ts';

/** Any server frame, as a test sees it. */
export type Frame = Record<string, unknown> & { type: string };

/** What the shared door suite needs of a client, whichever door it came through. */
export interface TestClient {
  readonly frames: Frame[];
  send(frame: object): void;
  /** Resolves with the first frame (from `from` on) that matches, or rejects after `ms`. */
  waitFor(match: (f: Frame) => boolean, ms?: number, from?: number): Promise<Frame>;
  /** Resolves once the connection has closed. */
  readonly closed: Promise<{ code?: number }>;
  close(): void;
}

class FrameLog {
  readonly frames: Frame[] = [];
  readonly #waiters = new Set<() => void>();

  push(frame: Frame): void {
    // Every frame a server sends must fit its schema: a stray field or a wrong type fails the test run.
    const checked = v.safeParse(ServerFrame, frame);
    if (!checked.success) {
      const issue = checked.issues[0];
      throw new Error(
        `server sent a frame outside the protocol (${issue.path?.map((p) => String(p.key)).join('.') ?? ''}: ${issue.message}): ${JSON.stringify(frame).slice(0, 500)}`,
      );
    }
    this.frames.push(frame);
    for (const wake of [...this.#waiters]) wake();
  }

  waitFor(match: (f: Frame) => boolean, ms = 3000, from = 0): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const found = this.frames.slice(from).find(match);
        if (found) {
          this.#waiters.delete(wake);
          clearTimeout(timer);
          resolve(found);
          return true;
        }
        return false;
      };
      const wake = (): void => void check();
      const timer = setTimeout(() => {
        this.#waiters.delete(wake);
        reject(
          new Error(`no matching frame within ${ms} ms; got ${JSON.stringify(this.frames).slice(0, 2000)}`),
        );
      }, ms);
      this.#waiters.add(wake);
      check();
    });
  }
}

/** A console on the NDJSON door; raw() writes bytes as they are. */
export interface ConsoleClient extends TestClient {
  readonly socket: Socket;
  raw(bytes: string | Uint8Array): void;
}

/** Connect to the console door; `hello` (if given) is sent first. */
export async function consoleClient(port: number, hello?: object): Promise<ConsoleClient> {
  const socket = connect({ port, host: '127.0.0.1' });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const log = new FrameLog();
  let buffer = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    let nl = buffer.indexOf('\n');
    while (nl !== -1) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (line.trim()) log.push(JSON.parse(line) as Frame);
      nl = buffer.indexOf('\n');
    }
  });
  socket.on('error', () => {});
  const closed = new Promise<{ code?: number }>((resolve) => socket.once('close', () => resolve({})));
  const client: ConsoleClient = {
    socket,
    frames: log.frames,
    send: (frame) => socket.write(`${JSON.stringify(frame)}\n`),
    raw: (bytes) => socket.write(bytes),
    waitFor: (match, ms, from) => log.waitFor(match, ms, from),
    closed,
    close: () => socket.end(),
  };
  if (hello) client.send(hello);
  return client;
}

/** The frames a WebSocket receives, in a log tests can wait on. */
export function frameLogOf(ws: WebSocket): Pick<TestClient, 'frames' | 'waitFor'> {
  const log = new FrameLog();
  ws.on('message', (data, isBinary) => {
    if (!isBinary) log.push(JSON.parse(String(data)) as Frame);
  });
  return { frames: log.frames, waitFor: (match, ms, from) => log.waitFor(match, ms, from) };
}

/** A browser on the WebSocket door (dev mode identity from the query string). */
export interface BrowserClient extends TestClient {
  readonly ws: WebSocket;
}

/** Open /ws?user=&room=[&since=]; resolves once the socket is open. */
export async function browserClient(
  baseUrl: string,
  user: string,
  room: string,
  since?: number,
): Promise<BrowserClient> {
  const url = new URL('/ws', baseUrl.replace(/^http/u, 'ws'));
  url.searchParams.set('user', user);
  url.searchParams.set('room', room);
  if (since !== undefined) url.searchParams.set('since', String(since));
  const ws = new WebSocket(url);
  const log = frameLogOf(ws);
  const closed = new Promise<{ code?: number }>((resolve) => ws.once('close', (code) => resolve({ code })));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return {
    ws,
    frames: log.frames,
    send: (frame) => ws.send(JSON.stringify(frame)),
    waitFor: log.waitFor,
    closed,
    close: () => ws.close(),
  };
}

/** Frames of one type. */
export const ofType = (frames: Frame[], type: string): Frame[] => frames.filter((f) => f.type === type);

let barriers = 0;

/**
 * Send a message and wait for its echo; resolves with the frames that arrived before it. Whatever
 * the server had to send this client before it took the message is among them, so a frame that is
 * not there never came (the way to show that something did NOT happen, without waiting a while).
 */
export async function barrier(client: TestClient, room?: string): Promise<Frame[]> {
  const text = `barrier ${++barriers}`;
  client.send({ type: 'message', text, ...(room === undefined ? {} : { room }) });
  const echo = await client.waitFor((f) => f.type === 'message' && f.text === text);
  return client.frames.slice(0, client.frames.indexOf(echo));
}

let refs = 0;

/** Send a frame with a fresh ref; resolves with the reply that carries it (protocol 2). */
export async function request(client: TestClient, frame: object, ms?: number): Promise<Frame> {
  const ref = `ref-${++refs}`;
  client.send({ ...frame, ref });
  return client.waitFor((f) => f.ref === ref, ms);
}

/**
 * Open a WebSocket; resolves with it once it is open, or with the HTTP status the upgrade was
 * refused with (0 if no answer came).
 */
export function openWebSocket(
  url: string | URL,
  options?: WebSocket.ClientOptions,
): Promise<WebSocket | number> {
  const ws = new WebSocket(url, options);
  return new Promise((resolve) => {
    ws.on('open', () => resolve(ws));
    ws.on('unexpected-response', (req, res) => {
      resolve(res.statusCode ?? 0);
      req.destroy();
    });
    ws.on('error', () => resolve(0));
  });
}

/** The HTTP status an upgrade gets: 101 when the socket opens (it is closed again), else the refusal's. */
export async function upgradeStatus(url: string | URL, options?: WebSocket.ClientOptions): Promise<number> {
  const ws = await openWebSocket(url, options);
  if (typeof ws === 'number') return ws;
  ws.close();
  return 101;
}
