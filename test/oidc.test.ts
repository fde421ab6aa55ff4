// Sign-in against a real OpenID Provider (oidc-provider) over https, with the server as a process.
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { displayName } from '../src/auth/oidc.ts';
import { DEFAULT_LIMITS } from '../src/config.ts';
import { frameLogOf, openWebSocket } from './helpers/clients.ts';
import { startIdp, type TestIdp } from './helpers/idp.ts';
import { CookieJar } from './helpers/jar.ts';
import { makePki, type TestPki } from './helpers/pki.ts';
import { freePort, tempDir } from './helpers/server.ts';
import { runCli, type Spawned, spawnServer } from './helpers/spawn.ts';

const SESSION_COOKIE = '__Host-room_session';
/** The start of every login cookie's name. */
const TX_COOKIE = '__Host-room_login';

let pki: TestPki;
let idp: TestIdp;
let server: Spawned;
let origin: string;
let dir: string;
/** A second server, with short sessions, for the expiry test. */
let shortPort: number;
/** A third, restarted between /login and the callback. */
let restartPort: number;
let cleanup: () => Promise<void>;

function authEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    CONSOLE_ROOM_OIDC_ISSUER: idp.issuer,
    CONSOLE_ROOM_OIDC_CLIENT_ID: idp.clientId,
    CONSOLE_ROOM_OIDC_CLIENT_SECRET: idp.clientSecret,
    CONSOLE_ROOM_SESSION_SECRET: 'x'.repeat(40),
    CONSOLE_ROOM_PUBLIC_URL: origin,
    NODE_EXTRA_CA_CERTS: pki.caFile,
    ...extra,
  };
}

async function startSignedIn(port: number, extra: Record<string, string> = {}): Promise<Spawned> {
  return spawnServer(
    [
      '--port',
      String(port),
      '--ndjson-port',
      '0',
      '--db',
      join(dir, `room-${port}.db`),
      '--tls-cert',
      pki.certFile,
      '--tls-key',
      pki.keyFile,
    ],
    authEnv(extra),
  );
}

/** Sign in as `user` through the provider; returns the jar holding the session, and the pages seen. */
async function signIn(
  user: string,
  base = origin,
  returnTo?: string,
): Promise<{ jar: CookieJar; chain: Awaited<ReturnType<CookieJar['follow']>> }> {
  idp.user = user;
  const jar = new CookieJar(pki.ca);
  const chain = await jar.follow(
    `${base}/login${returnTo ? `?return_to=${encodeURIComponent(returnTo)}` : ''}`,
  );
  return { jar, chain };
}

/** Open /ws with the jar's cookies; resolves with the socket, or the HTTP status it was refused with. */
function openSocket(
  jar: CookieJar,
  query: string,
  wsOrigin = origin,
  base = origin,
): Promise<WebSocket | number> {
  const url = new URL(`/ws${query}`, base.replace('https', 'wss'));
  return openWebSocket(url, {
    headers: { cookie: jar.header(new URL(base)) },
    origin: wsOrigin,
    ca: pki.ca,
  });
}

/** Follow the provider's redirects from `url` until it sends the browser back; returns the callback URL. */
async function throughProvider(jar: CookieJar, url: string | undefined, base = origin): Promise<string> {
  let next = url;
  while (next && !next.startsWith(`${base}/auth/callback`)) next = (await jar.fetch(next)).location;
  if (!next) throw new Error('the provider did not redirect back');
  return next;
}

/** Run /login and the provider's part, stopping before the callback; returns the callback URL. */
async function upToCallback(
  user: string,
  returnTo?: string,
  jar = new CookieJar(pki.ca),
  base = origin,
): Promise<{ jar: CookieJar; callback: string }> {
  idp.user = user;
  const query = returnTo === undefined ? '' : `?return_to=${encodeURIComponent(returnTo)}`;
  const login = await jar.fetch(`${base}/login${query}`);
  return { jar, callback: await throughProvider(jar, login.location, base) };
}

