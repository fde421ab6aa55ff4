// The browser door's connections per client address, on Node: every connection from an address
// that is not a trusted proxy counts while it is not a WebSocket, whether it waits for its first
// request, is in one, or is kept alive between requests. WebSockets have their own limit (the door's
// admission), so one address can hold neither the door's capacity nor the process's descriptors.
import type { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { addressGroup } from '../doors/limits.ts';
import { type Log, throttledWarning } from '../log.ts';
import { tcpSocketUnder } from './library-internals.ts';

/** What is kept on a counted connection (its TCP socket). */
interface Counted {
  /** The key it counts under (its address's group). */
  readonly group: string;
  /** Requests in progress on it. */
  requests: number;
  /** When its last request was answered, while it has none in progress; undefined before its first. */
  idleSince: number | undefined;
  /** Bytes it had sent by then: more since, and a next request (or the rest of an upload) is coming. */
  readWhenIdle: number;
}

const COUNTED = Symbol('counted connection');
type Tracked = Socket & { [COUNTED]?: Counted };

export interface AddressConnections {
  /**
   * A connection became a WebSocket (its handshake answered with 101): the door's admission counts
   * it from here. An upgrade refused or still being admitted counts here until it closes.
   */
  upgraded(socket: Socket): void;
}

/**
 * Count the connections of `server` (Node's HTTP or HTTPS server) per address group, at most
 * `limit` each. An address at its limit has its longest idle kept-alive connection closed to make
 * room for a new one (a browser opens another when it needs one); with none idle, the new connection
 * is closed as it comes, before Node has made an HTTP parser or TLS state for it. Trusted proxies are
 * not counted.
 */
export function countPerAddress(
  server: EventEmitter,
  options: { limit: number; trusted: (address: string) => boolean; log: Log },
): AddressConnections {
  const { limit, trusted, log } = options;
  const byGroup = new Map<string, Set<Tracked>>();
  const refused = throttledWarning(log, 'browser connections refused: too many from one address');

  /** Stop counting a connection (closed, upgraded, or made room for another); once however often. */
  function forget(socket: Tracked): void {
    const counted = socket[COUNTED];
    if (!counted) return;
    socket[COUNTED] = undefined;
    socket.off('close', onClose);
    const group = byGroup.get(counted.group);
    group?.delete(socket);
    if (group?.size === 0) byGroup.delete(counted.group);
  }
  function onClose(this: Tracked): void {
    forget(this);
  }
  /**
   * The group's connection idle the longest, if any is idle: answered, with no request in progress
   * and nothing read since (a next request's first bytes, or the rest of an upload answered early).
   */
  function longestIdle(group: Set<Tracked>): Tracked | undefined {
    let found: Tracked | undefined;
    let since = Number.POSITIVE_INFINITY;
    for (const socket of group) {
      const counted = socket[COUNTED];
      const idle = counted?.idleSince;
      if (idle === undefined || idle >= since || socket.bytesRead !== counted?.readWhenIdle) continue;
      [found, since] = [socket, idle];
    }
    return found;
  }

  server.prependListener('connection', (socket: Tracked) => {
    const address = socket.remoteAddress ?? '';
    if (trusted(address)) return;
    const key = addressGroup(address);
    let group = byGroup.get(key);
    if (group && group.size >= limit) {
      const idle = longestIdle(group);
      if (!idle) {
        refused({ remote: address, ...(key === address ? {} : { counted: key }), limit });
        socket.destroy();
        return;
      }
      forget(idle);
      idle.destroy();
      log.debug('browser connection closed: its address is at its limit and it was idle', {
        remote: address,
      });
    }
    if (!group) {
      group = new Set();
      byGroup.set(key, group);
    }
    group.add(socket);
    socket[COUNTED] = { group: key, requests: 0, idleSince: undefined, readWhenIdle: 0 };
    socket.on('close', onClose);
  });

  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    const socket: Tracked = tcpSocketUnder(request.socket);
    const counted = socket[COUNTED];
    if (!counted) return;
    counted.requests += 1;
    counted.idleSince = undefined;
    response.once('close', () => {
      counted.requests -= 1;
      if (counted.requests > 0) return;
      counted.idleSince = performance.now();
      counted.readWhenIdle = socket.bytesRead;
    });
  });

  return { upgraded: (socket) => forget(tcpSocketUnder(socket)) };
}
