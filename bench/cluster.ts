// One node (libSQL file) against two nodes (PostgreSQL + Redis), same workloads, side by side, with
// each process's CPU from /proc so the table says what limited each run. Everything runs on this
// machine: the load generator (this process), the nodes, PostgreSQL and Redis share its cores.
// Usage: npm run bench:cluster -- [--seconds 5] [--setups one,pg,cluster] [--only 0,1,2]
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import WebSocket from 'ws';
import { postgresBin, startPostgres, startRedis } from '../support/engines.ts';
import { type ServerProcess, spawnServerProcess } from '../support/server-process.ts';
import { cpuSeconds } from './proc.ts';
import { OURS_ENV } from './servers.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    setups: { type: 'string', default: 'one,pg,cluster' },
    only: { type: 'string' },
  },
});
const seconds = Number(values.seconds);
const setups = new Set(values.setups.split(','));

/** A setup under test: its nodes, and the other processes whose CPU counts. */
interface Setup {
  name: string;
  nodes: ServerProcess[];
  engines: Array<{ name: string; pids: () => number[] }>;
  /** PostgreSQL's count of committed transactions in the nodes' database. */
  commits?: () => Promise<number>;
}

/** What one workload measured. */
interface Figures {
  messagesPerSecond: number;
  deliveriesPerSecond: number;
  echo: { p50: number; p99: number };
  delivery: { p50: number; p99: number };
  cpu: Record<string, number>;
  /** PostgreSQL transactions committed a second, where there is PostgreSQL. */
  commitsPerSecond?: number;
}

const pct = (sorted: number[], p: number): number =>
  Number((sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0).toFixed(1));

/** The postmaster and its backends. */
function processTree(root: number): number[] {
  const out = [root];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/u.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.split(') ')[1]?.split(' ')[1]) === root) out.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

function cpuOf(pids: Array<number | string>): number {
  let total = 0;
  for (const pid of pids) {
    try {
      total += cpuSeconds(pid);
    } catch {
      // A backend that ended meanwhile takes its CPU with it; the others still count.
    }
  }
  return total;
}

/** CPU of every process of a setup, and of this load generator, over a stretch. */
function cpuMeter(setup: Setup): () => Record<string, number> {
  // A node's event loop is its main thread; the writer thread (a libSQL file) is the rest.
  const groups: Array<[string, () => Array<number | string>]> = [
    ...setup.nodes.flatMap(
      (n, i): Array<[string, () => Array<number | string>]> => [
        [`node ${i + 1}`, () => [n.proc.pid as number]],
        [`node ${i + 1} loop`, () => [`${n.proc.pid}/task/${n.proc.pid}`]],
      ],
    ),
    ...setup.engines.map((e): [string, () => Array<number | string>] => [e.name, e.pids]),
  ];
  const start = groups.map(([, pids]) => cpuOf(pids()));
  const self0 = process.cpuUsage();
  const t0 = performance.now();
  return () => {
    const elapsed = (performance.now() - t0) / 1000;
    const out: Record<string, number> = {};
    groups.forEach(([name, pids], i) => {
      out[name] = Math.round(((cpuOf(pids()) - (start[i] ?? 0)) / elapsed) * 100);
    });
    const self = process.cpuUsage(self0);
    out['load generator'] = Math.round(((self.user + self.system) / 1e6 / elapsed) * 100);
    return out;
  };
}

const body = 'x'.repeat(200);

/** A console that sends `room` messages and reads its echoes. */
async function sender(node: ServerProcess, room: string, user: string): Promise<Socket> {
  const sock = connect(node.consolePort, '127.0.0.1');
  await new Promise((resolve) => sock.once('connect', resolve));
  sock.write(`${JSON.stringify({ type: 'hello', room, user })}\n`);
  return sock;
}

async function browser(node: ServerProcess, room: string, user: string): Promise<WebSocket> {
  const ws = new WebSocket(`${node.url?.replace('http', 'ws')}/ws?user=${user}&room=${room}`);
  // Past its welcome and backscroll; the frames may come in the same read as the upgrade's answer.
  await new Promise((resolve, reject) => {
    ws.on('message', (d) => String(d).startsWith('{"type":"joined"') && resolve(0));
    ws.once('error', reject);
  });
  return ws;
}

