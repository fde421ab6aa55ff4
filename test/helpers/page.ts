// Driving the page in Chromium against a spawned server: open it as someone, type, and fill rooms from consoles.
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { type ConsoleClient, consoleClient } from './clients.ts';
import type { Spawned } from './spawn.ts';

/** Problems a page reported (uncaught errors, console errors, dialogs); a test expects none. */
export function watchProblems(page: Page, problems: string[], who: string): void {
  page.on('pageerror', (error) => problems.push(`${who}: ${error.message}`));
  page.on('console', (msg) => {
    if (
      msg.type() === 'error' &&
      !/WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource/u.test(msg.text())
    )
      problems.push(`${who}: ${msg.text()}`);
  });
  page.on('dialog', (dialog) => {
    problems.push(`${who}: a dialog opened: ${dialog.message()}`);
    void dialog.dismiss();
  });
}

/** Open the page as `user` (dev mode) on `room`, in `context` or a new one; resolves once connected. */
export async function openPage(
  server: Spawned,
  browser: Browser,
  user: string,
  room: string,
  options: { context?: BrowserContext; problems?: string[] } = {},
): Promise<Page> {
  const context = options.context ?? (await browser.newContext());
  const page = await context.newPage();
  if (options.problems) watchProblems(page, options.problems, user);
  await page.goto(`${server.url}/?user=${encodeURIComponent(user)}#${encodeURIComponent(room)}`);
  await page.waitForSelector('body[data-state="connected"]');
  await page.waitForSelector(`#room-list button[data-room="${room}"][aria-current="page"]`, {
    state: 'attached',
  });
  return page;
}

/** Type a message in the composer and send it with Enter. */
export async function say(page: Page, text: string): Promise<void> {
  await page.fill('#composer', text);
  await page.press('#composer', 'Enter');
}

/** A protocol-2 console in `room`, once welcomed. */
export async function consoleIn(server: Spawned, room: string, user: string): Promise<ConsoleClient> {
  const client = await consoleClient(server.consolePort, { type: 'hello', room, user, protocol: 2 });
  await client.waitFor((f) => f.type === 'welcome', 10_000);
  return client;
}

/** A console says each text in turn and waits for its echoes. */
export async function post(client: ConsoleClient, room: string, texts: string[]): Promise<void> {
  const from = client.frames.length;
  for (const text of texts) client.send({ type: 'message', room, text });
  const last = texts.at(-1);
  await client.waitFor((f) => f.type === 'message' && f.text === last, 20_000, from);
}

/**
 * Fill a room with `count` messages `${prefix} 1…count` from several consoles at once, each within the
 * shipped burst (200 frames) so nothing is slowed.
 */
export async function fillRoom(server: Spawned, room: string, count: number, prefix: string): Promise<void> {
  const perConsole = 170;
  const consoles = await Promise.all(
    Array.from({ length: Math.ceil(count / perConsole) }, (_, i) => consoleIn(server, room, `filler-${i}`)),
  );
  await Promise.all(
    consoles.map((client, i) => {
      const first = i * perConsole + 1;
      const texts = Array.from(
        { length: Math.min(perConsole, count - i * perConsole) },
        (_, j) => `${prefix} ${first + j}`,
      );
      return post(client, room, texts);
    }),
  );
  for (const client of consoles) client.close();
}

/** The seq of every message the transcript shows, in order. */
export const shownSeqs = (page: Page): Promise<number[]> =>
  page.$$eval('#transcript li.message', (items) => items.map((li) => Number(li.getAttribute('data-seq'))));

/** The unread and mention badges of a room in the sidebar ('' when not shown). */
export const badges = (page: Page, room: string): Promise<{ unread: string; mentions: string }> =>
  page.$eval(`#room-list button[data-room="${room}"]`, (button) => {
    const text = (selector: string) => {
      const el = button.querySelector(selector) as HTMLElement | null;
      return el && !el.hidden ? (el.textContent ?? '') : '';
    };
    return { unread: text('.unread-count'), mentions: text('.mention-count') };
  });

/**
 * An init script that records every Notification the page constructs (window.__notes) and lets a
 * test say whether the page is hidden (window.__setHidden), since a headless tab is always shown.
 */
export const PAGE_HOOKS = `(() => {
  window.__notes = [];
  const Real = window.Notification;
  if (Real) {
    window.Notification = class extends Real {
      constructor(title, options) {
        window.__notes.push({ title, body: options?.body ?? '' });
        super(title, options);
      }
    };
  }
  let hidden = false;
  Object.defineProperty(Document.prototype, 'visibilityState', { configurable: true, get: () => (hidden ? 'hidden' : 'visible') });
  Object.defineProperty(Document.prototype, 'hidden', { configurable: true, get: () => hidden });
  window.__setHidden = (value) => {
    hidden = value;
    document.dispatchEvent(new Event('visibilitychange'));
  };
})();`;
