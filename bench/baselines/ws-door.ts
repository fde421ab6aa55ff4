// The baselines' browser door: a bare `ws` server at /ws?user=&room=, each frame encoded once per broadcast.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { dispatch, type Member, type MiniHub, parseFrame } from './core.ts';

/** Listen on 127.0.0.1:`port`; resolves with the bound port. */
export function startWsDoor(hub: MiniHub, port: number): Promise<number> {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 64 * 1024 });
  const server = createServer((_req, res) => {
    res.writeHead(404).end();
  });
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const user = url.searchParams.get('user')?.trim();
    const room = url.searchParams.get('room')?.trim();
    if (url.pathname !== '/ws' || !user || !room) {
      socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const member: Member = {
        user,
        room,
        optedIn: true,
        wantsBackscroll: true,
        send: (f) => ws.send(f.utf8, { binary: false }),
        buffered: () => ws.bufferedAmount,
        close: (code, reason) => ws.close(code, reason),
      };
      void hub.join(member);
      ws.on('message', (data, isBinary) => {
        if (isBinary) return;
        const frame = parseFrame(data.toString());
        if (frame) dispatch(hub, member, frame);
      });
      ws.on('error', () => {});
      ws.on('close', () => hub.leave(member));
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}
