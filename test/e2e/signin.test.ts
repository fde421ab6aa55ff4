// End to end in Chromium with sign-in on: sign in at a real provider, see your name, chat, sign out.
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveChromium, launchChromium } from '../helpers/chromium.ts';
import type { TestIdp } from '../helpers/idp.ts';
import { type SignedInServer, startSignedInServer } from '../helpers/signed-in.ts';

describe.skipIf(!haveChromium)('in Chromium, signed in', () => {
  let browser: Browser;
  let idp: TestIdp;
  let origin: string;
  let signedIn: SignedInServer;

  beforeAll(async () => {
    signedIn = await startSignedInServer();
    ({ idp, origin } = signedIn);
    browser = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await signedIn?.stop();
  });

  it('a sign-in with a hostile return_to lands on this server, never on another site', async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    idp.user = 'frank';
    const page = await context.newPage();
    const elsewhere: string[] = [];
    page.on('request', (request) => {
      const to = new URL(request.url()).origin;
      if (request.isNavigationRequest() && to !== origin && to !== idp.issuer) elsewhere.push(request.url());
    });
    for (const target of [
      '/.//evil.example/x',
      '/..//evil.example/x',
      '/%2e//evil.example/x',
      '/./\\evil.example/x',
      '/.\t//evil.example/x',
    ]) {
      // This machine is offline: a redirect to the other site fails, and shows in `elsewhere`.
      await page.goto(`${origin}/login?return_to=${encodeURIComponent(target)}`).catch(() => undefined);
      expect(elsewhere, target).toEqual([]);
      expect(new URL(page.url()).origin, target).toBe(origin);
      expect(await page.locator('#join-form').count(), target).toBe(1);
    }
    await context.close();
  }, 60_000);

  it('a link to a room in the fragment (/#deploys) opened signed out arrives in that room after a sign-in through a form', async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    idp.user = 'ivy';
    idp.loginForm = true;
    try {
      const page = await context.newPage();
      await page.goto(`${origin}/#deploys`);
      await page.click('#idp-sign-in');
      await page.waitForURL((url) => url.origin === origin && url.pathname === '/');
      // Signed in, the page enters the room by itself (the form shows only until it knows who this is).
      await page.waitForSelector('body[data-state="connected"]');
      expect(page.url()).toBe(`${origin}/#deploys`);
      expect(await page.textContent('#room-name')).toBe('deploys');
    } finally {
      idp.loginForm = false;
      await context.close();
    }
  }, 60_000);

  it('two tabs of one browser signing in at the same time both arrive signed in', async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    idp.user = 'gina';
    let release = () => {};
    try {
      // Signed in at the provider already, as on a second sign-in: it then redirects straight back.
      const [a, b] = [await context.newPage(), await context.newPage()];
      await a.goto(`${origin}/?room=warm-up`);
      // Back at the return path: the page shows that room and names it in the address's fragment.
      await a.waitForURL(`${origin}/#warm-up`);
      idp.hold = new Promise((resolve) => {
        release = resolve;
      });
      let arrived = 0;
      const bothAtProvider = new Promise<void>((resolve) => {
        context.on('request', (request) => {
          const url = new URL(request.url());
          if (url.origin === idp.issuer && url.pathname === '/auth' && ++arrived === 2) resolve();
        });
      });
      const landed = Promise.all(
        [a, b].map((page, i) =>
          page.goto(`${origin}/login?return_to=${encodeURIComponent(`/?room=tab-${i}`)}`),
        ),
      );
      // Both tabs have been through /login and wait at the provider: neither callback has run yet.
      await bothAtProvider;
      release();
      for (const response of await landed) expect(response?.status()).toBe(200);
      for (const [i, page] of [a, b].entries()) {
        await page.waitForSelector('body[data-state="connected"]');
        expect(page.url()).toBe(`${origin}/#tab-${i}`);
        expect(await page.textContent('#whoami')).toBe('gina');
      }
    } finally {
      release();
      idp.hold = undefined;
      await context.close();
    }
  }, 60_000);

  it('signs out from the /logout page: its button signs out at the provider, with nothing refused by the CSP', async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const problems: string[] = [];
    idp.user = 'hana';
    const page = await context.newPage();
    page.on('pageerror', (e) => problems.push(e.message));
    // Only this server's pages: the provider's own pages ask for web fonts this offline machine cannot load.
    page.on('console', (m) => {
      if (m.type() === 'error' && m.location().url.startsWith(origin)) problems.push(m.text());
    });
    await page.goto(`${origin}/?room=ops`);
    await page.waitForSelector('body[data-state="connected"]');
    const res = await page.goto(`${origin}/logout`);
    expect(res?.status()).toBe(200);
    // The stylesheet applied: the page is laid out by style.css, not by the browser's defaults.
    expect(await page.$eval('main', (el) => getComputedStyle(el).maxWidth)).not.toBe('none');
    await page.click('button#logout');
    await page.waitForURL((url) => url.href.startsWith(idp.issuer));
    const me = await context.request.get(`${origin}/me`);
    expect(me.status()).toBe(401);
    expect(problems).toEqual([]);
    await context.close();
  }, 60_000);

  it('signs in at the provider, shows the name, chats, and signs out; another tab calmly shows signed out', async () => {
    // The test CA is not in Chromium's store; the server itself trusts it through NODE_EXTRA_CA_CERTS.
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const problems: string[] = [];
    idp.user = 'erin';
    const page = await context.newPage();
    page.on('pageerror', (e) => problems.push(e.message));
    await page.goto(`${origin}/?room=ops`);
    await page.waitForSelector('body[data-state="connected"]');
    expect(page.url()).toBe(`${origin}/#ops`);
    expect(await page.textContent('#whoami')).toBe('erin');
    expect(await page.inputValue('#user')).toBe('erin');
    expect(await page.$eval('#user', (el) => (el as HTMLInputElement).readOnly)).toBe(true);

    await page.fill('#composer', 'signed-in hello');
    await page.press('#composer', 'Enter');
    const sender = await page.waitForSelector('#transcript li.message .sender');
    expect(await sender.textContent()).toBe('erin');

    const other = await context.newPage();
    await other.goto(`${origin}/?room=ops`);
    await other.waitForSelector('body[data-state="connected"]');

    await page.click('#logout');
    await page.waitForURL((url) => url.href.startsWith(idp.issuer));
    await other.waitForSelector('body[data-state="signed-out"]', { timeout: 5000 });
    expect(await other.isVisible('#signed-out')).toBe(true);
    expect(await other.getAttribute('#signed-out a', 'href')).toBe('/login');
    // Calm: it stays signed out and does not try again.
    await other.waitForTimeout(1500);
    expect(await other.getAttribute('body', 'data-state')).toBe('signed-out');
    const me = await other.evaluate(async () => (await fetch('/me')).status);
    expect(me).toBe(401);
    expect(problems).toEqual([]);
    await context.close();
  }, 60_000);
});
