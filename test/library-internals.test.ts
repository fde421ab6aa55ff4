// What src/web/library-internals.ts relies on inside ws and Node. The tests fail when an update takes
// it away, so the change is seen here instead of as lost speed (sends fall back to ws.send) or as
// connections over TLS that never give their place back under the per-address count.
import type { AddressInfo } from 'node:net';
import { Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket, connect as tlsConnect } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { tcpSocketOf, tcpSocketUnder } from '../src/web/library-internals.ts';
import { makePki } from './helpers/pki.ts';
import { tempDir } from './helpers/server.ts';

const closers: Array<() => void> = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

describe('library internals', () => {
  it('ws keeps the TCP socket under a server WebSocket in _socket', async () => {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    closers.push(() => wss.close());
    await new Promise<void>((resolve) => wss.once('listening', resolve));
    const serverSide = new Promise<WebSocket>((resolve) => wss.once('connection', resolve));
    const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
    client.on('error', () => {});
    closers.push(() => client.terminate());
    expect(tcpSocketOf(await serverSide)).toBeInstanceOf(Socket);
  });

  it('Node keeps the TCP socket under a server-side TLS socket in _parent', async () => {
    const tmp = await tempDir();
    closers.push(() => void tmp.cleanup());
    const pki = makePki(tmp.dir);
    const server = createTlsServer({ cert: pki.cert, key: pki.key });
    closers.push(() => server.close());
    const raw = new Promise<Socket>((resolve) => server.once('connection', resolve));
    const secure = new Promise<TLSSocket>((resolve) => server.once('secureConnection', resolve));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = tlsConnect({
      port: (server.address() as AddressInfo).port,
      host: '127.0.0.1',
      ca: pki.ca,
      servername: 'localhost',
    });
    client.on('error', () => {});
    closers.push(() => client.destroy());
    const tls = await secure;
    expect(tcpSocketUnder(tls)).toBe(await raw);
    // A plain socket is its own.
    expect(tcpSocketUnder(await raw)).toBe(await raw);
  });
});
