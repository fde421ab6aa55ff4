// The Hono app of the browser door: page, static files, health check and the WebSocket route.
import { Hono } from 'hono';
import { secureHeaders } from 'hono/secure-headers';
import type { UpgradeWebSocket } from 'hono/ws';
import * as v from 'valibot';
import { browserEvents, type SocketAccess, standardSocketAccess } from './doors/ws-door.ts';
import type { Asset } from './http/assets.ts';
import type { Hub } from './hub/hub.ts';
import type { Log } from './log.ts';
import { nameProblem } from './protocol/frames.ts';

/** Everything the app needs; runtime-specific pieces come from the entry file. */
export interface AppDeps {
  hub: Hub;
  log: Log;
  assets: Map<string, Asset>;
  upgradeWebSocket: UpgradeWebSocket;
  /** Resolves when the database answers. */
  checkDatabase: () => Promise<void>;
  /** The remote address of a request, as the runtime reports it. */
  remoteAddress: (c: { env: unknown; req: { raw: Request } }) => string;
  socketAccess?: SocketAccess;
  healthTimeoutMs?: number;
}

const Name = (what: string) =>
  v.pipe(
    v.optional(v.string(), ''),
    v.transform((s) => s.trim()),
    v.check(
      (s) => nameProblem(s) === undefined,
      (issue) => `${what} ${nameProblem(String(issue.input))}`,
    ),
  );

// Dev mode: the browser says who it is in the query string. Validated here, at the door.
const DevQuery = v.object({
  user: Name('user'),
  room: Name('room'),
  since: v.optional(
    v.pipe(v.string(), v.regex(/^\d{1,15}$/u, 'since must be a sequence number'), v.transform(Number)),
  ),
});

const CSP = {
  defaultSrc: ["'none'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'"],
  imgSrc: ["'self'"],
  connectSrc: ["'self'"],
  manifestSrc: ["'self'"],
  baseUri: ["'none'"],
  formAction: ["'self'"],
  frameAncestors: ["'none'"],
};

/** Build the browser door's Hono app. */
export function createApp(deps: AppDeps): Hono {
  const { hub, log, assets } = deps;
  const access = deps.socketAccess ?? standardSocketAccess;
  const app = new Hono();

  app.use(
    secureHeaders({
      contentSecurityPolicy: CSP,
      referrerPolicy: 'no-referrer',
      xFrameOptions: 'DENY',
      crossOriginEmbedderPolicy: false,
      // HSTS belongs to deployments served over https; plain-http dev mode must not send it.
      strictTransportSecurity: false,
    }),
  );

  app.get('/healthz', async (c) => {
    const stats = hub.stats;
    try {
      await withTimeout(deps.checkDatabase(), deps.healthTimeoutMs ?? 2000);
    } catch (error) {
      log.warn('health check failed', { error: String(error) });
      return c.json({ status: 'unavailable', database: 'down' }, 503);
    }
    if (!hub.accepting) return c.json({ status: 'stopping', database: 'up' }, 503);
    return c.json({ status: 'ok', database: 'up', rooms: stats.rooms, connections: stats.connections });
  });

  const serve = (name: string, cache: string) => (c: { req: { header(n: string): string | undefined } }) => {
    const asset = assets.get(name);
    if (!asset) return new Response('not found', { status: 404 });
    const headers = { 'content-type': asset.type, etag: asset.etag, 'cache-control': cache };
    if (c.req.header('if-none-match') === asset.etag) return new Response(null, { status: 304, headers });
    return new Response(asset.body, { headers });
  };

  app.get('/', (c) => serve('index.html', 'no-cache')(c));
  // Browsers ask for it whatever the page says; an empty answer keeps their consoles quiet.
  app.get(
    '/favicon.ico',
    () => new Response(null, { status: 204, headers: { 'cache-control': 'max-age=86400' } }),
  );
  app.get('/static/:file{[A-Za-z0-9_.-]+}', (c) => serve(c.req.param('file'), 'no-cache')(c));

  app.get('/ws', async (c) => {
    if (c.req.header('upgrade')?.toLowerCase() !== 'websocket') {
      return c.json({ error: { code: 'upgrade_required', message: 'this endpoint speaks WebSocket' } }, 426);
    }
    if (!hub.accepting)
      return c.json({ error: { code: 'shutting_down', message: 'server is restarting' } }, 503);
    const parsed = v.safeParse(DevQuery, c.req.query());
    if (!parsed.success)
      return c.json({ error: { code: 'bad_query', message: parsed.issues[0].message } }, 400);
    const { user, room, since } = parsed.output;
    const identity = { user, room, since, remote: deps.remoteAddress(c) };
    return deps.upgradeWebSocket(c, browserEvents(hub, log, identity, access));
  });

  app.notFound((c) => c.json({ error: { code: 'not_found', message: 'not found' } }, 404));
  app.onError((error, c) => {
    log.error('request failed', { path: c.req.path, error: String(error) });
    return c.json({ error: { code: 'internal', message: 'internal error' } }, 500);
  });
  return app;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
