// Tests of the libSQL store (src/store/db.ts, src/store/transcript.ts) on a real temporary database file.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NewMessage } from '../src/hub/transcript.ts';
import { type Database, DatabaseOpenError, openDatabase } from '../src/store/db.ts';
import { LibsqlTranscript } from '../src/store/transcript.ts';
import { WorkerAppender } from '../src/store/worker-appender.ts';
import { CRASHING_WRITER_THREAD, WRITER_THREAD } from './helpers/writer-thread.ts';

let dir: string;
let dbPath: string;
const opened: Database[] = [];
const writers: WorkerAppender[] = [];
/** Where appends run: on the database's own connection, or on the writer thread the server uses. */
let writeOn: 'connection' | 'thread' = 'connection';

async function open(path = dbPath): Promise<{ database: Database; transcript: LibsqlTranscript }> {
  const database = await openDatabase(path);
  opened.push(database);
  if (writeOn === 'connection') return { database, transcript: new LibsqlTranscript(database) };
  const writer = await WorkerAppender.start(database.url, { script: WRITER_THREAD });
  writers.push(writer);
  return { database, transcript: new LibsqlTranscript(database, writer) };
}

let counter = 0;
function msg(room: string, text: string, sender = 'alice'): NewMessage {
  counter += 1;
  return {
    id: counter.toString(16).padStart(32, '0'),
    room,
    sender,
    text,
    ts: 1_700_000_000 + counter / 1000,
  };
}

/** The first column of the first row of a statement, read through the client the appends use. */
async function scalar(database: Database, statement: string): Promise<unknown> {
  const result = await database.client.execute(statement);
  return result.rows[0]?.[0];
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'runspec-room-store-'));
  dbPath = join(dir, 'room.db');
});

afterEach(async () => {
  for (const writer of writers.splice(0)) await writer.close();
  for (const database of opened.splice(0)) {
    try {
      database.close();
    } catch {
      // already closed by the test
    }
  }
  await rm(dir, { recursive: true, force: true });
});

