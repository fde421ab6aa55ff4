// The browser door's web server, wired once for every runtime: the door, its origin rules and the app.
// A runtime adapter (web/node.ts, web/deno.ts) supplies the upgrade, socket access and the listener.
import { fileURLToPath } from 'node:url';
import type { Context, Hono } from 'hono';
import type { WSEvents } from 'hono/ws';
import { createApp } from '../app.ts';
import type { ConsoleKeys } from '../auth/console-keys.ts';
import type { Limits } from '../config.ts';
import { BrowserDoor, type SocketAccess } from '../doors/browser-door.ts';
import type { SharedCounts } from '../doors/limits.ts';
import type { SharedRates } from '../doors/throttle.ts';
import { loadAssets } from '../http/assets.ts';
import { type AuthDeps, authenticateBrowser } from '../http/auth.ts';
import { devOriginPolicy, publicOriginPolicy } from '../http/origins.ts';
import { clientInfo, type PeerOf, trustList } from '../http/proxy.ts';
import type { Hub } from '../hub/hub.ts';
import type { Log } from '../log.ts';
import type { Metrics } from '../metrics/metrics.ts';

const STATIC_DIR = fileURLToPath(new URL('../../static/', import.meta.url));

/** Browser door settings. */
export interface WebOptions {
  hub: Hub;
  log: Log;
  host: string;
  port: number;
  checkDatabase: () => Promise<void>;
  /** How long an export its reader stops taking lives on (EXPORT_STALL_MS unless given). */
  exportStallMs?: number | undefined;
  /** PEM certificate and key: serve https and wss. */
  tls?: { cert: Uint8Array; key: Uint8Array } | undefined;
  /** Proxy addresses whose forwarding headers are believed. */
  trustProxy: readonly string[];
  /** Dev mode: origins allowed besides the server's own (a proxy's public origin). */
  allowedOrigins?: readonly string[];
  auth?: AuthDeps | undefined;
  /** Console keys, for the page's key panel (signed in only). */
  keys?: ConsoleKeys | undefined;
  limits: Limits;
  /** An upgrade that has not become an open WebSocket by then is cut (Node; 10 s unless given). */
  handshakeTimeoutMs?: number;
  /** Where browser connections are counted. */
  metrics?: Metrics | undefined;
  /** A cluster's browser connections per address, so the per-address limit holds across nodes. */
  sharedAddresses?: SharedCounts | undefined;
  /** The rate all of one person's (or address's) connections share, with the console door's. */
  sharedRates?: SharedRates | undefined;
}

/** A listening browser door. */
export interface WebDoor {
  readonly url: string;
  /** Stop accepting connections and requests. */
  stopAccepting(): void;
  /** Close whatever is still open (keep-alive HTTP, unfinished WebSockets). */
  destroyAll(): void;
}

/** What a runtime listens with. */
export interface Listening {
  readonly port: number;
  stopAccepting(): void;
  destroyAll(): void;
}

/** What the runtime-neutral part hands a runtime's listener. */
export interface Wiring {
  door: BrowserDoor;
  client: ReturnType<typeof clientInfo>;
}

/** What one runtime contributes to the browser door. */
export interface WebRuntime {
  /**
   * The runtime's WebSocket upgrade. Its `onClose` must come exactly once for every upgrade it was
   * asked for, completed or not, so the door gives back the connection slot admission took.
   */
  upgradeWebSocket(c: Context, events: WSEvents): Promise<Response | undefined>;
  /** Reaching into the runtime's WebSocket for what WSContext does not offer. */
  access: SocketAccess;
  /** The directly connected peer of a request. */
  peer: PeerOf;
  /**
   * Serve the app; rejects with the listen error (code EADDRINUSE and so on). A runtime may take
   * WebSocket upgrades itself, through the same door, before the app sees them.
   */
  listen(app: Hono, options: WebOptions, wiring: Wiring): Promise<Listening>;
}

/** Start the browser door on a runtime. */
export async function startWebOn(runtime: WebRuntime, options: WebOptions): Promise<WebDoor> {
  const { hub, log, auth } = options;
  const assets = await loadAssets(STATIC_DIR);
  const client = clientInfo(trustList(options.trustProxy), runtime.peer);
  let listening: Listening | undefined;
  const origins = auth
    ? publicOriginPolicy(auth.config.publicOrigin)
    : devOriginPolicy({
        host: options.host,
        port: () => listening?.port ?? options.port,
        tls: options.tls !== undefined,
        extra: options.allowedOrigins ?? [],
      });
  const door = new BrowserDoor({
    hub,
    log,
    origins,
    authenticate: auth ? authenticateBrowser(auth) : undefined,
    limits: options.limits,
    access: runtime.access,
    metrics: options.metrics,
    sharedAddresses: options.sharedAddresses,
    sharedRates: options.sharedRates,
  });
  const app = createApp({
    hub,
    log,
    assets,
    door,
    origins,
    upgradeWebSocket: runtime.upgradeWebSocket,
    checkDatabase: options.checkDatabase,
    isSecure: client.isSecure,
    remoteAddress: client.remoteAddress,
    auth,
    keys: options.keys,
    exportStallMs: options.exportStallMs,
    apiRate: { burst: options.limits.apiBurst, perSecond: options.limits.apiPerSecond },
    metrics: options.metrics,
  });
  listening = await runtime.listen(app, options, { door, client });
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `${options.tls ? 'https' : 'http'}://${host}:${listening.port}`,
    stopAccepting: () => listening?.stopAccepting(),
    destroyAll: () => listening?.destroyAll(),
  };
}
