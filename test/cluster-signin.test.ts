// Sign-in sessions across the nodes of a cluster: a session made through one node opens sockets on
// another, and a sign-out on one node closes that session's sockets on every node within 2 s.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { CloseCode } from '../src/protocol/codes.ts';
import {
  hasRedis,
  postgresBin,
  startPostgres,
  startRedis,
  type TestPostgres,
  type TestRedis,
} from '../support/engines.ts';
import { frameLogOf, openWebSocket } from './helpers/clients.ts';
import { startIdp, type TestIdp } from './helpers/idp.ts';
import { CookieJar } from './helpers/jar.ts';
import { makePki, type TestPki } from './helpers/pki.ts';
import { requireUnderCi } from './helpers/process.ts';
import { freePort, tempDir } from './helpers/server.ts';
import { type Spawned, spawnServer } from './helpers/spawn.ts';

const bin = postgresBin();
requireUnderCi(
  'cluster sign-in',
  bin !== undefined && hasRedis(),
  'PostgreSQL (initdb) or redis-server is missing',
);

let pki: TestPki;
let idp: TestIdp;
let pg: TestPostgres;
let redis: TestRedis;
let first: Spawned;
let second: Spawned;
let origin: string;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  if (!bin || !hasRedis()) return;
  const tmp = await tempDir();
  cleanup = tmp.cleanup;
  pki = makePki(tmp.dir);
  const [port, otherPort] = await Promise.all([freePort(), freePort()]);
  // Both nodes answer for one public origin (a load balancer's); the session cookie is the host's.
  origin = `https://127.0.0.1:${port}`;
  idp = await startIdp(pki, [origin]);
  [pg, redis] = await Promise.all([startPostgres(bin), startRedis()]);
  const db = await pg.database('signin');
  const env = {
    CONSOLE_ROOM_OIDC_ISSUER: idp.issuer,
    CONSOLE_ROOM_OIDC_CLIENT_ID: idp.clientId,
    CONSOLE_ROOM_OIDC_CLIENT_SECRET: idp.clientSecret,
    CONSOLE_ROOM_SESSION_SECRET: 'x'.repeat(40),
    CONSOLE_ROOM_PUBLIC_URL: origin,
    NODE_EXTRA_CA_CERTS: pki.caFile,
  };
  const start = (p: number) =>
    spawnServer(
      [
        '--port',
        String(p),
        '--ndjson-port',
        '0',
        '--db',
        db,
        '--redis',
        redis.url,
        '--tls-cert',
        pki.certFile,
        '--tls-key',
        pki.keyFile,
      ],
      env,
    );
  [first, second] = await Promise.all([start(port), start(otherPort)]);
}, 60_000);

afterAll(async () => {
  await Promise.all([first?.stop(), second?.stop()]);
  await idp?.stop();
  await redis?.stop();
  await pg?.stop();
  await cleanup?.();
});

describe.runIf(bin && hasRedis())('sign-in on a cluster', () => {
  it('a sign-out on one node closes the session’s sockets on every node within 2 s', async () => {
    idp.user = 'carol';
    const jar = new CookieJar(pki.ca);
    await jar.follow(`${origin}/login`);
    const open = async (base: string): Promise<WebSocket> => {
      const ws = await openWebSocket(new URL('/ws?room=ops', base.replace('https', 'wss')), {
        headers: { cookie: jar.header(new URL(origin)) },
        origin,
        ca: pki.ca,
      });
      expect(ws).toBeInstanceOf(WebSocket);
      return ws as WebSocket;
    };
    const here = await open(first.url as string);
    const there = await open(second.url as string);
    const log = frameLogOf(there);
    expect(await log.waitFor((f) => f.type === 'welcome')).toMatchObject({
      user: 'carol',
      authenticated: true,
    });
    const closed = new Promise<{ code: number; at: number }>((resolve) =>
      there.once('close', (code) => resolve({ code, at: Date.now() })),
    );
    const signedOutAt = Date.now();
    const res = await jar.fetch(`${origin}/logout`, { method: 'POST', headers: { origin } });
    expect(res.status).toBe(303);
    const { code, at } = await closed;
    expect(code).toBe(CloseCode.Unauthorized);
    expect(at - signedOutAt).toBeLessThanOrEqual(2000);
    here.close();
  });
});
