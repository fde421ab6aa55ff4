// The Hono app of the browser door: it mounts the routes (page, static files, health, sign-in, /ws) and
// the headers every answer carries. Who may open /ws is the browser door's to decide.
import { type Context, Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { secureHeaders } from 'hono/secure-headers';
import type { WSEvents } from 'hono/ws';
import * as v from 'valibot';
import type { ConsoleKeys } from './auth/console-keys.ts';
import { type BrowserDoor, upgradeRequestOf } from './doors/browser-door.ts';
import { addressGroup } from './doors/limits.ts';
import type { Asset } from './http/assets.ts';
import { type AuthDeps, addAuthRoutes, readSession, sessionToken } from './http/auth.ts';
import { addKeyRoutes } from './http/keys.ts';
import type { OriginPolicy } from './http/origins.ts';
import { escapeHtml, htmlPage } from './http/page.ts';
import { KnownSessions, RequestRate, type RequestRateLimits } from './http/request-rate.ts';
import { EXPORT_FORMATS, EXPORT_TYPES } from './hub/export.ts';
import { type ExportStream, ExportsBusy, type Hub, SearchesBusy } from './hub/hub.ts';
import { historyFrame } from './hub/outgoing.ts';
import { addressRequester, personRequester } from './hub/reads.ts';
import { bannedMessage } from './hub/restrictions.ts';
import { WritesFailing } from './hub/transcript.ts';
import type { Log } from './log.ts';
import { type Metrics, noMetrics } from './metrics/metrics.ts';
import { RefusalCode } from './protocol/codes.ts';
import { HISTORY_MAX, nameProblem, SearchText } from './protocol/frames.ts';
import { SEARCH_MAX } from './protocol/search.ts';
import type { Session } from './store/sessions.ts';
import { withTimeout } from './timeout.ts';

/** Everything the app needs; runtime-specific pieces come from the runtime adapter. */
export interface AppDeps {
  hub: Hub;
  log: Log;
  assets: Map<string, Asset>;
  /** Admission to /ws and the events of each admitted socket. */
  door: BrowserDoor;
  /** The host names the server answers to (dev mode; signed in, any). */
  origins: OriginPolicy;
  /** The runtime's WebSocket upgrade, called as `upgradeWebSocket(c, events)`. */
  upgradeWebSocket: (c: Context, events: WSEvents) => Promise<Response | undefined>;
  /** Resolves when the database answers; rejects with WritesFailing while commits fail. */
  checkDatabase: () => Promise<void>;
  /** Whether the request came over https, directly or through a trusted proxy: decides HSTS. */
  isSecure?: (c: Context) => boolean;
  /** The client's address, through trusted proxies. */
  remoteAddress: (c: Context) => string;
  healthTimeoutMs?: number;
  /** An export its reader stops taking is ended after this long (EXPORT_STALL_MS unless given). */
  exportStallMs?: number | undefined;
  /** Sign-in; without it the browser door runs in dev mode (identity from the query string). */
  auth?: AuthDeps | undefined;
  /** Console keys: the signed-in page's key panel. */
  keys?: ConsoleKeys | undefined;
  /** The rate of `/api/` requests per person (signed in) or per client address. */
  apiRate: RequestRateLimits;
  /** Where refused requests are counted. */
  metrics?: Metrics | undefined;
}

/** How long an export waits for its reader to take a piece (EXPORT_PIECE) before it ends. */
export const EXPORT_STALL_MS = 30_000;

/**
 * What an export hands on at a time: a page of 500 messages is split in pieces this size (a page of
 * long messages is megabytes), so a reader is timed on a piece, not on a page.
 */
const EXPORT_PIECE = 64 * 1024;

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

const QuerySeq = v.optional(
  v.pipe(v.string(), v.regex(/^\d{1,15}$/u, 'must be a sequence number'), v.transform(Number)),
);

const QueryRoom = v.pipe(
  v.string(),
  v.check((s) => s.trim().length > 0 && nameProblem(s.trim()) === undefined, 'room is not a valid name'),
  v.transform((s) => s.trim()),
);

/** A count from a query string, from 1 to `max`. */
const QueryLimit = (max: number) =>
  v.optional(
    v.pipe(
      v.string(),
      v.regex(/^\d{1,3}$/u, 'limit must be a number'),
      v.transform(Number),
      v.minValue(1, 'limit must be at least 1'),
      v.maxValue(max, `limit must be at most ${max}`),
    ),
  );

/** `GET /api/rooms/:room/search`: the room, what to search for, older than a seq, and how many. */
const SearchQuery = v.object({
  room: QueryRoom,
  q: SearchText,
  before: QuerySeq,
  limit: QueryLimit(SEARCH_MAX),
});

/** `GET /api/rooms/:room/export`: the room, the messages after a seq (all unless given), and the format. */
const ExportQuery = v.object({
  room: QueryRoom,
  since: QuerySeq,
  format: v.optional(v.picklist(EXPORT_FORMATS, `format must be ${EXPORT_FORMATS.join(' or ')}`), 'ndjson'),
});

/** A Content-Disposition naming the file after the room: an ASCII fallback, and the name itself (RFC 6266). */
function attachment(room: string, extension: string): string {
  const ascii = room.replace(/[^A-Za-z0-9._-]/gu, '_');
  return `attachment; filename="${ascii}.${extension}"; filename*=UTF-8''${encodeURIComponent(room)}.${extension}`;
}

/** `GET /api/rooms/:room/messages`: the room, and before or after a seq, and how many. */
const HistoryQuery = v.pipe(
  v.object({
    room: QueryRoom,
    before: QuerySeq,
    after: QuerySeq,
    limit: QueryLimit(HISTORY_MAX),
  }),
  v.check((q) => q.before === undefined || q.after === undefined, 'ask for before or after, not both'),
);

/** An HTTP refusal: `{"error":{"code","message"}}` with a named code. */
const refuse = (
  c: Context,
  status: 400 | 401 | 403 | 404 | 426 | 429 | 500 | 503,
  code: RefusalCode,
  message: string,
) => c.json({ error: { code, message } }, status);

/** Build the browser door's Hono app. */
export function createApp(deps: AppDeps): Hono {
  const { hub, log, assets, auth, door, origins } = deps;
  const app = new Hono();
  // Signing out is a form POST that ends in a redirect to the provider, which form-action must allow.
  const logoutOrigin = auth?.oidc.logoutOrigin;
  const CSP = logoutOrigin ? { ...BASE_CSP, formAction: ["'self'", logoutOrigin] } : BASE_CSP;

  app.use(async (c, next) => {
    // Asked before the handler runs: once a request is upgraded, some runtimes cannot read it.
    const secure = deps.isSecure?.(c) ?? false;
    await next();
    // HSTS only where the request really came over https; plain-http dev mode must never send it.
    if (secure) c.header('strict-transport-security', 'max-age=31536000');
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
  // A page on a name of an attacker's that resolves here (DNS rebinding) is refused; health stays open.
  app.use(async (c, next) => {
    const host = c.req.header('host') ?? new URL(c.req.url).host;
    if (c.req.path === '/healthz' || origins.allowsHost(host)) return next();
    log.info('request refused: host not served here', { host });
    return refuse(c, 403, RefusalCode.BadHost, 'this server does not answer to that host name');
  });

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
    if (!asset) return refuse(c, 404, RefusalCode.NotFound, 'not found');
    const headers = { 'content-type': asset.type, etag: asset.etag, 'cache-control': 'no-cache' };
    if (c.req.header('if-none-match') === asset.etag) return new Response(null, { status: 304, headers });
    return new Response(asset.body, { headers });
  };

  /** Who asks, for the API's rate and the Hub's read turns: the person signed in, else the address. */
  const requesterOf = (c: Context, session: Session | undefined) =>
    session ? personRequester(session.user.name) : addressRequester(addressGroup(deps.remoteAddress(c)));

  // The API's rate, before its routes: per person when signed in (a person's scripts share it, from
  // wherever they run), else per client address. A refusal reads nothing and changes nothing.
  const apiRate = new RequestRate(deps.apiRate);
  const known = new KnownSessions();
  const metrics = deps.metrics ?? noMetrics;
  /** Whom a request counts for: a session token seen in the last second is not looked up again. */
  const counted = async (c: Context): Promise<string> => {
    if (!auth) return requesterOf(c, undefined);
    const token = await sessionToken(c, auth);
    const remembered = token && known.requesterOf(token);
    if (remembered) return remembered;
    const session = await readSession(c, auth);
    const requester = requesterOf(c, session);
    // A token whose session has ended is remembered too, as the address it counts for.
    if (token) known.learn(token, requester);
    return requester;
  };
  app.use('/api/*', async (c, next) => {
    const waitMs = apiRate.take(await counted(c));
    if (waitMs === 0) return next();
    metrics.apiRateLimited();
    const seconds = Math.ceil(waitMs / 1000);
    c.header('retry-after', String(seconds));
    c.header('cache-control', 'no-store');
    return refuse(
      c,
      429,
      RefusalCode.RateLimited,
      `more than ${deps.apiRate.perSecond} requests a second; try again in ${seconds} s`,
    );
  });

  if (auth) addAuthRoutes(app, auth);
  if (auth && deps.keys) addKeyRoutes(app, auth, deps.keys);
  if (!auth) app.get('/me', (c) => c.json({ mode: 'dev' }, 200, { 'cache-control': 'no-store' }));

  app.get('/', async (c) => {
    if (auth && !(await readSession(c, auth))) {
      // Not a redirect: the server never sees the address's fragment (the page's room), so a script
      // of this page sends the browser to /login with the whole address; the link is for no script.
      const back = `/login?return_to=${encodeURIComponent(`/${new URL(c.req.url).search}`)}`;
      return htmlPage(
        200,
        'Sign in · runspec-room',
        `<p><a id="sign-in" href="${escapeHtml(back)}">Sign in</a> to join the rooms.</p><script type="module" src="/static/sign-in.js"></script>`,
      );
    }
    return serve(c, 'index.html');
  });
  // Browsers ask for it whatever the page says; an empty answer keeps their consoles quiet.
  app.get(
    '/favicon.ico',
    () => new Response(null, { status: 204, headers: { 'cache-control': 'max-age=86400' } }),
  );
  app.get('/static/:file{[A-Za-z0-9_.-]+}', (c) => serve(c, c.req.param('file')));

  /**
   * A room is read over HTTP as over the protocol: someone banned from it may not, until the ban ends.
   * Without sign-in nobody's name is known here, so there is nobody to refuse.
   */
  const bannedReader = (c: Context, session: Session | undefined, room: string) => {
    const ban = session && hub.banOf(room, session.user.name);
    if (!ban) return undefined;
    log.info('read refused: banned', { room, user: session.user.name });
    return refuse(c, 403, RefusalCode.Banned, bannedMessage(ban));
  };

  // A room's history for the page (and scripts): the same pages as the protocol's history request.
  app.get('/api/rooms/:room/messages', async (c) => {
    c.header('cache-control', 'no-store');
    const session = auth && (await readSession(c, auth));
    if (auth && !session) return refuse(c, 401, RefusalCode.Unauthenticated, 'sign in first');
    const parsed = v.safeParse(HistoryQuery, { ...c.req.query(), room: c.req.param('room') });
    if (!parsed.success) return refuse(c, 400, RefusalCode.BadQuery, parsed.issues[0].message);
    const { room, before, after, limit } = parsed.output;
    const banned = bannedReader(c, session, room);
    if (banned) return banned;
    const page = await hub.page(room, { before, after, limit }, requesterOf(c, session));
    return c.json({ room, messages: page.messages.map(historyFrame), more: page.more });
  });

  // A room's whole transcript (or what follows `since`), streamed a page at a time.
  app.get('/api/rooms/:room/export', async (c) => {
    const session = auth && (await readSession(c, auth));
    if (auth && !session) return refuse(c, 401, RefusalCode.Unauthenticated, 'sign in first');
    const parsed = v.safeParse(ExportQuery, { ...c.req.query(), room: c.req.param('room') });
    if (!parsed.success) return refuse(c, 400, RefusalCode.BadQuery, parsed.issues[0].message);
    const { room, since, format } = parsed.output;
    const banned = bannedReader(c, session, room);
    if (banned) return banned;
    const { type, extension } = EXPORT_TYPES[format];
    const headers = {
      'content-type': type,
      'content-disposition': attachment(room, extension),
      'cache-control': 'no-store',
    };
    // The headers alone: Hono answers HEAD from this route and drops the body, which would hold an
    // export's place unread until the stall ended it.
    if (c.req.method === 'HEAD') return new Response(null, { headers });
    let chunks: ExportStream;
    try {
      chunks = hub.export({ room, since: since ?? 0, format }, session?.user.name);
    } catch (error) {
      if (!(error instanceof ExportsBusy)) throw error;
      c.header('retry-after', '5');
      return refuse(c, 503, RefusalCode.Busy, error.message);
    }
    const encoder = new TextEncoder();
    const stallMs = deps.exportStallMs ?? EXPORT_STALL_MS;
    let stalled: ReturnType<typeof setTimeout> | undefined;
    let cancelled = false;
    /** The rest of the page being sent, in pieces of EXPORT_PIECE bytes at most. */
    const pieces: Uint8Array[] = [];
    const body = new ReadableStream<Uint8Array>({
      // One piece a pull: the next is asked for once the last is on its way, so the time between
      // two pulls is how long the reader took to take one piece, whatever the size of the page.
      async pull(controller) {
        clearTimeout(stalled);
        try {
          if (pieces.length === 0) {
            const next = await chunks.next();
            // The reader went away while the page was read.
            if (cancelled) return;
            if (next.done) {
              controller.close();
              return;
            }
            const bytes = encoder.encode(next.value);
            for (let at = 0; at < bytes.length; at += EXPORT_PIECE)
              pieces.push(bytes.subarray(at, at + EXPORT_PIECE));
          }
          controller.enqueue(pieces.shift() as Uint8Array);
          // A reader that stops reading would hold the export's place for as long as it stays.
          stalled = setTimeout(() => {
            log.info('export ended: not read', { room, seconds: stallMs / 1000 });
            void chunks.return();
            // The connection is closed with the response unfinished, so the reader cannot take what
            // it got for the whole export. (Node's adapter prints the error as it is: no stack.)
            const ended = new Error(`export of ${room} ended: not read for ${stallMs / 1000} s`);
            ended.stack = ended.message;
            controller.error(ended);
          }, stallMs);
          // Nothing to keep the process up for: a stream still open at shutdown is cancelled.
          (stalled as unknown as { unref?: () => void }).unref?.();
        } catch (error) {
          log.warn('export failed', { room, error: String(error) });
          controller.error(error);
        }
      },
      async cancel() {
        cancelled = true;
        clearTimeout(stalled);
        await chunks.return();
      },
    });
    return new Response(body, { headers });
  });

  // A room's messages that match a search, newest first: the same answer as the protocol's search.
  app.get('/api/rooms/:room/search', async (c) => {
    c.header('cache-control', 'no-store');
    const session = auth && (await readSession(c, auth));
    if (auth && !session) return refuse(c, 401, RefusalCode.Unauthenticated, 'sign in first');
    const parsed = v.safeParse(SearchQuery, { ...c.req.query(), room: c.req.param('room') });
    if (!parsed.success) return refuse(c, 400, RefusalCode.BadQuery, parsed.issues[0].message);
    const { room, q, before, limit } = parsed.output;
    const banned = bannedReader(c, session, room);
    if (banned) return banned;
    let found: Awaited<ReturnType<Hub['find']>>;
    try {
      found = await hub.find(room, q, { before, limit }, session?.user.name);
    } catch (error) {
      if (!(error instanceof SearchesBusy)) throw error;
      c.header('retry-after', '1');
      return refuse(c, 503, RefusalCode.Busy, error.message);
    }
    return c.json({ room, q, messages: found.messages.map(historyFrame), more: found.more });
  });

  app.get('/ws', async (c) => {
    const admission = await door.admit(upgradeRequestOf(c, deps.remoteAddress(c)));
    if (!admission.ok) return refuse(c, admission.status, admission.code, admission.message);
    const events = door.events(admission);
    let response: Response | undefined;
    try {
      response = await deps.upgradeWebSocket(c, events);
    } catch (error) {
      events.onClose?.({ code: 1006 } as CloseEvent, undefined as never);
      throw error;
    }
    if (response?.status === 101) return response;
    // No socket opens (Deno answers a handshake it refuses itself): the admission's place goes back.
    events.onClose?.({ code: 1006 } as CloseEvent, undefined as never);
    return response ?? refuse(c, 400, RefusalCode.BadUpgrade, 'not a valid WebSocket upgrade');
  });

  app.notFound((c) => refuse(c, 404, RefusalCode.NotFound, 'not found'));
  app.onError((error, c) => {
    if (error instanceof HTTPException) return problemPage(error.status, error.message);
    log.error('request failed', { path: c.req.path, error: String(error) });
    return refuse(c, 500, RefusalCode.Internal, 'internal error');
  });
  return app;
}

/** A small page for errors people meet in the browser (a failed sign-in), with a way back. */
function problemPage(status: number, message: string): Response {
  return htmlPage(
    status,
    'runspec-room',
    `<p>${escapeHtml(message)}</p><p><a href="/login">Sign in</a> · <a href="/">Home</a></p>`,
    'problem',
  );
}
