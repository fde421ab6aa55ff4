// Start each server under test as its own process, find its ports, read its reports, stop it.
import { cpSync, existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnServerProcess } from '../support/server-process.ts';
import type { AgentReport } from './agent.ts';
import type { Target } from './loadgen/clients.ts';

export const SERVER_KINDS = ['ours', 'delayed', 'earlier', 'plain', 'naive', 'socketio'] as const;
export type ServerKind = (typeof SERVER_KINDS)[number];

/**
 * The commit delay the `delayed` server runs with (CONSOLE_ROOM_COMMIT_DELAY): the same build as `ours`,
 * measured in the low-load workload only, where it trades latency for CPU.
 */
export const COMMIT_DELAY = '2ms';

export const SERVER_LABELS: Record<ServerKind, string> = {
  ours: 'runspec-room',
  delayed: `runspec-room, ${COMMIT_DELAY} commit delay`,
  earlier: 'runspec-room, earlier build',
  plain: '(a) plain ws+net',
  naive: '(b) naive libSQL',
  socketio: '(c) Socket.IO',
};

const ROOT = fileURLToPath(new URL('..', import.meta.url));

// runspec-room's limits are lifted for the bench: every connection comes from 127.0.0.1 and senders
// go far past the per-connection message rate. The bench measures the pipe, not the abuse limits.
export const OURS_ENV = {
  CONSOLE_ROOM_RATE_BURST: '1000000',
  CONSOLE_ROOM_RATE_PER_SECOND: '1000000',
  CONSOLE_ROOM_PERSON_RATE_BURST: '1000000',
  CONSOLE_ROOM_PERSON_RATE_PER_SECOND: '1000000',
  CONSOLE_ROOM_FLOOD_TIMEOUT: '60m',
  CONSOLE_ROOM_MAX_BROWSERS: '100000',
  CONSOLE_ROOM_MAX_BROWSERS_PER_IP: '100000',
  CONSOLE_ROOM_MAX_CONSOLES: '100000',
  // Silent bench consoles do not answer pings; a long heartbeat keeps them for a whole workload.
  CONSOLE_ROOM_HEARTBEAT: '60m',
};

let snapshot: string | undefined;
let earlier: string | undefined;

/** An earlier build of runspec-room to measure beside this one (a checkout with dist/ built): --earlier DIR. */
export function useEarlierBuild(dir: string): void {
  if (!existsSync(join(dir, 'dist/main.js'))) throw new Error(`${dir} has no dist/main.js: build it first`);
  earlier = dir;
}

/**
 * Copy the built server (dist/, drizzle/, static/, package.json; node_modules linked) once per run, so
 * a rebuild of dist/ during the run (someone running `npm test`) cannot change what is measured.
 */
function snapshotRoot(): string {
  if (snapshot) return snapshot;
  const dir = mkdtempSync(join(tmpdir(), 'bench-snapshot-'));
  for (const part of ['dist', 'drizzle', 'static', 'package.json']) {
    if (existsSync(join(ROOT, part))) cpSync(join(ROOT, part), join(dir, part), { recursive: true });
  }
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  snapshot = dir;
  return dir;
}
const FILE_LIMIT = 20_000;

/** Options for one server start. */
export interface StartOptions {
  /** Collect the heap before memory reports (adds --expose-gc). */
  gc?: boolean;
  /** Write a V8 CPU profile into this directory on exit (ours only). */
  cpuProfDir?: string;
}

/** A running server under test. */
export interface ServerHandle {
  readonly kind: ServerKind;
  readonly pid: number;
  readonly target: Target;
  /** stderr lines containing `dropping member` so far. */
  readonly drops: number;
  /** When (Date.now()) the first `dropping member` line arrived. */
  readonly firstDropAt: number | undefined;
  /** Ask the process for a report (SIGUSR2); memory, and event-loop delay for baselines. */
  report(): Promise<AgentReport | undefined>;
  stop(): Promise<void>;
}

function command(kind: ServerKind, db: string, options: StartOptions): string[] {
  const node = [process.execPath];
  if (options.gc) node.push('--expose-gc');
  if (kind === 'ours' || kind === 'delayed' || kind === 'earlier') {
    if (kind === 'earlier' && !earlier) throw new Error('the earlier server needs --earlier DIR');
    if (options.cpuProfDir && kind === 'ours')
      node.push('--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`);
    return [
      ...node,
      '--import',
      'tsx',
      '--import',
      join(ROOT, 'bench/agent-preload.ts'),
      join(kind === 'earlier' ? (earlier as string) : snapshotRoot(), 'dist/main.js'),
      '--port',
      '0',
      '--ndjson-port',
      '0',
      '--db',
      db,
    ];
  }
  const file = { plain: 'plain.ts', naive: 'naive-libsql.ts', socketio: 'socketio.ts' }[kind];
  return [...node, '--import', 'tsx', join(ROOT, 'bench/baselines', file), '--db', db];
}

const quote = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`;

/** Start a server through bash so its open-file limit can be raised; resolves once it is ready. */
export async function startServer(kind: ServerKind, options: StartOptions = {}): Promise<ServerHandle> {
  const dir = mkdtempSync(join(tmpdir(), `bench-${kind}-`));
  const argv = command(kind, join(dir, 'bench.db'), options);
  const script = `ulimit -n ${FILE_LIMIT} 2>/dev/null; exec ${argv.map(quote).join(' ')}`;
  let drops = 0;
  let firstDropAt: number | undefined;
  const reportWaiters: ((r: AgentReport) => void)[] = [];
  const server = await spawnServerProcess('bash', ['-c', script], {
    cwd: ROOT,
    env: {
      ...(kind === 'ours' || kind === 'earlier' ? OURS_ENV : {}),
      ...(kind === 'delayed' ? { ...OURS_ENV, CONSOLE_ROOM_COMMIT_DELAY: COMMIT_DELAY } : {}),
      CONSOLE_ROOM_LOG_LEVEL: 'info',
      BENCH_AGENT_GC: options.gc ? '1' : '0',
    },
    readyMs: 60_000,
    // In the bench's own process group: a Ctrl-C of the run stops its servers too.
    ownGroup: false,
    maxOutput: 100_000,
    onLine: (line, stream) => {
      if (stream === 'stdout') {
        if (line.startsWith('BENCH ')) reportWaiters.shift()?.(JSON.parse(line.slice(6)) as AgentReport);
      } else if (line.includes('dropping member')) {
        drops += 1;
        firstDropAt ??= Date.now();
      }
    },
  }).catch((error: Error) => {
    const [what, ...log] = error.message.split('\n');
    throw new Error(`${kind}: ${what}\n${log.join('\n').slice(-2000)}`);
  });
  const { url, consolePort, proc: child } = server;
  if (!url || !consolePort) throw new Error(`${kind}: could not find its ports in:\n${server.output()}`);
  const pid = child.pid as number;

  return {
    kind,
    pid,
    target: { consolePort, httpUrl: url, socketIo: kind === 'socketio' },
    get drops() {
      return drops;
    },
    get firstDropAt() {
      return firstDropAt;
    },
    report: () =>
      new Promise<AgentReport | undefined>((resolve) => {
        const timer = setTimeout(() => resolve(undefined), 5000);
        reportWaiters.push((r) => {
          clearTimeout(timer);
          resolve(r);
        });
        child.kill('SIGUSR2');
      }),
    stop: async () => {
      const timer = setTimeout(() => void server.stop('SIGKILL'), 15_000);
      await server.stop('SIGTERM');
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
