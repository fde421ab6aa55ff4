// `npm run bench`: starts each server as its own process and drives it over real sockets; table + JSON.
// Usage: npm run bench -- [--quick] [--only room100,join] [--servers ours,plain] [--help]
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { diskSync } from './disk.ts';
import { LoadGen } from './loadgen/pool.ts';
import { openFileLimit } from './proc.ts';
import { checkTargets, type Results, render, renderTargets } from './report.ts';
import {
  OURS_ENV,
  SERVER_KINDS,
  SERVER_LABELS,
  type ServerHandle,
  type ServerKind,
  startServer,
  useEarlierBuild,
} from './servers.ts';
import * as w from './workloads.ts';

const WORKLOADS = ['floor', 'lowload', 'room100', 'room1000', 'rooms', 'slow', 'idle', 'join'] as const;
type Workload = (typeof WORKLOADS)[number];

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    servers: { type: 'string' },
    earlier: { type: 'string' },
    workers: { type: 'string', default: '2' },
    'warmup-ms': { type: 'string' },
    'measure-ms': { type: 'string' },
    'floor-rate': { type: 'string', default: '20' },
    'lowload-rate': { type: 'string', default: '2000' },
    'lowload-rooms': { type: 'string', default: '500' },
    'lowload-seconds': { type: 'string' },
    'floor-seconds': { type: 'string' },
    'room100-steps': { type: 'string' },
    'room1000-steps': { type: 'string' },
    'rooms-steps': { type: 'string' },
    'slow-rate': { type: 'string' },
    'slow-seconds': { type: 'string' },
    'slow-servers': { type: 'string' },
    'idle-steps': { type: 'string' },
    'idle-rounds': { type: 'string' },
    'join-messages': { type: 'string' },
    joins: { type: 'string' },
    'cpu-prof': { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});

if (flags.help) {
  process.stdout.write(`npm run bench -- [flags]
  --quick                 ~2-minute smoke run
  --only LIST             workloads: ${WORKLOADS.join(',')}
  --servers LIST          servers: ${SERVER_KINDS.join(',')} (earlier: only with --earlier; delayed: lowload only)
  --earlier DIR           also measure an earlier build: a checkout of it with dist/ built and node_modules
  --workers N             load-generator worker threads (2)
  --warmup-ms, --measure-ms        per step
  --room100-steps, --room1000-steps, --rooms-steps   offered deliveries/s, comma-separated
  --floor-rate, --floor-seconds    floor workload
  --lowload-rate MSG/S, --lowload-rooms N, --lowload-seconds S   lowload (500 rooms of 4 at 2,000 msg/s)
  --slow-rate MSG/S, --slow-seconds  slow workload (default rate: half of room100's knee)
  --slow-servers LIST     servers the slow workload runs on (ours,plain: a laggard takes ~a minute to fill)
  --idle-steps LIST       idle connections per door, cumulative
  --idle-rounds N         the servers take turns at the idle workload N times, each round in a
                          rotated order; each step reports its median round (3; 1 with --quick)
  --join-messages N, --joins N
  --cpu-prof DIR          write a V8 CPU profile of runspec-room into DIR
  --out FILE              JSON output (default bench/results/<timestamp>.json)
`);
  process.exit(0);
}

const quick = flags.quick;
const list = (s: string | undefined, fallback: number[]): number[] =>
  s ? s.split(',').map(Number) : fallback;
const num = (s: string | undefined, full: number, smoke: number): number =>
  s ? Number(s) : quick ? smoke : full;

