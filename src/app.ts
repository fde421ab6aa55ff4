// The Hono app of the browser door: page, static files, health, sign-in and the WebSocket route.
import { type Context, Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { secureHeaders } from 'hono/secure-headers';
import type { WSEvents } from 'hono/ws';
import * as v from 'valibot';
import { DEFAULT_LIMITS, type Limits } from './config.ts';
import { ConnectionLimit } from './doors/limits.ts';
import { throttleLimits } from './doors/throttle.ts';
import {
  type BrowserIdentity,
  browserEvents,
  type SocketAccess,
  standardSocketAccess,
} from './doors/ws-door.ts';
import type { Asset } from './http/assets.ts';
import { type AuthDeps, addAuthRoutes, readSession, sameOrigin } from './http/auth.ts';
import type { Hub } from './hub/hub.ts';
import { WritesFailing } from './hub/transcript.ts';
import type { Log } from './log.ts';
import { nameProblem } from './protocol/frames.ts';

/** Everything the app needs; runtime-specific pieces come from the entry file. */
export interface AppDeps {
  hub: Hub;
  log: Log;
  assets: Map<string, Asset>;
  /** The runtime's WebSocket upgrade, called as `upgradeWebSocket(c, events)`. */
  upgradeWebSocket: (c: Context, events: WSEvents) => Promise<Response>;
  /** Resolves when the database answers. */
  checkDatabase: () => Promise<void>;
  /** The client's address (through trusted proxies), as the runtime reports it. */
  remoteAddress: (c: Context) => string;
  /** Whether the request came over https, directly or through a trusted proxy: decides HSTS. */
  isSecure?: (c: Context) => boolean;
  socketAccess?: SocketAccess;
  healthTimeoutMs?: number;
  /** Sign-in; without it the browser door runs in dev mode (identity from the query string). */
  auth?: AuthDeps;
  /** Connection and rate limits; defaults as documented in README. */
  limits?: Pick<
    Limits,
    'maxBrowsers' | 'maxBrowsersPerIp' | 'rateBurst' | 'ratePerSecond' | 'floodTimeoutMs'
  >;
}

/** A name from a query string: trimmed, bounded, no control, zero-width or bidi characters. */
const Name = (what: string) =>
  v.pipe(
    v.optional(v.string(), ''),
    v.transform((s) => s.trim()),
    v.check(
      (s) => nameProblem(s) === undefined,
      (issue) => `${what} ${nameProblem(String(issue.input))}`,
    ),
  );

const Since = v.optional(
  v.pipe(v.string(), v.regex(/^\d{1,15}$/u, 'since must be a sequence number'), v.transform(Number)),
);

// Dev mode: the browser says who it is in the query string. Validated here, at the door.
const DevQuery = v.object({ user: Name('user'), room: Name('room'), since: Since });

// Signed in: the session says who; the query only chooses the room. A `user` parameter is ignored.
const SessionQuery = v.object({ room: Name('room'), since: Since });

const BASE_CSP = {
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

const refuse = (c: Context, status: 400 | 401 | 403 | 426 | 503, code: string, message: string) =>
  c.json({ error: { code, message } }, status);

/** Build the browser door's Hono app. */
export function createApp(deps: AppDeps): Hono {
  const { hub, log, assets, auth } = deps;
  const access = deps.socketAccess ?? standardSocketAccess;
  const limits = deps.limits ?? DEFAULT_LIMITS;
  const throttle = throttleLimits(limits);
  const connections = new ConnectionLimit(limits.maxBrowsers, limits.maxBrowsersPerIp);
  const app = new Hono();
  // Signing out is a form POST that ends in a redirect to the provider, which form-action must allow.
  const logoutOrigin = auth?.oidc.logoutOrigin;
  const CSP = logoutOrigin ? { ...BASE_CSP, formAction: ["'self'", logoutOrigin] } : BASE_CSP;

  app.use(async (c, next) => {
    await next();
    // HSTS only where the request really came over https; plain-http dev mode must never send it.
    if (deps.isSecure?.(c)) c.header('strict-transport-security', 'max-age=31536000');
  });
  app.use(
    secureHeaders({
      contentSecurityPolicy: CSP,
      // Not no-referrer: under it browsers send `Origin: null` with form POSTs, and /logout checks Origin.
      referrerPolicy: 'same-origin',
      xFrameOptions: 'DENY',
      crossOriginEmbedderPolicy: false,
      strictTransportSecurity: false,
    }),
  );

  app.get('/healthz', async (c) => {
    c.header('cache-control', 'no-store');
    const stats = hub.stats;
    try {
      await withTimeout(deps.checkDatabase(), deps.healthTimeoutMs ?? 2000);
    } catch (error) {
      log.warn('health check failed', { error: String(error) });
      const database = error instanceof WritesFailing ? error.database : 'down';
      return c.json({ status: 'unavailable', database }, 503);
    }
    if (!hub.accepting) return c.json({ status: 'stopping', database: 'up' }, 503);
    return c.json({ status: 'ok', database: 'up', rooms: stats.rooms, connections: stats.connections });
  });

  const serve = (c: Context, name: string) => {
    const asset = assets.get(name);
    if (!asset) return c.json({ error: { code: 'not_found', message: 'not found' } }, 404);
    const headers = { 'content-type': asset.type, etag: asset.etag, 'cache-control': 'no-cache' };
    if (c.req.header('if-none-match') === asset.etag) return new Response(null, { status: 304, headers });
    return new Response(asset.body, { headers });
  };

  if (auth) addAuthRoutes(app, auth);
  else app.get('/me', (c) => c.json({ mode: 'dev' }, 200, { 'cache-control': 'no-store' }));

  app.get('/', async (c) => {
    if (auth && !(await readSession(c, auth))) {
      const back = `/${new URL(c.req.url).search}`;
      return c.redirect(`/login?return_to=${encodeURIComponent(back)}`, 302);
    }
    return serve(c, 'index.html');
  });
  // Browsers ask for it whatever the page says; an empty answer keeps their consoles quiet.
  app.get(
    '/favicon.ico',
    () => new Response(null, { status: 204, headers: { 'cache-control': 'max-age=86400' } }),
  );
  app.get('/static/:file{[A-Za-z0-9_.-]+}', (c) => serve(c, c.req.param('file')));

  app.get('/ws', async (c) => {
    if (c.req.header('upgrade')?.toLowerCase() !== 'websocket') {
      return refuse(c, 426, 'upgrade_required', 'this endpoint speaks WebSocket');
    }
    if (!hub.accepting) return refuse(c, 503, 'shutting_down', 'server is restarting');
    const remote = deps.remoteAddress(c);
    const full = connections.why(remote);
    if (full) {
      log.warn('browser refused: connection limit', { remote, limit: full });
      const message =
        full === 'total' ? 'the server is at its connection limit' : 'too many connections from your address';
      return refuse(c, 503, 'too_many_connections', message);
    }
    let identity: BrowserIdentity;
    if (auth) {
      // Checked before the session: a page on another site must not ride on the visitor's cookie.
      if (!sameOrigin(c, auth.config)) return refuse(c, 403, 'bad_origin', 'cross-origin WebSocket refused');
      const session = await readSession(c, auth);
      if (!session) return refuse(c, 401, 'unauthenticated', 'sign in first');
      const parsed = v.safeParse(SessionQuery, c.req.query());
      if (!parsed.success) return refuse(c, 400, 'bad_query', parsed.issues[0].message);
      identity = {
        user: session.user.name,
        room: parsed.output.room,
        since: parsed.output.since,
        remote,
        attach: (close) => auth.watch.attach(session.id, close),
      };
    } else {
      const parsed = v.safeParse(DevQuery, c.req.query());
      if (!parsed.success) return refuse(c, 400, 'bad_query', parsed.issues[0].message);
      const { user, room, since } = parsed.output;
      identity = { user, room, since, remote };
    }
    const events = browserEvents(hub, log, identity, access, {
      throttle,
      acquire: () => connections.acquire(remote),
    });
    return deps.upgradeWebSocket(c, events);
  });

  app.notFound((c) => c.json({ error: { code: 'not_found', message: 'not found' } }, 404));
  app.onError((error, c) => {
    if (error instanceof HTTPException) return problemPage(error.status, error.message);
    log.error('request failed', { path: c.req.path, error: String(error) });
    return c.json({ error: { code: 'internal', message: 'internal error' } }, 500);
  });
  return app;
}

const escapeHtml = (text: string): string => text.replace(/[&<>"']/gu, (ch) => `&#${ch.charCodeAt(0)};`);

/** A small page for errors people meet in the browser (a failed sign-in), with a way back. */
function problemPage(status: number, message: string): Response {
  const body = `<!doctype html><html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>runspec-room</title><link rel="stylesheet" href="/static/style.css"><main class="problem"><p>${escapeHtml(message)}</p><p><a href="/login">Sign in</a> · <a href="/">Home</a></p></main></html>`;
  return new Response(body, {
    status,
    headers: { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' },
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
