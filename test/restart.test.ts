// A restart in the middle of a burst: every committed message is delivered, browsers are told to
// come back (1012), and after the restart they resume with no gap and no duplicate.
import { copyFileSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { openDatabase } from '../src/store/db.ts';
import { consoleClient } from './helpers/clients.ts';
import { freePort, tempDir } from './helpers/server.ts';
import { type Spawned, spawnServer } from './helpers/spawn.ts';

/** A browser stand-in that reconnects the way the page does: after any close but 4401, with since. */
class ResumingBrowser {
  readonly ids: string[] = [];
  readonly closeCodes: number[] = [];
  lastSeq = 0;
  #ws: WebSocket | undefined;
  #stopped = false;

  readonly #base: string;
  readonly #user: string;

  constructor(base: string, user: string) {
    this.#base = base;
    this.#user = user;
    this.#connect();
  }

  #connect(): void {
    if (this.#stopped) return;
    const since = this.lastSeq > 0 ? `&since=${this.lastSeq}` : '';
    const ws = new WebSocket(`${this.#base.replace('http', 'ws')}/ws?user=${this.#user}&room=ops${since}`);
    this.#ws = ws;
    ws.on('message', (data) => {
      const f = JSON.parse(String(data)) as { type: string; id?: string; seq?: number };
      if (f.type === 'welcome' && typeof f.seq === 'number' && this.lastSeq === 0) this.lastSeq = f.seq;
      if (f.type !== 'message' || f.id === undefined || f.seq === undefined) return;
      this.ids.push(f.id);
      this.lastSeq = Math.max(this.lastSeq, f.seq);
    });
    ws.on('close', (code) => {
      this.closeCodes.push(code);
      if (code !== 4401) setTimeout(() => this.#connect(), 100);
    });
    ws.on('error', () => {});
  }

  get open(): boolean {
    return this.#ws?.readyState === WebSocket.OPEN;
  }

  stop(): void {
    this.#stopped = true;
    this.#ws?.close();
  }
}

const running: Spawned[] = [];
afterEach(async () => {
  for (const s of running.splice(0)) if (s.proc.exitCode === null) await s.stop('SIGKILL');
});

async function until(check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('restart under load', () => {
  it('SIGTERM during a burst loses and repeats nothing for browsers that resume', async () => {
    const tmp = await tempDir();
    const db = join(tmp.dir, 'room.db');
    const args = ['--port', String(await freePort()), '--ndjson-port', String(await freePort()), '--db', db];
    let server = await spawnServer(args);
    running.push(server);
    const base = server.url as string;
    const browsers = ['ann', 'ben', 'cat'].map((name) => new ResumingBrowser(base, name));
    await until(() => browsers.every((b) => b.open));

    const c = await consoleClient(server.consolePort, {
      type: 'hello',
      room: 'ops',
      user: 'burst',
      protocol: 2,
    });
    await c.waitFor((f) => f.type === 'welcome');
    for (let i = 0; i < 3000; i++) c.send({ type: 'message', text: `m${i}` });
    await c.waitFor((f) => f.type === 'message' && f.text === 'm200');
    expect(await server.stop('SIGTERM')).toBe(0);
    expect(browsers.every((b) => b.closeCodes.includes(1012))).toBe(true);

    server = await spawnServer(args);
    running.push(server);
    const after = await consoleClient(server.consolePort, {
      type: 'hello',
      room: 'ops',
      user: 'after',
      protocol: 2,
    });
    await after.waitFor((f) => f.type === 'welcome');
    for (let i = 0; i < 20; i++) after.send({ type: 'message', text: `after${i}` });
    await after.waitFor((f) => f.type === 'message' && f.text === 'after19');

    const database = await openDatabase(db);
    try {
      const stored = (
        await database.client.execute("SELECT id FROM messages WHERE room = 'ops' ORDER BY seq")
      ).rows.map((r) => String(r.id));
      expect(stored.length).toBeGreaterThan(220);
      expect(stored.length).toBeLessThan(3020); // the stop really cut the burst short
      await until(() => browsers.every((b) => b.ids.length >= stored.length));
      for (const b of browsers) expect(b.ids).toEqual(stored);
    } finally {
      database.close();
      for (const b of browsers) b.stop();
      await tmp.cleanup();
    }
  }, 60_000);
});

describe('idempotent sends across a restart', () => {
  it('a message resent with its cid after the server restarted is the original, not a second one', async () => {
    const tmp = await tempDir();
    const db = join(tmp.dir, 'room.db');
    const args = ['--ndjson-only', '--ndjson-port', String(await freePort()), '--db', db];
    let server = await spawnServer(args);
    running.push(server);
    const hello = { type: 'hello', room: 'ops', user: 'agent', protocol: 2 };
    const before = await consoleClient(server.consolePort, hello);
    await before.waitFor((f) => f.type === 'joined');
    before.send({ type: 'message', text: 'deploy done', cid: 'deploy-17', ref: 'a' });
    const original = await before.waitFor((f) => f.ref === 'a');
    expect(await server.stop('SIGTERM')).toBe(0);

    server = await spawnServer(args);
    running.push(server);
    const after = await consoleClient(server.consolePort, { ...hello, since: original.seq });
    await after.waitFor((f) => f.type === 'joined');
    after.send({ type: 'message', text: 'deploy done', cid: 'deploy-17', ref: 'b' });
    const again = await after.waitFor((f) => f.ref === 'b');
    expect(again).toMatchObject({ id: original.id, seq: original.seq, ts: original.ts, cid: 'deploy-17' });
    after.send({ type: 'message', text: 'next', ref: 'c' });
    expect(await after.waitFor((f) => f.ref === 'c')).toMatchObject({ seq: (original.seq as number) + 1 });
    after.close();
    await tmp.cleanup();
  }, 30_000);
});

describe('a graceful stop', () => {
  it('leaves every message in the database file itself, the write-ahead log empty', async () => {
    const tmp = await tempDir();
    const db = join(tmp.dir, 'room.db');
    const server = await spawnServer([
      '--ndjson-only',
      '--ndjson-port',
      String(await freePort()),
      '--db',
      db,
    ]);
    running.push(server);
    const c = await consoleClient(server.consolePort, { type: 'hello', room: 'ops', user: 'a', protocol: 2 });
    await c.waitFor((f) => f.type === 'joined');
    for (let i = 0; i < 50; i++) c.send({ type: 'message', text: `m${i}` });
    await c.waitFor((f) => f.type === 'message' && f.text === 'm49');
    expect(await server.stop('SIGTERM')).toBe(0);
    expect(existsSync(`${db}-wal`) ? statSync(`${db}-wal`).size : 0).toBe(0);
    // The file alone, copied elsewhere, holds them all.
    const copy = join(tmp.dir, 'copy.db');
    copyFileSync(db, copy);
    const database = await openDatabase(copy);
    try {
      const rows = (await database.client.execute("SELECT count(*) FROM messages WHERE room = 'ops'")).rows;
      expect(Number(rows[0]?.[0])).toBe(50);
    } finally {
      database.close();
      await tmp.cleanup();
    }
  }, 30_000);
});
