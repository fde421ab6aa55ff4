// Running the built server (dist/main.js) as its own process, the way users run it.
import { fileURLToPath } from 'node:url';
import { type ServerProcess, spawnServerProcess } from '../../support/server-process.ts';
import { runProcess } from './process.ts';

/** The built entry point (npm test builds it first). */
export const MAIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url));

/** A server process and what it printed. */
export type Spawned = ServerProcess;

/** Run the CLI to completion and collect its output. */
export function runCli(args: string[], env: Record<string, string> = {}, cwd?: string) {
  return runProcess(process.execPath, [MAIN, ...args], cwd === undefined ? { env } : { env, cwd });
}

/** Start the server and wait until it logs that it is ready; the shipped limits hold unless `env` sets one. */
export function spawnServer(
  args: string[],
  env: Record<string, string> = {},
  cwd?: string,
): Promise<Spawned> {
  const options = { env, readyMs: 15_000 };
  return spawnServerProcess(
    process.execPath,
    [MAIN, ...args],
    cwd === undefined ? options : { ...options, cwd },
  );
}
