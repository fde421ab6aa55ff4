// Sign-in routes (/login, /auth/callback, /logout, /me) and reading the session cookie.
import type { Context, Hono } from 'hono';
import { deleteCookie, getCookie, getSignedCookie, setCookie, setSignedCookie } from 'hono/cookie';
import { HTTPException } from 'hono/http-exception';
import { parseSigned } from 'hono/utils/cookie';
import { LoginSealer, type SealedTransaction, stateHash, UsedLogins } from '../auth/login-cookie.ts';
import { Oidc, OidcError } from '../auth/oidc.ts';
import type { AuthConfig } from '../config.ts';
import type { Authenticated, UpgradeRequest } from '../doors/browser-door.ts';
import type { Log } from '../log.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { RefusalCode } from '../protocol/codes.ts';
import type { Session, Sessions } from '../store/sessions.ts';
import { escapeHtml, htmlPage } from './page.ts';
import type { SessionWatch } from './session-watch.ts';

/** What the sign-in routes need. */
export interface AuthDeps {
  config: AuthConfig;
  oidc: Oidc;
  sessions: Sessions;
  watch: SessionWatch;
  log: Log;
  /** Where sign-ins and their failures are counted. */
  metrics?: Metrics | undefined;
}

const SESSION_COOKIE = 'room_session';
const TX_COOKIE = 'room_login_';
const TX_MAX_AGE = 600;
// Login cookies a browser holds at most: one per sign-in started in the last ten minutes, newest kept.
const MAX_LOGIN_COOKIES = 5;

/** Cookie attributes: __Host- prefix (so Secure, Path=/, no Domain) when the public URL is https. */
function cookieOptions(config: AuthConfig, maxAge: number) {
  const secure = config.publicOrigin.startsWith('https:');
  // Lax, not Strict: the redirect back from the provider is a cross-site navigation, and a Strict
  // cookie would not be sent with it.
  return {
    httpOnly: true,
    sameSite: 'Lax' as const,
    path: '/',
    secure,
    maxAge,
    ...(secure ? { prefix: 'host' as const } : {}),
  };
}

const prefixOf = (config: AuthConfig) =>
  config.publicOrigin.startsWith('https:') ? ('host' as const) : undefined;

// Each sign-in has its own cookie, named by its state, so sign-ins in two tabs do not overwrite each other.
const txCookieName = (hash: string) => `${TX_COOKIE}${hash.slice(0, 16)}`;

// Longest return path kept: five login cookies that carry it, and the session cookie, must fit in
// one 8 KiB header line (nginx's default buffer; Node refuses 16 KiB of headers with 431).
const MAX_RETURN_TO = 800;

/**
 * A same-origin path (with its query and fragment) to return to after sign-in, or "/" when the value
 * is anything else.
 */
export function safeReturnTo(value: string | undefined, origin: string): string {
  if (!value?.startsWith('/')) return '/';
  let url: URL;
  try {
    url = new URL(value, origin);
  } catch {
    return '/';
  }
  // The fragment names the room on the page; a browser keeps it through the redirect to it.
  const path = `${url.pathname}${url.search}${url.hash}`;
  // Checked after parsing: dot segments, backslashes, tabs and newlines can turn "/.//host" or
  // "/./\\host" into "//host", which every browser reads as another host.
  if (url.origin !== origin || !/^\/(?![/\\])/u.test(path) || path.length > MAX_RETURN_TO) return '/';
  return path;
}

/** Each request's verified session token and its session, each read once: the API's rate reads them before the route does. */
const tokenOfRequest = new WeakMap<Request, Promise<string | undefined>>();
const sessionOfRequest = new WeakMap<Request, Promise<Session | undefined>>();

/** The request's session cookie, if its signature holds: what it names is not looked up. */
export function sessionToken(c: Context, deps: AuthDeps): Promise<string | undefined> {
  let token = tokenOfRequest.get(c.req.raw);
  if (!token) {
    token = getSignedCookie(c, deps.config.sessionSecret, SESSION_COOKIE, prefixOf(deps.config)).then(
      (value) => value || undefined,
    );
    tokenOfRequest.set(c.req.raw, token);
  }
  return token;
}

/** The live session of the request's cookie, if any. A tampered cookie counts as none. */
export function readSession(c: Context, deps: AuthDeps): Promise<Session | undefined> {
  let session = sessionOfRequest.get(c.req.raw);
  if (!session) {
    session = sessionToken(c, deps).then((token) => (token ? deps.sessions.find(token) : undefined));
    sessionOfRequest.set(c.req.raw, session);
  }
  return session;
}

/** Who a browser opening /ws is, from its session; its sockets close when the session ends. */
export function authenticateBrowser(
  deps: AuthDeps,
): (request: UpgradeRequest) => Promise<Authenticated | undefined> {
  const name = `${prefixOf(deps.config) ? '__Host-' : ''}${SESSION_COOKIE}`;
  return async (request) => {
    const cookies = request.header('cookie');
    if (!cookies) return undefined;
    // The session cookie as getSignedCookie reads it: a tampered one counts as none.
    const token = (await parseSigned(cookies, deps.config.sessionSecret, name))[name];
    if (!token) return undefined;
    const session = await deps.sessions.find(token);
    if (!session) return undefined;
    return { user: session.user.name, attach: (close) => deps.watch.attach(session.id, close) };
  };
}

/** Whether a request's Origin is the public URL's origin (CSRF and cross-site WebSocket defence). */
export function sameOrigin(c: Context, config: AuthConfig): boolean {
  return c.req.header('origin') === config.publicOrigin;
}