describe.each(['connection', 'thread'] as const)('LibsqlTranscript, appending on the %s', (where) => {
  beforeEach(() => {
    writeOn = where;
  });

  it('messages survive closing and reopening the database', async () => {
    const first = await open();
    const sent = [msg('ops', 'one'), msg('ops', 'two 🚀'), msg('dev', 'three')];
    const seqs = await first.transcript.append(sent);
    await first.transcript.close();
    first.database.close();

    const second = await open();
    expect(await second.transcript.recent('ops', 10)).toEqual([
      { ...sent[0], seq: seqs[0] },
      { ...sent[1], seq: seqs[1] },
    ]);
    expect(await second.transcript.recent('dev', 10)).toEqual([{ ...sent[2], seq: seqs[2] }]);
    expect(await second.transcript.lastSeq()).toBe(seqs[2]);
  });

  it('keeps text, sender, room and a float ts exactly as given', async () => {
    const { transcript } = await open();
    const m: NewMessage = {
      id: 'ab'.repeat(16),
      room: 'José 🚀',
      sender: 'alice@web01',
      text: `line one\nline "two" \\ ${'é'.repeat(100)} 😀`,
      ts: 1_712_345_678.123456,
    };
    const [seq] = await transcript.append([m]);
    expect(await transcript.recent('José 🚀', 1)).toEqual([{ ...m, seq }]);
  });

  it('appending the same id twice stores it once and returns the same seq', async () => {
    const { transcript } = await open();
    const m = msg('ops', 'once');
    const [first] = await transcript.append([m]);
    const [again, other] = await transcript.append([{ ...m, text: 'changed' }, msg('ops', 'next')]);

    expect(again).toBe(first);
    expect(other).toBeGreaterThan(first ?? 0);
    const stored = await transcript.recent('ops', 10);
    expect(stored.map((s) => s.text)).toEqual(['once', 'next']);
  });

  it('the same id twice in one batch is stored once with one seq', async () => {
    const { transcript } = await open();
    const m = msg('ops', 'dup');
    const [a, b] = await transcript.append([m, m]);
    expect(a).toBe(b);
    expect(a).toBeGreaterThan(0);
    expect(await transcript.recent('ops', 10)).toHaveLength(1);
  });

  it('seq increases in append order across batches', async () => {
    const { transcript } = await open();
    const all: number[] = [];
    for (let batch = 0; batch < 5; batch++) {
      const size = batch + 1;
      const seqs = await transcript.append(
        Array.from({ length: size }, (_, i) => msg(batch % 2 ? 'ops' : 'dev', `b${batch}m${i}`)),
      );
      expect(seqs).toHaveLength(size);
      all.push(...seqs);
    }
    for (let i = 1; i < all.length; i++) expect(all[i]).toBeGreaterThan(all[i - 1] ?? 0);
    expect(await transcript.lastSeq()).toBe(all.at(-1));
  });

  it('the seqs returned for a batch are the ones stored, also for a fresh batch after a repeated id', async () => {
    const { transcript } = await open();
    const big = Array.from({ length: 256 }, (_, i) => msg(`room-${i % 7}`, `m${i}`));
    const bigSeqs = await transcript.append(big);
    const repeated = msg('ops', 'again');
    await transcript.append([repeated]);
    await transcript.append([repeated, msg('ops', 'after a conflict')]);
    const fresh = [msg('ops', 'fresh 1'), msg('dev', 'fresh 2')];
    const freshSeqs = await transcript.append(fresh);

    const stored = new Map<string, number>();
    for (const room of ['ops', 'dev', ...Array.from({ length: 7 }, (_, i) => `room-${i}`)])
      for (const m of await transcript.recent(room, 1000)) stored.set(m.id, m.seq);
    expect(big.map((m) => stored.get(m.id))).toEqual(bigSeqs);
    expect(fresh.map((m) => stored.get(m.id))).toEqual(freshSeqs);
  });

  it('an empty batch stores nothing', async () => {
    const { transcript } = await open();
    expect(await transcript.append([])).toEqual([]);
    expect(await transcript.lastSeq()).toBe(0);
  });

  it('recent returns the newest N oldest first, per room', async () => {
    const { transcript } = await open();
    for (let i = 1; i <= 8; i++) await transcript.append([msg('ops', `ops ${i}`), msg('dev', `dev ${i}`)]);

    const ops = await transcript.recent('ops', 3);
    expect(ops.map((m) => m.text)).toEqual(['ops 6', 'ops 7', 'ops 8']);
    expect(ops.every((m) => m.room === 'ops')).toBe(true);
    expect((await transcript.recent('dev', 2)).map((m) => m.text)).toEqual(['dev 7', 'dev 8']);
    expect(await transcript.recent('ops', 100)).toHaveLength(8);
    expect(await transcript.recent('nowhere', 10)).toEqual([]);
  });

  it('after returns exactly the messages after a seq in that room, bounded', async () => {
    const { transcript } = await open();
    const seqs: number[] = [];
    for (let i = 1; i <= 6; i++)
      seqs.push(...(await transcript.append([msg('ops', `ops ${i}`), msg('dev', `dev ${i}`)])));
    const opsSeqs = seqs.filter((_, i) => i % 2 === 0);
    const since = opsSeqs[1] ?? 0; // after "ops 2"

    const all = await transcript.after('ops', since, 100);
    expect(all.map((m) => m.text)).toEqual(['ops 3', 'ops 4', 'ops 5', 'ops 6']);
    expect(all.map((m) => m.seq)).toEqual(opsSeqs.slice(2));

    expect((await transcript.after('ops', since, 2)).map((m) => m.text)).toEqual(['ops 3', 'ops 4']);
    expect(await transcript.after('ops', opsSeqs.at(-1) ?? 0, 10)).toEqual([]);
    expect((await transcript.after('ops', 0, 100)).map((m) => m.text)).toHaveLength(6);
  });

  it('lastSeq is 0 on an empty database', async () => {
    const { transcript } = await open();
    expect(await transcript.lastSeq()).toBe(0);
  });

  it('appends commit in WAL mode with synchronous=FULL, before and after many appends and reads', async () => {
    const { transcript } = await open();
    const durable = { journalMode: 'wal', synchronous: 2, busyTimeout: 5000, foreignKeys: 1 };
    expect(await transcript.durability()).toEqual(durable);
    for (let i = 0; i < 5; i++) await transcript.append([msg('ops', `m${i}`), msg('dev', `d${i}`)]);
    await transcript.recent('ops', 10);
    await transcript.after('ops', 0, 10);
    expect(await transcript.durability()).toEqual(durable);
  });

  it('the durability settings hold after reopening an existing database', async () => {
    const first = await open();
    await first.transcript.append([msg('ops', 'one')]);
    await first.transcript.close();
    first.database.close();
    const { database, transcript } = await open();
    await transcript.append([msg('ops', 'two')]);
    expect(await transcript.durability()).toMatchObject({ journalMode: 'wal', synchronous: 2 });
    expect(await scalar(database, 'PRAGMA synchronous')).toBe(2); // the reading connection too
  });

  it('answers a ping', async () => {
    const { transcript } = await open();
    await expect(transcript.ping()).resolves.toBeUndefined();
  });
});