/** The names of the login cookies a jar holds for the server. */
const loginCookies = (jar: CookieJar, base = origin): string[] =>
  [...(jar.cookies.get(new URL(base).hostname)?.keys() ?? [])].filter((name) => name.startsWith(TX_COOKIE));

const closeOf = (ws: WebSocket) =>
  new Promise<{ code: number; at: number }>((resolve) =>
    ws.once('close', (code) => resolve({ code, at: Date.now() })),
  );

beforeAll(async () => {
  const tmp = await tempDir();
  dir = tmp.dir;
  cleanup = tmp.cleanup;
  pki = makePki(dir);
  const port = await freePort();
  shortPort = await freePort();
  restartPort = await freePort();
  origin = `https://127.0.0.1:${port}`;
  idp = await startIdp(pki, [origin, `https://127.0.0.1:${shortPort}`, `https://127.0.0.1:${restartPort}`]);
  server = await startSignedIn(port);
}, 60_000);

afterAll(async () => {
  if (server?.proc.exitCode === null) await server.stop();
  await idp?.stop();
  await cleanup?.();
});

describe('sign-in with a real OpenID Provider', () => {
  it('signs in through the provider, lands on the page, and /me tells who you are', async () => {
    const { jar, chain } = await signIn('alice');
    const last = chain.at(-1);
    expect(last?.url.href).toBe(`${origin}/`);
    expect(last?.status).toBe(200);
    expect(last?.body).toContain('/static/app.js');
    // PKCE S256, state and nonce went to the provider.
    const authorize = new URL(chain[0]?.location ?? '');
    expect(authorize.origin).toBe(idp.issuer);
    expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorize.searchParams.get('state')).toBeTruthy();
    expect(authorize.searchParams.get('nonce')).toBeTruthy();
    expect(authorize.searchParams.get('redirect_uri')).toBe(`${origin}/auth/callback`);
    const me = await jar.fetch(`${origin}/me`);
    expect(me.status).toBe(200);
    expect(JSON.parse(me.body)).toMatchObject({
      mode: 'oidc',
      user: { name: 'alice', subject: 'sub-alice', issuer: idp.issuer },
    });
    // The session cookie is host-only, HttpOnly, Secure and Lax.
    const setCookie = chain
      .flatMap((r) => r.headers['set-cookie'] ?? [])
      .find((c) => c.startsWith(`${SESSION_COOKIE}=`));
    expect(setCookie).toMatch(/HttpOnly/iu);
    expect(setCookie).toMatch(/Secure/iu);
    expect(setCookie).toMatch(/SameSite=Lax/iu);
    expect(setCookie).not.toMatch(/Domain=/iu);
  });

  it('skips a provider name with an invisible character and shows the next acceptable one', async () => {
    idp.claims = { preferred_username: 'ali\u00adce' };
    try {
      const { jar } = await signIn('carol');
      const me = await jar.fetch(`${origin}/me`);
      expect(JSON.parse(me.body)).toMatchObject({
        user: { name: 'carol@example.test', subject: 'sub-carol' },
      });
    } finally {
      idp.claims = {};
    }
  });

  it('refuses the sign-in when no claim and not even the subject is an acceptable name', async () => {
    const { jar, chain } = await signIn('ali\u3164ce');
    expect(chain.at(-1)?.status).toBe(400);
    expect(jar.get(new URL(origin), SESSION_COOKIE)).toBeUndefined();
  });

  it('tells caches not to keep /me (signed in or not) or /healthz', async () => {
    const { jar } = await signIn('alice');
    const anonymous = new CookieJar(pki.ca);
    for (const [res, status] of [
      [await jar.fetch(`${origin}/me`), 200],
      [await anonymous.fetch(`${origin}/me`), 401],
      [await anonymous.fetch(`${origin}/healthz`), 200],
    ] as const) {
      expect(res.status).toBe(status);
      expect(res.headers['cache-control']).toBe('no-store');
    }
  });

  it('builds the redirect URI from the public URL, never from the Host header', async () => {
    const jar = new CookieJar(pki.ca);
    const res = await jar.fetch(`${origin}/login`, {
      headers: { host: 'evil.example', 'x-forwarded-host': 'evil.example' },
      forgedHost: true,
    });
    expect(new URL(res.location ?? '').searchParams.get('redirect_uri')).toBe(`${origin}/auth/callback`);
  });

  it('serves https with HSTS', async () => {
    const res = await new CookieJar(pki.ca).fetch(`${origin}/healthz`);
    expect(res.status).toBe(200);
    expect(res.headers['strict-transport-security']).toContain('max-age=');
  });

  it('sends a visitor without a session from the page to /login, and back to where they were going', async () => {
    const jar = new CookieJar(pki.ca);
    // A page whose script goes to /login with the fragment too; its link, for no script, has what the server saw.
    const page = await jar.fetch(`${origin}/?room=ops`);
    expect(page.status).toBe(200);
    expect(page.body).toContain('<script type="module" src="/static/sign-in.js"></script>');
    expect(page.body).toContain(`href="/login?return_to=${encodeURIComponent('/?room=ops')}"`);
    expect((await jar.fetch(`${origin}/static/sign-in.js`)).status).toBe(200);
    expect((await jar.fetch(`${origin}/me`)).status).toBe(401);
    const { chain } = await signIn('alice', origin, '/?room=ops');
    expect(chain.at(-1)?.url.href).toBe(`${origin}/?room=ops`);
  });

  it('never returns to another site after sign-in', async () => {
    for (const target of ['https://evil.example/', '//evil.example/', '/\\evil.example']) {
      const { chain } = await signIn('alice', origin, target);
      expect(chain.at(-1)?.url.href).toBe(`${origin}/`);
    }
  });

  it('gives each sign-in a new session id', async () => {
    const a = await signIn('alice');
    const b = await signIn('alice');
    expect(a.jar.get(new URL(origin), SESSION_COOKIE)).not.toBe(b.jar.get(new URL(origin), SESSION_COOKIE));
  });

  it('treats a tampered session cookie as signed out', async () => {
    const { jar } = await signIn('alice');
    const url = new URL(origin);
    const cookie = jar.get(url, SESSION_COOKIE) ?? '';
    const [value, signature] = decodeURIComponent(cookie).split('.');
    jar.set(url, SESSION_COOKIE, encodeURIComponent(`${value}x.${signature}`));
    expect((await jar.fetch(`${origin}/me`)).status).toBe(401);
    expect((await jar.fetch(`${origin}/`)).body).toContain('id="sign-in"');
    expect(await openSocket(jar, '?room=ops')).toBe(401);
  });

  it('after a full sign-in, answers a hostile return_to with a path of this origin', async () => {
    for (const target of [
      '/.//evil.example/x',
      '/..//evil.example/x',
      '/%2e//evil.example/x',
      '/./\\evil.example/x',
      '/.\t//evil.example/x',
      '/a/..//evil.example/x',
    ]) {
      const { jar, callback } = await upToCallback('alice', target);
      const res = await jar.fetch(callback);
      expect(res.status).toBe(303);
      const location = String(res.headers.location);
      expect(location, target).toMatch(/^\/(?![/\\])/u);
      expect(new URL(location, callback).origin, target).toBe(origin);
    }
  });

  it('refuses a callback without its login cookie', async () => {
    const { jar, callback } = await upToCallback('alice');
    const [name = ''] = loginCookies(jar);
    jar.set(new URL(origin), name, undefined);
    const res = await jar.fetch(callback);
    expect(res.status).toBe(400);
    expect(jar.get(new URL(origin), SESSION_COOKIE)).toBeUndefined();
  });

  it('refuses a replayed login cookie: a login transaction is used once', async () => {
    const { jar, callback } = await upToCallback('alice');
    const [name = ''] = loginCookies(jar);
    const tx = jar.get(new URL(origin), name);
    expect((await jar.fetch(callback)).status).toBe(303);
    expect(loginCookies(jar)).toEqual([]);
    const replay = new CookieJar(pki.ca);
    replay.set(new URL(origin), name, tx);
    expect((await replay.fetch(callback)).status).toBe(400);
    expect(replay.get(new URL(origin), SESSION_COOKIE)).toBeUndefined();
  });

  it('refuses a callback whose state does not match', async () => {
    const { jar, callback } = await upToCallback('alice');
    const url = new URL(callback);
    url.searchParams.set('state', 'forged-state');
    const res = await jar.fetch(url);
    expect(res.status).toBe(400);
    expect(jar.get(new URL(origin), SESSION_COOKIE)).toBeUndefined();
  });

  it('refuses a callback whose iss is not the provider (RFC 9207)', async () => {
    const { jar, callback } = await upToCallback('alice');
    const url = new URL(callback);
    url.searchParams.set('iss', 'https://evil.example');
    expect((await jar.fetch(url)).status).toBe(400);
  });

  it('refuses a WebSocket without a session (401) and from another origin even with one (403)', async () => {
    expect(await openSocket(new CookieJar(pki.ca), '?room=ops')).toBe(401);
    const { jar } = await signIn('alice');
    expect(await openSocket(jar, '?room=ops', 'https://evil.example')).toBe(403);
    const ws = await openSocket(jar, '?room=ops');
    expect(ws).toBeInstanceOf(WebSocket);
    (ws as WebSocket).close();
  });

  it('takes identity from the session alone: ?user= is ignored', async () => {
    const { jar } = await signIn('bob');
    const ws = (await openSocket(jar, '?room=spoof&user=mallory')) as WebSocket;
    const log = frameLogOf(ws);
    await log.waitFor(() => true);
    expect(log.frames[0]).toMatchObject({ type: 'welcome', user: 'bob', room: 'spoof' });
    ws.send(JSON.stringify({ type: 'message', text: 'hi', user: 'mallory', sender: 'mallory' }));
    expect(await log.waitFor((f) => f.type === 'message')).toMatchObject({ sender: 'bob', text: 'hi' });
    ws.close();
  });

  it("counts the API's rate per person: one past it is refused (429) while another from the same address is answered", async () => {
    const dana = (await signIn('dana')).jar;
    const erin = (await signIn('erin')).jar;
    const history = `${origin}/api/rooms/ops/messages`;
    /** 100 requests at once; how many were answered, and how many the rate allows by the end. */
    const burst = async (jar: CookieJar, n: number) => {
      const started = Date.now();
      const answers = await Promise.all(Array.from({ length: n }, () => jar.fetch(history)));
      const allowed =
        DEFAULT_LIMITS.apiBurst + (DEFAULT_LIMITS.apiPerSecond * (Date.now() - started)) / 1000 + 1;
      return { answers, answered: answers.filter((a) => a.status === 200).length, allowed };
    };
    const ofDana = await burst(dana, 100);
    expect(ofDana.answered).toBeGreaterThanOrEqual(DEFAULT_LIMITS.apiBurst);
    expect(ofDana.answered).toBeLessThanOrEqual(ofDana.allowed);
    expect(ofDana.answers.find((a) => a.status !== 200)).toMatchObject({
      status: 429,
      headers: { 'retry-after': '1' },
    });
    // Erin, from the same address at once, has a whole burst of her own.
    const ofErin = await burst(erin, DEFAULT_LIMITS.apiBurst);
    expect(ofErin.answered).toBe(DEFAULT_LIMITS.apiBurst);
  });

  it('logout ends the session, closes its open socket with 4401 within a second, and goes to the provider', async () => {
    const { jar } = await signIn('carol');
    const ws = (await openSocket(jar, '?room=ops')) as WebSocket;
    const closed = closeOf(ws);
    const crossSite = await jar.fetch(`${origin}/logout`, {
      method: 'POST',
      headers: { origin: 'https://evil.example' },
    });
    expect(crossSite.status).toBe(403);
    const started = Date.now();
    const res = await jar.fetch(`${origin}/logout`, { method: 'POST', headers: { origin } });
    expect(res.status).toBe(303);
    const to = new URL(res.location ?? '');
    expect(to.origin).toBe(idp.issuer);
    expect(to.searchParams.get('id_token_hint')).toBeTruthy();
    expect(to.searchParams.get('post_logout_redirect_uri')).toBe(`${origin}/`);
    const { code, at } = await closed;
    expect(code).toBe(4401);
    expect(at - started).toBeLessThan(1000);
    expect((await jar.fetch(`${origin}/me`)).status).toBe(401);
  });

  it('answers GET /logout with a page whose button posts the sign-out, under the same CSP', async () => {
    const { jar } = await signIn('carol');
    const page = await jar.fetch(`${origin}/logout`);
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toContain('text/html');
    expect(page.headers['cache-control']).toBe('no-store');
    const home = await jar.fetch(`${origin}/`);
    expect(page.headers['content-security-policy']).toBeTruthy();
    expect(page.headers['content-security-policy']).toBe(home.headers['content-security-policy']);
    expect(page.headers['x-frame-options']).toBe('DENY');
    expect(page.body).toContain('<form class="logout-form" method="post" action="/logout">');
    expect(page.body).toContain('<button id="logout" type="submit">');
    expect(page.body).toContain('<link rel="stylesheet" href="/static/style.css">');
    expect(page.body).toContain('carol');
    expect(page.body).not.toMatch(/<script|style=|<style|\son[a-z]+=/iu);
    // The GET itself signs nobody out.
    expect((await jar.fetch(`${origin}/me`)).status).toBe(200);
    const res = await jar.fetch(`${origin}/logout`, { method: 'POST', headers: { origin } });
    expect(res.status).toBe(303);
    expect(new URL(res.location ?? '').origin).toBe(idp.issuer);
    expect((await jar.fetch(`${origin}/me`)).status).toBe(401);
    const after = await jar.fetch(`${origin}/logout`);
    expect(after.status).toBe(200);
    expect(after.body).not.toContain('<form');
    expect(after.body).toContain('href="/login"');
  });

  it('closes the socket of an expired session with 4401 within a second', async () => {
    const shortOrigin = `https://127.0.0.1:${shortPort}`;
    const short = await startSignedIn(shortPort, {
      CONSOLE_ROOM_SESSION_MAX: '2s',
      CONSOLE_ROOM_PUBLIC_URL: shortOrigin,
    });
    try {
      const { jar } = await signIn('dave', shortOrigin);
      const ws = await openSocket(jar, '?room=ops', shortOrigin, shortOrigin);
      expect(ws).toBeInstanceOf(WebSocket);
      const signedInAt = Date.now();
      const { code, at } = await closeOf(ws as WebSocket);
      expect(code).toBe(4401);
      // Ends at 2 s (whole seconds, so up to one early), noticed within the one-second check.
      expect(at - signedInAt).toBeLessThan(3000);
      expect((await jar.fetch(`${shortOrigin}/me`)).status).toBe(401);
    } finally {
      await short.stop();
    }
  });
});

