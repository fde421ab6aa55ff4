// Two nodes of a cluster behind nginx, configured as docs/deployment.md shows it (TLS at nginx, the
// WebSocket upgrade passed on, X-Forwarded-For and -Proto set), with the upstream being both nodes:
// the page and /ws through it, one room across the nodes, and a stopped node's browsers back in
// through the proxy on the other.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { get } from 'node:https';
import { connect } from 'node:net';
import { join } from 'node:path';
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
import { frameLogOf, ofType, upgradeStatus } from './helpers/clients.ts';
import { makePki, type TestPki } from './helpers/pki.ts';
import { ROOT, requireUnderCi } from './helpers/process.ts';
import { freePort, tempDir } from './helpers/server.ts';
import { type Spawned, spawnServer } from './helpers/spawn.ts';

const NGINX = '/usr/sbin/nginx';
const haveNginx = (() => {
  try {
    execFileSync(NGINX, ['-v'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const bin = postgresBin();
requireUnderCi('load balancer', haveNginx, 'nginx is missing');
requireUnderCi(
  'load balancer',
  bin !== undefined && hasRedis(),
  'PostgreSQL (initdb) or redis-server is missing',
);

/** The nginx example of docs/deployment.md, as written there. */
function documentedServerBlock(): string {
  const doc = readFileSync(join(ROOT, 'docs/deployment.md'), 'utf8');
  const block = /\nnginx:\n\n```nginx\n([\s\S]*?)```/u.exec(doc)?.[1];
  if (!block) throw new Error('docs/deployment.md has no nginx example');
  return block;
}

/**
 * nginx in the foreground with everything in `dir`, serving the documented block on `port` with the
 * test certificate, passing to `upstreams`; resolves once it accepts connections.
 */
async function startNginx(dir: string, pki: TestPki, port: number, upstreams: string[]) {
  // Each of these must be in the example as written: a changed example fails here, not elsewhere.
  let server = documentedServerBlock();
  for (const [from, to] of [
    ['listen 443 ssl;', `listen 127.0.0.1:${port} ssl;`],
    ['/etc/ssl/room.crt', pki.certFile],
    ['/etc/ssl/room.key', pki.keyFile],
    ['proxy_pass http://127.0.0.1:8080;', 'proxy_pass http://nodes;'],
  ] as const) {
    expect(server, 'the nginx example of docs/deployment.md').toContain(from);
    server = server.replace(from, to);
  }
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `user root;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log notice;
daemon off;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream nodes {
${upstreams.map((u) => `    server ${u};`).join('\n')}
  }
${server}
}
`,
  );
  const proc: ChildProcess = spawn(NGINX, ['-c', conf, '-p', dir, '-e', join(dir, 'nginx-error.log')], {
    stdio: 'ignore',
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  for (let i = 0; ; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (up) break;
    if (proc.exitCode !== null || i > 100)
      throw new Error(`nginx did not start: ${readFileSync(join(dir, 'nginx-error.log'), 'utf8')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    async stop() {
      proc.kill('SIGQUIT');
      await exited;
    },
  };
}

/** GET over https, trusting the test CA: status and headers. */
function getHttps(url: string, ca: Buffer) {
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined> }>(
    (resolve, reject) => {
      get(url, { ca }, (res) => {
        res.resume();
        res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      }).once('error', reject);
    },
  );
}

describe.runIf(haveNginx && bin && hasRedis())(
  'two nodes behind nginx, configured as the deployment guide shows',
  () => {
    let dir: string;
    let cleanup: () => Promise<void>;
    let pki: TestPki;
    let pg: TestPostgres;
    let redis: TestRedis;
    let nodes: Spawned[];
    let nginx: { stop(): Promise<void> };
    let origin: string;

    beforeAll(async () => {
      ({ dir, cleanup } = await tempDir());
      pki = makePki(dir);
      [pg, redis] = await Promise.all([startPostgres(bin as string), startRedis()]);
      const db = await pg.database('behind');
      const port = await freePort();
      origin = `https://127.0.0.1:${port}`;
      // Dev mode: the proxy's origin is named, as the guide says.
      const node = () =>
        spawnServer(['--port', '0', '--ndjson-port', '0', '--db', db, '--redis', redis.url], {
          CONSOLE_ROOM_ALLOWED_ORIGINS: origin,
        });
      nodes = await Promise.all([node(), node()]);
      nginx = await startNginx(
        dir,
        pki,
        port,
        nodes.map((n) => new URL(n.url as string).host),
      );
    }, 90_000);

    afterAll(async () => {
      await nginx?.stop();
      await Promise.all((nodes ?? []).map((n) => n.stop('SIGKILL')));
      await redis?.stop();
      await pg?.stop();
      await cleanup?.();
    });

    /** A browser through the proxy, as the page opens it (its Origin is the proxy's). */
    async function browser(user: string, room: string, since?: number) {
      const url = new URL('/ws', origin.replace(/^https/u, 'wss'));
      url.search = new URLSearchParams({
        user,
        room,
        ...(since === undefined ? {} : { since: String(since) }),
      }).toString();
      const ws = new WebSocket(url, { ca: pki.ca, headers: { Origin: origin } });
      const log = frameLogOf(ws);
      const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
      await new Promise<void>((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
      });
      await log.waitFor((f) => f.type === 'joined' && f.room === room, 10_000);
      return {
        ws,
        ...log,
        closed,
        say: (text: string) => ws.send(JSON.stringify({ type: 'message', text })),
      };
    }

    /** Until `check` holds, asked every 20 ms for at most 10 s. */
    async function until(check: () => Promise<boolean>): Promise<void> {
      for (const end = Date.now() + 10_000; !(await check()); ) {
        if (Date.now() > end) throw new Error('timed out');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }

    const connectionsOf = async (n: Spawned): Promise<number> =>
      ((await (await fetch(new URL('/healthz', n.url))).json()) as { connections: number }).connections;

    it('serves the page through the proxy over https, with HSTS: the node believes the proxy’s X-Forwarded-Proto', async () => {
      const page = await getHttps(`${origin}/`, pki.ca);
      expect(page.status).toBe(200);
      expect(page.headers['content-type']).toMatch(/^text\/html/u);
      expect(page.headers['strict-transport-security']).toBe('max-age=31536000');
      // The node itself, asked directly over http, sends none.
      const direct = await fetch(new URL('/', (nodes[0] as Spawned).url));
      expect(direct.status).toBe(200);
      expect(direct.headers.get('strict-transport-security')).toBeNull();
    });

    it('refuses a WebSocket through the proxy from a page of another origin (403)', async () => {
      const url = new URL('/ws?user=mallory&room=lobby', origin.replace(/^https/u, 'wss'));
      expect(await upgradeStatus(url, { ca: pki.ca, headers: { Origin: 'https://evil.example' } })).toBe(403);
    });

    /** Until `p` has seen each of `users` present in `room`. */
    const seesPresent = (p: Awaited<ReturnType<typeof browser>>, room: string, users: string[]) =>
      p.waitFor(
        () =>
          users.every((u) => p.frames.some((f) => f.type === 'presence' && f.room === room && f.user === u)),
        10_000,
      );

    it('browsers through the proxy land on both nodes and are in one room: one order, everyone’s presence', async () => {
      const names = ['ann', 'ben', 'cat', 'dan'];
      const people = await Promise.all(names.map((u) => browser(u, 'lobby')));
      // nginx takes turns between the nodes: both hold some of them.
      const held = await Promise.all(nodes.map(connectionsOf));
      expect(
        held.every((count) => count > 0),
        `connections per node: ${held}`,
      ).toBe(true);
      for (const [i, p] of people.entries())
        await seesPresent(
          p,
          'lobby',
          names.filter((_, k) => k !== i),
        );
      for (const [i, p] of people.entries()) p.say(`hello ${i}`);
      for (const p of people) await p.waitFor(() => ofType(p.frames, 'message').length >= 4, 10_000);
      const orders = people.map((p) =>
        ofType(p.frames, 'message').map((f) => `${f.seq} ${f.sender}: ${f.text}`),
      );
      for (const order of orders) expect(order).toEqual(orders[0]);
      expect(ofType(people[0]?.frames ?? [], 'message').map((f) => f.seq)).toEqual([1, 2, 3, 4]);
      // Gone from both nodes before the next test counts what each holds.
      for (const p of people) p.ws.close();
      await Promise.all(people.map((p) => p.closed));
      await until(async () => (await Promise.all(nodes.map(connectionsOf))).every((n) => n === 0));
    }, 30_000);

    // Last: it stops a node.
    it('a node that stops closes its browsers with 1012 through the proxy; they come back through it to the other node and miss nothing', async () => {
      const names = ['eve', 'fay', 'gus', 'hal'];
      const people = await Promise.all(names.map((u) => browser(u, 'shift')));
      const [stopping, staying] = nodes as [Spawned, Spawned];
      const before = await connectionsOf(stopping);
      expect(before).toBeGreaterThan(0);
      // Who was closed, and with what code: all that were on the node stopped.
      const codes = new Map<string, number>();
      const allClosed = new Promise<void>((resolve) => {
        for (const [i, p] of people.entries())
          void p.closed.then((code) => {
            codes.set(names[i] as string, code);
            if (codes.size === before) resolve();
          });
      });
      await stopping.stop('SIGTERM');
      await allClosed;
      const moved = names.filter((u) => codes.has(u));
      expect(moved).toHaveLength(before);
      expect(moved.map((u) => codes.get(u))).toEqual(moved.map(() => CloseCode.ServiceRestart));

      // Someone left on the other node speaks while the others are away.
      const stayer = people[names.findIndex((u) => !codes.has(u))];
      if (!stayer) throw new Error('nobody stayed on the other node');
      stayer.say('while you were away');
      await stayer.waitFor((f) => f.type === 'message' && f.text === 'while you were away', 10_000);

      // Back through the same address, resuming from what each had seen: nginx passes them to the node left.
      const back = await Promise.all(
        moved.map((u) => {
          const seen = ofType(people[names.indexOf(u)]?.frames ?? [], 'message').map((f) => Number(f.seq));
          return browser(u, 'shift', Math.max(0, ...seen));
        }),
      );
      for (const b of back) {
        const missed = await b.waitFor(
          (f) => f.type === 'message' && f.text === 'while you were away',
          10_000,
        );
        expect(missed).toMatchObject({ seq: 1, sender: names[people.indexOf(stayer)] });
      }
      expect(await connectionsOf(staying)).toBe(names.length);
      for (const p of [...people, ...back]) p.ws.close();
    }, 60_000);
  },
);
