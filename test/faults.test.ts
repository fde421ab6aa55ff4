// The database fills up while people chat: nothing unstored is echoed, and writing resumes by itself.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../src/protocol/codes.ts';
import { openDatabase } from '../src/store/db.ts';
import { consoleClient, type Frame } from './helpers/clients.ts';
import { startTestServer, type TestServer, tempDir } from './helpers/server.ts';

/** A small filesystem of our own: tmpfs, which only root can mount. */
function mountSmallFs(dir: string): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', dir], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

const probe = join(process.env.TMPDIR ?? '/tmp', `runspec-room-fs-probe-${process.pid}`);
mkdirSync(probe, { recursive: true });
const canMount = mountSmallFs(probe);
if (canMount) execFileSync('umount', [probe]);
rmSync(probe, { recursive: true, force: true });
if (!canMount && process.env.CI)
  throw new Error('CI must run the full-disk test: it needs root to mount a tmpfs');

describe.skipIf(!canMount)('a full disk', () => {
  let mnt: string;
  let server: TestServer;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    const tmp = await tempDir();
    cleanup = tmp.cleanup;
    mnt = join(tmp.dir, 'small');
    mkdirSync(mnt);
    mountSmallFs(mnt);
    server = await startTestServer(join(mnt, 'room.db'));
  });

  afterAll(async () => {
    await server?.stop();
    try {
      execFileSync('umount', ['-l', mnt]); // lazy: a closed database may still be mapped until collected
    } catch {
      // Already gone.
    }
    await cleanup?.();
  });

  /** Send texts one by one; each gets exactly one outcome, an echo or an error, in order. */
  async function sendAll(c: Awaited<ReturnType<typeof consoleClient>>, texts: string[]): Promise<Frame[]> {
    const outcomes: Frame[] = [];
    for (const text of texts) {
      const from = c.frames.length;
      c.send({ type: 'message', text });
      outcomes.push(
        await c.waitFor((f) => (f.type === 'message' && f.text === text) || f.type === 'error', 5000, from),
      );
    }
    return outcomes;
  }

  it('refuses messages it cannot store, echoes only stored ones, stays up, and recovers when space returns', async () => {
    const c = await consoleClient(server.consolePort, {
      type: 'hello',
      room: 'ops',
      user: 'ops',
      protocol: 2,
    });
    await c.waitFor((f) => f.type === 'welcome');
    const body = 'z'.repeat(4000);
    const before = await sendAll(c, ['before 1', 'before 2']);
    expect(before.map((f) => f.type)).toEqual(['message', 'message']);

    // Fill what is left of the filesystem.
    const filler = join(mnt, 'filler');
    try {
      for (let i = 0; i < 10_000; i++) writeFileSync(filler, Buffer.alloc(64 * 1024), { flag: 'a' });
    } catch {
      // ENOSPC: full.
    }
    const during = Array.from({ length: 120 }, (_, i) => `during ${i} ${body}`);
    const outcomes = await sendAll(c, during);
    const refused = outcomes.filter((f) => f.type === 'error');
    expect(refused.length).toBeGreaterThan(0);
    for (const f of refused) expect(f.code).toBe(ErrorCode.StoreUnavailable);
    const health = await fetch(`${server.url}/healthz`);
    expect([200, 503]).toContain(health.status); // answering at all: the server is up

    rmSync(filler);
    const after = await sendAll(c, ['after 1', 'after 2']);
    expect(after.map((f) => f.type)).toEqual(['message', 'message']);

    const database = await openDatabase(join(mnt, 'room.db'));
    try {
      const stored = (await database.client.execute("SELECT text FROM messages WHERE room = 'ops'")).rows.map(
        (r) => String(r.text),
      );
      const echoed = [...before, ...outcomes, ...after]
        .filter((f) => f.type === 'message')
        .map((f) => String(f.text));
      const notStored = during.filter((_, i) => outcomes[i]?.type === 'error');
      expect(stored.sort()).toEqual(echoed.sort());
      for (const text of notStored) expect(stored).not.toContain(text);
      expect((await database.client.execute('PRAGMA integrity_check')).rows[0]?.[0]).toBe('ok');
    } finally {
      database.close();
    }
    c.close();
  }, 60_000);
});
