// End to end in real Chromium: two people chat, see each other, and survive a server restart intact.
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveChromium, launchChromium } from '../helpers/chromium.ts';
import { consoleClient } from '../helpers/clients.ts';
import { freePort, tempDir } from '../helpers/server.ts';
import { type Spawned, spawnServer } from '../helpers/spawn.ts';

/** The ids of the messages a page shows, in order. */
const shownIds = (page: Page): Promise<string[]> =>
  page.$$eval('#transcript li.message', (items) => items.map((li) => li.getAttribute('data-id') ?? ''));

const shownTexts = (page: Page): Promise<string[]> =>
  page.$$eval('#transcript li.message .text', (items) => items.map((el) => el.textContent ?? ''));

describe.skipIf(!haveChromium)('in Chromium', () => {
  let browser: Browser;
  let server: Spawned;
  let args: string[];
  let cleanup: () => Promise<void>;
  const problems: string[] = [];

  beforeAll(async () => {
    const tmp = await tempDir();
    cleanup = tmp.cleanup;
    args = [
      '--port',
      String(await freePort()),
      '--ndjson-port',
      String(await freePort()),
      '--db',
      `${tmp.dir}/room.db`,
    ];
    server = await spawnServer(args);
    browser = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    if (server?.proc.exitCode === null) await server.stop();
    await cleanup?.();
  });

  async function open(user: string, room = 'e2e'): Promise<Page> {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on('pageerror', (error) => problems.push(`${user}: ${error.message}`));
    page.on('console', (msg) => {
      if (
        msg.type() === 'error' &&
        !/WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource/u.test(msg.text())
      ) {
        problems.push(`${user}: ${msg.text()}`);
      }
    });
    page.on('dialog', (dialog) => {
      problems.push(`${user}: a dialog opened: ${dialog.message()}`);
      void dialog.dismiss();
    });
    await page.goto(`${server.url}/?user=${encodeURIComponent(user)}&room=${encodeURIComponent(room)}`);
    await page.waitForSelector('body[data-state="connected"]');
    return page;
  }

  async function say(page: Page, text: string): Promise<void> {
    await page.fill('#composer', text);
    await page.press('#composer', 'Enter');
  }

  it('two people exchange messages, see each other, and a restart loses and repeats nothing', async () => {
    const alice = await open('alice');
    const bob = await open('bob');
    await alice.waitForSelector('#presence li[data-user="bob"].available');
    await bob.waitForSelector('#presence li[data-user="alice"].available');

    await say(alice, 'hello from alice');
    await bob.waitForSelector('#transcript li.message >> text=hello from alice');
    await say(bob, '<img src=x onerror=alert(1)>');
    await alice.waitForSelector('#transcript li.message >> text=<img src=x onerror=alert(1)>');
    expect(await alice.$$('#transcript img')).toHaveLength(0);

    // The server restarts. While it is away nothing can be sent; when it is back, a console talks at
    // once, before the pages have reconnected, and they must catch up with exactly what they missed.
    await server.stop('SIGTERM');
    await alice.waitForSelector('body:not([data-state="connected"])');
    server = await spawnServer(args);
    const ops = await consoleClient(server.consolePort, {
      type: 'hello',
      room: 'e2e',
      user: 'ops',
      protocol: 2,
    });
    await ops.waitFor((f) => f.type === 'welcome');
    ops.send({ type: 'message', text: 'said while you were away' });
    await ops.waitFor((f) => f.type === 'message');

    await alice.waitForSelector('body[data-state="connected"]', { timeout: 20_000 });
    await bob.waitForSelector('body[data-state="connected"]', { timeout: 20_000 });
    await say(bob, 'back again');
    for (const page of [alice, bob]) {
      await page.waitForSelector('#transcript li.message >> text=back again');
      await page.waitForSelector('#transcript li.message >> text=said while you were away');
    }
    const expected = [
      'hello from alice',
      '<img src=x onerror=alert(1)>',
      'said while you were away',
      'back again',
    ];
    expect(await shownTexts(alice)).toEqual(expected);
    expect(await shownTexts(bob)).toEqual(expected);
    const ids = await shownIds(alice);
    expect(new Set(ids).size).toBe(ids.length);
    expect(await shownIds(bob)).toEqual(ids);
    await alice.waitForSelector('#presence li[data-user="bob"].available');
    ops.close();
    expect(problems).toEqual([]);
  }, 90_000);

  /** The names in a page's people list, and which of them carry the look-alike mark. */
  const people = (page: Page) =>
    page.$$eval('#presence li', (items) =>
      items.map((li) => ({
        user: li.getAttribute('data-user') ?? '',
        mark: li.querySelector('.lookalike-mark')?.getAttribute('title') ?? null,
      })),
    );

  it('marks two people whose names look alike, on both sides, and nobody else', async () => {
    const room = 'lookalike';
    const latin = await open('alice', room);
    const cyrillic = await open('\u0430lice', room);
    const bob = await consoleClient(server.consolePort, { type: 'hello', room, user: 'bob', protocol: 2 });
    await bob.waitFor((f) => f.type === 'welcome');
    for (const page of [latin, cyrillic]) {
      await page.waitForSelector('#presence li[data-user="bob"]');
      await page.waitForSelector('#presence li[data-user="alice"]');
      await page.waitForSelector('#presence li[data-user="\u0430lice"]');
      const shown = (await people(page)).sort((a, b) => (a.user < b.user ? -1 : 1));
      expect(shown).toEqual([
        { user: 'alice', mark: 'looks like another name here' },
        { user: 'bob', mark: null },
        { user: '\u0430lice', mark: 'looks like another name here' },
      ]);
    }
    bob.close();

    // Case, compatibility forms, Greek and Cyrillic letters, and digits or a capital I standing in
    // for letters; names that merely differ stay unmarked (a capital L does not pass for an I).
    const names = [
      'Ian',
      'lan',
      'Ivan',
      'b0b',
      'bob',
      '\uff23\uff21\uff32\uff2c',
      'carl',
      '\u039fscar',
      'oscar',
      'Lan',
      'Lisa',
      'Iisa',
    ];
    const consoles = [];
    for (const user of names) {
      const c = await consoleClient(server.consolePort, {
        type: 'hello',
        room: 'lookalike-2',
        user,
        protocol: 2,
      });
      await c.waitFor((f) => f.type === 'welcome');
      consoles.push(c);
    }
    const dana = await open('dana', 'lookalike-2');
    for (const user of names) await dana.waitForSelector(`#presence li[data-user="${user}"]`);
    const marked = (await people(dana)).filter((p) => p.mark).map((p) => p.user);
    expect(marked.sort()).toEqual(
      ['Ian', 'Lan', 'b0b', 'bob', 'carl', 'lan', 'oscar', '\u039fscar', '\uff23\uff21\uff32\uff2c'].sort(),
    );
    for (const c of consoles) c.close();
    for (const page of [latin, cyrillic, dana]) await page.context().close();
    expect(problems).toEqual([]);
  }, 60_000);

  it('fits a phone-width screen without horizontal scrolling', async () => {
    const context = await browser.newContext({ viewport: { width: 360, height: 740 } });
    const page = await context.newPage();
    await page.goto(`${server.url}/?user=phone&room=e2e`);
    await page.waitForSelector('body[data-state="connected"]');
    await say(page, 'a'.repeat(300));
    await page.waitForSelector(`#transcript li.message >> text=${'a'.repeat(300)}`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    expect(await page.isVisible('#composer')).toBe(true);
    await context.close();
  });
});
