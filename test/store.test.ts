// Tests of the libSQL store (src/store/db.ts, src/store/transcript.ts) on a real temporary database file.
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createClient } from '@libsql/client';
import { drizzle } from 'drizzle-orm/libsql';
import { migrate } from 'drizzle-orm/libsql/migrator';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Appended, conversationKey, type NewMessage } from '../src/hub/transcript.ts';
import { SqlAppender } from '../src/store/append.ts';
import { type Database, DatabaseOpenError, openDatabase } from '../src/store/db.ts';
import { NativeAppender } from '../src/store/native-append.ts';
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
function msg(room: string, text: string, sender = 'alice', extra: Partial<NewMessage> = {}): NewMessage {
  counter += 1;
  return {
    id: counter.toString(16).padStart(32, '0'),
    room,
    sender,
    text,
    ts: 1_700_000_000 + counter / 1000,
    via: 'console',
    ...extra,
  };
}

/** The seq each appended message was stored at (a resend: the original's). */
const seqsOf = (appended: Appended[]): number[] =>
  appended.map((a) => ('seq' in a ? a.seq : a.duplicate.seq));

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
    const sent = [msg('ops', 'one'), msg('ops', 'two 🚀'), msg('dev', 'three', 'bob', { via: 'browser' })];
    const seqs = seqsOf(await first.transcript.append(sent));
    expect(seqs).toEqual([1, 2, 1]);
    await first.transcript.close();
    first.database.close();

    const second = await open();
    expect(await second.transcript.recent('ops', 10)).toEqual([
      { ...sent[0], seq: 1 },
      { ...sent[1], seq: 2 },
    ]);
    expect(await second.transcript.recent('dev', 10)).toEqual([{ ...sent[2], seq: 1 }]);
    expect(await second.transcript.lastSeq('ops')).toBe(2);
    expect(await second.transcript.lastSeq('dev')).toBe(1);
    // Numbering goes on where it stopped, after a reopen too.
    expect(seqsOf(await second.transcript.append([msg('ops', 'four')]))).toEqual([3]);
  });

  it('keeps text, sender, room, a float ts, cid and via exactly as given', async () => {
    const { transcript } = await open();
    const m: NewMessage = {
      id: 'ab'.repeat(16),
      room: 'José 🚀',
      sender: 'alice@web01',
      text: `line one\nline "two" \\ ${'é'.repeat(100)} 😀`,
      ts: 1_712_345_678.123456,
      via: 'browser',
      cid: 'client-1',
    };
    const [appended] = await transcript.append([m]);
    expect(appended).toEqual({ seq: 1 });
    expect(await transcript.recent('José 🚀', 1)).toEqual([{ ...m, seq: 1 }]);
  });

  it('numbers each room 1, 2, 3… without gaps, whatever the batches and the other rooms', async () => {
    const { transcript } = await open();
    const rooms = ['ops', 'dev', 'José'];
    const expected = new Map(rooms.map((r) => [r, 0]));
    for (let batch = 0; batch < 12; batch++) {
      const messages = Array.from({ length: (batch % 5) + 1 }, (_, i) =>
        msg(rooms[(batch + i) % 3] as string, `b${batch}m${i}`),
      );
      const seqs = seqsOf(await transcript.append(messages));
      messages.forEach((m, i) => {
        const next = (expected.get(m.room) ?? 0) + 1;
        expected.set(m.room, next);
        expect(seqs[i]).toBe(next);
      });
    }
    for (const room of rooms) {
      const all = await transcript.recent(room, 1000);
      expect(all.map((m) => m.seq)).toEqual(Array.from({ length: all.length }, (_, i) => i + 1));
      expect(await transcript.lastSeq(room)).toBe(expected.get(room));
    }
  });

  it('a message whose sender already stored one with the same cid in the room comes back as that one, not stored again', async () => {
    const { transcript } = await open();
    const first = msg('ops', 'deploy started', 'alice', { cid: 'c-1' });
    const [stored] = await transcript.append([first, msg('ops', 'other')]);
    expect(stored).toEqual({ seq: 1 });
    // A resend (new id, same cid), in a later batch and twice in one batch.
    const again = await transcript.append([
      msg('ops', 'deploy started', 'alice', { cid: 'c-1' }),
      msg('ops', 'new', 'alice', { cid: 'c-2' }),
      msg('ops', 'new', 'alice', { cid: 'c-2' }),
    ]);
    expect(again[0]).toEqual({ duplicate: { ...first, seq: 1 } });
    expect(again[1]).toEqual({ seq: 3 });
    expect(again[2]).toMatchObject({ duplicate: { cid: 'c-2', seq: 3 } });
    // The same cid from another sender, or in another room, is another message.
    expect(
      seqsOf(
        await transcript.append([
          msg('ops', 'x', 'bob', { cid: 'c-1' }),
          msg('dev', 'y', 'alice', { cid: 'c-1' }),
        ]),
      ),
    ).toEqual([4, 1]);
    expect((await transcript.recent('ops', 10)).map((m) => m.text)).toEqual([
      'deploy started',
      'other',
      'new',
      'x',
    ]);
  });

  it('looks a cid up by index, not by reading the transcript', async () => {
    const { database } = await open();
    const plan = await database.client.execute({
      sql: "EXPLAIN QUERY PLAN SELECT id FROM messages WHERE cid IS NOT NULL AND (room, sender, cid) IN (VALUES ('ops', 'alice', 'c'))",
      args: [],
    });
    const detail = plan.rows.map((r) => String(r[3])).join(' | ');
    expect(detail).toContain('messages_room_sender_cid');
    expect(detail).not.toMatch(/SCAN messages(?! USING)/u);
  });

  it('an empty batch stores nothing', async () => {
    const { transcript } = await open();
    expect(await transcript.append([])).toEqual([]);
    expect(await transcript.lastSeq('ops')).toBe(0);
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

  it('after and before return exactly the messages on that side of a seq in that room, bounded', async () => {
    const { transcript } = await open();
    for (let i = 1; i <= 6; i++) await transcript.append([msg('ops', `ops ${i}`), msg('dev', `dev ${i}`)]);
    expect((await transcript.after('ops', 2, 100)).map((m) => m.text)).toEqual([
      'ops 3',
      'ops 4',
      'ops 5',
      'ops 6',
    ]);
    expect((await transcript.after('ops', 2, 2)).map((m) => m.text)).toEqual(['ops 3', 'ops 4']);
    expect(await transcript.after('ops', 6, 10)).toEqual([]);
    expect((await transcript.before('ops', 5, 2)).map((m) => m.text)).toEqual(['ops 3', 'ops 4']);
    expect((await transcript.before('ops', 2, 10)).map((m) => m.text)).toEqual(['ops 1']);
    expect(await transcript.before('ops', 1, 10)).toEqual([]);
  });

  it('lists rooms by their newest message, without whisper conversations', async () => {
    const { transcript } = await open();
    await transcript.append([msg('old', 'a')]);
    await transcript.append([msg(conversationKey('alice', 'bob'), 'psst', 'alice', { recipient: 'bob' })]);
    await transcript.append([msg('new', 'b'), msg('new', 'c')]);
    const rooms = await transcript.rooms(10);
    expect(rooms.map((r) => [r.key, r.seq])).toEqual([
      ['new', 2],
      ['old', 1],
    ]);
    expect((await transcript.rooms(1)).map((r) => r.key)).toEqual(['new']);
  });

  it('the room list stays the one the database holds, batch after batch, as rooms come and go from its top', async () => {
    const { database, transcript } = await open();
    const stored = async (limit: number) =>
      (
        await database.client.execute({
          sql: 'SELECT key, seq, ts FROM conversations WHERE unicode(key) > 1 ORDER BY ts DESC LIMIT ?',
          args: [limit],
        })
      ).rows.map((r) => [String(r[0]), Number(r[1]), Number(r[2])]);
    const listed = async (limit: number) => (await transcript.rooms(limit)).map((r) => [r.key, r.seq, r.ts]);
    const rooms = Array.from({ length: 12 }, (_, i) => `room-${i}`);
    let random = 7;
    const next = (n: number): number => {
      random = (random * 48271) % 2147483647;
      return random % n;
    };
    await transcript.append(rooms.map((room) => msg(room, 'first')));
    expect(await listed(4)).toEqual(await stored(4));
    const sent: NewMessage[] = [];
    for (let round = 0; round < 60; round++) {
      const batch = Array.from({ length: 1 + next(3) }, () => {
        const m = msg(rooms[next(rooms.length)] as string, `round ${round}`, 'alice', { cid: `c${counter}` });
        sent.push(m);
        return m;
      });
      // A whisper, and a resend of a message already stored: neither moves a room.
      if (round % 5 === 0)
        batch.push(msg(conversationKey('alice', 'bob'), 'psst', 'alice', { recipient: 'bob' }));
      // Stamped earlier than the room's newest (a clock set back): the room keeps its place.
      if (round % 4 === 3)
        batch.push(msg(rooms[next(rooms.length)] as string, 'late', 'alice', { ts: 1_600_000_000 }));
      if (round % 7 === 6) {
        const again = sent[next(sent.length - batch.length)] as NewMessage;
        batch.push(msg(again.room, again.text, again.sender, { cid: again.cid }));
      }
      await transcript.append(batch);
      expect(await listed(4)).toEqual(await stored(4));
      if (round === 30) expect(await listed(8)).toEqual(await stored(8));
    }
    expect(await listed(20)).toEqual(await stored(20));
  });

  it('a room list costs the same however many whisper conversations the database holds', async () => {
    const { database, transcript } = await open();
    await transcript.append([msg('ops', 'a'), msg('dev', 'b')]);
    // 300,000 whisper conversations: reading the list from them took 22 ms, every time.
    await database.client.execute(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000)
      INSERT INTO conversations (key, seq, ts) SELECT char(1) || 'alice' || char(1) || 'user' || i, 1, 1600000000 + i FROM n`);
    const list = () => transcript.rooms(501);
    expect((await list()).map((r) => r.key)).toEqual(['dev', 'ops']);
    await transcript.append([msg('ops', 'c')]);
    expect((await list()).map((r) => [r.key, r.seq])).toEqual([
      ['ops', 2],
      ['dev', 1],
    ]);
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      await list();
      times.push(performance.now() - started);
    }
    expect(Math.min(...times)).toBeLessThan(5);
  }, 30_000);

  it('read markers only move forward, and count unread whispers', async () => {
    const { transcript } = await open();
    const pair = conversationKey('alice', 'bob');
    await transcript.append([
      msg(pair, 'one', 'bob', { recipient: 'alice' }),
      msg(pair, 'two', 'bob', { recipient: 'alice' }),
      msg(pair, 'mine', 'alice', { recipient: 'bob' }),
      msg(pair, 'three', 'bob', { recipient: 'alice' }),
    ]);
    expect(await transcript.unreadWhispers('alice')).toBe(3);
    expect(await transcript.unreadWhispers('bob')).toBe(1);
    await transcript.saveMarkers([{ user: 'alice', conversation: pair, seq: 2 }]);
    await transcript.saveMarkers([{ user: 'alice', conversation: pair, seq: 1 }]);
    expect(await transcript.markers('alice')).toEqual(new Map([[pair, 2]]));
    expect(await transcript.unreadWhispers('alice')).toBe(1);
    expect(await transcript.markers('alice', ['ops'])).toEqual(new Map());
    // A welcome asks both at once: the marker of the room it opens (0 when none is stored).
    expect(await transcript.arrival('alice', pair)).toEqual({ read: 2, whispers: 1 });
    expect(await transcript.arrival('alice', 'ops')).toEqual({ read: 0, whispers: 1 });
    expect(await transcript.arrival('bob', 'ops')).toEqual({ read: 0, whispers: 1 });
    expect(await transcript.arrival('carol', 'ops')).toEqual({ read: 0, whispers: 0 });
  });

  it('once it knows who has read markers or whispers and which rooms hold messages, answers a welcome for anyone else, and a new room, without reading the store', async () => {
    const earlier = await open();
    const pair = conversationKey('alice', 'bob');
    await earlier.transcript.append([msg(pair, 'one', 'bob', { recipient: 'alice' })]);
    await earlier.transcript.saveMarkers([{ user: 'erin', conversation: 'ops', seq: 3 }]);
    await earlier.transcript.append([msg('ops', 'first'), msg('ops', 'second')]);

    // The next start learns them from the file, and the writes it makes itself after that.
    const { database, transcript } = await open();
    await transcript.knowNames();
    await transcript.append([msg(conversationKey('carol', 'dave'), 'hi', 'carol', { recipient: 'dave' })]);
    await transcript.saveMarkers([{ user: 'frank', conversation: 'ops', seq: 2 }]);
    expect(await transcript.arrival('alice', pair)).toEqual({ read: 0, whispers: 1 });
    expect(await transcript.arrival('erin', 'ops')).toEqual({ read: 3, whispers: 0 });
    expect(await transcript.arrival('dave', 'ops')).toEqual({ read: 0, whispers: 1 });
    expect(await transcript.arrival('frank', 'ops')).toEqual({ read: 2, whispers: 0 });
    expect(await transcript.markers('frank', ['ops'])).toEqual(new Map([['ops', 2]]));
    await transcript.append([msg('ops-log', 'made after the start')]);
    expect(await transcript.lastSeq('ops')).toBe(2);
    expect(await transcript.lastSeq('ops-log')).toBe(1);

    // With the store unreadable, someone who has neither is still answered, from memory alone.
    const unreadable = async (): Promise<never> => {
      throw new Error('the store is unreadable');
    };
    Object.assign(database.read, { one: unreadable, query: unreadable });
    expect(await transcript.arrival('zoe', 'ops')).toEqual({ read: 0, whispers: 0 });
    expect(await transcript.unreadWhispers('zoe')).toBe(0);
    expect(await transcript.markers('zoe', ['ops'])).toEqual(new Map());
    // A room that was never written opens at 0, read from nowhere.
    expect(await transcript.lastSeq('new-room')).toBe(0);
    // The Hub asks without waiting where the answer is known, and only then.
    expect(transcript.arrivalKnown('zoe', 'ops')).toEqual({ read: 0, whispers: 0 });
    expect(transcript.lastSeqKnown('new-room')).toBe(0);
    for (const user of ['alice', 'dave', 'erin', 'frank'])
      expect(transcript.arrivalKnown(user, 'ops')).toBeUndefined();
    expect(transcript.lastSeqKnown('ops')).toBeUndefined();
    expect(transcript.lastSeqKnown('ops-log')).toBeUndefined();
    await expect(transcript.lastSeq('ops-log')).rejects.toThrow();
    await expect(transcript.arrival('alice', pair)).rejects.toThrow();
    await expect(transcript.arrival('frank', 'ops')).rejects.toThrow();
  });

  it('learns who has read markers past its first page of names', async () => {
    const earlier = await open();
    const users = Array.from({ length: 10_001 }, (_, i) => `reader-${String(i).padStart(5, '0')}`);
    await earlier.transcript.saveMarkers(users.map((user) => ({ user, conversation: 'ops', seq: 7 })));
    const { transcript } = await open();
    await transcript.knowNames();
    expect(await transcript.arrival('reader-00000', 'ops')).toEqual({ read: 7, whispers: 0 });
    expect(await transcript.arrival('reader-10000', 'ops')).toEqual({ read: 7, whispers: 0 });
  });

  it('remembers names it has seen', async () => {
    const { transcript } = await open();
    expect(await transcript.knows('carol')).toBe(false);
    await transcript.remember(['carol', 'dave']);
    await transcript.remember(['carol']);
    expect(await transcript.knows('carol')).toBe(true);
    expect(await transcript.knows('dave')).toBe(true);
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

describe('an appender keeps the newest seqs of the conversations used most recently, and no more', () => {
  const rooms = Array.from({ length: 10 }, (_, i) => `once-${i}`);

  it('on the writer thread: ten rooms used once, three kept, and each goes on numbering after it was let go', async () => {
    const { database } = await open();
    const appender = new NativeAppender(dbPath, 3);
    appender.setPragmas();
    try {
      for (const room of rooms) appender.write([{ batch: [msg(room, 'hello')], retried: false }]);
      expect(appender.seqsKept).toBe(3);
      const [again] = appender.write([{ batch: rooms.map((room) => msg(room, 'again')), retried: false }]);
      expect(seqsOf(again as Appended[])).toEqual(rooms.map(() => 2));
      expect(appender.seqsKept).toBe(3);
      expect(await scalar(database, "SELECT count(*) FROM messages WHERE text = 'again' AND seq = 2")).toBe(
        10,
      );
    } finally {
      appender.close();
    }
  });

  it('on a client connection (a remote database): the same', async () => {
    const { database } = await open();
    const appender = new SqlAppender(database.client, 3);
    for (const room of rooms) await appender.append([msg(room, 'hello')]);
    expect(appender.seqsKept).toBe(3);
    expect(seqsOf(await appender.append(rooms.map((room) => msg(room, 'again'))))).toEqual(
      rooms.map(() => 2),
    );
    expect(appender.seqsKept).toBe(3);
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
    expect(await pending).toEqual([{ seq: 1 }]);
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

    // The failed batch took no seq: the room's numbering has no gap.
    expect(await transcript.append([msg('ops', 'after')])).toEqual([{ seq: 2 }]);
    expect((await transcript.recent('ops', 10)).map((m) => m.text)).toEqual(['before', 'after']);
  });

  it('a batch committed by a thread that died before answering gets its real seq from the new thread, stored once', async () => {
    const { transcript, lost } = await withCrashingWriter();
    expect(await transcript.append([msg('ops', 'before')])).toEqual([{ seq: 1 }]);
    expect(await transcript.append([msg('ops', 'crash after commit')])).toEqual([{ seq: 2 }]);
    expect(lost).toEqual(['the transcript writer stopped (exit code 4)']);
    const stored = await transcript.recent('ops', 10);
    expect(stored.map((m) => [m.text, m.seq])).toEqual([
      ['before', 1],
      ['crash after commit', 2],
    ]);
    expect(await transcript.append([msg('ops', 'next')])).toEqual([{ seq: 3 }]);
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
    expect(await reopened.transcript.lastSeq('ops')).toBe(20);
    expect(await reopened.transcript.lastSeq('dev')).toBe(20);
  });
});

describe('a database from version 0.4.0', () => {
  /** A database with only the 0.4.0 migrations applied, and messages in it as 0.4.0 stored them. */
  async function oldDatabase(path: string): Promise<void> {
    const folder = join(dir, 'migrations-0.4.0');
    await cp(new URL('../drizzle/', import.meta.url), folder, { recursive: true });
    const journalPath = join(folder, 'meta', '_journal.json');
    const journal = JSON.parse(await readFile(journalPath, 'utf8')) as { entries: Array<{ tag: string }> };
    journal.entries = journal.entries.filter((e) => e.tag === '0000_transcript' || e.tag === '0001_sessions');
    await writeFile(journalPath, JSON.stringify(journal));
    const client = createClient({ url: pathToFileURL(path).href });
    try {
      await migrate(drizzle(client), { migrationsFolder: folder });
      // 0.4.0 numbered all rooms together: ops got 1, 3, 4 and dev 2, 5.
      for (const [seq, room, text] of [
        [1, 'ops', 'o1'],
        [2, 'dev', 'd1'],
        [3, 'ops', 'o2'],
        [4, 'ops', 'o3'],
        [5, 'dev', 'd2'],
      ] as const) {
        await client.execute({
          sql: 'INSERT INTO messages (seq, id, room, sender, text, ts) VALUES (?, ?, ?, ?, ?, ?)',
          args: [seq, `${seq}`.padStart(32, '0'), room, 'alice', text, 1_700_000_000 + seq],
        });
      }
    } finally {
      client.close();
    }
  }

  it('is renumbered room by room in the same order when it is opened, and goes on from there', async () => {
    await oldDatabase(dbPath);
    writeOn = 'thread';
    const { transcript } = await open();
    expect((await transcript.recent('ops', 10)).map((m) => [m.text, m.seq])).toEqual([
      ['o1', 1],
      ['o2', 2],
      ['o3', 3],
    ]);
    expect((await transcript.recent('dev', 10)).map((m) => [m.text, m.seq])).toEqual([
      ['d1', 1],
      ['d2', 2],
    ]);
    expect(await transcript.lastSeq('ops')).toBe(3);
    expect(await transcript.append([msg('ops', 'o4'), msg('dev', 'd3')])).toEqual([{ seq: 4 }, { seq: 3 }]);
    expect((await transcript.rooms(10)).map((r) => r.key).sort()).toEqual(['dev', 'ops']);
  });
});