/** Add the sign-in routes to the app. */
export function addAuthRoutes(app: Hono, deps: AuthDeps): void {
  const { config, log } = deps;

  const sealer = new LoginSealer(config.sessionSecret);
  const used = new UsedLogins();
  const fullPrefix = prefixOf(config) ? '__Host-' : '';

  /** Delete this browser's login cookies that are unreadable, expired, or older than the newest `keep`. */
  const pruneLogins = async (c: Context, keep: number) => {
    const pending: Array<{ name: string; expires: number }> = [];
    for (const [name, value] of Object.entries(getCookie(c))) {
      if (!name.startsWith(`${fullPrefix}${TX_COOKIE}`)) continue;
      const tx = await sealer.open(value);
      pending.push({ name: name.slice(fullPrefix.length), expires: tx?.expires ?? 0 });
    }
    pending.sort((a, b) => b.expires - a.expires);
    const now = Date.now();
    for (const [i, { name, expires }] of pending.entries()) {
      if (i >= keep || expires <= now) deleteCookie(c, name, cookieOptions(config, 0));
    }
  };

  /** The login transaction of this callback, taken once (its cookie is deleted); else why not. */
  const takeLogin = async (
    c: Context,
  ): Promise<SealedTransaction | 'missing' | 'tampered' | 'expired' | 'used'> => {
    const state = c.req.query('state');
    if (!state || state.length > 512) return 'missing';
    const hash = await stateHash(state);
    const name = txCookieName(hash);
    const sealed = getCookie(c, name, prefixOf(config));
    deleteCookie(c, name, cookieOptions(config, 0));
    if (!sealed) return 'missing';
    const tx = await sealer.open(sealed);
    if (!tx || tx.state !== state) return 'tampered';
    if (tx.expires <= Date.now()) return 'expired';
    if (!used.claim(hash, tx.expires)) return 'used';
    return tx;
  };

  app.get('/login', async (c) => {
    const tx = Oidc.newTransaction(safeReturnTo(c.req.query('return_to'), config.publicOrigin));
    await pruneLogins(c, MAX_LOGIN_COOKIES - 1);
    const sealed = await sealer.seal({ ...tx, expires: Date.now() + TX_MAX_AGE * 1000 });
    setCookie(c, txCookieName(await stateHash(tx.state)), sealed, cookieOptions(config, TX_MAX_AGE));
    c.header('cache-control', 'no-store');
    return c.redirect((await deps.oidc.authorizationUrl(tx)).href, 302);
  });

  app.get('/auth/callback', async (c) => {
    c.header('cache-control', 'no-store');
    const tx = await takeLogin(c);
    if (typeof tx === 'string') {
      log.warn('sign-in refused: no valid login transaction', { reason: tx });
      deps.metrics?.signIn(false);
      throw new HTTPException(400, {
        message: 'This sign-in link has expired or was already used. Please sign in again.',
      });
    }
    // The callback URL as registered: PUBLIC_URL, never the Host header, plus the query received.
    const callbackUrl = new URL(`${config.publicOrigin}/auth/callback${new URL(c.req.url).search}`);
    let result: Awaited<ReturnType<Oidc['finish']>>;
    try {
      result = await deps.oidc.finish(callbackUrl, tx);
    } catch (error) {
      log.warn('sign-in refused', { reason: error instanceof OidcError ? error.message : String(error) });
      deps.metrics?.signIn(false);
      throw new HTTPException(400, { message: 'Sign-in failed. Please sign in again.' });
    }
    const { token, session } = await deps.sessions.create(result.identity, result.idToken);
    await setSignedCookie(
      c,
      SESSION_COOKIE,
      token,
      config.sessionSecret,
      cookieOptions(config, config.sessionMaxSeconds),
    );
    deps.metrics?.signIn(true);
    log.info('signed in', {
      user: session.user.name,
      issuer: session.user.issuer,
      subject: session.user.subject,
    });
    return c.redirect(safeReturnTo(tx.returnTo, config.publicOrigin), 303);
  });

  // A link or a typed address can only GET; signing out stays a POST, so the page asks first.
  app.get('/logout', async (c) => {
    const session = await readSession(c, deps);
    const main = session
      ? `<p>Signed in as <strong>${escapeHtml(session.user.name)}</strong>.</p><form class="logout-form" method="post" action="/logout"><button id="logout" type="submit">Sign out</button></form><p><a href="/">Back to the rooms</a></p>`
      : '<p>You are not signed in.</p><p><a href="/login">Sign in</a> · <a href="/">Home</a></p>';
    return htmlPage(200, 'Sign out · runspec-room', main);
  });

  app.post('/logout', async (c) => {
    if (!sameOrigin(c, config)) throw new HTTPException(403, { message: 'Cross-origin sign-out refused.' });
    const session = await readSession(c, deps);
    deleteCookie(c, SESSION_COOKIE, cookieOptions(config, 0));
    if (!session) return c.redirect('/', 303);
    const ended = await deps.sessions.delete(session.id);
    deps.watch.end(session.id);
    log.info('signed out', { user: session.user.name });
    const idp = deps.oidc.endSessionUrl(ended?.idToken ?? session.idToken);
    return c.redirect(idp?.href ?? '/', 303);
  });

  app.get('/me', async (c) => {
    c.header('cache-control', 'no-store');
    const session = await readSession(c, deps);
    if (!session)
      return c.json(
        { error: { code: RefusalCode.Unauthenticated, message: 'not signed in' }, login: '/login' },
        401,
      );
    const { name, issuer, subject } = session.user;
    return c.json({ mode: 'oidc', user: { name, issuer, subject }, expiresAt: session.expiresAt });
  });
}