const timing: w.Timing = {
  warmupMs: num(flags['warmup-ms'], 1000, 300),
  measureMs: num(flags['measure-ms'], 2500, 1000),
};
const options = {
  timing,
  floorRate: Number(flags['floor-rate']),
  floorSeconds: num(flags['floor-seconds'], 20, 3),
  lowloadRate: Number(flags['lowload-rate']),
  lowloadRooms: Number(flags['lowload-rooms']),
  lowloadSeconds: num(flags['lowload-seconds'], 15, 3),
  room100Steps: list(
    flags['room100-steps'],
    quick ? [10000, 30000] : [5000, 10000, 20000, 30000, 40000, 50000, 60000],
  ),
  room1000Steps: list(flags['room1000-steps'], quick ? [10000] : [5000, 10000, 20000, 30000, 40000, 60000]),
  roomsSteps: list(
    flags['rooms-steps'],
    quick ? [2000, 10000] : [2000, 5000, 10000, 20000, 30000, 40000, 50000, 60000],
  ),
  slowRate: flags['slow-rate'] ? Number(flags['slow-rate']) : undefined,
  slowSeconds: num(flags['slow-seconds'], 60, 4),
  slowServers: (flags['slow-servers'] ?? 'ours,plain').split(','),
  idleSteps: list(flags['idle-steps'], quick ? [1000] : [1000, 2500, 5000, 10000]),
  idleRounds: num(flags['idle-rounds'], 3, 1),
  joinMessages: num(flags['join-messages'], 10_000, 1000),
  joins: num(flags.joins, 200, 30),
};
const workloads = (flags.only?.split(',') ?? [...WORKLOADS]) as Workload[];
// The earlier build runs only when one is named.
const servers = (
  flags.servers ?? SERVER_KINDS.filter((k) => k !== 'earlier' || flags.earlier).join(',')
).split(',') as ServerKind[];
if (flags.earlier) useEarlierBuild(flags.earlier);
for (const x of workloads) if (!WORKLOADS.includes(x)) throw new Error(`unknown workload ${x}`);
if (!Number.isInteger(options.idleRounds) || options.idleRounds < 1)
  throw new Error(`--idle-rounds must be a whole number of at least 1, not ${flags['idle-rounds']}`);
for (const x of servers) if (!SERVER_KINDS.includes(x)) throw new Error(`unknown server ${x}`);

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};
const results: Results = {
  floor: {},
  lowload: {},
  room100: {},
  room1000: {},
  rooms: {},
  slow: {},
  idle: {},
  join: {},
};
const started = new Date();
log(
  `bench: ${cpus().length} cores, node ${process.version}, open files ${openFileLimit('self')} (servers: raised to 20000 if allowed)`,
);
log(
  `workloads ${workloads.join(',')}; servers ${servers.join(',')}; step ${timing.warmupMs}+${timing.measureMs} ms`,
);
log(
  `runspec-room runs with its per-connection limits lifted for capacity (${Object.entries(OURS_ENV)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ')}); the shipped defaults are what the test suite runs`,
);

const gen = LoadGen.start(Number(flags.workers));

async function withServer<T>(kind: ServerKind, gc: boolean, fn: (s: ServerHandle) => Promise<T>): Promise<T> {
  const cpuProfDir = kind === 'ours' ? flags['cpu-prof'] : undefined;
  const server = await startServer(kind, { gc, cpuProfDir });
  try {
    return await fn(server);
  } finally {
    await server.stop();
  }
}

/** Every round of the idle workload, per server. */
const idleRounds: Partial<Record<ServerKind, { console: w.IdleStep[][]; browser: w.IdleStep[][] }>> = {};

