// Running the built server (dist/main.js) as its own process, the way users run it.
import { fileURLToPath } from 'node:url';
import { type ServerProcess, spawnServerProcess } from '../../support/server-process.ts';
import { runProcess } from './process.ts';

/** The built entry point (npm test builds it first). */
export const MAIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url));

/** A server process and what it printed. */
export type Spawned = ServerProcess;

/** Wait until the server has logged a line matching `pattern` (its log lines leave in batches). */
export async function untilOutput(server: { output(): string }, pattern: RegExp): Promise<void> {
  for (let i = 0; i < 250 && !pattern.test(server.output()); i++) await new Promise((r) => setTimeout(r, 20));
  if (!pattern.test(server.output()))
    throw new Error(`the server never logged ${pattern}:\n${server.output()}`);
}

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