describe('display names from the provider', () => {
  it('takes preferred_username, else email, else name, else the subject, trimmed', () => {
    const all = { preferred_username: ' alice ', email: 'a@example.test', name: 'Alice A' };
    expect(displayName(all, 'sub-1')).toBe('alice');
    expect(displayName({ ...all, preferred_username: undefined }, 'sub-1')).toBe('a@example.test');
    expect(displayName({ name: 'Alice A' }, 'sub-1')).toBe('Alice A');
    expect(displayName({}, 'sub-1')).toBe('sub-1');
  });

  it.each([
    ['a soft hyphen', 'ali\u00adce'],
    ['a Hangul filler', 'ali\u3164ce'],
    ['a tag character', 'alice\u{E0041}'],
    ['a variation selector', 'alice\ufe0f'],
    ['a line separator', 'ali\u2028ce'],
    ['only ideographic spaces', '\u3000\u3000'],
  ])('passes over a claim with %s', (_what, bad) => {
    expect(displayName({ preferred_username: bad, email: 'alice@example.test' }, 'sub-1')).toBe(
      'alice@example.test',
    );
    expect(displayName({ preferred_username: bad, email: bad, name: bad }, 'sub-1')).toBe('sub-1');
    expect(displayName({ preferred_username: bad }, bad)).toBeUndefined();
  });
});

