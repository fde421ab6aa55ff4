// Sign-in routes (/login, /auth/callback, /logout, /me) and reading the session cookie.
import type { Context, Hono } from 'hono';
import { deleteCookie, getSignedCookie, setSignedCookie } from 'hono/cookie';
import { HTTPException } from 'hono/http-exception';
import { Oidc, OidcError } from '../auth/oidc.ts';
import type { Transactions } from '../auth/transactions.ts';
import type { AuthConfig } from '../config.ts';
import type { Log } from '../log.ts';
import type { Session, SessionStore } from '../store/sessions.ts';
import type { SessionWatch } from './session-watch.ts';

/** What the sign-in routes need. */
export interface AuthDeps {
  config: AuthConfig;
  oidc: Oidc;
  sessions: SessionStore;
  transactions: Transactions;
  watch: SessionWatch;
  log: Log;
}

const SESSION_COOKIE = 'room_session';
const TX_COOKIE = 'room_login';
const TX_MAX_AGE = 600;

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

/** Longest return path kept; the login cookie that carries it must stay well under 4 KiB. */
const MAX_RETURN_TO = 2000;

/** A same-origin path to return to after sign-in, or "/" when the value is anything else. */
export function safeReturnTo(value: string | undefined, origin: string): string {
  if (!value?.startsWith('/')) return '/';
  let url: URL;
  try {
    url = new URL(value, origin);
  } catch {
    return '/';
  }
  const path = `${url.pathname}${url.search}`;
  // Checked after parsing: dot segments, backslashes, tabs and newlines can turn "/.//host" or
  // "/./\\host" into "//host", which every browser reads as another host.
  if (url.origin !== origin || !/^\/(?![/\\])/u.test(path) || path.length > MAX_RETURN_TO) return '/';
  return path;
}

/** The live session of the request's cookie, if any. A tampered cookie counts as none. */
export async function readSession(c: Context, deps: AuthDeps): Promise<Session | undefined> {
  const token = await getSignedCookie(c, deps.config.sessionSecret, SESSION_COOKIE, prefixOf(deps.config));
  if (!token) return undefined;
  return deps.sessions.find(token);
}

/** Whether a request's Origin is the public URL's origin (CSRF and cross-site WebSocket defence). */
export function sameOrigin(c: Context, config: AuthConfig): boolean {
  return c.req.header('origin') === config.publicOrigin;
}

/** Add the sign-in routes to the app. */
export function addAuthRoutes(app: Hono, deps: AuthDeps): void {
  const { config, log } = deps;

  app.get('/login', async (c) => {
    const tx = Oidc.newTransaction(safeReturnTo(c.req.query('return_to'), config.publicOrigin));
    const id = deps.transactions.put(tx);
    await setSignedCookie(c, TX_COOKIE, id, config.sessionSecret, cookieOptions(config, TX_MAX_AGE));
    c.header('cache-control', 'no-store');
    return c.redirect((await deps.oidc.authorizationUrl(tx)).href, 302);
  });

  app.get('/auth/callback', async (c) => {
    c.header('cache-control', 'no-store');
    const txId = await getSignedCookie(c, config.sessionSecret, TX_COOKIE, prefixOf(config));
    deleteCookie(c, TX_COOKIE, cookieOptions(config, 0));
    const tx = txId ? deps.transactions.take(txId) : undefined;
    if (!tx) {
      log.warn('sign-in refused: no valid login transaction', {
        reason: txId === false ? 'tampered' : txId ? 'used or expired' : 'missing',
      });
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
    log.info('signed in', {
      user: session.user.name,
      issuer: session.user.issuer,
      subject: session.user.subject,
    });
    return c.redirect(tx.returnTo, 303);
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
      return c.json({ error: { code: 'unauthenticated', message: 'not signed in' }, login: '/login' }, 401);
    const { name, issuer, subject } = session.user;
    return c.json({ mode: 'oidc', user: { name, issuer, subject }, expiresAt: session.expiresAt });
  });
}
