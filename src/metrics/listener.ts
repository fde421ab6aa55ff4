// The metrics listener: /metrics in Prometheus text on a port of its own, never on the browser door.
// node:http, which Deno provides too, so one listener serves both runtimes.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Log } from '../log.ts';

/** A listening metrics endpoint. */
export interface MetricsListener {
  /** Where /metrics is served. */
  readonly url: string;
  close(): Promise<void>;
}

/** What /metrics answers with. */
export interface MetricsSource {
  text(): Promise<string>;
  readonly contentType: string;
}

/** Serve `GET /metrics` (and nothing else) on host:port; rejects with the listen error. */
export async function listenMetrics(
  source: MetricsSource,
  host: string,
  port: number,
  log: Log,
): Promise<MetricsListener> {
  const server = createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0];
    if (path !== '/metrics' || (request.method !== 'GET' && request.method !== 'HEAD')) {
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
      return;
    }
    source.text().then(
      (text) => {
        response.writeHead(200, { 'content-type': source.contentType, 'cache-control': 'no-store' });
        response.end(request.method === 'HEAD' ? undefined : text);
      },
      (error: unknown) => {
        log.error('metrics failed', { error: String(error) });
        response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('internal error\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (error) => log.error('metrics listener error', { error: String(error) }));
  const bound = server.address() as AddressInfo;
  const shown = bound.address.includes(':') ? `[${bound.address}]` : bound.address;
  return {
    url: `http://${shown}:${bound.port}/metrics`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      }),
  };
}
