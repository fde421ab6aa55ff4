// The built clients as users run them: `runspec-room console …` with a pipe the test writes to, and under
// a real pseudo-terminal (tmux) whose screen the test reads.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { MAIN } from './spawn.ts';

/** A console client process with piped stdin, and what it printed so far. */
export interface ClientProcess {
  readonly proc: ChildProcess;
  /** Lines on stdout so far. */
  readonly lines: string[];
  stderr(): string;
  write(text: string): void;
  end(): void;
  /** Resolves with the first stdout line from `from` on that matches, or rejects after `ms`. */
  waitForLine(match: (line: string) => boolean, ms?: number, from?: number): Promise<string>;
  readonly exited: Promise<number | null>;
  kill(): void;
}

/** Start `node dist/main.js console …` (or `mcp …`) with stdin, stdout and stderr as pipes. */
export function spawnClient(args: string[], env: Record<string, string> = {}): ClientProcess {
  const proc = spawn(process.execPath, [MAIN, ...args], {
    env: { ...process.env, NO_COLOR: '1', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    lines.push(line);
    for (const wake of [...waiters]) wake();
  });
  proc.stdin?.on('error', () => {});
  const exited = new Promise<number | null>((resolve) => proc.on('close', (code) => resolve(code)));
  return {
    proc,
    lines,
    stderr: () => stderr,
    write: (text) => proc.stdin?.write(text),
    end: () => proc.stdin?.end(),
    exited,
    kill: () => {
      if (proc.exitCode === null) proc.kill('SIGKILL');
    },
    waitForLine: (match, ms = 10_000, from = 0) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          const found = lines.slice(from).find(match);
          if (found === undefined) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(found);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(`no matching line within ${ms} ms; stdout:\n${lines.join('\n')}\nstderr:\n${stderr}`),
          );
        }, ms);
        waiters.add(check);
        check();
      }),
  };
}

/** Whether tmux is here to give a client a real terminal. */
export const haveTmux = existsSync('/usr/bin/tmux') || existsSync('/usr/local/bin/tmux');

let sockets = 0;

/** A program in a tmux pane on a server of its own: keys in, the screen out. */
export class TmuxPane {
  readonly #socket = `runspec-room-test-${process.pid}-${++sockets}`;

  /** Start `command` (argv) in a detached session of `width` × `height` with `env` set. */
  constructor(command: string[], env: Record<string, string> = {}, width = 100, height = 30) {
    const quote = (a: string): string => `'${a.replace(/'/gu, `'\\''`)}'`;
    const envArgs = Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
    // A shell runs the program and prints its exit status on the screen: tmux's own pane_dead_status
    // is only set once tmux has reaped the child, which under load it may not do for a long while.
    const shell = `${command.map(quote).join(' ')}; echo "[exited $?]"`;
    this.#tmux(
      'start-server',
      ';',
      'set-option',
      '-g',
      'remain-on-exit',
      'on',
      ';',
      'new-session',
      '-d',
      '-s',
      'main',
      '-x',
      String(width),
      '-y',
      String(height),
      ...envArgs,
      `sh -c ${quote(shell)}`,
    );
  }

  /** The program's exit status once it has exited, else undefined. */
  exitStatus(): number | undefined {
    const status = /\[exited (\d+)\]/u.exec(this.screen())?.[1];
    return status === undefined ? undefined : Number(status);
  }

  #tmux(...args: string[]): string {
    return execFileSync('tmux', ['-L', this.#socket, '-f', '/dev/null', ...args], { encoding: 'utf8' });
  }

  /** Type keys (tmux key names, or literal text with `literal`). */
  keys(text: string, literal = true): void {
    this.#tmux('send-keys', '-t', 'main', ...(literal ? ['-l', text] : [text]));
  }

  /** The screen as text; with `escapes`, with its colour codes. */
  screen(escapes = false): string {
    return this.#tmux('capture-pane', '-p', ...(escapes ? ['-e'] : []), '-t', 'main');
  }

  /** Resolves with the screen once `match` holds for it; rejects after `ms`. */
  async waitForScreen(match: (screen: string) => boolean, ms = 10_000): Promise<string> {
    const start = Date.now();
    for (;;) {
      let screen = '';
      try {
        screen = this.screen();
      } catch {
        // The pane is gone (the program exited): report what was last seen below.
      }
      if (match(screen)) return screen;
      if (Date.now() - start > ms) throw new Error(`screen did not match within ${ms} ms:\n${screen}`);
      // A terminal has no event to wait on; the screen is polled.
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  kill(): void {
    try {
      this.#tmux('kill-server');
    } catch {
      // Already gone with its program.
    }
  }
}