describe('the writer thread', () => {
  beforeEach(() => {
    writeOn = 'thread';
  });

  it('the event loop keeps running while batches commit', async () => {
    const { transcript } = await open();
    let ticks = 0;
    const timer = setInterval(() => {
      ticks += 1;
    }, 0);
    for (let i = 0; i < 100; i++) await transcript.append([msg('ops', `m${i}`)]);
    clearInterval(timer);
    // On the database's own connection the same loop runs 0 or 1 times: each commit, fsync included,
    // holds the thread until it returns.
    expect(ticks).toBeGreaterThanOrEqual(10);
  });

  it('closing lets the write in flight finish: it is in the file afterwards', async () => {
    const { database, transcript } = await open();
    const pending = transcript.append([msg('ops', 'last words')]);
    await transcript.close();
    const [seq] = await pending;
    expect(seq).toBeGreaterThan(0);
    database.close();
    writeOn = 'connection';
    const reopened = await open();
    expect((await reopened.transcript.recent('ops', 5)).map((m) => m.text)).toEqual(['last words']);
  });

  /** A transcript whose writer thread dies on cue (test/helpers/crashing-writer.ts). */
  async function withCrashingWriter(): Promise<{ transcript: LibsqlTranscript; lost: string[] }> {
    const database = await openDatabase(dbPath);
    opened.push(database);
    const lost: string[] = [];
    const writer = await WorkerAppender.start(database.url, {
      onLost: (error) => lost.push(error.message),
      script: CRASHING_WRITER_THREAD,
    });
    writers.push(writer);
    return { transcript: new LibsqlTranscript(database, writer), lost };
  }

  it('a batch whose thread dies before writing it is tried once more on a new thread, then fails; later batches are stored', async () => {
    const { transcript, lost } = await withCrashingWriter();
    await transcript.append([msg('ops', 'before')]);

    await expect(transcript.append([msg('ops', 'crash')])).rejects.toThrow(/writer stopped \(exit code 3\)/);
    expect(lost).toHaveLength(2); // the first thread, and the one the retry started

    const [seq] = await transcript.append([msg('ops', 'after')]);
    expect(seq).toBeGreaterThan(0);
    expect((await transcript.recent('ops', 10)).map((m) => m.text)).toEqual(['before', 'after']);
  });

  it('a batch committed by a thread that died before answering gets its real seq from the new thread, stored once', async () => {
    const { transcript, lost } = await withCrashingWriter();
    const [before] = await transcript.append([msg('ops', 'before')]);
    const [seq] = await transcript.append([msg('ops', 'crash after commit')]);
    expect(lost).toEqual(['the transcript writer stopped (exit code 4)']);
    expect(seq).toBe((before ?? 0) + 1);
    const stored = await transcript.recent('ops', 10);
    expect(stored.map((m) => [m.text, m.seq])).toEqual([
      ['before', before],
      ['crash after commit', seq],
    ]);
  });

  it('a closed writer refuses new writes with a clear error', async () => {
    const { transcript } = await open();
    await transcript.close();
    await expect(transcript.append([msg('ops', 'too late')])).rejects.toThrow(/writer is closed/);
  });
});

describe('openDatabase', () => {
  it('a database in a directory that does not exist gives a DatabaseOpenError with a one-line message', async () => {
    const missing = join(dir, 'no', 'such', 'dir', 'room.db');
    const error = await openDatabase(missing).then(
      (database) => {
        opened.push(database);
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DatabaseOpenError);
    const message = (error as Error).message;
    expect(message).not.toContain('\n');
    expect(message).toContain(missing);
    expect((error as Error).name).toBe('DatabaseOpenError');
  });

  it('reopening an up-to-date database applies no migration twice', async () => {
    const first = await open();
    await first.transcript.append([msg('ops', 'kept')]);
    first.database.close();
    const { transcript } = await open();
    expect((await transcript.recent('ops', 5)).map((m) => m.text)).toEqual(['kept']);
  });

  it('the file on disk passes PRAGMA integrity_check', async () => {
    const { database, transcript } = await open();
    for (let i = 0; i < 20; i++) await transcript.append([msg('ops', `m${i}`), msg('dev', `d${i}`)]);
    database.close();

    const reopened = await open();
    expect(await scalar(reopened.database, 'PRAGMA integrity_check')).toBe('ok');
    expect(await reopened.transcript.lastSeq()).toBe(40);
  });
});
