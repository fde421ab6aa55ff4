// Every place this server relies on a library's private internals, in one module: what it relies on,
// why, and the public path it falls back to. test/library-internals.test.ts fails when an update of ws
// takes away what is relied on here.
import { Socket } from 'node:net';
import type { WebSocket } from 'ws';

/**
 * Node: the TCP socket under a server-side TLS socket (the private `_parent`), the one its server's
 * 'connection' event gave. The browser door counts a connection from its TCP connect to its first
 * request, which arrives on the TLS socket. The socket itself when there is none (plain HTTP).
 */
export function tcpSocketUnder(socket: Socket): Socket {
  const parent = (socket as unknown as { _parent?: unknown })._parent;
  return parent instanceof Socket ? parent : socket;
}

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
