// The browser door's count of connections per address, on a real Node HTTP server and real sockets:
// which connection makes room when an address is at its limit, and which never does.
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLog } from '../src/log.ts';
import { countPerAddress } from '../src/web/address-connections.ts';

const servers: Server[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    server.close();
  }
});

/** A server counting 2 connections per address: /slow is answered only when `release` is called. */
async function limitedServer(): Promise<{ port: number; release: () => void }> {
  const held: ServerResponse[] = [];
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    if (request.url === '/slow') held.push(response);
    else response.end('ok');
  });
  servers.push(server);
  const counted = countPerAddress(server, { limit: 2, trusted: () => false, log: silentLog });
  server.on('upgrade', (_request: IncomingMessage, socket: Socket) => counted.upgraded(socket));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    release: () => {
      for (const response of held.splice(0)) response.end('done');
    },
  };
}

async function open(port: number): Promise<Socket> {
  const socket = connect({ port, host: '127.0.0.1' });
  sockets.push(socket);
  socket.on('error', () => {});
  await once(socket, 'connect');
  return socket;
}

/** Send a request on a kept-alive connection; resolves once its status line (and headers) came. */
function ask(socket: Socket, path: string, extra = ''): Promise<string> {
  return new Promise((resolve) => {
    let answer = '';
    const onData = (chunk: Buffer): void => {
      answer += chunk.toString('latin1');
      if (!answer.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      resolve(answer.split('\r\n')[0] ?? '');
    };
    socket.on('data', onData);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`);
  });
}

/** Whether this side has heard the server close `socket`. */
const closedNow = (socket: Socket): boolean => socket.destroyed || socket.readableEnded;

describe('connections per address that are not WebSockets', () => {
  it('at the limit, the connection idle the longest makes room; one in a request or yet to ask never does', async () => {
    const { port } = await limitedServer();
    const waiting = await open(port);
    const idle = await open(port);
    expect(await ask(idle, '/')).toBe('HTTP/1.1 200 OK');
    const third = await open(port);
    await once(idle, 'close');
    expect(await ask(third, '/')).toBe('HTTP/1.1 200 OK');
    expect(closedNow(waiting)).toBe(false);
  });

  it('a connection with a request in progress is not closed to make room; with none idle the new one is', async () => {
    const { port, release } = await limitedServer();
    const busy = await open(port);
    busy.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n');
    const idle = await open(port);
    expect(await ask(idle, '/')).toBe('HTTP/1.1 200 OK');
    // Both count; the idle one goes for a new one, the busy one stays.
    const next = await open(port);
    await once(idle, 'close');
    const over = await open(port);
    await once(over, 'close');
    expect(closedNow(busy)).toBe(false);
    expect(closedNow(next)).toBe(false);
    // Answered, the busy one is idle in its turn and makes room.
    const answered = once(busy, 'data');
    release();
    await answered;
    const last = await open(port);
    await once(busy, 'close');
    expect(await ask(last, '/')).toBe('HTTP/1.1 200 OK');
  });

  it('an idle connection that has begun its next request is not closed to make room', async () => {
    const { port } = await limitedServer();
    const sending = await open(port);
    const idle = await open(port);
    expect(await ask(sending, '/')).toBe('HTTP/1.1 200 OK');
    expect(await ask(idle, '/')).toBe('HTTP/1.1 200 OK');
    // Answered first, `sending` has been idle longer, but half of its next request has come.
    sending.write('GET / HTTP/1.1\r\nHo');
    // The other is asked again after: answered, the server has read what `sending` wrote before.
    expect(await ask(idle, '/')).toBe('HTTP/1.1 200 OK');
    const next = await open(port);
    await once(idle, 'close');
    sending.write('st: x\r\n\r\n');
    const [answer] = (await once(sending, 'data')) as [Buffer];
    expect(answer.toString('latin1').split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
    expect(closedNow(next)).toBe(false);
  });

  it('a connection that upgrades no longer counts', async () => {
    const { port } = await limitedServer();
    const upgraded = await open(port);
    upgraded.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    const other = await open(port);
    expect(await ask(other, '/')).toBe('HTTP/1.1 200 OK');
    const third = await open(port);
    // `other` was the only idle one: the upgraded connection was not counted, so nothing was closed.
    expect(await ask(third, '/')).toBe('HTTP/1.1 200 OK');
    expect(closedNow(other)).toBe(false);
    expect(closedNow(upgraded)).toBe(false);
  });
});
