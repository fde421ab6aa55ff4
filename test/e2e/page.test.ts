// End to end in real Chromium: the page's rooms on one socket, scroll-back, unread and read markers across
// tabs, mentions and notifications, typing, consoles marked apart, safe links, removed messages and kicks.
import type { Browser, Page, WebSocketRoute } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloseCode, ErrorCode } from '../../src/protocol/codes.ts';
import { haveChromium, launchChromium } from '../helpers/chromium.ts';
import {
  badges,
  consoleIn,
  fillRoom,
  openPage,
  PAGE_HOOKS,
  post,
  say,
  shownSeqs,
  watchProblems,
} from '../helpers/page.ts';
import { freePort, tempDir } from '../helpers/server.ts';
import { type Spawned, spawnServer } from '../helpers/spawn.ts';

describe.skipIf(!haveChromium)('in Chromium, the page', () => {
  let browser: Browser;
  let server: Spawned;
  let cleanup: () => Promise<void>;
  const problems: string[] = [];

  beforeAll(async () => {
    const tmp = await tempDir();
    cleanup = tmp.cleanup;
    server = await spawnServer(['--port', '0', '--ndjson-port', '0', '--db', `${tmp.dir}/room.db`]);
    browser = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    if (server?.proc.exitCode === null) await server.stop();
    await cleanup?.();
  });

  const title = (page: Page) => page.evaluate(() => document.title);
  const activeRoom = (page: Page) => page.textContent('#room-name');

  it('keeps several rooms on one socket: joins from the list, switches by keyboard, and remembers them', async () => {
    const context = await browser.newContext();
    const sockets: string[] = [];
    context.on('page', (page) => page.on('websocket', (ws) => sockets.push(ws.url())));
    const elsewhere = await consoleIn(server, 'r-three', 'watcher');
    const page = await openPage(server, browser, 'amy', 'r-one', { context, problems });

    // Ctrl+K opens the room dialog; Escape closes it.
    await page.keyboard.press('Control+k');
    await page.waitForSelector('#rooms-dialog[open]');
    await page.keyboard.press('Escape');
    await page.waitForSelector('#rooms-dialog:not([open])', { state: 'attached' });

    // Join a room by name.
    await page.keyboard.press('Control+k');
    await page.fill('#room-input', 'r-two');
    await page.press('#room-input', 'Enter');
    await page.waitForSelector('#room-list button[data-room="r-two"][aria-current="page"]');
    expect(new URL(page.url()).hash).toBe('#r-two');
    await say(page, 'hello two');
    await page.waitForSelector('#transcript li.message >> text=hello two');

    // Join one from the server's room list.
    await page.click('#open-rooms');
    await page.click('#room-choices button[data-room="r-three"]');
    await page.waitForSelector('#room-list button[data-room="r-three"][aria-current="page"]');
    await page.waitForSelector('#presence li[data-user="watcher"]');

    // A message in another room shows as unread there and in the title.
    await post(elsewhere, 'r-three', ['for the record']);
    await page.waitForSelector('#transcript li.message >> text=for the record');
    await expect.poll(() => title(page)).toBe('r-three · runspec-room');
    const one = await consoleIn(server, 'r-one', 'pinger');
    await post(one, 'r-one', ['ping one']);
    await page.keyboard.press('Alt+ArrowUp');
    await page.waitForSelector('#room-list button[data-room="r-two"][aria-current="page"]');
    await expect.poll(() => badges(page, 'r-one')).toEqual({ unread: '1', mentions: '' });
    expect(await title(page)).toBe('(1) r-two · runspec-room');

    // Alt+Up again: the room with the news; read on sight.
    await page.keyboard.press('Alt+ArrowUp');
    expect(await activeRoom(page)).toBe('r-one');
    expect(new URL(page.url()).hash).toBe('#r-one');
    await page.waitForSelector('#transcript li.message >> text=ping one');
    await expect.poll(() => title(page)).toBe('r-one · runspec-room');
    expect(await badges(page, 'r-one')).toEqual({ unread: '', mentions: '' });
    await say(page, 'hello one');
    await one.waitFor((f) => f.type === 'message' && f.text === 'hello one' && f.room === 'r-one');

    expect(sockets).toHaveLength(1);
    expect(new URL(sockets[0] ?? '').searchParams.get('room')).toBe('r-one');

    // The browser remembers every room; a link names the one to show. One new page, one new socket.
    await page.close();
    const again = await openPage(server, browser, 'amy', 'r-two', { context, problems });
    const listed = await again.$$eval('#room-list button[data-room]', (bs) => bs.map((b) => b.dataset.room));
    expect(listed).toEqual(['r-one', 'r-two', 'r-three']);
    await again.waitForSelector('#transcript li.message >> text=hello two');
    expect(sockets).toHaveLength(2);

    // Leaving a room forgets it.
    await again.click('#leave');
    await again.waitForSelector('#room-list button[data-room="r-two"]', { state: 'detached' });
    expect(await activeRoom(again)).toBe('r-three');
    elsewhere.close();
    one.close();
    await context.close();
    expect(problems).toEqual([]);
  }, 90_000);

  it('pages back through 510 messages to the first, with no duplicate and no jump', async () => {
    await fillRoom(server, 'long', 510, 'line');
    const page = await openPage(server, browser, 'sam', 'long', { problems });
    await page.waitForSelector('#transcript li.message[data-seq="510"]');
    expect(await shownSeqs(page)).toEqual(Array.from({ length: 50 }, (_, i) => 461 + i));

    let pages = 0;
    while ((await page.$('#transcript .head .start')) === null) {
      const before = await shownSeqs(page);
      // Where the oldest shown message is on screen just before the reader reaches the top.
      const anchor = await page.evaluate(() => {
        const list = document.getElementById('transcript') as HTMLElement;
        list.scrollTop = 0;
        const first = list.querySelector('li.message') as HTMLElement;
        return { seq: first.dataset.seq, top: first.getBoundingClientRect().top };
      });
      await page.waitForFunction(
        (count) => document.querySelectorAll('#transcript li.message').length > count,
        before.length,
      );
      const top = await page.$eval(
        `#transcript li.message[data-seq="${anchor.seq}"]`,
        (el) => el.getBoundingClientRect().top,
      );
      expect(Math.abs(top - anchor.top)).toBeLessThan(2);
      pages += 1;
      expect(pages).toBeLessThan(10);
    }
    const seqs = await shownSeqs(page);
    expect(seqs).toEqual(Array.from({ length: 510 }, (_, i) => i + 1));
    const texts = await page.$$eval('#transcript li.message .text', (els) => els.map((el) => el.textContent));
    expect(new Set(texts).size).toBe(510);
    expect(await page.textContent('#transcript .head .start')).toBe('This is the beginning of long.');
    await page.context().close();
    expect(problems).toEqual([]);
  }, 90_000);

  it('shows a divider at the read marker and unread counts, which a second tab clears', async () => {
    const news = await consoleIn(server, 'u-news', 'newsdesk');
    await post(news, 'u-news', ['news 1', 'news 2']);
    const context = await browser.newContext();
    const first = await openPage(server, browser, 'una', 'u-news', { context, problems });
    await first.waitForSelector('#transcript li.message >> text=news 2');
    await expect.poll(() => title(first)).toBe('u-news · runspec-room');

    await first.evaluate(() => {
      location.hash = '#u-lobby';
    });
    await first.waitForSelector('#room-list button[data-room="u-lobby"][aria-current="page"]');
    await post(news, 'u-news', ['news 3', 'news 4', 'news 5']);
    await expect.poll(() => badges(first, 'u-news')).toEqual({ unread: '3', mentions: '' });
    expect(await title(first)).toBe('(3) u-lobby · runspec-room');

    // The same person's second tab opens the room: the divider stands where the marker was.
    const second = await openPage(server, browser, 'una', 'u-news', { context, problems });
    await second.waitForSelector('#transcript li.divider');
    const around = await second.$$eval('#transcript li.divider, #transcript li.message', (items) =>
      items.map((li) => (li.classList.contains('divider') ? '--' : li.querySelector('.text')?.textContent)),
    );
    expect(around).toEqual(['news 1', 'news 2', '--', 'news 3', 'news 4', 'news 5']);
    expect(await second.textContent('#transcript li.divider')).toBe('New since you left');

    // It read them, and the first tab follows.
    await expect.poll(() => badges(first, 'u-news')).toEqual({ unread: '', mentions: '' });
    await expect.poll(() => title(first)).toBe('u-lobby · runspec-room');
    expect(await title(second)).toBe('u-news · runspec-room');
    news.close();
    await context.close();
    expect(problems).toEqual([]);
  }, 60_000);

  it('highlights and counts mentions apart, and notifies while the page is hidden', async () => {
    const context = await browser.newContext();
    await context.grantPermissions(['notifications'], { origin: server.url ?? '' });
    await context.addInitScript(PAGE_HOOKS);
    const page = await openPage(server, browser, 'mia', 'm-here', { context, problems });
    await page.evaluate(() => {
      location.hash = '#m-side';
    });
    await page.waitForSelector('#room-list button[data-room="m-side"][aria-current="page"]');
    await page.evaluate(() => {
      location.hash = '#m-here';
    });
    await page.waitForSelector('#room-list button[data-room="m-here"][aria-current="page"]');
    // Permission was granted already: nothing to ask for.
    expect(await page.isHidden('#notify')).toBe(true);

    const bot = await consoleIn(server, 'm-side', 'bot');
    await page.evaluate(() => (window as unknown as { __setHidden: (h: boolean) => void }).__setHidden(true));
    await post(bot, 'm-side', ['@mia the canary is red', 'not for you: @miab or mia@host', 'plain news']);
    await expect.poll(() => badges(page, 'm-side')).toEqual({ unread: '3', mentions: '@1' });
    const notes = await page.evaluate(() => (window as unknown as { __notes: unknown[] }).__notes);
    expect(notes).toEqual([{ title: 'bot in m-side', body: '@mia the canary is red' }]);

    // Shown again, in that room: the mention is marked, and reading it clears both counts.
    await page.evaluate(() =>
      (window as unknown as { __setHidden: (h: boolean) => void }).__setHidden(false),
    );
    await page.click('#room-list button[data-room="m-side"]');
    const marked = await page.$$eval('#transcript li.message.mention', (items) =>
      items.map((li) => [li.querySelector('.text')?.textContent, li.querySelector('mark')?.textContent]),
    );
    expect(marked).toEqual([['@mia the canary is red', '@mia']]);
    await expect.poll(() => badges(page, 'm-side')).toEqual({ unread: '', mentions: '' });
    bot.close();
    await context.close();

    // Without permission the page offers to ask, and asks nobody on load.
    const plain = await openPage(server, browser, 'mo', 'm-here', { problems });
    expect(await plain.isVisible('#notify')).toBe(true);
    expect(await plain.evaluate(() => Notification.permission)).toBe('default');
    await plain.context().close();
    expect(problems).toEqual([]);
  }, 60_000);

  it("shows who is typing and clears it; a console's messages and name are marked as a console", async () => {
    const tom = await openPage(server, browser, 'tom', 't-room', { problems });
    const tia = await openPage(server, browser, 'tia', 't-room', { problems });
    await tia.waitForSelector('#presence li[data-user="tom"][data-kind="human"]');

    await tom.focus('#composer');
    await tom.keyboard.type('hel');
    await tia.waitForSelector('#typing >> text=tom is typing…');
    await tom.fill('#composer', '');
    await tom.dispatchEvent('#composer', 'input');
    await tia.waitForFunction(() => document.getElementById('typing')?.textContent === '');
    await tom.keyboard.type('hello');
    await tia.waitForSelector('#typing >> text=tom is typing…');
    await tom.press('#composer', 'Enter');
    await tia.waitForSelector('#transcript li.message >> text=hello');
    await tia.waitForFunction(() => document.getElementById('typing')?.textContent === '');

    const probe = await consoleIn(server, 't-room', 'probe');
    await post(probe, 't-room', ['exit 0\n  2 passed']);
    const item = await tia.waitForSelector('#transcript li.message.from-console');
    expect(await item.$eval('.via-tag', (el) => el.textContent)).toBe('console');
    expect(await item.$eval('.text', (el) => el.textContent)).toBe('exit 0\n  2 passed');
    expect(await item.$eval('.text', (el) => getComputedStyle(el).whiteSpace)).toBe('pre-wrap');
    expect(await item.$eval('.text', (el) => getComputedStyle(el).fontFamily)).toMatch(/mono/iu);
    await tia.waitForSelector('#presence li[data-user="probe"][data-kind="console"] .kind-tag');

    // Away is shown dimmed, still listed.
    probe.send({ type: 'presence', status: 'busy' });
    const away = await tia.waitForSelector('#presence li[data-user="probe"].away');
    expect(await away.evaluate((el) => getComputedStyle(el).color)).not.toBe(
      await tia.$eval('#presence li[data-user="tom"]', (el) => getComputedStyle(el).color),
    );
    probe.close();
    await tom.context().close();
    await tia.context().close();
    expect(problems).toEqual([]);
  }, 60_000);

  it('opens links safely and keeps markup and code as text', async () => {
    const page = await openPage(server, browser, 'lin', 'l-room', { problems });
    const bot = await consoleIn(server, 'l-room', 'bot');
    await post(bot, 'l-room', [
      'see https://example.com/a?b=1. and javascript:alert(1) <script>window.pwned=1</script><img src=x onerror="window.pwned=2">',
      'run:\n```\nif (a < b) {\n    go();\n}\n```\ndone',
    ]);
    await page.waitForSelector('#transcript li.message >> text=done');
    const links = await page.$$eval('#transcript a', (as) =>
      as.map((a) => [a.getAttribute('href'), a.getAttribute('rel'), a.getAttribute('target'), a.textContent]),
    );
    expect(links).toEqual([
      ['https://example.com/a?b=1', 'noopener noreferrer', '_blank', 'https://example.com/a?b=1'],
    ]);
    expect(await page.$$('#transcript script, #transcript img')).toHaveLength(0);
    expect(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned)).toBeUndefined();
    const first = await page.$eval('#transcript li.message .text', (el) => el.textContent);
    expect(first).toContain('<script>window.pwned=1</script><img src=x onerror="window.pwned=2">');
    const code = await page.$eval('#transcript pre.code-block', (el) => [
      el.textContent,
      getComputedStyle(el).whiteSpace,
    ]);
    expect(code).toEqual(['if (a < b) {\n    go();\n}', 'pre']);

    // The link opens in a new tab that cannot reach back into the page, and is not told where it came from.
    await page
      .context()
      .route('https://example.com/**', (route) =>
        route.fulfill({ contentType: 'text/html', body: '<title>elsewhere</title>' }),
      );
    const [opened] = await Promise.all([page.context().waitForEvent('page'), page.click('#transcript a')]);
    await opened.waitForLoadState();
    expect(await opened.evaluate(() => [window.opener, document.referrer])).toEqual([null, '']);
    bot.close();
    await page.context().close();
    expect(problems).toEqual([]);
  }, 60_000);

  it('follows a server that starts over with another database instead of waiting for numbers it passed', async () => {
    const tmp = await tempDir();
    const args = ['--port', String(await freePort()), '--ndjson-port', '0'];
    let fresh = await spawnServer([...args, '--db', `${tmp.dir}/a.db`]);
    try {
      const bot = await consoleIn(fresh, 'again', 'bot');
      await post(bot, 'again', ['old 1', 'old 2', 'old 3']);
      bot.close();
      const page = await openPage(fresh, browser, 'ann', 'again', { problems });
      await page.waitForSelector('#transcript li.message >> text=old 3');
      await fresh.stop();
      await page.waitForSelector('body:not([data-state="connected"])');
      fresh = await spawnServer([...args, '--db', `${tmp.dir}/b.db`]);
      await page.waitForSelector('body[data-state="connected"]', { timeout: 20_000 });
      const again = await consoleIn(fresh, 'again', 'bot');
      await post(again, 'again', ['new 1']);
      await page.waitForSelector('#transcript li.message >> text=new 1');
      expect(await shownSeqs(page)).toEqual([1]);
      again.close();
      await page.context().close();
    } finally {
      await fresh.stop();
      await tmp.cleanup();
    }
    expect(problems).toEqual([]);
  }, 60_000);

  it('leaves a room it is banned from when the server closes its socket for that room, and opens one for another', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    watchProblems(page, problems, 'ben');
    const routes: WebSocketRoute[] = [];
    await page.routeWebSocket(/\/ws/u, (ws) => {
      routes.push(ws);
      ws.connectToServer();
    });
    await page.goto(`${server.url}/?user=ben#b-two`);
    await page.waitForSelector('body[data-state="connected"]');
    await page.evaluate(() => {
      location.hash = '#b-one';
    });
    await page.waitForSelector('#room-list button[data-room="b-one"][aria-current="page"]');
    expect(new URL(routes[0]?.url() ?? '').searchParams.get('room')).toBe('b-two');

    // What the server does to a browser opened for a room its user is banned from.
    routes[0]?.send(
      JSON.stringify({ type: 'error', code: ErrorCode.Banned, message: 'you are banned from b-two' }),
    );
    await routes[0]?.close({ code: CloseCode.Forbidden });
    await expect.poll(() => routes.length, { timeout: 10_000 }).toBe(2);
    await page.waitForSelector('body[data-state="connected"]');
    expect(new URL(routes[1]?.url() ?? '').searchParams.get('room')).toBe('b-one');
    expect(await page.$$eval('#room-list button[data-room]', (bs) => bs.map((b) => b.dataset.room))).toEqual([
      'b-one',
    ]);
    expect(await page.textContent('#notice')).toBe('You are banned from b-two.');

    // Banned from the last room too: the page stops, back at the join form, and says why.
    await routes[1]?.close({ code: CloseCode.Forbidden });
    await page.waitForSelector('#join-view:not([hidden])');
    expect(await page.textContent('#join-error')).toBe('You are banned from b-one.');
    expect(await page.getAttribute('body', 'data-state')).toBe('offline');
    await context.close();
    expect(routes).toHaveLength(2);
    expect(problems).toEqual([]);
  }, 60_000);

  it('shows removed messages as removed, and leaves a room it is kicked from without rejoining it', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    watchProblems(page, problems, 'kai');
    // Between the page and the server: what the page sends is recorded, and frames the server is about
    // to learn (deleted, kicked) can be put in.
    const routes: WebSocketRoute[] = [];
    const sent: Record<string, unknown>[][] = [];
    await page.routeWebSocket(/\/ws/u, (ws) => {
      const upstream = ws.connectToServer();
      const mine: Record<string, unknown>[] = [];
      routes.push(ws);
      sent.push(mine);
      ws.onMessage((message) => {
        mine.push(JSON.parse(String(message)));
        upstream.send(message);
      });
      upstream.onMessage((message) => ws.send(message));
    });
    await page.goto(`${server.url}/?user=kai#k-one`);
    await page.waitForSelector('body[data-state="connected"]');
    const bot = await consoleIn(server, 'k-one', 'bot');
    await post(bot, 'k-one', ['soon gone', 'also gone', 'stays']);
    await page.waitForSelector('#transcript li.message >> text=stays');
    const [gone, alsoGone] = bot.frames.filter((f) => f.type === 'message');

    routes[0]?.send(JSON.stringify({ type: 'deleted', room: 'k-one', id: gone?.id }));
    routes[0]?.send(JSON.stringify({ ...alsoGone, deleted: true }));
    await page.waitForSelector(`#transcript li.message.deleted[data-id="${alsoGone?.id}"]`);
    const shown = await page.$$eval('#transcript li.message .text', (els) => els.map((el) => el.textContent));
    expect(shown).toEqual(['message removed', 'message removed', 'stays']);

    for (const room of ['k-three', 'k-two']) {
      await page.evaluate((hash) => {
        location.hash = hash;
      }, `#${room}`);
      await page.waitForSelector(`#room-list button[data-room="${room}"][aria-current="page"]`);
    }
    await page.waitForSelector('#transcript .head .start');
    routes[0]?.send(JSON.stringify({ type: 'kicked', room: 'k-two', by: 'admin' }));
    await page.waitForSelector('#room-list button[data-room="k-two"]', { state: 'detached' });
    expect(await page.textContent('#notice')).toBe('You were removed from k-two by admin.');
    expect(await page.textContent('#room-name')).toBe('k-three');
    expect(
      await page.evaluate(() => JSON.parse(localStorage.getItem('runspec-room:rooms:kai') ?? '[]')),
    ).toEqual(['k-one', 'k-three']);

    // The connection drops; the page comes back for its rooms, resuming each, and not for k-two.
    await page.click('#room-list button[data-room="k-one"]');
    const three = await consoleIn(server, 'k-three', 'bot');
    await post(three, 'k-three', ['three 1']);
    await page.waitForSelector('#room-list button[data-room="k-three"] .unread-count', { state: 'attached' });
    await routes[0]?.close({ code: CloseCode.ServiceRestart });
    await page.waitForSelector('body:not([data-state="connected"])');
    await post(three, 'k-three', ['three 2']);
    await expect.poll(() => routes.length, { timeout: 10_000 }).toBe(2);
    await page.waitForSelector('body[data-state="connected"]');
    expect(new URL(routes[1]?.url() ?? '').searchParams.get('room')).toBe('k-one');
    expect(new URL(routes[1]?.url() ?? '').searchParams.get('since')).toBe('3');
    await expect
      .poll(() => sent[1]?.find((f) => f.type === 'join'))
      .toMatchObject({ room: 'k-three', since: 1 });
    expect(sent[1]?.filter((f) => f.room === 'k-two')).toEqual([]);
    await page.click('#room-list button[data-room="k-three"]');
    await page.waitForSelector('#transcript li.message >> text=three 2');
    const texts = await page.$$eval('#transcript li.message .text', (els) => els.map((el) => el.textContent));
    expect(texts).toEqual(['three 1', 'three 2']);
    three.close();
    bot.close();
    await context.close();
    expect(problems).toEqual([]);
  }, 60_000);
});
