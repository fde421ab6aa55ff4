// End to end in Chromium, signed in at a real provider: the console keys panel (add, a bad key, remove,
// and what a console sees of each) and an admin's actions on people and messages, seen from the other side and over HTTP.
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, RefusalCode } from '../../src/protocol/codes.ts';
import { haveChromium, launchChromium } from '../helpers/chromium.ts';
import { type ConsoleClient, request } from '../helpers/clients.ts';
import { consoleIn, say } from '../helpers/page.ts';
import { type SignedInServer, startSignedInServer } from '../helpers/signed-in.ts';
import { runCli } from '../helpers/spawn.ts';
import { haveSshKeygen, keyConsole, makeKey, sign } from '../helpers/ssh.ts';

describe.skipIf(!haveChromium || !haveSshKeygen)(
  'in Chromium, signed in: console keys and admin actions',
  () => {
    let browser: Browser;
    let room: SignedInServer;
    const problems: string[] = [];

    beforeAll(async () => {
      room = await startSignedInServer({ CONSOLE_ROOM_ADMINS: 'ada' });
      browser = await launchChromium();
    }, 60_000);

    afterAll(async () => {
      await browser?.close();
      await room?.stop();
    });

    const openKeys = async (page: Page) => {
      await page.click('#open-keys');
      await page.waitForSelector('#keys-dialog[open]');
      await page.waitForFunction(
        () => document.getElementById('keys-status')?.textContent !== 'Loading your keys…',
      );
    };
    const fingerprints = (page: Page) =>
      page.$$eval('#key-list .fingerprint', (els) => els.map((el) => el.textContent));

    it('adds a key in the panel, and a console with that key proves the name; a bad key shows its error at the field', async () => {
      const page = await room.signIn(browser, 'ada', 'keys-room', { problems });
      await openKeys(page);
      expect(await page.textContent('#keys-status')).toBe('You have no console keys yet.');
      expect(await page.textContent('#keys-dialog .hint code')).toBe(
        'runspec-room console --key ~/.ssh/id_ed25519',
      );

      await page.fill('#key-text', 'ssh-dss AAAAB3NzaC1kc3MAAACBAP not-a-usable-key');
      await page.click('#key-add');
      await page.waitForSelector('#key-text-error:not([hidden])');
      expect(await page.textContent('#key-text-error')).not.toBe('');
      expect(await page.getAttribute('#key-text', 'aria-invalid')).toBe('true');
      expect(await page.evaluate(() => document.activeElement?.id)).toBe('key-text');
      expect(await fingerprints(page)).toEqual([]);

      const key = await makeKey(room.dir, 'ada-laptop');
      await page.fill('#key-text', key.pub);
      await page.fill('#key-label', 'work laptop');
      await page.keyboard.press('Enter');
      await page.waitForSelector('#key-list li.key');
      // As `ssh-keygen -l` prints it, next to the label.
      expect(await fingerprints(page)).toEqual([key.fingerprint]);
      expect(await page.textContent('#key-list .key-label')).toBe('work laptop');
      expect(await page.isHidden('#key-text-error')).toBe(true);
      expect(await page.inputValue('#key-text')).toBe('');

      const { client, answer } = await keyConsole(
        room.server.consolePort,
        { room: 'keys-room', user: 'ada', key: key.pub },
        (n) => sign(key.file, n),
      );
      expect(answer).toMatchObject({ type: 'welcome', user: 'ada', authenticated: true, admin: true });

      // Removing it in the panel, after saying yes, closes that console at once.
      await page.click(`#key-list button.remove-key[data-fingerprint="${key.fingerprint}"]`);
      await page.waitForSelector('#confirm-dialog[open]');
      expect(await page.evaluate(() => document.activeElement?.id)).toBe('confirm-no');
      await page.click('#confirm-yes');
      await client.closed;
      expect(client.frames.at(-1)).toMatchObject({ type: 'error', code: ErrorCode.Revoked });
      await page.waitForSelector('#key-list li.key', { state: 'detached' });
      expect(await page.isVisible('#keys-dialog')).toBe(true);
      await page.click('#keys-close');
      await page.waitForSelector('#keys-dialog', { state: 'hidden' });
      await page.context().close();
      expect(problems).toEqual([]);
    }, 90_000);

    it('a signed-in admin deletes, mutes, kicks and bans from the page, and the other side sees each; a non-admin sees no admin controls', async () => {
      const ada = await room.signIn(browser, 'ada', 'mod-room', { problems });
      const bo = await room.signIn(browser, 'bo', 'mod-room', { problems });
      const cy: ConsoleClient = await consoleIn(room.server, 'mod-room', 'cy');
      try {
        await bo.waitForSelector('#presence li[data-user="cy"]');
        await ada.waitForSelector('#presence li[data-user="bo"] button.person-actions');
        expect(await ada.isVisible('#moderate')).toBe(true);

        await say(bo, 'something regrettable');
        const said = await ada.waitForSelector('#transcript li.message:has-text("something regrettable")');
        // The other side: no admin controls anywhere.
        await bo.waitForSelector('#transcript li.message:has-text("something regrettable")');
        expect(await bo.$$eval('button.person-actions, button.delete-message', (els) => els.length)).toBe(0);
        expect(await bo.isHidden('#moderate')).toBe(true);

        // Delete, confirmed: the message is removed on bo's page.
        await said.hover();
        await said.$eval('button.delete-message', (b) => (b as HTMLButtonElement).focus());
        await ada.keyboard.press('Enter');
        await ada.waitForSelector('#confirm-dialog[open]');
        await ada.click('#confirm-yes');
        await bo.waitForSelector('#transcript li.message.deleted >> text=message removed');
        await ada.waitForSelector('#notice >> text=The message was deleted from mod-room.');

        // Mute cy for an hour, with a reason: cy's messages are refused.
        await ada.click('#presence li[data-user="cy"] button.person-actions');
        await ada.waitForSelector('#moderate-dialog[open]');
        expect(await ada.inputValue('#moderate-user')).toBe('cy');
        await ada.selectOption('#moderate-duration', '3600');
        await ada.fill('#moderate-reason', 'cool off');
        const mutedAt = Date.now() / 1000;
        await ada.click('#moderate-dialog button[data-action="mute"]');
        await ada.waitForSelector('#notice >> text=cy is muted in mod-room for 1 hour.');
        const audit = await runCli(['audit', '--db', join(room.dir, 'room.db'), '--json']);
        const mute = audit.stdout
          .trim()
          .split('\n')
          .map((line) => JSON.parse(line) as Record<string, unknown>)
          .find((e) => e.action === 'mute');
        expect(mute).toMatchObject({ actor: 'ada', via: 'browser', reason: 'cool off' });
        expect(Math.abs(Number(mute?.until) - (mutedAt + 3600))).toBeLessThan(60);
        expect(await request(cy, { type: 'message', room: 'mod-room', text: 'hello?' })).toMatchObject({
          type: 'error',
          code: ErrorCode.Muted,
        });

        // Kick bo with a reason: bo's page leaves the room and says who and why.
        await ada.click('#presence li[data-user="bo"] button.person-actions');
        await ada.fill('#moderate-reason', 'take a break');
        await ada.click('#moderate-dialog button[data-action="kick"]');
        await bo.waitForSelector('#join-view:not([hidden])');
        expect(await bo.textContent('#join-error')).toBe(
          'You were removed from mod-room by ada: take a break.',
        );
        await ada.waitForSelector('#notice >> text=bo was removed from mod-room.');

        // Ban cy: the console is taken out of the room, banned.
        await ada.click('#presence li[data-user="cy"] button.person-actions');
        await ada.click('#moderate-dialog button[data-action="ban"]');
        expect(await cy.waitFor((f) => f.type === 'kicked', 10_000)).toMatchObject({
          room: 'mod-room',
          by: 'ada',
          banned: true,
        });
        expect(await request(cy, { type: 'join', room: 'mod-room' })).toMatchObject({
          code: ErrorCode.Banned,
        });

        // Unban by name (cy is no longer listed), and a second unban is refused and said so.
        for (const outcome of ['cy may join mod-room again.', 'Could not unban cy: ']) {
          await ada.click('#moderate');
          await ada.fill('#moderate-user', 'cy');
          await ada.click('#moderate-dialog button[data-action="unban"]');
          await ada.waitForSelector(`#notice >> text=${outcome}`);
        }
        expect(await request(cy, { type: 'join', room: 'mod-room' })).toMatchObject({ type: 'joined' });
      } finally {
        cy.close();
        await ada.context().close();
        await bo.context().close();
      }
      expect(problems).toEqual([]);
    }, 90_000);

    it('someone banned from a room cannot read it over HTTP either: its messages, search and export answer 403 banned until the ban is lifted', async () => {
      const ada = await room.signIn(browser, 'ada', 'ban-room', { problems });
      const bo = await room.signIn(browser, 'bo', 'ban-room', { problems });
      // With the page's own cookies, as a script of the page or a copied link would ask.
      const reads = ['messages', 'search?q=friday', 'export'].map(
        (path) => `${room.origin}/api/rooms/ban-room/${path}`,
      );
      const statuses = (page: Page) =>
        Promise.all(reads.map(async (url) => (await page.request.get(url)).status()));
      try {
        await say(ada, 'the plan for friday');
        await bo.waitForSelector('#transcript li.message:has-text("the plan for friday")');
        expect(await statuses(bo)).toEqual([200, 200, 200]);

        await ada.click('#presence li[data-user="bo"] button.person-actions');
        await ada.click('#moderate-dialog button[data-action="ban"]');
        await bo.waitForSelector('#join-view:not([hidden])');
        for (const url of reads) {
          const answer = await bo.request.get(url);
          expect(answer.status(), url).toBe(403);
          const { error } = (await answer.json()) as { error: { code: string; message: string } };
          expect(error.code).toBe(RefusalCode.Banned);
          expect(error.message).toMatch(/^you are banned from ban-room/u);
        }
        // Nobody else is refused.
        expect(await statuses(ada)).toEqual([200, 200, 200]);

        await ada.click('#moderate');
        await ada.fill('#moderate-user', 'bo');
        await ada.click('#moderate-dialog button[data-action="unban"]');
        await ada.waitForSelector('#notice >> text=bo may join ban-room again.');
        expect(await statuses(bo)).toEqual([200, 200, 200]);
      } finally {
        await ada.context().close();
        await bo.context().close();
      }
      expect(problems).toEqual([]);
    }, 90_000);
  },
);