/**
 * `rooms` rooms, each with `members` browsers spread over the nodes and one console sender (on the
 * next node in turn) that keeps `window` messages awaiting their echo (closed loop), or sends `rate`
 * a second when given (open loop). Latency is from send to echo, and from send to each delivery.
 */
async function workload(
  setup: Setup,
  options: { rooms: number; members: number; window: number; rate?: number; tag: string },
): Promise<Figures> {
  const sentAt = new Map<string, number>();
  const echo: number[] = [];
  const delivery: number[] = [];
  let echoed = 0;
  let delivered = 0;
  let measuring = false;
  let stopAt = 0;
  const closers: Array<() => void> = [];
  const timers: Array<ReturnType<typeof setInterval>> = [];
  for (let r = 0; r < options.rooms; r++) {
    const room = `${options.tag}-${r}`;
    for (let m = 0; m < options.members; m++) {
      const ws = await browser(setup.nodes[(r + m + 1) % setup.nodes.length] as ServerProcess, room, `b${m}`);
      ws.on('message', (data) => {
        const text = String(data);
        if (!text.startsWith('{"type":"message"')) return;
        const key = /"text":"([^ ]+) /u.exec(text)?.[1] ?? '';
        const t0 = sentAt.get(key);
        if (measuring && t0 !== undefined) {
          delivered += 1;
          delivery.push(performance.now() - t0);
        }
      });
      closers.push(() => ws.terminate());
    }
    const sock = await sender(setup.nodes[r % setup.nodes.length] as ServerProcess, room, 'sender');
    closers.push(() => sock.destroy());
    let n = 0;
    let inflight = 0;
    const sendOne = (): void => {
      const key = `${r}.${n++}`;
      sentAt.set(key, performance.now());
      sock.write(`${JSON.stringify({ type: 'message', text: `${key} ${body}` })}\n`);
      inflight += 1;
    };
    createInterface({ input: sock }).on('line', (line) => {
      if (!line.startsWith('{"type":"message"')) return;
      const key = /"text":"([^ ]+) /u.exec(line)?.[1] ?? '';
      inflight -= 1;
      const t0 = sentAt.get(key);
      if (measuring && t0 !== undefined) {
        echoed += 1;
        echo.push(performance.now() - t0);
      }
      if (options.rate === undefined && performance.now() < stopAt)
        while (inflight < options.window) sendOne();
    });
    if (options.rate === undefined) {
      stopAt = performance.now() + (seconds + 1) * 1000;
      while (inflight < options.window) sendOne();
    } else timers.push(setInterval(sendOne, 1000 / options.rate));
  }
  stopAt = performance.now() + (seconds + 1) * 1000;
  await new Promise((resolve) => setTimeout(resolve, 1000));
  measuring = true;
  const commits0 = await setup.commits?.();
  const meter = cpuMeter(setup);
  const t0 = performance.now();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = meter();
  measuring = false;
  // The statistics reach pg_stat_database within a second.
  if (setup.commits) await new Promise((resolve) => setTimeout(resolve, 1500));
  const commits1 = await setup.commits?.();
  for (const t of timers) clearInterval(t);
  for (const close of closers) close();
  echo.sort((a, b) => a - b);
  delivery.sort((a, b) => a - b);
  return {
    messagesPerSecond: Math.round(echoed / elapsed),
    deliveriesPerSecond: Math.round(delivered / elapsed),
    echo: { p50: pct(echo, 0.5), p99: pct(echo, 0.99) },
    delivery: { p50: pct(delivery, 0.5), p99: pct(delivery, 0.99) },
    cpu,
    ...(commits0 === undefined || commits1 === undefined
      ? {}
      : { commitsPerSecond: Math.round((commits1 - commits0) / elapsed) }),
  };
}

const WORKLOADS = [
  { name: 'room of 2, 20 messages a second', rooms: 1, members: 1, window: 1, rate: 20 },
  { name: 'one room of 10 browsers, one sender, 256 in flight', rooms: 1, members: 10, window: 256 },
  { name: '20 rooms of 4 browsers, a sender each, 32 in flight', rooms: 20, members: 4, window: 32 },
] as const;

