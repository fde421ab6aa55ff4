// Backups: `runspec-room backup FILE` copies the database of a running server process that is storing
// messages; the copy opens, passes integrity_check and holds every message echoed before it began; a
// backup never overwrites a file, a remote database is refused, and the README's restore works.
import { copyFile, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import NativeDatabase from 'libsql';
import { afterEach, describe, expect, it } from 'vitest';
import { type ConsoleClient, consoleClient, request } from './helpers/clients.ts';
import { tempDir } from './helpers/server.ts';
import { runCli, type Spawned, spawnServer } from './helpers/spawn.ts';

const running: Spawned[] = [];
const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const s of running.splice(0)) if (s.proc.exitCode === null) await s.stop('SIGKILL');
  for (const c of cleanups.splice(0)) await c();
});

/** Send messages one after another, each after the last one's echo, until stopped; the ids echoed, in order. */
function sender(client: ConsoleClient): { echoed: string[]; stop: () => Promise<void> } {
  const echoed: string[] = [];
  let going = true;
  const done = (async () => {
    for (let i = 0; going; i++) {
      const echo = await request(client, { type: 'message', text: `load ${i}` }, 10_000);
      echoed.push(String(echo.id));
    }
  })();
  return {
    echoed,
    stop: async () => {
      going = false;
      await done;
    },
  };
}

describe('backup', () => {
  it('copies a live database under write load: the copy passes integrity_check and holds every message echoed before it began', async () => {
    const tmp = await tempDir();
    cleanups.push(tmp.cleanup);
    const db = join(tmp.dir, 'room.db');
    const server = await spawnServer(['--port', '0', '--ndjson-port', '0', '--db', db]);
    running.push(server);
    const consoles = await Promise.all(
      ['a', 'b', 'c'].map(async (user) => {
        const client = await consoleClient(server.consolePort, {
          type: 'hello',
          room: 'load',
          user,
          protocol: 2,
        });
        await client.waitFor((f) => f.type === 'joined');
        return client;
      }),
    );
    const senders = consoles.map(sender);
    const total = (): number => senders.reduce((n, s) => n + s.echoed.length, 0);
    for (let i = 0; i < 500 && total() < 300; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    const before = senders.flatMap((s) => [...s.echoed]);
    expect(before.length).toBeGreaterThanOrEqual(300);

    const file = join(tmp.dir, 'backup.db');
    const backup = await runCli(['backup', file, '--db', db]);
    const during = total() - before.length;
    await Promise.all(senders.map((s) => s.stop()));
    expect(backup.stderr).toBe('');
    expect(backup.code).toBe(0);
    expect(backup.stdout).toMatch(/^backed up .+ to .+: \d+ messages, [\d.]+ MiB in \d+ ms\n$/u);

    const copy = new NativeDatabase(file);
    try {
      expect(copy.prepare('PRAGMA integrity_check').raw(true).all()).toEqual([['ok']]);
      expect(copy.prepare('PRAGMA journal_mode').raw(true).get()).toEqual(['delete']);
      const ids = new Set(
        copy
          .prepare('SELECT id FROM messages')
          .raw(true)
          .all()
          .map((r) => String((r as unknown[])[0])),
      );
      const missing = before.filter((id) => !ids.has(id));
      expect(missing).toEqual([]);
      // The search index came along: it holds every message up to its progress, and the server
      // indexes the rest (stored in the last moments before the copy) when it next runs.
      const indexed = copy
        .prepare("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'load'")
        .raw(true)
        .get();
      const behind = copy
        .prepare('SELECT count(*) FROM messages WHERE n > (SELECT indexed FROM search_progress)')
        .raw(true)
        .get();
      expect(Number((indexed as unknown[])[0]) + Number((behind as unknown[])[0])).toBe(ids.size);
    } finally {
      copy.close();
    }
    // The server kept storing while the copy was made.
    expect(during).toBeGreaterThan(0);
    for (const c of consoles) c.close();
  }, 60_000);

  it('never overwrites a file, refuses a remote database, and names a missing one', async () => {
    const tmp = await tempDir();
    cleanups.push(tmp.cleanup);
    const db = join(tmp.dir, 'room.db');
    const server = await spawnServer(['--port', '0', '--ndjson-port', '0', '--db', db]);
    running.push(server);
    const taken = join(tmp.dir, 'taken.db');
    await writeFile(taken, 'precious');
    const refused = await runCli(['backup', taken, '--db', db]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^runspec-room: error: .*exists; a backup never overwrites a file\n$/u);
    expect(await readFile(taken, 'utf8')).toBe('precious');
    const remote = await runCli(['backup', join(tmp.dir, 'r.db'), '--db', 'libsql://db.example.com']);
    expect(remote.code).toBe(1);
    expect(remote.stderr).toMatch(/remote libSQL server/u);
    const missing = await runCli(['backup', join(tmp.dir, 'm.db'), '--db', join(tmp.dir, 'nope.db')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no database at/u);
    expect((await runCli(['backup', '--db', db])).code).toBe(2);
    await server.stop();
  });

  it('restores as the README says: stop, copy the backup into place, start', async () => {
    const tmp = await tempDir();
    cleanups.push(tmp.cleanup);
    const db = join(tmp.dir, 'room.db');
    const args = ['--port', '0', '--ndjson-port', '0', '--db', db];
    const first = await spawnServer(args);
    running.push(first);
    const alice = await consoleClient(first.consolePort, {
      type: 'hello',
      room: 'ops',
      user: 'alice',
      protocol: 2,
    });
    await alice.waitFor((f) => f.type === 'joined');
    await request(alice, { type: 'message', text: 'kept by the backup' });
    const file = join(tmp.dir, 'backup.db');
    expect((await runCli(['backup', file, '--db', db])).code).toBe(0);
    await request(alice, { type: 'message', text: 'after the backup' });
    alice.close();
    expect(await first.stop()).toBe(0);

    for (const suffix of ['-wal', '-shm']) await rm(`${db}${suffix}`, { force: true });
    await copyFile(file, db);
    const second = await spawnServer(args);
    running.push(second);
    const page = (await (await fetch(new URL('/api/rooms/ops/messages', second.url))).json()) as {
      messages: Array<{ text: string; seq: number }>;
    };
    expect(page.messages.map((m) => [m.seq, m.text])).toEqual([[1, 'kept by the backup']]);
    await second.stop();
  });
});
