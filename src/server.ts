// Starts and stops the whole server on Node: database, Hub, console door and browser door.
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import { ConsoleKeys } from './auth/console-keys.ts';
import { Oidc, OidcError } from './auth/oidc.ts';
import type { Config } from './config.ts';
import { startConsoleDoor } from './doors/console-door.ts';
import { SharedRates, throttleLimits } from './doors/throttle.ts';
import type { AuthDeps } from './http/auth.ts';
import { SessionWatch } from './http/session-watch.ts';
import { Hub } from './hub/hub.ts';
import { Restrictions } from './hub/restrictions.ts';
import type { Log } from './log.ts';
import type { MetricsListener } from './metrics/listener.ts';
import { type Metrics, noMetrics } from './metrics/metrics.ts';
import { isRemote } from './store/db.ts';
import { Retention } from './store/retention.ts';
import { DatabaseOpenError, openStore } from './store/store.ts';
import { SERVER_NAME, VERSION } from './version.ts';
import type { WebDoor, WebOptions } from './web/start.ts';

/** Starts the browser door on a runtime; loaded only when the web door is wanted. */
export type WebStarter = (options: WebOptions) => Promise<WebDoor>;

const nodeWeb = async (): Promise<WebStarter> => (await import('./web/node.ts')).startWeb;

/** The server could not start; the message is one line for the operator. */
export class StartError extends Error {
  override readonly name = 'StartError';
}

/** A running server. */
export interface RunningServer {
  readonly hub: Hub;
  readonly consoleAddress: { host: string; port: number };
  /** The browser door's URL, unless the server runs with --ndjson-only. */
  readonly webUrl: string | undefined;
  /** Where /metrics is served, when a metrics port is set. */
  readonly metricsUrl: string | undefined;
  /** Graceful stop: stop accepting, finish pending commits and their broadcasts, close all, close the db. */
  stop(): Promise<void>;
}

function listenError(error: unknown, what: string, flag: string): StartError {
  const code = (error as { code?: string }).code;
  if (code === 'EADDRINUSE') return new StartError(`${what} is already in use (${flag})`);
  if (code === 'EACCES')
    return new StartError(`${what} needs privileges this process does not have (${flag})`);
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND')
    return new StartError(`${what}: no such local address (${flag})`);
  return new StartError(`${what}: ${error instanceof Error ? error.message : String(error)}`);
}

/** Read and check the certificate and key, so a bad pair ends start-up with one clear line. */
async function loadTls(tls: NonNullable<Config['tls']>): Promise<{ cert: Buffer; key: Buffer }> {
  const read = async (path: string, what: string) =>
    readFile(path).catch((error: unknown) => {
      throw new StartError(`cannot read TLS ${what} ${path}: ${(error as Error).message}`);
    });
  const cert = await read(tls.certFile, 'certificate');
  const key = await read(tls.keyFile, 'key');
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    throw new StartError(
      `TLS certificate ${tls.certFile} and key ${tls.keyFile} cannot be used: ${(error as Error).message}`,
    );
  }
  return { cert, key };
}

/** How the server's own parts are started, where a caller needs another way (tests). */
export interface StartOptions {
  /** The transcript writer thread's entry module; Node 20 cannot start the TypeScript one by itself. */
  writerScript?: URL | undefined;
  /** The search thread's entry module, likewise. */
  searchScript?: URL | undefined;
  /** How long an export its reader stops taking lives on (EXPORT_STALL_MS unless given). */
  exportStallMs?: number | undefined;
}

/** The running metrics: their sink, and the listener that serves them (both only with a metrics port). */
interface MetricsParts {
  sink: Metrics;
  listener: MetricsListener | undefined;
  stop(): Promise<void>;
}