const chosen = values.only === undefined ? undefined : new Set(values.only.split(',').map(Number));

async function run(setup: Setup): Promise<Array<Figures | undefined>> {
  const out: Array<Figures | undefined> = [];
  for (const [i, w] of WORKLOADS.entries()) {
    out.push(chosen && !chosen.has(i) ? undefined : await workload(setup, { ...w, tag: `w${i}` }));
    // What the last workload left (commits, vacuum) settles before the next one.
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
  return out;
}

const node = (args: string[]): Promise<ServerProcess> =>
  spawnServerProcess(process.execPath, ['dist/main.js', '--port', '0', '--ndjson-port', '0', ...args], {
    env: { ...OURS_ENV, CONSOLE_ROOM_LOG_LEVEL: 'info' },
    ownGroup: false,
    maxOutput: 100_000,
    readyMs: 60_000,
  });

const bin = postgresBin();
if (!bin)
  throw new Error('PostgreSQL (initdb under /usr/lib/postgresql) is needed: apt-get install postgresql');
const dir = mkdtempSync(join(tmpdir(), 'runspec-bench-cluster-'));
const results: Array<{ setup: string; figures: Array<Figures | undefined> }> = [];
try {
  if (setups.has('one')) {
    const single = await node(['--db', join(dir, 'one.db')]);
    results.push({
      setup: 'one node, libSQL file',
      figures: await run({ name: 'one node', nodes: [single], engines: [] }),
    });
    await single.stop('SIGTERM');
  }
  if (setups.has('pg') || setups.has('cluster')) {
    const [pg, redis] = await Promise.all([startPostgres(bin), startRedis()]);
    const counter = postgres(`postgres://postgres@127.0.0.1:${pg.port}/postgres`, {
      max: 1,
      onnotice: () => {},
    });
    const commits = (name: string) => async (): Promise<number> => {
      const [row] = await counter`SELECT xact_commit FROM pg_stat_database WHERE datname = ${name}`;
      return Number(row?.xact_commit ?? 0);
    };
    const engines = [
      { name: 'PostgreSQL', pids: () => processTree(pg.pid()) },
      { name: 'Redis', pids: () => [redis.pid() as number] },
    ];
    try {
      if (setups.has('pg')) {
        const db = await pg.database('bench_one');
        const one = await node(['--db', db]);
        results.push({
          setup: 'one node, PostgreSQL',
          figures: await run({
            name: 'pg',
            nodes: [one],
            engines: engines.slice(0, 1),
            commits: commits('bench_one'),
          }),
        });
        await one.stop('SIGTERM');
      }
      if (setups.has('cluster')) {
        const db = await pg.database('bench');
        const nodes = await Promise.all([1, 2].map(() => node(['--db', db, '--redis', redis.url])));
        results.push({
          setup: 'two nodes, PostgreSQL + Redis',
          figures: await run({ name: 'two nodes', nodes, engines, commits: commits('bench') }),
        });
        await Promise.all(nodes.map((n) => n.stop('SIGTERM')));
      }
    } finally {
      await counter.end();
      await redis.stop();
      await pg.stop();
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

for (const [i, w] of WORKLOADS.entries()) {
  console.log(`\n${w.name} (${seconds} s)`);
  console.log(
    '| setup | messages/s | deliveries/s | echo p50 / p99 ms | delivery p50 / p99 ms | PostgreSQL commits/s | CPU % of a core |',
  );
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const r of results) {
    const f = r.figures[i];
    if (!f) continue;
    const cpu = Object.entries(f.cpu)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    console.log(
      `| ${r.setup} | ${f.messagesPerSecond} | ${f.deliveriesPerSecond} | ${f.echo.p50} / ${f.echo.p99} | ${f.delivery.p50} / ${f.delivery.p99} | ${f.commitsPerSecond ?? ''} | ${cpu}, all ${Object.entries(
        f.cpu,
      )
        .filter(([k]) => !k.endsWith(' loop'))
        .reduce((a, [, v]) => a + v, 0)} |`,
    );
  }
}
console.log(`\n${JSON.stringify(results)}`);
