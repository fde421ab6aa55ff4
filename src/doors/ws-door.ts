// The browser door: adapts a WebSocket (via Hono's runtime-neutral WSContext) to a Hub peer.
import type { WSContext, WSEvents } from 'hono/ws';
import type { Hub } from '../hub/hub.ts';
import type { Outgoing, Peer } from '../hub/peer.ts';
import { Encoded } from '../hub/peer.ts';
import type { Log } from '../log.ts';
import { CloseCode, ErrorCode, NoticeCode } from '../protocol/codes.ts';
import { decodeClientFrame } from '../protocol/frames.ts';
import { FrameHandler } from './dispatch.ts';
import { ReadGate, Throttle, type ThrottleLimits } from './throttle.ts';

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
  throttle: ThrottleLimits;
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
  let throttle: Throttle<unknown> | undefined;
  let detach: (() => void) | undefined;
  let release: (() => void) | undefined;

  /** One frame, at most at the connection's rate. */
  const take = (data: unknown): void => {
    if (!peer || !handler) return;
    if (typeof data !== 'string') {
      hub.refuse(peer, ErrorCode.BinaryUnsupported, 'binary frames are not accepted; send JSON text');
      return;
    }
    const decoded = decodeClientFrame(data);
    if (!decoded.ok) {
      hub.refuse(peer, decoded.code, decoded.message);
      return;
    }
    handler.handle(decoded.frame);
  };

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
        close: (code, reason) => {
          ws.close(code, reason);
          // The client's answering close frame is behind whatever it sent while reading was paused;
          // reading again lets the closing handshake finish instead of waiting for its timeout.
          access.resume(ws);
        },
      };
      peer = joined;
      const reading = new ReadGate(
        () => access.pause(ws),
        () => access.resume(ws),
      );
      handler = new FrameHandler(hub, joined, reading);
      throttle = new Throttle<unknown>(limits.throttle, {
        take,
        pause: () => reading.hold('rate'),
        resume: () => reading.release('rate'),
        slowed: (retryAfterMs) => {
          log.info('browser slowed: sending faster than its rate', { user: who.user, remote: who.remote });
          hub.notify(
            joined,
            new Encoded({
              type: 'notice',
              code: NoticeCode.RateLimited,
              message: 'sending faster than the rate allows; frames are being slowed, none is dropped',
              retry_after_ms: retryAfterMs,
            }),
          );
        },
        flood: (reason) => {
          log.warn('browser closed: kept sending faster than its rate', {
            user: who.user,
            remote: who.remote,
            reason,
          });
          hub.drop(joined, CloseCode.Flood, 'sending too fast for too long');
        },
      });
      log.info('browser joined', { room: who.room, user: who.user, remote: who.remote, since: who.since });
      void hub.join(joined);
    },
    onMessage(event, ws) {
      if (!throttle || ws.readyState !== 1) return;
      throttle.push(event.data, frameSize(event.data));
    },
    onClose(event) {
      throttle?.close();
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

/** A frame's size, near enough for the bound on held frames (UTF-16 units for text). */
function frameSize(data: unknown): number {
  if (typeof data === 'string') return data.length;
  if (data instanceof ArrayBuffer) return data.byteLength;
  if (data instanceof Blob) return data.size;
  return 0;
}