/** Load prom-client and listen on the metrics port, only when one is set. */
async function startMetrics(config: Config, log: Log, rooms: () => number): Promise<MetricsParts> {
  if (config.metricsPort === undefined)
    return { sink: noMetrics, listener: undefined, stop: () => Promise.resolve() };
  const [{ PrometheusMetrics }, { listenMetrics }] = await Promise.all([
    import('./metrics/prometheus.ts'),
    import('./metrics/listener.ts'),
  ]);
  const runtime = 'Deno' in globalThis ? 'deno' : 'node';
  const sink = new PrometheusMetrics({ rooms, version: VERSION, runtime });
  let listener: MetricsListener;
  try {
    listener = await listenMetrics(sink, config.metricsHost, config.metricsPort, log);
  } catch (error) {
    sink.stop();
    throw listenError(error, `metrics port ${config.metricsPort} on ${config.metricsHost}`, '--metrics-port');
  }
  log.info('metrics listening', { url: listener.url });
  return {
    sink,
    listener,
    stop: async () => {
      sink.stop();
      await listener.close();
    },
  };
}

/** Start everything the configuration asks for. Throws StartError on a clear operator mistake. */
export async function startServer(
  config: Config,
  log: Log,
  loadWeb: () => Promise<WebStarter> = nodeWeb,
  options: StartOptions = {},
): Promise<RunningServer> {
  for (const warning of config.warnings) log.warn(warning);
  const tls = config.tls && !config.ndjsonOnly ? await loadTls(config.tls) : undefined;
  const oidc =
    config.auth && !config.ndjsonOnly
      ? await Oidc.discover(config.auth).catch((error: unknown) => {
          throw error instanceof OidcError ? new StartError(error.message) : error;
        })
      : undefined;
  let rooms = (): number => 0;
  const metrics = await startMetrics(config, log, () => rooms());
  const store = await openStore(config.db, {
    authToken: config.dbAuthToken,
    statementTimeoutMs: config.dbStatementTimeoutMs,
    metrics: metrics.sink,
    writer: {
      script: options.writerScript,
      onLost: (error) => {
        metrics.sink.writerRestarted();
        log.error('transcript writer stopped; the next message starts a new one', { error: error.message });
      },
    },
    searches: {
      script: options.searchScript,
      onLost: (error) =>
        log.error('search thread stopped; the next search starts a new one', { error: error.message }),
    },
  }).catch(async (error: unknown) => {
    await metrics.stop();
    throw error instanceof DatabaseOpenError ? new StartError(error.message) : error;
  });
  const { transcript } = store;
  const closeStore = async (): Promise<void> => {
    await store.close();
    await metrics.stop();
  };
  // The transcript must answer a read before the doors open.
  await transcript.rooms(1).catch(async (error: unknown) => {
    await closeStore();
    throw error;
  });
  if (store.kind === 'postgres') log.info('transcript open', { db: store.shown, engine: 'postgresql' });
  else if (!isRemote(config.db))
    log.info('transcript open', { db: config.db, journal: 'wal', synchronous: 'full' });
  // Who may use which console name, and the bans and mutes in force, before anyone can connect.
  const moderation = store.moderation;
  const keys = new ConsoleKeys(store.keys, { policy: config.consoleAuth, log });
  let restrictions: Restrictions;
  try {
    await keys.start();
    restrictions = new Restrictions(await moderation.restrictions());
  } catch (error) {
    keys.stop();
    await closeStore();
    throw new StartError(
      `cannot read keys and bans from database ${store.shown}: ${(error as Error).message}`,
    );
  }
  if (config.consoleAuth !== 'names') log.info('console keys', { policy: config.consoleAuth });
  // One node of several: loaded only then, so a single node never loads the Redis client.
  const cluster = config.redis
    ? await import('./cluster/redis-bus.ts')
        .then(({ RedisBus }) => RedisBus.connect(config.redis as string, log))
        .catch(async (error: unknown) => {
          keys.stop();
          await closeStore();
          throw new StartError((error as Error).message);
        })
    : undefined;
  const hub = new Hub({
    transcript,
    log,
    serverName: SERVER_NAME,
    maxBufferedBytes: config.limits.maxUnsentBytes,
    maxRooms: config.limits.maxRooms,
    restrictions,
    admin: { admins: new Set(config.admins), store: moderation, revoke: keys.revoke },
    metrics: metrics.sink,
    cluster,
    commitSpacingMs: config.commitDelayMs,
    retentionSeconds: config.retentionSeconds,
  });
  rooms = () => hub.stats.rooms;
  const closeAll = async (): Promise<void> => {
    await cluster?.close();
    await closeStore();
  };
  if (cluster) {
    await cluster.start(hub.clusterListener).catch(async (error: unknown) => {
      keys.stop();
      await closeAll();
      throw new StartError(`cannot join the cluster: ${(error as Error).message}`);
    });
    log.info('cluster node', { node: cluster.node });
  }

  let web: WebDoor | undefined;
  let auth: AuthDeps | undefined;
  if (config.auth && oidc) {
    const sessions = store.sessions({
      idleSeconds: config.auth.sessionIdleSeconds,
      maxSeconds: config.auth.sessionMaxSeconds,
    });
    const watch = new SessionWatch(sessions, log);
    watch.start();
    auth = { config: config.auth, oidc, sessions, watch, log, metrics: metrics.sink };
  }
  const { limits } = config;
  // One bucket per person (or address) across both doors and all their connections.
  const sharedRates = new SharedRates({
    burst: limits.personRateBurst,
    perSecond: limits.personRatePerSecond,
  });
  const consoleDoor = await startConsoleDoor({
    hub,
    log,
    host: config.ndjsonHost,
    port: config.ndjsonPort,
    helloTimeoutMs: limits.helloTimeoutMs,
    heartbeatMs: limits.heartbeatMs,
    maxConnections: limits.maxConsoles,
    throttle: throttleLimits(limits),
    sharedRates,
    maxUnsentBytes: limits.maxUnsentBytes,
    identity: keys,
    metrics: metrics.sink,
  }).catch(async (error: unknown) => {
    keys.stop();
    auth?.watch.stop();
    await closeAll();
    throw listenError(error, `console door port ${config.ndjsonPort}`, '--ndjson-port');
  });
  log.info('console door listening', { address: `${consoleDoor.address.host}:${consoleDoor.address.port}` });

  if (!config.ndjsonOnly) {
    // Loaded only here, so --ndjson-only never loads the web stack.
    const stopEarly = async (): Promise<void> => {
      consoleDoor.stopAccepting();
      keys.stop();
      auth?.watch.stop();
      await closeAll();
    };
    const startWeb = await loadWeb().catch(async (error: unknown) => {
      await stopEarly();
      throw error;
    });
    web = await startWeb({
      hub,
      log,
      host: config.host,
      port: config.port,
      checkDatabase: () => transcript.ping(),
      tls,
      trustProxy: config.trustProxy,
      allowedOrigins: config.allowedOrigins,
      auth,
      keys,
      limits,
      metrics: metrics.sink,
      sharedAddresses: cluster?.addresses,
      sharedRates,
      exportStallMs: options.exportStallMs,
    }).catch(async (error: unknown) => {
      await stopEarly();
      throw listenError(error, `port ${config.port} on ${config.host}`, '--port');
    });
    if (auth)
      log.info('sign-in enabled', {
        issuer: config.auth?.issuer ?? config.auth?.metadataUrl,
        public: config.auth?.publicOrigin,
      });
    else
      log.warn('browser door is unauthenticated (dev mode): anyone who can reach it may chat under any name');
    log.info('browser door listening', { url: web.url });
  }

  const retention =
    config.retentionSeconds === undefined
      ? undefined
      : new Retention({
          store: transcript,
          keepSeconds: config.retentionSeconds,
          log,
          metrics: metrics.sink,
        });
  if (retention) {
    log.info('retention', { days: Math.round((config.retentionSeconds ?? 0) / 864) / 100 });
    retention.start();
  }

  let stopped: Promise<void> | undefined;
  const stop = async (): Promise<void> => {
    await retention?.stop();
    consoleDoor.stopAccepting();
    web?.stopAccepting();
    keys.stop();
    auth?.watch.stop();
    await hub.shutdown();
    // Give closing handshakes a moment to flush, then cut whatever is left.
    if (hub.stats.connections > 0) await new Promise((resolve) => setTimeout(resolve, 500));
    consoleDoor.destroyAll();
    web?.destroyAll();
    await closeAll();
  };
  return {
    hub,
    consoleAddress: consoleDoor.address,
    webUrl: web?.url,
    metricsUrl: metrics.listener?.url,
    stop: () => {
      stopped ??= stop();
      return stopped;
    },
  };
}
