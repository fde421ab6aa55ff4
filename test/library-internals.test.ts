// What src/web/library-internals.ts relies on inside ws. The test fails when an update of the library
// takes it away, so the change is seen here instead of as lost speed (sends fall back to ws.send).
import type { AddressInfo } from 'node:net';
import { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { tcpSocketOf } from '../src/web/library-internals.ts';

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
});