/** GET `url` `count` times over a few kept-alive connections, as anonymous clients; resolves with the statuses seen. */
async function hammer(url: string, count: number, connections = 16): Promise<Set<number>> {
  const agent = new Agent({ keepAlive: true, maxSockets: connections, ca: pki.ca });
  const statuses = new Set<number>();
  let sent = 0;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const req = request(url, { agent }, (res) => {
        statuses.add(res.statusCode ?? 0);
        res.resume().on('end', resolve);
      });
      req.on('error', reject).end();
    });
  const worker = async () => {
    while (sent < count) {
      sent += 1;
      await one();
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  agent.destroy();
  return statuses;
}

describe('login transactions', () => {
  it('keeps each sign-in in its own HttpOnly, Secure, Lax, __Host- cookie for ten minutes, unreadable', async () => {
    const jar = new CookieJar(pki.ca);
    const res = await jar.fetch(`${origin}/login`);
    const state = new URL(res.location ?? '').searchParams.get('state') ?? '';
    const setCookie = [res.headers['set-cookie'] ?? []].flat().filter((c) => c.startsWith(TX_COOKIE));
    expect(setCookie).toHaveLength(1);
    expect(setCookie[0]).toMatch(/HttpOnly/iu);
    expect(setCookie[0]).toMatch(/Secure/iu);
    expect(setCookie[0]).toMatch(/SameSite=Lax/iu);
    expect(setCookie[0]).toMatch(/Path=\//iu);
    expect(setCookie[0]).toMatch(/Max-Age=600/iu);
    expect(setCookie[0]).not.toMatch(/Domain=/iu);
    const [name = ''] = loginCookies(jar);
    const value = decodeURIComponent(jar.get(new URL(origin), name) ?? '');
    expect(state.length).toBeGreaterThan(20);
    expect(value).not.toContain(state);
    expect(Buffer.from(value, 'base64url').toString('latin1')).not.toContain(state);
  });

  it('refuses a login cookie that was changed, or that belongs to another sign-in', async () => {
    const a = await upToCallback('alice');
    const [nameA = ''] = loginCookies(a.jar);
    const valueA = a.jar.get(new URL(origin), nameA) ?? '';
    const flipped = `${valueA.slice(0, 20)}${valueA[20] === 'A' ? 'B' : 'A'}${valueA.slice(21)}`;
    a.jar.set(new URL(origin), nameA, flipped);
    expect((await a.jar.fetch(a.callback)).status).toBe(400);

    const b = await upToCallback('alice');
    const c = await upToCallback('alice');
    const [nameB = ''] = loginCookies(b.jar);
    const [nameC = ''] = loginCookies(c.jar);
    b.jar.set(new URL(origin), nameB, c.jar.get(new URL(origin), nameC));
    expect((await b.jar.fetch(b.callback)).status).toBe(400);
    expect(b.jar.get(new URL(origin), SESSION_COOKIE)).toBeUndefined();
  });

  it('completes two sign-ins started in parallel in one browser', async () => {
    const jar = new CookieJar(pki.ca);
    const first = await upToCallback('alice', '/?room=first', jar);
    const second = await upToCallback('alice', '/?room=second', jar);
    const one = await jar.fetch(first.callback);
    expect(one.status).toBe(303);
    expect(one.location).toBe(`${origin}/?room=first`);
    const firstSession = jar.get(new URL(origin), SESSION_COOKIE);
    expect(firstSession).toBeTruthy();
    const two = await jar.fetch(second.callback);
    expect(two.status).toBe(303);
    expect(two.location).toBe(`${origin}/?room=second`);
    expect(jar.get(new URL(origin), SESSION_COOKIE)).not.toBe(firstSession);
    expect(loginCookies(jar)).toEqual([]);
    expect((await jar.fetch(`${origin}/me`)).status).toBe(200);
  });

  it('keeps at most 5 login cookies in a browser, the newest', async () => {
    const jar = new CookieJar(pki.ca);
    const authorize: string[] = [];
    for (let i = 0; i < 8; i++) {
      authorize.push(
        (await jar.fetch(`${origin}/login?return_to=${encodeURIComponent(`/?room=r${i}`)}`)).location ?? '',
      );
    }
    expect(loginCookies(jar)).toHaveLength(5);
    idp.user = 'alice';
    const oldest = await jar.fetch(await throughProvider(jar, authorize[0]));
    expect(oldest.status).toBe(400);
    for (const i of [7, 3]) {
      const res = await jar.fetch(await throughProvider(jar, authorize[i]));
      expect(res.status).toBe(303);
      expect(res.location).toBe(`${origin}/?room=r${i}`);
    }
    expect(loginCookies(jar)).toHaveLength(3);
  });

  it('keeps the Cookie header of a browser holding the most login cookies within 8 KiB, however long return_to is', async () => {
    // Room names of CJK characters, percent-encoded: the longest is kept, the others return to /.
    for (const characters of [87, 120, 165, 220]) {
      const jar = new CookieJar(pki.ca);
      const path = `/?room=${'%E4%BD%A0'.repeat(characters)}`;
      const authorize: string[] = [];
      for (let i = 0; i < 7; i++) {
        const res = await jar.fetch(`${origin}/login?return_to=${encodeURIComponent(`${path}&n=${i}`)}`);
        expect(res.status).toBe(302);
        authorize.push(res.location ?? '');
      }
      expect(loginCookies(jar)).toHaveLength(5);
      // nginx's default buffer holds one header line of 8 KiB; Node refuses 16 KiB of headers with 431.
      expect(jar.header(new URL(origin)).length, `${path.length}`).toBeLessThan(7 * 1024);
      expect((await jar.fetch(`${origin}/healthz`)).status).toBe(200);
      if (characters === 87) {
        idp.user = 'alice';
        const res = await jar.fetch(await throughProvider(jar, authorize[6]));
        expect(res.location).toBe(`${origin}${path}&n=6`);
      }
    }
  });

  it("does not let anonymous /login requests from others break a waiting person's sign-in", async () => {
    const { jar, callback } = await upToCallback('alice', '/?room=waiting');
    const statuses = await hammer(`${origin}/login`, 10_001);
    expect([...statuses]).toEqual([302]);
    const res = await jar.fetch(callback);
    expect(res.status).toBe(303);
    expect(res.location).toBe(`${origin}/?room=waiting`);
    expect((await jar.fetch(`${origin}/me`)).status).toBe(200);
  }, 180_000);

  it('finishes a sign-in across a server restart, and still refuses its replay', async () => {
    const base = `https://127.0.0.1:${restartPort}`;
    const env = { CONSOLE_ROOM_PUBLIC_URL: base };
    let running = await startSignedIn(restartPort, env);
    try {
      const { jar, callback } = await upToCallback('alice', '/?room=restart', undefined, base);
      const [name = ''] = loginCookies(jar, base);
      const copy = jar.get(new URL(base), name);
      await running.stop();
      running = await startSignedIn(restartPort, env);
      const res = await jar.fetch(callback);
      expect(res.status).toBe(303);
      expect(res.location).toBe(`${base}/?room=restart`);
      expect((await jar.fetch(`${base}/me`)).status).toBe(200);

      // The same callback and cookie again: this server remembers it was used...
      const replay = new CookieJar(pki.ca);
      replay.set(new URL(base), name, copy);
      expect((await replay.fetch(callback)).status).toBe(400);
      // ...and after another restart the provider's authorization code is already spent.
      await running.stop();
      running = await startSignedIn(restartPort, env);
      expect((await replay.fetch(callback)).status).toBe(400);
      expect(replay.get(new URL(base), SESSION_COOKIE)).toBeUndefined();
    } finally {
      await running.stop();
    }
  }, 90_000);
});

describe('sign-in configuration', () => {
  it('refuses to start half configured and names what is missing', async () => {
    const { code, stderr } = await runCli(
      ['--port', '0', '--ndjson-port', '0', '--db', join(dir, 'half.db')],
      {
        CONSOLE_ROOM_OIDC_ISSUER: idp.issuer,
        CONSOLE_ROOM_OIDC_CLIENT_ID: 'x',
      },
    );
    expect(code).toBe(2);
    expect(stderr).toContain('CONSOLE_ROOM_OIDC_CLIENT_SECRET');
    expect(stderr).toContain('CONSOLE_ROOM_SESSION_SECRET');
    expect(stderr).toContain('CONSOLE_ROOM_PUBLIC_URL');
    expect(stderr.trim().split('\n')).toHaveLength(1);
  });

  it('ends start-up with one clear line when the provider cannot be reached', async () => {
    const { code, stderr } = await runCli(
      ['--port', '0', '--ndjson-port', '0', '--db', join(dir, 'unreachable.db')],
      authEnv({ CONSOLE_ROOM_OIDC_ISSUER: `https://127.0.0.1:${await freePort()}` }),
    );
    expect(code).toBe(1);
    expect(stderr).toContain('could not be used');
    expect(stderr.trim().split('\n')).toHaveLength(1);
  });

  it('refuses a provider whose metadata does not offer PKCE S256', async () => {
    const { createServer } = await import('node:http');
    const metadata = createServer((req, res) => {
      const issuer = `http://127.0.0.1:${(metadata.address() as { port: number }).port}`;
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          issuer,
          authorization_endpoint: `${issuer}/authorize`,
          token_endpoint: `${issuer}/token`,
          jwks_uri: `${issuer}/jwks`,
          response_types_supported: ['code'],
          code_challenge_methods_supported: req.url?.includes('plain') ? ['plain'] : undefined,
        }),
      );
    });
    await new Promise<void>((resolve) => metadata.listen(0, '127.0.0.1', resolve));
    const issuer = `http://127.0.0.1:${(metadata.address() as { port: number }).port}`;
    try {
      const { code, stderr } = await runCli(
        ['--port', '0', '--ndjson-port', '0', '--db', join(dir, 's256.db')],
        {
          ...authEnv({ CONSOLE_ROOM_OIDC_ISSUER: issuer, CONSOLE_ROOM_OIDC_ALLOW_HTTP: '1' }),
          CONSOLE_ROOM_PUBLIC_URL: 'http://127.0.0.1:8080',
        },
      );
      expect(code).toBe(1);
      expect(stderr).toContain('does not advertise PKCE S256');
      expect(stderr.trim().split('\n')).toHaveLength(1);
    } finally {
      metadata.close();
    }
  });

  it('refuses a plain-http issuer unless allowed, and then only on a loopback address', async () => {
    const env = authEnv({ CONSOLE_ROOM_OIDC_ISSUER: 'http://idp.example.com' });
    expect((await runCli(['--version'], env)).code).toBe(0);
    const plain = await runCli(['--port', '0', '--ndjson-port', '0', '--db', join(dir, 'h.db')], env);
    expect(plain.code).toBe(2);
    expect(plain.stderr).toContain('must be an https URL');
    const allowed = await runCli(['--port', '0', '--ndjson-port', '0', '--db', join(dir, 'h.db')], {
      ...env,
      CONSOLE_ROOM_OIDC_ALLOW_HTTP: '1',
    });
    expect(allowed.code).toBe(2);
    expect(allowed.stderr).toContain('only allowed for a loopback address');
  });

  it('ends start-up with one clear line when the TLS certificate cannot be read', async () => {
    const { code, stderr } = await runCli([
      '--port',
      '0',
      '--ndjson-port',
      '0',
      '--db',
      join(dir, 'tls.db'),
      '--tls-cert',
      join(dir, 'missing.crt'),
      '--tls-key',
      pki.keyFile,
    ]);
    expect(code).toBe(1);
    expect(stderr).toContain('cannot read TLS certificate');
    expect(stderr.trim().split('\n')).toHaveLength(1);
  });
});
