// End to end in Chromium: the search dialog finds a room's messages, newest first and a page at a time, marks
// the words it found, shows a found message in the room (loading older messages up to it), never lists a
// deleted message, takes an unusable search as a hint, and asks again while the server is busy.
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/protocol/codes.ts';
import { type AdminServer, startWithAdminConsole } from '../helpers/admin-server.ts';
import { haveChromium, launchChromium } from '../helpers/chromium.ts';
import { type ConsoleClient, request } from '../helpers/clients.ts';
import { consoleIn, fillRoom, openPage, post } from '../helpers/page.ts';
import type { Spawned } from '../helpers/spawn.ts';
import { haveSshKeygen } from '../helpers/ssh.ts';

describe.skipIf(!haveChromium || !haveSshKeygen)('in Chromium, searching a room', () => {
  let browser: Browser;
  let server: Spawned;
  let admin: AdminServer;
  let ada: ConsoleClient;
  const problems: string[] = [];

  beforeAll(async () => {
    admin = await startWithAdminConsole('finds');
    ({ server, ada } = admin);
    browser = await launchChromium();

    // seq 1, then 300 fillers, 25 canaries, an accented match, and a leak that an admin deletes.
    const bo = await consoleIn(server, 'finds', 'bo');
    await post(bo, 'finds', ['deploy to staging at noon']);
    await fillRoom(server, 'finds', 300, 'filler');
    await post(
      bo,
      'finds',
      Array.from({ length: 25 }, (_, i) => `canary check ${i + 1}`),
    );
    await post(bo, 'finds', ['The Déploy went fine', 'deploy password is hunter2']);
    const leak = bo.frames.find((f) => f.type === 'message' && f.text === 'deploy password is hunter2');
    expect(await request(ada, { type: 'delete', room: 'finds', id: leak?.id })).toMatchObject({
      type: 'ack',
    });
    bo.close();
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await admin?.stop();
  });

  const results = (page: Page) =>
    page.$$eval('#search-results button.search-result', (els) =>
      els.map((el) => ({
        seq: Number(el.getAttribute('data-seq')),
        text: el.querySelector('.snippet')?.textContent ?? '',
        marked: [...el.querySelectorAll('mark.match')].map((m) => m.textContent),
      })),
    );
  const search = async (page: Page, q: string) => {
    await page.fill('#search-input', q);
    const before = await page.textContent('#search-status');
    await page.press('#search-input', 'Enter');
    await page.waitForFunction((was) => {
      const text = document.getElementById('search-status')?.textContent ?? '';
      return text !== was && !text.endsWith('…');
    }, before);
  };

  it('finds a message, newest first with its words marked, and Enter on it shows it in the room, older messages loaded up to it', async () => {
    const page = await openPage(server, browser, 'kim', 'finds', { problems });
    await page.waitForSelector('#transcript li.message >> text=The Déploy went fine');
    expect(await page.$('#transcript li.message[data-seq="1"]')).toBeNull();
    // Dev mode: no keys panel, and no admin controls for a name that proved nothing.
    expect(await page.isHidden('#open-keys')).toBe(true);
    expect(await page.isHidden('#moderate')).toBe(true);
    expect(await page.$$eval('button.delete-message, button.person-actions', (els) => els.length)).toBe(0);

    await page.focus('#composer');
    await page.keyboard.press('Control+Shift+F');
    await page.waitForSelector('#search-dialog[open]');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('search-input');
    await search(page, 'deploy');
    // The deleted message is not among them; accents and case are folded as the server folds them.
    expect(await results(page)).toEqual([
      { seq: 327, text: 'The Déploy went fine', marked: ['Déploy'] },
      { seq: 1, text: 'deploy to staging at noon', marked: ['deploy'] },
    ]);
    expect(await page.isHidden('#search-more')).toBe(true);

    await page.focus('#search-results button.search-result[data-seq="1"]');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#search-dialog', { state: 'hidden' });
    const found = await page.waitForSelector('#transcript li.message.found[data-seq="1"]');
    expect(await found.textContent()).toContain('deploy to staging at noon');
    expect(await page.evaluate(() => document.activeElement?.getAttribute('data-seq'))).toBe('1');
    // In view, and the window is still gapless from it to the newest message.
    const [box, view] = [await found.boundingBox(), await (await page.$('#transcript'))?.boundingBox()];
    expect(box && view && box.y >= view.y && box.y + box.height <= view.y + view.height).toBe(true);
    const seqs = await page.$$eval('#transcript li.message', (els) =>
      els.map((el) => Number(el.getAttribute('data-seq'))),
    );
    expect(seqs).toEqual(Array.from({ length: 328 }, (_, i) => i + 1));
    await page.context().close();
    expect(problems).toEqual([]);
  }, 60_000);

  it('asks again, later each time, when the server is busy with other searches, and says so only once it gives up', async () => {
    // Between the page and the server: the searches the page sends are counted, and as many as
    // `busy` says are answered the way a server running all the searches it runs at once answers.
    const context = await browser.newContext();
    let busy = 2;
    const asked: number[] = [];
    await context.routeWebSocket(/\/ws/u, (ws) => {
      const upstream = ws.connectToServer();
      ws.onMessage((message) => {
        const frame = JSON.parse(String(message)) as { type: string; ref?: string };
        if (frame.type === 'search') {
          asked.push(performance.now());
          if (busy > 0) {
            busy -= 1;
            const refusal = {
              code: ErrorCode.Busy,
              message: '8 searches are running; try again in a moment',
            };
            ws.send(JSON.stringify({ type: 'error', ...refusal, ref: frame.ref }));
            return;
          }
        }
        upstream.send(message);
      });
      upstream.onMessage((message) => ws.send(message));
    });
    const page = await openPage(server, browser, 'max', 'finds', { context, problems });
    await page.click('#open-search');
    await page.waitForSelector('#search-dialog[open]');
    await page.fill('#search-input', 'deploy');
    await page.press('#search-input', 'Enter');
    await page.waitForFunction(() =>
      document
        .getElementById('search-status')
        ?.textContent?.includes('busy with other searches; trying again'),
    );
    await page.waitForSelector('#search-results button.search-result[data-seq="1"]');
    expect((await results(page)).map((r) => r.seq)).toEqual([327, 1]);
    expect(asked).toHaveLength(3);
    expect(await page.getAttribute('#search-status', 'class')).not.toContain('problem');

    // Busy every time: three more tries, half a second, one and two seconds apart, then it says so.
    busy = Number.POSITIVE_INFINITY;
    asked.length = 0;
    await search(page, 'canary');
    expect(await page.textContent('#search-status')).toBe(
      'The server is busy with other searches. Try again in a moment.',
    );
    expect(await page.getAttribute('#search-status', 'class')).toContain('problem');
    expect(await results(page)).toEqual([]);
    expect(asked).toHaveLength(4);
    const gaps = asked.slice(1).map((at, i) => Math.round(at - (asked[i] as number)));
    const least = [450, 950, 1950];
    expect(gaps.filter((gap, i) => gap < (least[i] ?? 0))).toEqual([]);
    await context.close();
    expect(problems).toEqual([]);
  }, 60_000);

  it("never shows one room's results in another's dialog when the answer comes after switching rooms", async () => {
    // The server's answer to the first search is held back until the dialog shows another room.
    const context = await browser.newContext();
    let held: (() => void) | undefined;
    await context.routeWebSocket(/\/ws/u, (ws) => {
      const upstream = ws.connectToServer();
      ws.onMessage((message) => upstream.send(message));
      upstream.onMessage((message) => {
        const frame = JSON.parse(String(message)) as { type: string };
        if (frame.type === 'search' && held === undefined) held = () => ws.send(message);
        else ws.send(message);
      });
    });
    const page = await openPage(server, browser, 'nia', 'finds', { context, problems });
    await page.click('#open-search');
    await page.waitForSelector('#search-dialog[open]');
    await page.fill('#search-input', 'deploy');
    await page.press('#search-input', 'Enter');
    await expect.poll(() => held !== undefined).toBe(true);
    await page.keyboard.press('Escape');
    await page.waitForSelector('#search-dialog', { state: 'hidden' });
    await page.evaluate(() => {
      location.hash = '#elsewhere';
    });
    await page.waitForSelector('#room-list button[data-room="elsewhere"][aria-current="page"]');
    await page.click('#open-search');
    await page.waitForSelector('#search-dialog[open]');
    expect(await page.textContent('#search-room')).toBe('in elsewhere');
    held?.();
    // A message the server sends after the held answer reaches the page after it: once it shows,
    // the answer has been handled.
    const bot = await consoleIn(server, 'elsewhere', 'bot');
    await post(bot, 'elsewhere', ['after the answer']);
    await page.waitForSelector('#transcript li.message >> text=after the answer');
    expect(await results(page)).toEqual([]);
    expect(await page.textContent('#search-status')).toBe('');
    bot.close();
    await context.close();
    expect(problems).toEqual([]);
  }, 60_000);

  it('pages to older results with More, never lists a deleted message, and takes an unusable search as a hint', async () => {
    const page = await openPage(server, browser, 'lee', 'finds', { problems });
    await page.click('#open-search');
    await page.waitForSelector('#search-dialog[open]');
    await search(page, 'canary');
    expect((await results(page)).map((r) => r.seq)).toEqual(Array.from({ length: 20 }, (_, i) => 326 - i));
    await page.click('#search-more');
    await page.waitForFunction(() => document.querySelectorAll('#search-results li').length === 25);
    const all = await results(page);
    expect(all.map((r) => r.seq)).toEqual(Array.from({ length: 25 }, (_, i) => 326 - i));
    expect(all.every((r) => r.marked.length === 1 && r.marked[0] === 'canary')).toBe(true);
    await page.waitForSelector('#search-more', { state: 'hidden' });

    await search(page, 'hunter2');
    expect(await results(page)).toEqual([]);
    expect(await page.textContent('#search-status')).toBe('Nothing in finds matches hunter2.');

    await search(page, '"" --');
    expect(await page.getAttribute('#search-status', 'class')).toContain('problem');
    expect(await results(page)).toEqual([]);
    await page.keyboard.press('Escape');
    await page.waitForSelector('#search-dialog', { state: 'hidden' });
    await page.context().close();
    expect(problems).toEqual([]);
  }, 60_000);
});
