// A TCP proxy the test controls, to break a client's link on purpose: cut every connection, and hold new
// ones (accepted, but not passed on) until released.
import { connect, createServer, type Socket } from 'node:net';

/** A running proxy in front of a port on 127.0.0.1. */
export interface TcpProxy {
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Drop every open connection, both sides, as a broken network would. */
  cut(): void;
  /** Accept new connections but pass nothing on until `release`. */
  hold(): void;
  release(): void;
  close(): Promise<void>;
}

/** Start a proxy to `targetPort`. */
export async function tcpProxy(targetPort: number): Promise<TcpProxy> {
  const open = new Set<Socket>();
  const waiting: Socket[] = [];
  let held = false;
  let accepted = 0;
  const pass = (client: Socket): void => {
    const upstream = connect({ host: '127.0.0.1', port: targetPort });
    open.add(upstream);
    for (const s of [client, upstream]) {
      s.on('error', () => {});
      s.on('close', () => {
        open.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.resume();
  };
  const server = createServer({ pauseOnConnect: true }, (client) => {
    accepted += 1;
    open.add(client);
    client.on('error', () => {});
    if (held) waiting.push(client);
    else pass(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    get accepted() {
      return accepted;
    },
    cut: () => {
      for (const s of [...open]) s.destroy();
      waiting.length = 0;
    },
    hold: () => {
      held = true;
    },
    release: () => {
      held = false;
      for (const client of waiting.splice(0)) if (!client.destroyed) pass(client);
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of [...open]) s.destroy();
        server.close(() => resolve());
      }),
  };
}
