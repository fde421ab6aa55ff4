// Whether the process may open as many descriptors as its connection limits allow: each browser and
// each console holds one. A service manager's default (systemd: 1024) is far below the shipped
// limits, and past it connections fail to be accepted; a start says so once.
import type { Limits } from './config.ts';

/** Descriptors a server uses besides connections: database files, listening sockets, the writer. */
const OWN_DESCRIPTORS = 64;

/** The soft limit on open files in the text of /proc/self/limits; undefined when unlimited or absent. */
export function openFilesLimit(limitsText: string): number | undefined {
  const soft = /^Max open files\s+(\d+)\s/mu.exec(limitsText)?.[1];
  return soft === undefined ? undefined : Number(soft);
}

/** A warning's fields when `limit` descriptors cannot hold the connection limits; else undefined. */
export function descriptorShortfall(
  limit: number | undefined,
  limits: Pick<Limits, 'maxBrowsers' | 'maxConsoles'>,
): { limit: number; needed: number; fix: string } | undefined {
  const needed = limits.maxBrowsers + limits.maxConsoles + OWN_DESCRIPTORS;
  if (limit === undefined || limit >= needed) return undefined;
  return {
    limit,
    needed,
    fix: 'raise it (ulimit -n, LimitNOFILE= in a systemd unit) or lower CONSOLE_ROOM_MAX_BROWSERS and CONSOLE_ROOM_MAX_CONSOLES',
  };
}
