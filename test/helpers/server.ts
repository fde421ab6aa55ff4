// Starting a real server in-process (real sockets, a real libSQL file in a temp dir) for tests.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCommand } from '../../src/config.ts';
import { createLog, type Log, silentLog } from '../../src/log.ts';
import { type RunningServer, type StartOptions, startServer } from '../../src/server.ts';
import { SEARCH_THREAD, WRITER_THREAD } from './writer-thread.ts';

/** A fresh temporary directory, removed by the returned cleanup. */
export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'runspec-room-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A running test server and where it listens. */
export interface TestServer extends RunningServer {
  readonly dbPath: string;
  readonly consolePort: number;
  readonly url: string;
}

/** Start the full server on free ports with its database at `dbPath`, with the shipped limits unless `env` sets one. */
export async function startTestServer(
  dbPath: string,
  extraArgs: string[] = [],
  env: Record<string, string> = {},
  start: Pick<StartOptions, 'exportStallMs'> = {},
): Promise<TestServer> {
  const command = parseCommand(['--port', '0', '--ndjson-port', '0', '--db', dbPath, ...extraArgs], env);
  if (command.kind !== 'run') throw new Error('unexpected command');
  const log: Log = process.env.TEST_LOG
    ? createLog('debug', (l) => process.stderr.write(`${l}\n`))
    : silentLog;
  const server = await startServer(command.config, log, undefined, {
    writerScript: WRITER_THREAD,
    searchScript: SEARCH_THREAD,
    ...start,
  });
  return Object.assign(server, {
    dbPath,
    consolePort: server.consoleAddress.port,
    url: server.webUrl ?? '',
  });
}

/** A port that was free a moment ago (for servers that must come back on the same port). */
export async function freePort(): Promise<number> {
  // Below the range the kernel hands out for port 0 and outgoing connections: a server restarted on
  // this port must not find it taken by its own console door's port 0, or anyone's, meanwhile.
  const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
    .trim()
    .split(/\s+/u)
    .map(Number);
  const below = Math.max(low && low > 12_000 ? low : 32_768, 12_000);
  for (;;) {
    const port = 10_000 + Math.floor(Math.random() * (below - 10_000));
    if (handedOut.has(port)) continue;
    const s = createServer();
    const bound = await new Promise<boolean>((resolve) => {
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (!bound) continue;
    await new Promise((resolve) => s.close(resolve));
    handedOut.add(port);
    return port;
  }
}
const handedOut = new Set<number>();

/** Wait until `room` has `size` members (a seed console's hello gets no reply to wait on). */
export async function untilRoomSize(
  server: RunningServer,
  room: string,
  size: number,
  atLeast = false,
): Promise<void> {
  const done = () => (atLeast ? server.hub.roomSize(room) >= size : server.hub.roomSize(room) === size);
  for (let i = 0; i < 400 && !done(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!done())
    throw new Error(
      `room ${room} has ${server.hub.roomSize(room)} members, expected ${atLeast ? 'at least ' : ''}${size}`,
    );
}
