// The browser door's app on its own, for what app.request() can show without sockets.
import type { Hono } from 'hono';
import { createApp } from '../../src/app.ts';
import { DEFAULT_LIMITS } from '../../src/config.ts';
import { BrowserDoor } from '../../src/doors/browser-door.ts';
import { devOriginPolicy, type OriginPolicy } from '../../src/http/origins.ts';
import { Hub } from '../../src/hub/hub.ts';
import type { Transcript } from '../../src/hub/transcript.ts';
import { silentLog } from '../../src/log.ts';

/** What a bare app may be given; everything has a default of a dev-mode server on 127.0.0.1:8080. */
export interface BareAppOptions {
  hub?: Hub;
  checkDatabase?: () => Promise<void>;
  origins?: OriginPolicy;
  remoteAddress?: string;
  /** Answers an admitted upgrade; by default a 101 stand-in. */
  upgrade?: () => Promise<Response | undefined>;
}

/** A dev-mode app on a Hub without a store, for app.request(): nothing listens, no socket opens. */
export function bareApp(options: BareAppOptions = {}): { app: Hono; hub: Hub } {
  const hub = options.hub ?? new Hub({ transcript: {} as Transcript });
  const origins =
    options.origins ?? devOriginPolicy({ host: '127.0.0.1', port: () => 8080, tls: false, extra: [] });
  const door = new BrowserDoor({
    hub,
    log: silentLog,
    origins,
    limits: DEFAULT_LIMITS,
  });
  const app = createApp({
    hub,
    log: silentLog,
    assets: new Map(),
    door,
    origins,
    upgradeWebSocket: options.upgrade ?? (async () => new Response(null, { status: 101 })),
    checkDatabase: options.checkDatabase ?? (() => Promise.resolve()),
    remoteAddress: () => options.remoteAddress ?? '127.0.0.1',
    healthTimeoutMs: 100,
    apiRate: { burst: DEFAULT_LIMITS.apiBurst, perSecond: DEFAULT_LIMITS.apiPerSecond },
  });
  return { app, hub };
}
