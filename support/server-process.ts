// A server (runspec-room, or a bench baseline that logs the same lines) as its own process: started,
// watched until it is ready, its ports read from its log, stopped. Shared by the tests and the bench.
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/** Where a server's doors listen, as its start-up log says. */
export interface ServerPorts {
  readonly consolePort: number;
  /** The browser door's URL; undefined when the server has none (--ndjson-only). */
  readonly url: string | undefined;
}

/** The ports in a start-up log: its `console door listening address=…` and `browser door listening url=…` lines. */
export function listeningPorts(output: string): ServerPorts {
  return {
    consolePort: Number(/console door listening address=[\d.]+:(\d+)/u.exec(output)?.[1]),
    url: /browser door listening url=(\S+)/u.exec(output)?.[1],
  };
}

/** A server process and what it printed. */
export interface ServerProcess extends ServerPorts {
  readonly proc: ChildProcess;
  readonly output: () => string;
  /**
   * Signal the server, as a terminal's Ctrl-C or a service manager does; in its own group (the
   * default) the whole group, so the server gets the signal however many launchers (npx, deno task)
   * stand between. Resolves with the exit code of the process started (null if it died of a signal).
   */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  readonly exited: Promise<number | null>;
}

/** Options for a server process. */
export interface ProcessOptions {
  /** Added to this process's environment, as is NO_COLOR=1. */
  env?: Record<string, string> | undefined;
  cwd?: string | undefined;
  /** How long start-up may take (Deno compiles and type-strips on first start); 30 s unless given. */
  readyMs?: number | undefined;
  /**
   * Start the process in a group of its own (the default) for stop() to signal; false leaves it in
   * ours, so a Ctrl-C that ends the caller ends the server too.
   */
  ownGroup?: boolean | undefined;
  /** Keep at most the first this many characters of output (a long run logs without end). */
  maxOutput?: number | undefined;
  /** Each line the process writes, as it comes. */
  onLine?: ((line: string, stream: 'stdout' | 'stderr') => void) | undefined;
}

/** Start `command args…` and resolve once the server logs that it is ready (a line with ` ready `). */
export async function spawnServerProcess(
  command: string,
  args: string[],
  options: ProcessOptions = {},
): Promise<ServerProcess> {
  const ownGroup = options.ownGroup ?? true;
  const maxOutput = options.maxOutput ?? Number.POSITIVE_INFINITY;
  const proc = spawn(command, args, {
    env: { ...process.env, NO_COLOR: '1', ...options.env },
    cwd: options.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: ownGroup,
  });
  let output = '';
  let ready = false;
  const exited = new Promise<number | null>((resolve) => proc.on('close', (code) => resolve(code)));
  const { onLine } = options;
  if (onLine) {
    createInterface({ input: proc.stdout }).on('line', (line) => onLine(line, 'stdout'));
    createInterface({ input: proc.stderr }).on('line', (line) => onLine(line, 'stderr'));
  }
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`server not ready in time:\n${output}`)),
      options.readyMs ?? 30_000,
    );
    const onData = (d: Buffer): void => {
      if (output.length < maxOutput) output += d.toString();
      if (!ready && / ready /u.test(output)) {
        ready = true;
        clearTimeout(timer);
        resolve();
      }
    };
    proc.stderr.on('data', onData);
    proc.stdout.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before it was ready:\n${output}`));
    });
  });
  return {
    proc,
    output: () => output,
    ...listeningPorts(output),
    exited,
    stop: (signal = 'SIGTERM') => {
      try {
        if (ownGroup && proc.pid) process.kill(-proc.pid, signal);
        else proc.kill(signal);
      } catch {
        // Already gone.
      }
      return exited;
    },
  };
}
