// PostgreSQL and Redis for the cluster tests and bench: Debian's servers, started in a temp dir on
// private ports (PostgreSQL as the unprivileged `nobody`, since initdb and pg_ctl refuse to run as root).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Debian's PostgreSQL binaries (initdb is not on PATH), newest version first; undefined if none. */
export function postgresBin(): string | undefined {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base)
    .filter((v) => existsSync(join(base, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(base, versions[0], 'bin');
}

/** Whether redis-server is installed. */
export function hasRedis(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

const asRoot = process.getuid?.() === 0;

/** A port that was free a moment ago. */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as { port: number };
  await new Promise((resolve) => s.close(resolve));
  return port;
}

/** Run a PostgreSQL tool as `nobody` when we are root. */
function pgCommand(bin: string, tool: string, args: string[], cwd: string): Promise<string> {
  const command = asRoot ? 'runuser' : join(bin, tool);
  const argv = asRoot ? ['-u', 'nobody', '--', join(bin, tool), ...args] : args;
  return new Promise((resolve, reject) => {
    const proc = spawn(command, argv, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    proc.stderr.on('data', (d: Buffer) => {
      out += d.toString();
    });
    proc.on('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${tool} ${args.join(' ')} failed (${code}): ${out}`)),
    );
  });
}

/** A PostgreSQL server of the test's own. */
export interface TestPostgres {
  readonly port: number;
  /** The postmaster's process id (its backends are its children). */
  pid(): number;
  /** A URL of a fresh database on it (CREATE DATABASE), for one test's isolation. */
  database(name: string): Promise<string>;
  /** `pg_ctl stop -m immediate`: the server dies as in a crash (no checkpoint). */
  crash(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** initdb in a temp dir and start it on a free port, with its socket in that dir. */
export async function startPostgres(bin: string): Promise<TestPostgres> {
  const dir = await mkdtemp(join(tmpdir(), 'runspec-room-pg-'));
  await chmod(dir, 0o755);
  const data = join(dir, 'data');
  if (asRoot) await chown(dir, 65534, 65534);
  await pgCommand(
    bin,
    'initdb',
    ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C'],
    dir,
  );
  const port = await freePort();
  const pgCtl = (args: string[]) => pgCommand(bin, 'pg_ctl', ['-D', data, ...args], dir);
  const start = async (): Promise<void> => {
    await pgCtl([
      '-w',
      '-l',
      join(dir, 'log'),
      '-o',
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c max_connections=200`,
      'start',
    ]);
  };
  await start();
  const admin = `postgres://postgres@127.0.0.1:${port}/postgres`;
  return {
    port,
    pid: () => Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]),
    async database(name) {
      const { default: postgres } = await import('postgres');
      const sql = postgres(admin, { max: 1, onnotice: () => {} });
      try {
        await sql.unsafe(`DROP DATABASE IF EXISTS "${name}"`);
        await sql.unsafe(`CREATE DATABASE "${name}"`);
      } finally {
        await sql.end();
      }
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    crash: async () => {
      await pgCtl(['-m', 'immediate', 'stop']);
    },
    start,
    stop: async () => {
      await pgCtl(['-m', 'fast', 'stop']).catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A Redis server of the test's own: no persistence, a private port. */
export interface TestRedis {
  readonly port: number;
  pid(): number | undefined;
  readonly url: string;
  /** Kill it (SIGKILL) and start it again empty, on the same port, after `downMs`. */
  restart(downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Start redis-server on a free port. */
export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  let proc: ReturnType<typeof spawn> | undefined;
  const start = async (): Promise<void> => {
    const started = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--protected-mode',
        'no',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    proc = started;
    await new Promise<void>((resolve, reject) => {
      let out = '';
      started.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('Ready to accept connections')) resolve();
      });
      started.on('close', (code) => reject(new Error(`redis-server exited (${code}): ${out}`)));
    });
  };
  const kill = async (): Promise<void> => {
    const running = proc;
    proc = undefined;
    if (!running || running.exitCode !== null) return;
    const closed = new Promise((resolve) => running.once('close', resolve));
    running.kill('SIGKILL');
    await closed;
  };
  await start();
  return {
    port,
    pid: () => proc?.pid,
    url: `redis://127.0.0.1:${port}`,
    restart: async (downMs = 0) => {
      await kill();
      if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs));
      await start();
    },
    stop: kill,
  };
}
