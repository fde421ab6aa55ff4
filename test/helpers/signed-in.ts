// A server with sign-in on (a real OpenID Provider over https) and Chromium pages signed in through it.
import { join } from 'node:path';
import type { Browser, BrowserContextOptions, Page } from 'playwright-core';
import { startIdp, type TestIdp } from './idp.ts';
import { watchProblems } from './page.ts';
import { makePki, type TestPki } from './pki.ts';
import { freePort, tempDir } from './server.ts';
import { type Spawned, spawnServer } from './spawn.ts';

/** A signed-in server, its provider, and how to stop both. */
export interface SignedInServer {
  readonly server: Spawned;
  readonly idp: TestIdp;
  readonly pki: TestPki;
  readonly origin: string;
  readonly dir: string;
  /** A new browser context signed in as `user`, on `room`, connected. */
  signIn(
    browser: Browser,
    user: string,
    room: string,
    options?: { problems?: string[]; context?: BrowserContextOptions },
  ): Promise<Page>;
  stop(): Promise<void>;
}

/** Start the provider and a server that signs people in through it; `env` adds settings (admins). */
export async function startSignedInServer(env: Record<string, string> = {}): Promise<SignedInServer> {
  const { dir, cleanup } = await tempDir();
  const pki = makePki(dir);
  const port = await freePort();
  const origin = `https://127.0.0.1:${port}`;
  const idp = await startIdp(pki, [origin]);
  const server = await spawnServer(
    [
      '--port',
      String(port),
      '--ndjson-port',
      '0',
      '--db',
      join(dir, 'room.db'),
      '--tls-cert',
      pki.certFile,
      '--tls-key',
      pki.keyFile,
    ],
    {
      CONSOLE_ROOM_OIDC_ISSUER: idp.issuer,
      CONSOLE_ROOM_OIDC_CLIENT_ID: idp.clientId,
      CONSOLE_ROOM_OIDC_CLIENT_SECRET: idp.clientSecret,
      CONSOLE_ROOM_SESSION_SECRET: 'p'.repeat(48),
      CONSOLE_ROOM_PUBLIC_URL: origin,
      NODE_EXTRA_CA_CERTS: pki.caFile,
      ...env,
    },
  );
  return {
    server,
    idp,
    pki,
    origin,
    dir,
    async signIn(browser, user, room, options = {}) {
      // The test CA is not in Chromium's store; the server itself trusts it through NODE_EXTRA_CA_CERTS.
      const context = await browser.newContext({ ignoreHTTPSErrors: true, ...options.context });
      const page = await context.newPage();
      if (options.problems) watchProblems(page, options.problems, user);
      idp.user = user;
      await page.goto(`${origin}/?room=${encodeURIComponent(room)}`);
      await page.waitForSelector('body[data-state="connected"]');
      await page.waitForSelector(`#room-list button[data-room="${room}"][aria-current="page"]`, {
        state: 'attached',
      });
      return page;
    },
    async stop() {
      if (server.proc.exitCode === null) await server.stop();
      await idp.stop();
      await cleanup();
    },
  };
}
