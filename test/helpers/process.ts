// Running the server as its own process under any command (Deno, an installed package) and finding Deno.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** A server process and what it printed. */
export interface ServerProcess {
  readonly proc: ChildProcess;
  readonly output: () => string;
  readonly consolePort: number;
  readonly url: string | undefined;
  /**
   * Signal the process group, as a terminal's Ctrl-C or a service manager does, so the server gets
   * the signal however many launchers (npx, deno task) stand between; resolves with the exit code of
   * the process started (null if a launcher died of the signal).
   */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  readonly exited: Promise<number | null>;
}

/** Options for a server process. */
export interface ProcessOptions {
  env?: Record<string, string>;
  cwd?: string;
  /** How long start-up may take (Deno compiles and type-strips on first start). */
  readyMs?: number;
}

/** Start `command args…` and wait until the server logs that it is ready. */
export async function spawnServerProcess(
  command: string,
  args: string[],
  options: ProcessOptions = {},
): Promise<ServerProcess> {
  const proc = spawn(command, args, {
    env: { ...process.env, NO_COLOR: '1', ...options.env },
    cwd: options.cwd,
    detached: true,
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
    setTimeout(() => reject(new Error(`server not ready in time:\n${output}`)), options.readyMs ?? 30_000);
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
      try {
        if (proc.pid) process.kill(-proc.pid, signal);
      } catch {
        // Already gone.
      }
      return exited;
    },
  };
}

/**
 * Run a command to completion and collect its output. With `deadlineMs` a command still running by
 * then is killed (code null), so a server that should have refused to start cannot hang a test.
 */
export function runProcess(
  command: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; deadlineMs?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(command, args, {
      env: { ...process.env, NO_COLOR: '1', ...options.env },
      cwd: options.cwd,
    });
    const deadline =
      options.deadlineMs === undefined
        ? undefined
        : setTimeout(() => proc.kill('SIGKILL'), options.deadlineMs);
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    proc.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    proc.on('close', (code) => {
      clearTimeout(deadline);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Where scripts/install-deno.sh puts the binary by default. */
const DENO_CACHE = join(homedir(), '.cache', 'runspec-room', 'deno-2.9.5', 'node_modules', 'deno', 'deno');

/**
 * The Deno binary: DENO_BIN, else `deno` on PATH, else the one scripts/install-deno.sh installed. Asked
 * for its own path, so what the tests start is the binary itself, never a launcher in between.
 */
export function findDeno(): string | undefined {
  for (const candidate of [process.env.DENO_BIN, 'deno', DENO_CACHE]) {
    if (!candidate) continue;
    try {
      const path = execFileSync(candidate, ['eval', 'console.log(Deno.execPath())'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }).trim();
      if (path) return path;
    } catch {
      // Not there; try the next.
    }
  }
  return undefined;
}

/** Under CI a missing tool fails the run; locally the tests that need it are skipped. */
export function requireUnderCi(tool: string, found: boolean, hint: string): void {
  if (!found && process.env.CI) throw new Error(`CI must run the ${tool} tests, but ${hint}`);
}
