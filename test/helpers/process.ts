// Running a command to completion and finding Deno, for tests (a server as a process: support/server-process.ts).
import { execFileSync, spawn } from 'node:child_process';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

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
