// What src/web/library-internals.ts relies on inside ws and @hono/node-server. Each test fails when an
// update of the library takes it away, so the change is seen here instead of as lost memory or speed.
import { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Socket } from 'node:net';
import { serve, upgradeWebSocket } from '@hono/node-server';
import { type Context, Hono } from 'hono';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { leanUpgrade, standInMisses, tcpSocketOf } from '../src/web/library-internals.ts';

const closers: Array<() => void> = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

/** A node-server with one WebSocket route whose context the test can see. */
async function server(route: (c: Context) => Promise<Response | undefined>) {
  const app = new Hono();
  app.get('/ws', async (c) => (await route(c)) ?? new Response('not an upgrade', { status: 400 }));
  const wss = new WebSocketServer({ noServer: true });
  const http = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0, websocket: { server: wss } });
  await new Promise<void>((resolve) => http.once('listening', resolve));
  closers.push(() => {
    for (const ws of wss.clients) ws.terminate();
    http.close();
  });
  return `ws://127.0.0.1:${(http.address() as AddressInfo).port}/ws`;
}

describe('library internals', () => {
  it('ws keeps the TCP socket under a server WebSocket in _socket', async () => {
    let serverSide: WebSocket | undefined;
    const opened = new Promise<void>((resolve) => {
      void server(async (c) =>
        upgradeWebSocket(c, {
          onOpen: (_event, ws) => {
            serverSide = ws.raw as WebSocket;
            resolve();
          },
        }),
      ).then((url) => {
        const client = new WebSocket(url);
        client.on('error', () => {});
        closers.push(() => client.terminate());
      });
    });
    await opened;
    expect(tcpSocketOf(serverSide as WebSocket)).toBeInstanceOf(Socket);
  });

  it('node-server upgrades with only the stand-in (Upgrade header, URL, env) and keeps the request in env.incoming until open', async () => {
    const misses = standInMisses.count;
    const seen: { before?: unknown; after?: unknown; message?: string } = {};
    const done = new Promise<void>((resolve) => {
      void server(async (c) => {
        const env = c.env as { incoming?: unknown };
        seen.before = env.incoming;
        return leanUpgrade(upgradeWebSocket, c, {
          onOpen: () => {
            seen.after = env.incoming;
          },
          onMessage: (event, ws) => {
            seen.message = String(event.data);
            ws.send('back');
          },
          onClose: () => resolve(),
        });
      }).then((url) => {
        const client = new WebSocket(url);
        client.on('open', () => client.send('hello'));
        client.on('message', () => client.close());
      });
    });
    await done;
    expect(seen.before).toBeInstanceOf(IncomingMessage);
    expect(seen.after).toBeUndefined();
    expect(seen.message).toBe('hello');
    // Nothing beyond the stand-in was asked for: the helper still reads only what it is given.
    expect(standInMisses.count).toBe(misses);
  });
});
