// End to end in real Chromium against a server with an admin (a console that proved its SSH key): what the
// page shows of a deleted message, a mute, a kick and a ban.
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AdminServer, startWithAdminConsole } from '../helpers/admin-server.ts';
import { haveChromium, launchChromium } from '../helpers/chromium.ts';
import { type ConsoleClient, request } from '../helpers/clients.ts';
import { consoleIn, openPage, post } from '../helpers/page.ts';
import type { Spawned } from '../helpers/spawn.ts';
import { haveSshKeygen } from '../helpers/ssh.ts';

describe.skipIf(!haveChromium || !haveSshKeygen)('in Chromium, the page under moderation', () => {
  let browser: Browser;
  let server: Spawned;
  let admin: AdminServer;
  let ada: ConsoleClient;
  const problems: string[] = [];

  beforeAll(async () => {
    admin = await startWithAdminConsole('mod-one');
    ({ server, ada } = admin);
    browser = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await admin?.stop();
  });

  const texts = (page: Page) =>
    page.$$eval('#transcript li.message .text', (els) => els.map((el) => el.textContent));
  const rooms = (page: Page) =>
    page.$$eval('#room-list button[data-room]', (bs) => bs.map((b) => b.dataset.room));

  it('shows a deleted message as removed, live and after a reload; a muted message comes back to the composer', async () => {
    const bo = await consoleIn(server, 'mod-one', 'bo');
    await post(bo, 'mod-one', ['the root password is hunter2', 'sorry']);
    const page = await openPage(server, browser, 'kim', 'mod-one', { problems });
    await page.waitForSelector('#transcript li.message >> text=sorry');
    const leaked = bo.frames.find((f) => f.type === 'message' && f.text === 'the root password is hunter2');
    await request(ada, { type: 'delete', room: 'mod-one', id: leaked?.id });
    await page.waitForSelector(`#transcript li.message.deleted[data-id="${leaked?.id}"]`);
    expect(await texts(page)).toEqual(['message removed', 'sorry']);
    await page.reload();
    await page.waitForSelector('#transcript li.message >> text=sorry');
    expect(await texts(page)).toEqual(['message removed', 'sorry']);

    expect(await request(ada, { type: 'mute', room: 'mod-one', user: 'kim' })).toMatchObject({ type: 'ack' });
    await page.fill('#composer', 'let me explain');
    await page.press('#composer', 'Enter');
    await page.waitForSelector('#notice:not([hidden])');
    expect(await page.textContent('#notice')).toMatch(/^Not sent: /u);
    expect(await page.inputValue('#composer')).toBe('let me explain');
    expect(await texts(page)).toEqual(['message removed', 'sorry']);
    bo.close();
    await page.context().close();
    expect(problems).toEqual([]);
  }, 60_000);

  it('leaves a room it is kicked from, and one it is banned from, and does not come back to it', async () => {
    const context = await browser.newContext();
    const page = await openPage(server, browser, 'lou', 'mod-one', { context, problems });
    await page.evaluate(() => {
      location.hash = '#mod-two';
    });
    await page.waitForSelector('#room-list button[data-room="mod-two"][aria-current="page"]');

    await request(ada, { type: 'kick', room: 'mod-two', user: 'lou', reason: 'take a break' });
    await page.waitForSelector('#room-list button[data-room="mod-two"]', { state: 'detached' });
    expect(await page.textContent('#notice')).toBe('You were removed from mod-two by ada: take a break.');
    expect(await page.textContent('#room-name')).toBe('mod-one');
    expect(await rooms(page)).toEqual(['mod-one']);

    // Banned from its last room: back at the join form, saying why.
    await request(ada, { type: 'ban', room: 'mod-one', user: 'lou', reason: 'spam' });
    await page.waitForSelector('#join-view:not([hidden])');
    expect(await page.textContent('#join-error')).toBe(
      'You were removed from mod-one by ada and banned from it: spam.',
    );

    // A link to the room opens a socket the server closes (4403): the page forgets the room and stops.
    const again = await context.newPage();
    await again.goto(`${server.url}/?user=lou#mod-one`);
    await again.waitForSelector('#join-view:not([hidden])');
    expect(await again.textContent('#join-error')).toBe('You are banned from mod-one.');
    expect(await again.evaluate(() => localStorage.getItem('runspec-room:rooms:lou'))).toBe('[]');
    await context.close();
    expect(problems).toEqual([]);
  }, 60_000);
});