async function runOne(workload: Workload, kind: ServerKind): Promise<void> {
  switch (workload) {
    case 'floor':
      if (!results.disk) {
        results.disk = await diskSync(options.floorRate, Math.min(options.floorSeconds, 10));
        log(`  disk alone: fdatasync p99 ${results.disk.p99} ms`);
      }
      results.floor[kind] = await withServer(kind, false, (s) =>
        w.floor(gen, s, options.floorRate, {
          warmupMs: quick ? 500 : 2000,
          measureMs: options.floorSeconds * 1000,
        }),
      );
      log(`  p99 ${results.floor[kind]?.latency.p99} ms`);
      return;
    case 'lowload': {
      if (!results.lowloadDisk) {
        // The disk alone at about the rate a durable server commits at this load.
        results.lowloadDisk = await diskSync(200, Math.min(options.lowloadSeconds, 10));
        log(`  disk alone: fdatasync p99 ${results.lowloadDisk.p99} ms at 200/s`);
      }
      results.lowload[kind] = await withServer(kind, false, (s) =>
        w.lowload(gen, s, options.lowloadRooms, options.lowloadRate, {
          warmupMs: quick ? 500 : 2000,
          measureMs: options.lowloadSeconds * 1000,
        }),
      );
      const r = results.lowload[kind];
      log(
        `  p50 ${r?.step.latency.p50} p99 ${r?.step.latency.p99} ms, server cpu ${r?.step.serverCpu} (main ${r?.step.serverMainCpu}), ${r?.cpuPerMessageUs} µs/msg`,
      );
      return;
    }
    case 'room100':
      results.room100[kind] = await withServer(kind, false, (s) =>
        w.stepped(gen, s, w.layout('r100', 1, 100, 10), options.room100Steps, timing, log),
      );
      return;
    case 'room1000':
      results.room1000[kind] = await withServer(kind, false, (s) =>
        w.stepped(gen, s, w.layout('r1000', 1, 1000, 10), options.room1000Steps, timing, log),
      );
      return;
    case 'rooms':
      results.rooms[kind] = await withServer(kind, false, (s) =>
        w.stepped(gen, s, w.layout('r4', 250, 4, 1), options.roomsSteps, timing, log),
      );
      return;
    case 'slow': {
      if (!options.slowServers.includes(kind)) return;
      const knee = results.room100[kind]?.kneeDps;
      const rate = options.slowRate ?? (knee ? knee / 2 / 100 : 150);
      results.slow[kind] = await withServer(kind, false, (s) =>
        w.slow(
          gen,
          s,
          rate,
          // Both windows are equally long: a p99 over a longer window catches more of the machine's
          // own hiccups, which would count against the run with the laggard.
          { warmupMs: timing.warmupMs, measureMs: options.slowSeconds * 1000 },
          options.slowSeconds * 1000,
        ),
      );
      const r = results.slow[kind];
      log(
        `  ${r?.messagesPerSecond} msg/s: others p99 ${r?.without.latency.p99} -> ${r?.withLaggard.latency.p99} ms, dropped after ${r?.dropAfterSeconds ?? '-'} s`,
      );
      return;
    }
    case 'idle': {
      const consoles = await withServer(kind, true, (s) => w.idle(gen, s, 'console', options.idleSteps, log));
      const browsers = await withServer(kind, true, (s) => w.idle(gen, s, 'browser', options.idleSteps, log));
      idleRounds[kind] ??= { console: [], browser: [] };
      const rounds = idleRounds[kind];
      rounds.console.push(consoles);
      rounds.browser.push(browsers);
      results.idle[kind] = { console: w.medianRound(rounds.console), browser: w.medianRound(rounds.browser) };
      return;
    }
    case 'join': {
      const r = await withServer(kind, false, (s) => w.join(gen, s, options.joinMessages, options.joins, 50));
      results.join[kind] = r;
      log(
        `  room empty: p50 ${r.toBackscroll.p50} ms p99 ${r.toBackscroll.p99} ms, ${r.cpuUs} µs/join; ` +
          `room open: p50 ${r.openRoom.toBackscroll.p50} ms p99 ${r.openRoom.toBackscroll.p99} ms, ${r.openRoom.cpuUs} µs/join`,
      );
      return;
    }
  }
}

try {
  for (const workload of workloads) {
    // Opening connections is what moves most with the machine's minute: there the servers take turns,
    // round after round, each round starting with the next server, so none is always first.
    const rounds = workload === 'idle' ? options.idleRounds : 1;
    // The commit delay trades latency for CPU at a modest rate; elsewhere it would only add latency.
    const running = servers.filter((kind) => kind !== 'delayed' || workload === 'lowload');
    for (let round = 0; round < rounds; round++) {
      const first = round % running.length;
      for (const kind of [...running.slice(first), ...running.slice(0, first)]) {
        log(`${workload} / ${SERVER_LABELS[kind]}${rounds > 1 ? ` (round ${round + 1} of ${rounds})` : ''}`);
        const t0 = Date.now();
        try {
          await runOne(workload, kind);
        } catch (error) {
          log(`  failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
          await gen.close().catch(() => {});
        }
        log(`  (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      }
    }
  }
} finally {
  await gen.stop();
}

const targets = checkTargets(results);
process.stdout.write(`${render(results)}\n${renderTargets(targets)}\n`);
process.stdout.write(
  "\nNotes: latency runs from each message's scheduled send time to its receipt at every member (open loop).\n" +
    'CPU (whole process, and "main": its event-loop thread) and RSS are read from /proc; event-loop delay and\n' +
    'memory after GC come from a bench agent preloaded into each server (src/ is unchanged).\n',
);
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
const out =
  flags.out ??
  new URL(
    `./results/${started.toISOString().replaceAll(':', '-').replace(/\..*/u, '')}.json`,
    import.meta.url,
  ).pathname;
writeFileSync(
  out,
  `${JSON.stringify(
    {
      started: started.toISOString(),
      machine: { cores: cpus().length, node: process.version },
      options,
      workloads,
      servers,
      results,
      targets,
    },
    null,
    2,
  )}\n`,
);
log(`results written to ${out} (${((Date.now() - started.getTime()) / 1000).toFixed(0)} s)`);
