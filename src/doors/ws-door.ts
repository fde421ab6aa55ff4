// The browser door: adapts a WebSocket (via Hono's runtime-neutral WSContext) to a Hub peer.
import type { WSContext, WSEvents } from 'hono/ws';
import type { Hub } from '../hub/hub.ts';
import type { Outgoing, Peer } from '../hub/peer.ts';
import type { Log } from '../log.ts';
import { CloseCode, ErrorCode } from '../protocol/codes.ts';
import { decodeClientFrame } from '../protocol/frames.ts';
import { FrameHandler } from './dispatch.ts';
import type { FloodLimits } from './flood.ts';

/** Who a browser connection is and where it goes, decided before the upgrade. */
export interface BrowserIdentity {
  user: string;
  room: string;
  since: number | undefined;
  remote: string;
  /**
   * Called once the socket is open with a way to close it; returns the function to call when it
   * closes. Sign-in uses it to close a socket within a second of its session ending.
   */
  attach?: (close: (code: number, reason: string) => void) => () => void;
}

/**
 * How one runtime's WebSocket does what WSContext does not expose. The default works on any
 * web-standard WebSocket; the Node entry passes one that writes frames framed once per broadcast
 * and pauses reading under load.
 */
export interface SocketAccess {
  send(ws: WSContext, frames: Outgoing): void;
  bufferedAmount(ws: WSContext): number;
  pause(ws: WSContext): void;
  resume(ws: WSContext): void;
}

/** Works on any runtime whose raw socket is a web-standard WebSocket: one send per frame. */
export const standardSocketAccess: SocketAccess = {
  send: (ws, frames) => {
    for (const frame of frames.parts) ws.send(frame.json);
  },
  bufferedAmount: (ws) => (ws.raw as { bufferedAmount?: number } | undefined)?.bufferedAmount ?? 0,
  pause: () => {},
  resume: () => {},
};

/** Per-connection bounds the browser door applies. */
export interface BrowserLimits {
  flood: FloodLimits;
  /** Count the connection; undefined means a limit was reached in the meantime. */
  acquire: () => (() => void) | undefined;
}

/** The WebSocket event handlers for one browser connection. */
export function browserEvents(
  hub: Hub,
  log: Log,
  who: BrowserIdentity,
  access: SocketAccess,
  limits: BrowserLimits,
): WSEvents {
  let peer: Peer | undefined;
  let handler: FrameHandler | undefined;
  let detach: (() => void) | undefined;
  let release: (() => void) | undefined;
  return {
    onOpen(_event, ws) {
      release = limits.acquire();
      if (!release) {
        // Checked before the upgrade too; this catches connections that raced past that check.
        ws.close(CloseCode.TryAgainLater, 'too many connections');
        return;
      }
      detach = who.attach?.((code, reason) => ws.close(code, reason));
      const joined: Peer = {
        user: who.user,
        room: who.room,
        wantsBackscroll: true,
        optedIn: true,
        since: who.since,
        send: (frames) => access.send(ws, frames),
        bufferedAmount: () => access.bufferedAmount(ws),
        close: (code, reason) => ws.close(code, reason),
      };
      peer = joined;
      handler = new FrameHandler(hub, joined, log, limits.flood, {
        pause: () => access.pause(ws),
        resume: () => access.resume(ws),
      });
      log.info('browser joined', { room: who.room, user: who.user, remote: who.remote, since: who.since });
      void hub.join(joined);
    },
    onMessage(event, ws) {
      if (!peer || !handler || ws.readyState !== 1) return;
      if (typeof event.data !== 'string') {
        hub.refuse(peer, ErrorCode.BinaryUnsupported, 'binary frames are not accepted; send JSON text');
        return;
      }
      const decoded = decodeClientFrame(event.data);
      if (!decoded.ok) {
        hub.refuse(peer, decoded.code, decoded.message);
        return;
      }
      handler.handle(decoded.frame);
    },
    onClose(event) {
      detach?.();
      release?.();
      if (!peer) return;
      hub.leave(peer);
      log.info('browser left', { room: peer.room, user: peer.user, code: event.code });
      peer = undefined;
    },
    onError(event) {
      log.debug('browser socket error', {
        remote: who.remote,
        error: String((event as ErrorEvent).error ?? event.type),
      });
    },
  };
}
