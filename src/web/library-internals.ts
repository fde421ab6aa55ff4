// Every place this server relies on a library's private internals, in one module: what it relies on,
// why, and the public path it falls back to. test/library-internals.test.ts fails when an update of
// ws or @hono/node-server takes away what is relied on here.
import { Socket } from 'node:net';
import type { Context } from 'hono';
import type { WSEvents } from 'hono/ws';
import type { WebSocket } from 'ws';

/**
 * ws: the TCP socket under a WebSocket (the private `_socket`). Frames framed once per broadcast are
 * written to it directly, so every member of a room gets the same bytes in one write instead of ws
 * building and writing a header and payload per socket. Undefined when it is not there (or not a
 * socket): the caller then sends through ws's public `send`.
 */
export function tcpSocketOf(ws: WebSocket): Socket | undefined {
  const socket = (ws as unknown as { _socket?: unknown })._socket;
  return socket instanceof Socket ? socket : undefined;
}

/** The upgrade helper of @hono/node-server, as `leanUpgrade` calls it. */
export type NodeUpgrade = (c: Context, events: WSEvents) => Promise<Response | undefined>;

/** What the stand-in context is known to give the upgrade helper (the rest falls back, see below). */
const STAND_IN_KEYS = new Set<PropertyKey>(['env', 'req']);
const STAND_IN_REQ_KEYS = new Set<PropertyKey>(['url', 'header']);

/** How often the stand-in lacked something the helper asked for (0 while the library is as known). */
export const standInMisses = { count: 0 };

/**
 * @hono/node-server's upgrade keeps the context it is given for as long as the socket lives (its
 * per-socket handlers close over it), and with it the whole upgrade request: headers, URL objects,
 * the IncomingMessage. Admission has read everything it needs by now, so the upgrade gets a stand-in
 * that holds only what the helper reads: the Upgrade header, the URL and the server's bindings (env).
 * Once the socket is open, the bindings let go of the IncomingMessage too (`env.incoming`: private
 * to node-server; the 101 response and its headers are written by then).
 *
 * Fallback: anything else the helper asks of the stand-in is answered from the real context until
 * the socket opens (and counted in `standInMisses`), so a changed helper still works, only without
 * the memory saving.
 */
export function leanUpgrade(
  upgrade: NodeUpgrade,
  c: Context,
  events: WSEvents,
): Promise<Response | undefined> {
  const env = c.env as { incoming?: unknown };
  const upgradeHeader = c.req.header('upgrade');
  const url = c.req.url;
  let real: Context | undefined = c;
  const miss = (from: object, key: PropertyKey): unknown => {
    standInMisses.count += 1;
    return real ? Reflect.get(from === standInReq ? (real.req as object) : real, key) : undefined;
  };
  const standInReq = new Proxy(
    { url, header: (name: string) => (name.toLowerCase() === 'upgrade' ? upgradeHeader : undefined) },
    { get: (target, key) => (STAND_IN_REQ_KEYS.has(key) ? Reflect.get(target, key) : miss(standInReq, key)) },
  );
  const standIn = new Proxy(
    { env, req: standInReq },
    { get: (target, key) => (STAND_IN_KEYS.has(key) ? Reflect.get(target, key) : miss(standIn, key)) },
  );
  return upgrade(standIn as unknown as Context, {
    ...events,
    onOpen: (event, ws) => {
      real = undefined;
      if ('incoming' in env) env.incoming = undefined;
      events.onOpen?.(event, ws);
    },
  });
}
