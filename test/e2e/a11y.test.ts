// In real Chromium: axe-core finds no serious or critical accessibility problem in the page, light and
// dark, wide and at phone width, with its dialogs open (rooms, search, console keys, moderation, a
// confirmation) and an admin's controls shown; the keyboard reaches everything; the rooms fold into a
// drawer on a phone. Screenshots of each look are kept under test-results/screenshots/.
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveChromium, launchChromium } from '../helpers/chromium.ts';
import type { ConsoleClient } from '../helpers/clients.ts';
import { consoleIn, openPage, post } from '../helpers/page.ts';
import { tempDir } from '../helpers/server.ts';
import { type SignedInServer, startSignedInServer } from '../helpers/signed-in.ts';
import { type Spawned, spawnServer } from '../helpers/spawn.ts';
import { haveSshKeygen, makeKey } from '../helpers/ssh.ts';

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
const SHOTS = fileURLToPath(new URL('../../test-results/screenshots/', import.meta.url));

interface Violation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: unknown[] }[];
}

/** The serious and critical violations axe finds in the page as it is now. */
async function seriousViolations(page: Page): Promise<string[]> {
  if (!(await page.evaluate(() => 'axe' in window))) await page.addScriptTag({ path: AXE });
  const violations = (await page.evaluate(
    async () =>
      (
        await (
          window as unknown as { axe: { run: (ctx: Document) => Promise<{ violations: unknown[] }> } }
        ).axe.run(document)
      ).violations,
  )) as Violation[];
  return violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} at ${JSON.stringify(v.nodes.map((n) => n.target))}`);
}

describe.skipIf(!haveChromium)('in Chromium, the page for everyone', () => {
  let browser: Browser;
  let server: Spawned;
  let cleanup: () => Promise<void>;
  let bot: ConsoleClient;
  const others: ConsoleClient[] = [];
  const problems: string[] = [];

  beforeAll(async () => {
    const tmp = await tempDir();
    cleanup = tmp.cleanup;
    mkdirSync(SHOTS, { recursive: true });
    server = await spawnServer(['--port', '0', '--ndjson-port', '0', '--db', `${tmp.dir}/room.db`]);
    browser = await launchChromium();
    // A room with what the page draws: grouped messages, a console's output, code, a link, a mention,
    // people of both kinds (two of whose names look alike), and an unread divider for alice.
    bot = await consoleIn(server, 'ops', 'deploy-bot');
    for (const [room, user] of [
      ['ops', 'bob'],
      ['ops', 'аlice'],
      ['dev', 'carol'],
    ] as const) {
      const client = await consoleIn(server, room, user);
      others.push(client);
    }
    const [bob, , carol] = others as [ConsoleClient, ConsoleClient, ConsoleClient];
    await post(bob, 'ops', ['morning all', 'the 09:00 deploy is mine', 'rolling out build 412 to web01…']);
    await post(bot, 'ops', [
      'build 412: 1,204 tests\n  passed  1,201\n  skipped     3',
      'status:\n```\n$ systemctl status web\n● web.service - app\n   Active: active (running)\n```',
    ]);
    const alice = await consoleIn(server, 'ops', 'alice');
    await post(alice, 'ops', ['thanks, watching the graphs']);
    alice.send({ type: 'read', room: 'ops', seq: 6 });
    await alice.waitFor((f) => f.type === 'read');
    // Stays connected: the server forgets a marker not yet written when its user's last connection goes.
    others.push(alice);
    await post(bob, 'ops', [
      'deploy log: https://example.com/deploy/412?tab=log',
      '@alice can you check the canary before we go on?',
    ]);
    await post(carol, 'dev', ['review please', 'CI is green']);
  }, 60_000);

  afterAll(async () => {
    bot?.close();
    for (const client of others) client.close();
    await browser?.close();
    if (server?.proc.exitCode === null) await server.stop();
    await cleanup?.();
  });

  /** Alice's page in `ops` (with `dev` joined too), laid out for the viewport and colour scheme. */
  async function alicePage(width: number, height: number, scheme: 'light' | 'dark'): Promise<Page> {
    // The page's CSP allows scripts of its own origin only; axe is put in by the test, so this context bypasses it.
    const context = await browser.newContext({
      viewport: { width, height },
      colorScheme: scheme,
      bypassCSP: true,
    });
    await context.addInitScript(() => {
      localStorage.setItem('runspec-room:rooms:alice', JSON.stringify(['ops', 'dev']));
    });
    const page = await openPage(server, browser, 'alice', 'ops', { context, problems });
    await page.waitForSelector('#transcript li.message >> text=@alice can you check');
    await page.waitForSelector('#presence li[data-user="deploy-bot"][data-kind="console"]');
    await page.waitForSelector('#room-list button[data-room="dev"] .unread-count', { state: 'attached' });
    // A connection's typing is relayed once per 2 s and lasts 6 s: each page gets a typist of its own.
    const typist = await consoleIn(server, 'ops', 'deploy-bot');
    others.push(typist);
    typist.send({ type: 'typing', room: 'ops', state: 'active' });
    await page.waitForSelector('#typing >> text=deploy-bot is typing…');
    return page;
  }

  for (const scheme of ['light', 'dark'] as const) {
    it(`has no serious or critical axe violation, ${scheme}, wide and phone-width`, async () => {
      const wide = await alicePage(1280, 800, scheme);
      expect(await seriousViolations(wide)).toEqual([]);
      await wide.screenshot({ path: `${SHOTS}page-1280x800-${scheme}.png` });

      await wide.keyboard.press('Control+k');
      await wide.waitForSelector('#rooms-dialog[open] #room-choices button[data-room="dev"]');
      expect(await seriousViolations(wide)).toEqual([]);
      await wide.screenshot({ path: `${SHOTS}page-1280x800-${scheme}-dialog.png` });
      await wide.keyboard.press('Escape');

      await wide.keyboard.press('Control+Shift+F');
      await wide.fill('#search-input', 'deploy');
      await wide.press('#search-input', 'Enter');
      await wide.waitForSelector('#search-results mark.match');
      expect(await seriousViolations(wide)).toEqual([]);
      await wide.screenshot({ path: `${SHOTS}page-1280x800-${scheme}-search.png` });
      await wide.fill('#search-input', '"" --');
      await wide.press('#search-input', 'Enter');
      await wide.waitForSelector('#search-status.problem');
      expect(await seriousViolations(wide)).toEqual([]);
      await wide.context().close();

      const phone = await alicePage(390, 844, scheme);
      expect(await seriousViolations(phone)).toEqual([]);
      await phone.screenshot({ path: `${SHOTS}page-390x844-${scheme}.png` });
      await phone.click('#nav-toggle');
      await phone.waitForSelector('#sidebar.open');
      expect(await seriousViolations(phone)).toEqual([]);
      await phone.screenshot({ path: `${SHOTS}page-390x844-${scheme}-rooms.png` });
      await phone.keyboard.press('Escape');
      await phone.click('#open-search');
      await phone.fill('#search-input', 'deploy');
      await phone.press('#search-input', 'Enter');
      await phone.waitForSelector('#search-results mark.match');
      expect(await seriousViolations(phone)).toEqual([]);
      await phone.screenshot({ path: `${SHOTS}page-390x844-${scheme}-search.png` });
      await phone.context().close();
      expect(problems).toEqual([]);
    }, 90_000);
  }

  it('folds the rooms into a drawer at phone width, which opens, switches and closes by keyboard', async () => {
    const page = await alicePage(390, 844, 'light');
    expect(await page.isVisible('#sidebar')).toBe(false);
    expect(await page.isVisible('#nav-toggle')).toBe(true);
    expect(await page.textContent('#nav-unread')).toBe('2');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);

    await page.focus('#nav-toggle');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#sidebar.open');
    expect(await page.getAttribute('#nav-toggle', 'aria-expanded')).toBe('true');
    expect(await page.evaluate(() => document.activeElement?.getAttribute('data-room'))).toBe('ops');
    await page.keyboard.press('Escape');
    await page.waitForSelector('#sidebar', { state: 'hidden' });
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('nav-toggle');

    await page.keyboard.press('Enter');
    await page.click('#room-list button[data-room="dev"]');
    await page.waitForSelector('#sidebar', { state: 'hidden' });
    expect(await page.textContent('#room-name')).toBe('dev');
    await page.waitForSelector('#transcript li.message >> text=CI is green');
    await page.context().close();
    expect(problems).toEqual([]);
  }, 60_000);

  it('reaches every control with Tab in reading order, and sends with Enter but not Shift+Enter', async () => {
    const page = await alicePage(1280, 800, 'light');
    // From the top of the page, as after a click on nothing in particular there.
    await page.click('.brand');
    const order: string[] = [];
    for (let i = 0; i < 14; i += 1) {
      await page.keyboard.press('Tab');
      order.push(
        await page.evaluate(() => {
          const el = document.activeElement as HTMLElement | null;
          return el?.dataset.room ? `room:${el.dataset.room}` : (el?.id ?? '');
        }),
      );
    }
    const wanted = [
      'room:ops',
      'room:dev',
      'open-rooms',
      'notify',
      'open-search',
      'leave',
      'transcript',
      'composer',
      'send',
    ];
    const reached = order.filter((id) => wanted.includes(id));
    expect(reached.slice(0, wanted.length)).toEqual(wanted);

    await page.focus('#composer');
    await page.keyboard.type('two');
    await page.keyboard.press('Shift+Enter');
    await page.keyboard.type('lines');
    expect(await page.inputValue('#composer')).toBe('two\nlines');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#transcript li.message >> text=lines');
    expect(await page.$eval('#transcript li.message:last-child .text', (el) => el.textContent)).toBe(
      'two\nlines',
    );
    expect(await page.inputValue('#composer')).toBe('');
    await page.context().close();
    expect(problems).toEqual([]);
  }, 60_000);
});

describe.skipIf(!haveChromium || !haveSshKeygen)('in Chromium, the page of a signed-in admin', () => {
  let browser: Browser;
  let room: SignedInServer;
  let bob: ConsoleClient;
  const problems: string[] = [];

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    room = await startSignedInServer({ CONSOLE_ROOM_ADMINS: 'ada' });
    browser = await launchChromium();
    bob = await consoleIn(room.server, 'ops', 'bob');
    await post(bob, 'ops', [
      'morning all',
      'the 09:00 deploy is mine',
      'deploy log: https://example.com/412',
    ]);
  }, 60_000);

  afterAll(async () => {
    bob?.close();
    await browser?.close();
    await room?.stop();
  });

  for (const scheme of ['light', 'dark'] as const) {
    it(`has no serious or critical axe violation with admin controls, the keys panel, moderation and a confirmation open, ${scheme}`, async () => {
      const shot = (name: string) =>
        page.screenshot({ path: `${SHOTS}admin-1280x800-${scheme}-${name}.png` });
      const page = await room.signIn(browser, 'ada', 'ops', {
        problems,
        context: { viewport: { width: 1280, height: 800 }, colorScheme: scheme, bypassCSP: true },
      });
      await page.waitForSelector('#presence li[data-user="bob"] button.person-actions');
      await page.waitForSelector('#transcript li.message button.delete-message', { state: 'attached' });
      await page.hover('#transcript li.message:last-child');
      expect(await seriousViolations(page)).toEqual([]);
      await shot('page');

      await page.click('#presence li[data-user="bob"] button.person-actions');
      await page.waitForSelector('#moderate-dialog[open]');
      expect(await seriousViolations(page)).toEqual([]);
      await shot('moderate');
      await page.keyboard.press('Escape');

      await page.hover('#transcript li.message:last-child');
      await page.click('#transcript li.message:last-child button.delete-message');
      await page.waitForSelector('#confirm-dialog[open]');
      expect(await seriousViolations(page)).toEqual([]);
      await shot('confirm');
      await page.keyboard.press('Escape');
      await page.waitForSelector('#confirm-dialog', { state: 'hidden' });

      await page.click('#open-keys');
      await page.waitForSelector('#keys-dialog[open]');
      const key = await makeKey(room.dir, `ada-${scheme}`);
      await page.fill('#key-text', key.pub);
      await page.fill('#key-label', 'work laptop');
      await page.click('#key-add');
      await page.waitForSelector('#key-list li.key');
      await page.fill('#key-text', 'not a key');
      await page.click('#key-add');
      await page.waitForSelector('#key-text-error:not([hidden])');
      expect(await seriousViolations(page)).toEqual([]);
      await shot('keys');
      await page.click(`#key-list button.remove-key[data-fingerprint="${key.fingerprint}"]`);
      await page.click('#confirm-yes');
      await page.waitForSelector('#key-list li.key', { state: 'detached' });
      await page.context().close();

      const phone = await room.signIn(browser, 'ada', 'ops', {
        problems,
        context: { viewport: { width: 390, height: 844 }, colorScheme: scheme, bypassCSP: true },
      });
      await phone.waitForSelector('#presence li[data-user="bob"] button.person-actions');
      expect(await seriousViolations(phone)).toEqual([]);
      await phone.screenshot({ path: `${SHOTS}admin-390x844-${scheme}-page.png` });
      await phone.click('#nav-toggle');
      await phone.click('#open-keys');
      await phone.waitForSelector('#keys-dialog[open]');
      expect(await seriousViolations(phone)).toEqual([]);
      await phone.screenshot({ path: `${SHOTS}admin-390x844-${scheme}-keys.png` });
      await phone.context().close();
      expect(problems).toEqual([]);
    }, 90_000);
  }
});
