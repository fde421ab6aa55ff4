// Whether the process may open as many descriptors as its connection limits allow: each browser and
// each console holds one, and the browser door up to PAGE_CONNECTIONS more. Node raises its soft
// limit to the hard one itself, so what counts is the hard limit: a container or shell that sets
// 1,024 is far below the shipped limits, and past it connections fail to be accepted; a start says
// so once.
import type { Limits } from './config.ts';
import { browserConnectionCap } from './doors/limits.ts';
import type { Log } from './log.ts';

/** Descriptors a server uses besides connections: database files, listening sockets, the writer. */
const OWN_DESCRIPTORS = 64;

/** The soft limit on open files in the text of /proc/self/limits; undefined when unlimited or absent. */
export function openFilesLimit(limitsText: string): number | undefined {
  const soft = /^Max open files\s+(\d+)\s/mu.exec(limitsText)?.[1];
  return soft === undefined ? undefined : Number(soft);
}

/**
 * Warn once when the open-files limit cannot hold the connection limits. `readLimits` reads
 * /proc/self/limits as the runtime does; where it cannot (not Linux), nothing is said.
 */
export function warnIfFewDescriptors(
  readLimits: () => string,
  limits: Pick<Limits, 'maxBrowsers' | 'maxConsoles'>,
  log: Log,
): void {
  let limit: number | undefined;
  try {
    limit = openFilesLimit(readLimits());
  } catch {
    return;
  }
  const needed = browserConnectionCap(limits) + limits.maxConsoles + OWN_DESCRIPTORS;
  if (limit === undefined || limit >= needed) return;
  log.warn('the descriptor limit is below what the connection limits allow', {
    limit,
    needed,
    fix: 'raise it (ulimit -n, LimitNOFILE= in a systemd unit) or lower CONSOLE_ROOM_MAX_BROWSERS and CONSOLE_ROOM_MAX_CONSOLES',
  });
}
