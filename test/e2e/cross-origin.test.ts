// In real Chromium: a page on another origin the user visits cannot read a dev-mode room or post in it,
// though the server listens on loopback and needs no sign-in.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveChromium, launchChromium } from '../helpers/chromium.ts';
import { consoleClient, ofType } from '../helpers/clients.ts';
import { tempDir } from '../helpers/server.ts';
import { type Spawned, spawnServer, untilOutput } from '../helpers/spawn.ts';

describe.skipIf(!haveChromium)('in Chromium, a page of another origin', () => {
  let browser: Browser;
  let room: Spawned;
  let evil: Server;
  let evilUrl: string;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    const tmp = await tempDir();
    cleanup = tmp.cleanup;
    room = await spawnServer(['--port', '0', '--ndjson-port', '0', '--db', `${tmp.dir}/room.db`]);
    // Another site: its page tries to join the room as alice, read its history and post.
    evil = createServer((_req, res) => {
      res.setHeader('content-type', 'text/html');
      res.end(`<!doctype html><title>evil</title><script>
        window.outcome = new Promise((resolve) => {
          const got = [];
          const ws = new WebSocket(${JSON.stringify(`${room.url?.replace('http', 'ws')}/ws?user=alice&room=secret&since=0`)});
          ws.onopen = () => ws.send(JSON.stringify({ type: 'message', text: 'posted by another site' }));
          ws.onmessage = (e) => got.push(e.data);
          ws.onclose = (e) => resolve({ code: e.code, got });
        });
      </script>`);
    });
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
    evilUrl = `http://127.0.0.1:${(evil.address() as AddressInfo).port}/`;
    browser = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    evil?.close();
    await room?.stop();
    await cleanup?.();
  });

  it('can neither read a dev-mode room nor post in it', async () => {
    const owner = await consoleClient(room.consolePort, {
      type: 'hello',
      room: 'secret',
      user: 'owner',
      protocol: 2,
    });
    await owner.waitFor((f) => f.type === 'welcome');
    owner.send({ type: 'message', text: 'the launch code' });
    await owner.waitFor((f) => f.type === 'message');
    const page = await (await browser.newContext()).newPage();
    await page.goto(evilUrl);
    const outcome = (await page.evaluate('window.outcome')) as { code: number; got: string[] };
    expect(outcome.got).toEqual([]);
    expect(outcome.code).toBe(1006);
    await untilOutput(room, /browser refused: origin not allowed origin=http:\/\/127\.0\.0\.1:\d+/u);
    // The room saw no one arrive and nothing posted: the owner's next message is the next thing it gets.
    owner.send({ type: 'message', text: 'barrier' });
    await owner.waitFor((f) => f.type === 'message' && f.text === 'barrier');
    expect(ofType(owner.frames, 'message').map((f) => f.text)).toEqual(['the launch code', 'barrier']);
    expect(ofType(owner.frames, 'presence')).toEqual([]);
  });
});
