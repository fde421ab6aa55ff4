// Answers that change from one request to the next (/healthz, /me) tell every cache not to keep them.
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Hub } from '../src/hub/hub.ts';
import type { Transcript } from '../src/hub/transcript.ts';
import { bareApp } from './helpers/app.ts';
import { startTestServer, type TestServer, tempDir } from './helpers/server.ts';

let server: TestServer;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  const tmp = await tempDir();
  cleanup = tmp.cleanup;
  server = await startTestServer(`${tmp.dir}/room.db`);
});

afterAll(async () => {
  await server.stop();
  await cleanup();
});

/** The app alone with a given database check and Hub, served on a real socket; returns its URL and a stop. */
async function serveApp(
  checkDatabase: () => Promise<void>,
  hub = new Hub({ transcript: {} as Transcript }),
): Promise<{ url: string; stop: () => Promise<void> }> {
  const { app } = bareApp({ hub, checkDatabase });
  const http = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => http.once('listening', resolve));
  const { port } = http.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    stop: () => new Promise((resolve) => http.close(() => resolve())),
  };
}

describe('answers that must not be cached', () => {
  it('/healthz says no-store when healthy', async () => {
    const res = await fetch(`${server.url}/healthz`);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
  });

  it('/healthz says no-store when the database is down, slow, or the server is stopping', async () => {
    const hub = new Hub({ transcript: {} as Transcript });
    await hub.shutdown();
    for (const [check, h] of [
      [() => Promise.reject(new Error('disk gone')), undefined],
      [() => new Promise<void>(() => {}), undefined],
      [() => Promise.resolve(), hub],
    ] as const) {
      const app = await serveApp(check, h);
      try {
        const res = await fetch(`${app.url}/healthz`);
        expect(res.status).toBe(503);
        expect(res.headers.get('cache-control')).toBe('no-store');
      } finally {
        await app.stop();
      }
    }
  });

  it('/me says no-store in dev mode', async () => {
    const res = await fetch(`${server.url}/me`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ mode: 'dev' });
    expect(res.headers.get('cache-control')).toBe('no-store');
  });
});
