// Running the built server (dist/main.js) as its own process, the way users run it.
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BURST_FRIENDLY } from './server.ts';

/** The built entry point (npm test builds it first). */
export const MAIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url));

/** A server process and what it printed. */
export interface Spawned {
  readonly proc: ChildProcess;
  readonly output: () => string;
  readonly consolePort: number;
  readonly url: string | undefined;
  /** Send a signal and resolve with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  readonly exited: Promise<number | null>;
}

/** Run the CLI to completion and collect its output. */
export function runCli(args: string[], env: Record<string, string> = {}, cwd?: string) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const proc = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, ...env }, cwd });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    proc.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    proc.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Start the server and wait until it logs that it is ready. Rate limits are test-friendly unless `env` sets them. */
export async function spawnServer(
  args: string[],
  env: Record<string, string> = {},
  cwd?: string,
): Promise<Spawned> {
  const proc = spawn(process.execPath, [MAIN, ...args], {
    env: { ...process.env, ...BURST_FRIENDLY, ...env },
    cwd,
  });
  let output = '';
  const exited = new Promise<number | null>((resolve) => proc.on('close', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer): void => {
      output += d.toString();
      if (/ ready /u.test(output)) resolve();
    };
    proc.stderr?.on('data', onData);
    proc.stdout?.on('data', onData);
    void exited.then((code) =>
      reject(new Error(`server exited with ${code} before it was ready:\n${output}`)),
    );
    setTimeout(() => reject(new Error(`server not ready in time:\n${output}`)), 15_000);
  });
  const consolePort = Number(/console door listening address=[\d.]+:(\d+)/u.exec(output)?.[1]);
  const url = /browser door listening url=(\S+)/u.exec(output)?.[1];
  return {
    proc,
    output: () => output,
    consolePort,
    url,
    exited,
    stop: (signal = 'SIGTERM') => {
      proc.kill(signal);
      return exited;
    },
  };
}
