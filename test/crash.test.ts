// Durability: a message that was echoed is in the transcript after the server is killed with SIGKILL.
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../src/store/db.ts';
import { consoleClient, ofType } from './helpers/clients.ts';
import { tempDir } from './helpers/server.ts';
import { type Spawned, spawnServer } from './helpers/spawn.ts';

const running: Spawned[] = [];
const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const s of running.splice(0)) if (s.proc.exitCode === null) await s.stop('SIGKILL');
  for (const c of cleanups.splice(0)) await c();
});

describe('crash safety', () => {
  it('keeps every echoed message after kill -9 in the middle of a burst, exactly once', async () => {
    const tmp = await tempDir();
    cleanups.push(tmp.cleanup);
    const db = `${tmp.dir}/room.db`;
    const echoed: string[] = [];
    let interrupted = 0;
    // Many kills at random moments: each round is a fresh process and a fresh burst.
    for (let round = 0; round < 10; round++) {
      const s = await spawnServer(['--ndjson-only', '--ndjson-port', '0', '--db', db]);
      running.push(s);
      // Twenty-five consoles each send their burst at once (the shipped rate lets 200 through unslowed).
      const consoles = await Promise.all(
        Array.from({ length: 25 }, async (_, n) => {
          const c = await consoleClient(s.consolePort, {
            type: 'hello',
            room: 'ops',
            user: `round${round}-${n}`,
            protocol: 2,
          });
          await c.waitFor((f) => f.type === 'welcome');
          return c;
        }),
      );
      const watcher = consoles[0] as (typeof consoles)[number];
      for (const [n, c] of consoles.entries())
        for (let i = 0; i < 200; i++) c.send({ type: 'message', text: `r${round} c${n} m${i}` });
      // Kill at a different point of the burst each round, while commits are still in flight.
      const killAfter = 20 + Math.floor(Math.random() * 300);
      // Killed from the watcher's own data event, the moment it has seen more than killAfter echoes.
      await new Promise<void>((resolve) => {
        const onData = (): void => {
          if (ofType(watcher.frames, 'message').length <= killAfter) return;
          s.proc.kill('SIGKILL');
          watcher.socket.off('data', onData);
          resolve();
        };
        watcher.socket.on('data', onData);
      });
      await s.exited;
      await Promise.all(consoles.map((c) => c.closed));
      const got = ofType(watcher.frames, 'message');
      expect(got.length).toBeGreaterThan(killAfter);
      if (got.length < 5000) interrupted += 1;
      // Whatever any member received was echoed, so it must be stored.
      for (const c of consoles) echoed.push(...ofType(c.frames, 'message').map((f) => f.id as string));
    }
    // The kills really interrupted bursts (a fast machine may finish one before the signal lands).
    expect(interrupted).toBeGreaterThanOrEqual(5);
    const database = await openDatabase(db);
    try {
      const rows = (await database.client.execute('SELECT id FROM messages')).rows.map((r) => String(r.id));
      const count = new Map<string, number>();
      for (const id of rows) count.set(id, (count.get(id) ?? 0) + 1);
      for (const id of echoed) expect(count.get(id)).toBe(1);
      const check = await database.client.execute('PRAGMA integrity_check');
      expect(check.rows[0]?.[0]).toBe('ok');
    } finally {
      database.close();
    }
  });
});
