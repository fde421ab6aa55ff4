// A database that cannot be written: start-up refuses it, and one that fills up while people chat
// is reported by /healthz, echoes nothing unstored, and takes writes again by itself.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WriteFailure } from '../src/hub/transcript.ts';
import { ErrorCode } from '../src/protocol/codes.ts';
import { openDatabase } from '../src/store/db.ts';
import { consoleClient, type Frame } from './helpers/clients.ts';
import { runProcess } from './helpers/process.ts';
import { startTestServer, type TestServer, tempDir } from './helpers/server.ts';
import { MAIN, spawnServer } from './helpers/spawn.ts';

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

/** Append to `file` until the filesystem is full. */
function fill(file: string): void {
  try {
    for (let i = 0; i < 10_000; i++) writeFileSync(file, Buffer.alloc(64 * 1024), { flag: 'a' });
  } catch {
    // ENOSPC: full.
  }
}

/** Start the built server on `db` as its own process; one that comes up anyway is killed after 15 s. */
function startOn(db: string) {
  return runProcess(process.execPath, [MAIN, '--port', '0', '--ndjson-port', '0', '--db', db], {
    deadlineMs: 15_000,
  });
}

describe.skipIf(!canMount)('start-up on a database it cannot write', () => {
  const undo: Array<() => Promise<void> | void> = [];

  afterEach(async () => {
    for (const step of undo.splice(0).reverse()) await step();
  });

  /** A database the server has made and closed; in a small filesystem of its own if asked. */
  async function existingDatabase(small = false): Promise<{ dir: string; db: string }> {
    const tmp = await tempDir();
    undo.push(tmp.cleanup);
    let dir = tmp.dir;
    if (small) {
      dir = join(tmp.dir, 'small');
      mkdirSync(dir);
      mountSmallFs(dir);
      undo.push(() => void execFileSync('umount', ['-l', dir]));
    }
    const db = join(dir, 'room.db');
    // Made by the server in a process of its own, which leaves no open connection behind.
    const made = await spawnServer(['--port', '0', '--ndjson-port', '0', '--db', db]);
    expect(await made.stop()).toBe(0);
    return { dir, db };
  }

  /** Exit 1 before `ready`, with one line that names the database and why it cannot be written. */
  function expectRefused(run: Awaited<ReturnType<typeof startOn>>, db: string, reason: RegExp): void {
    expect(run.stderr).not.toMatch(/ ready /u);
    expect(run.code).toBe(1);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(/^runspec-room: error: cannot write to database /u);
    expect(run.stderr).toContain(`cannot write to database ${db}: `);
    expect(run.stderr).toMatch(reason);
  }

  it('refuses a database file that is read-only, even to root', async () => {
    const { db } = await existingDatabase();
    // Root writes through permission bits (chmod 0444); not through a read-only mount of the file.
    execFileSync('mount', ['-o', 'bind,ro', db, db]);
    undo.push(() => void execFileSync('umount', [db]));
    expectRefused(await startOn(db), db, /SQLITE_READONLY/u);
  }, 30_000);

  it('refuses a database on a full disk, with or without room for its shared-memory index', async () => {
    // Nothing free: SQLite cannot size the -shm index it opens a WAL database with, or write at all.
    const full = await existingDatabase(true);
    fill(join(full.dir, 'filler'));
    expectRefused(await startOn(full.db), full.db, /SQLITE_IOERR_SHMSIZE|SQLITE_FULL/u);

    // 2 KiB free: the database opens (its -shm index is left from the last run), but a commit,
    // which needs a 4 KiB page in the write-ahead log, does not fit.
    const almost = await existingDatabase(true);
    const filler = join(almost.dir, 'filler');
    fill(filler);
    truncateSync(filler, statSync(filler).size - 2 * 1024);
    expectRefused(await startOn(almost.db), almost.db, /SQLITE_FULL/u);
  }, 60_000);
});

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

  it('refuses messages it cannot store, reports the full disk on /healthz, and recovers by itself when space returns', async () => {
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
    fill(filler);
    const during = Array.from({ length: 120 }, (_, i) => `during ${i} ${body}`);
    const outcomes = await sendAll(c, during);
    const refused = outcomes.filter((f) => f.type === 'error');
    expect(refused.length).toBeGreaterThan(0);
    for (const f of refused) expect(f.code).toBe(ErrorCode.StoreUnavailable);
    expect(outcomes.at(-1)?.type).toBe('error');
    const full = await fetch(`${server.url}/healthz`);
    expect(full.status).toBe(503);
    expect(await full.json()).toEqual({ status: 'unavailable', database: WriteFailure.Full });

    rmSync(filler);
    // No message since the space came back: the health check's own write finds it.
    const recovered = await fetch(`${server.url}/healthz`);
    expect(recovered.status).toBe(200);
    expect(await recovered.json()).toMatchObject({ status: 'ok', database: 'up' });
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
      expect((await database.client.execute('PRAGMA user_version')).rows[0]?.[0]).toBe(0); // probes change nothing
    } finally {
      database.close();
    }
    c.close();
  }, 60_000);
});
