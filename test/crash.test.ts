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
    // Many kills at random moments: each round is a fresh process and a fresh burst.
    for (let round = 0; round < 10; round++) {
      const s = await spawnServer(['--ndjson-only', '--ndjson-port', '0', '--db', db]);
      running.push(s);
      const c = await consoleClient(s.consolePort, {
        type: 'hello',
        room: 'ops',
        user: `round${round}`,
        protocol: 2,
      });
      await c.waitFor((f) => f.type === 'welcome');
      for (let i = 0; i < 2000; i++) c.send({ type: 'message', text: `r${round} m${i}` });
      // Kill at a different point of the burst each round, while commits are still in flight.
      const killAfter = 20 + Math.floor(Math.random() * 600);
      await c.waitFor((f) => f.type === 'message' && f.text === `r${round} m${killAfter}`, 10_000);
      s.proc.kill('SIGKILL');
      await s.exited;
      await c.closed;
      const got = ofType(c.frames, 'message');
      expect(got.length).toBeGreaterThan(killAfter);
      expect(got.length).toBeLessThan(2000); // the kill really interrupted the burst
      echoed.push(...got.map((f) => f.id as string));
    }
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
