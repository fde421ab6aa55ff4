// Full-text search: the FTS5 index follows the messages table (stored, deleted, never whispers), a
// database from before it is indexed when it is opened, nothing typed reaches FTS5 as syntax, and a
// real server answers the search frame and GET /api/rooms/:room/search.
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type Client, createClient } from '@libsql/client';
import { drizzle } from 'drizzle-orm/libsql';
import { migrate } from 'drizzle-orm/libsql/migrator';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { conversationKey, type NewMessage } from '../src/hub/transcript.ts';
import { ErrorCode, RefusalCode } from '../src/protocol/codes.ts';
import { searchTerms } from '../src/protocol/search.ts';
import { type Indexed, SqlAppender } from '../src/store/append.ts';
import { type Database, openDatabase } from '../src/store/db.ts';
import { ModerationStore } from '../src/store/moderation.ts';
import { SearchThread } from '../src/store/search-thread.ts';
import { openStore } from '../src/store/store.ts';
import { LibsqlTranscript } from '../src/store/transcript.ts';
import { WorkerAppender } from '../src/store/worker-appender.ts';
import { browserClient, type ConsoleClient, consoleClient, request } from './helpers/clients.ts';
import { startTestServer, type TestServer, tempDir } from './helpers/server.ts';
import { runCli } from './helpers/spawn.ts';
import { haveSshKeygen, keyConsole, makeKey, sign } from './helpers/ssh.ts';
import { SEARCH_THREAD, WRITER_THREAD } from './helpers/writer-thread.ts';

let dir: string;
const opened: Database[] = [];
const writers: WorkerAppender[] = [];

let counter = 0;
function msg(room: string, text: string, extra: Partial<NewMessage> = {}): NewMessage {
  counter += 1;
  return {
    id: counter.toString(16).padStart(32, '0'),
    room,
    sender: 'alice',
    text,
    ts: 1_700_000_000 + counter,
    via: 'console',
    ...extra,
  };
}

const texts = (found: Array<{ text: string }>): string[] => found.map((m) => m.text);

/**
 * `count` messages in `room`, numbered 1… and each text `words` and its number, stored as an earlier
 * run may leave them: not in the search index.
 */
async function storeUnindexed(client: Client, room: string, count: number, words: string): Promise<void> {
  await client.execute({
    sql: `WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ?1)
      INSERT INTO messages (id, room, seq, sender, text, ts, via)
      SELECT ?2 || '-' || i, ?2, i, 'alice', ?3 || ' ' || i, 1700000000 + i, 'console' FROM c`,
    args: [count, room, words],
  });
}

/** A client on a database file at `path` with the migrations before `tag` applied, as a release before it left it. */
async function databaseBefore(path: string, tag: string): Promise<Client> {
  const folder = join(dir, `migrations-before-${tag}`);
  await cp(new URL('../drizzle/', import.meta.url), folder, { recursive: true });
  const journalPath = join(folder, 'meta', '_journal.json');
  const journal = JSON.parse(await readFile(journalPath, 'utf8')) as { entries: Array<{ tag: string }> };
  journal.entries = journal.entries.filter((e) => e.tag < tag);
  await writeFile(journalPath, JSON.stringify(journal));
  const client = createClient({ url: pathToFileURL(path).href });
  await migrate(drizzle(client), { migrationsFolder: folder });
  return client;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'runspec-room-search-'));
});

afterEach(async () => {
  for (const writer of writers.splice(0)) await writer.close();
  for (const database of opened.splice(0)) database.close();
  await rm(dir, { recursive: true, force: true });
});

describe.each(['connection', 'thread'] as const)('search in the store, appending on the %s', (where) => {
  async function open(): Promise<{ database: Database; transcript: LibsqlTranscript }> {
    const database = await openDatabase(join(dir, 'room.db'));
    opened.push(database);
    if (where === 'connection') return { database, transcript: new LibsqlTranscript(database) };
    const writer = await WorkerAppender.start(database.url, { script: WRITER_THREAD });
    writers.push(writer);
    return { database, transcript: new LibsqlTranscript(database, writer) };
  }
  const find = (t: LibsqlTranscript, room: string, q: string, before?: number, limit = 20) =>
    t.search(room, searchTerms(q), before, limit);

  it('finds a room’s messages holding every word, newest first, and pages with before', async () => {
    const { transcript } = await open();
    await transcript.append([
      msg('ops', 'the deploy starts at noon'),
      msg('dev', 'deploy in dev too'),
      msg('ops', 'lunch first'),
      msg('ops', 'Deploy finished, all green'),
      msg('ops', 'the deploy broke staging'),
    ]);
    expect(texts(await find(transcript, 'ops', 'deploy'))).toEqual([
      'the deploy broke staging',
      'Deploy finished, all green',
      'the deploy starts at noon',
    ]);
    expect(texts(await find(transcript, 'ops', 'the deploy'))).toEqual([
      'the deploy broke staging',
      'the deploy starts at noon',
    ]);
    expect((await find(transcript, 'ops', 'deploy', undefined, 1)).map((m) => m.seq)).toEqual([4]);
    expect((await find(transcript, 'ops', 'deploy', 4)).map((m) => m.seq)).toEqual([3, 1]);
    expect(texts(await find(transcript, 'ops', '"all green"'))).toEqual(['Deploy finished, all green']);
    expect(texts(await find(transcript, 'ops', '"green all"'))).toEqual([]);
    expect(texts(await find(transcript, 'ops', 'stag*'))).toEqual(['the deploy broke staging']);
    expect(texts(await find(transcript, 'ops', 'stag'))).toEqual([]);
    expect(texts(await find(transcript, 'dev', 'deploy'))).toEqual(['deploy in dev too']);
  });

  it('ignores case and accents', async () => {
    const { transcript } = await open();
    await transcript.append([msg('ops', 'Café au lait for the ÉQUIPE')]);
    expect(await find(transcript, 'ops', 'cafe equipe')).toHaveLength(1);
    expect(await find(transcript, 'ops', 'CAFÉ')).toHaveLength(1);
  });

  it('never finds a whisper, whatever the room asked for', async () => {
    const { transcript } = await open();
    const pair = conversationKey('alice', 'bob');
    await transcript.append([
      msg(pair, 'the secret password', { recipient: 'bob' }),
      msg('ops', 'no secret here'),
    ]);
    expect(texts(await find(transcript, 'ops', 'secret'))).toEqual(['no secret here']);
    expect(await find(transcript, pair, 'secret')).toEqual([]);
    expect(await find(transcript, 'ops', 'password')).toEqual([]);
  });

  it('stops finding a message once an admin deleted it', async () => {
    const { database, transcript } = await open();
    const kept = msg('ops', 'rotate the api key today');
    const gone = msg('ops', 'the api key is hunter2');
    await transcript.append([kept, gone]);
    expect(await find(transcript, 'ops', 'hunter2')).toHaveLength(1);
    const moderation = new ModerationStore(database);
    const entry = { ts: 1, actor: 'ada', via: 'console' as const, action: 'delete' };
    expect(await moderation.tombstone('ops', gone.id, 1_800_000_000, entry)).toEqual({
      seq: 2,
      already: false,
    });
    expect(await find(transcript, 'ops', 'hunter2')).toEqual([]);
    expect(texts(await find(transcript, 'ops', 'api key'))).toEqual(['rotate the api key today']);
    // Deleting it again changes nothing, and leaves the index as it was.
    expect(await moderation.tombstone('ops', gone.id, 1_800_000_001, entry)).toEqual({
      seq: 2,
      already: true,
    });
    expect(texts(await find(transcript, 'ops', 'key'))).toEqual(['rotate the api key today']);
    // The index is consistent in itself (rank 0: not compared with messages, which holds rows it leaves out).
    await expect(
      database.client.execute("INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 0)"),
    ).resolves.toBeDefined();
  });

  it('takes what people type as words, never as FTS5 syntax', async () => {
    const { transcript } = await open();
    await transcript.append([
      msg('ops', 'NEAR the OR gate, text: "quoted" AND stuff'),
      msg('ops', 'plain words'),
    ]);
    for (const q of [
      'NEAR(gate text)',
      'text:quoted',
      '"unbalanced',
      'gate OR plain',
      'stuff NOT',
      '- gate',
      '^gate',
      'gate)',
      '{text}: gate',
      "gate'; DROP TABLE messages; --",
      '*gate',
      'ga**',
      'gate\u0000',
      '"ga\u0000te"',
    ])
      await expect(find(transcript, 'ops', q), q).resolves.toBeInstanceOf(Array);
    expect(texts(await find(transcript, 'ops', 'gate OR plain'))).toEqual([]);
    expect(texts(await find(transcript, 'ops', 'near or'))).toHaveLength(1);
    expect(texts(await find(transcript, 'ops', '"unbalanced'))).toEqual([]);
    expect(await find(transcript, 'ops', 'plain')).toHaveLength(1);
    // The index holds each message's room as a token ('r' and the hex of the name): words typed
    // never match it.
    expect(await find(transcript, 'ops', 'r6f7073')).toEqual([]);
    expect(await find(transcript, 'ops', 'r6f*')).toEqual([]);
  });

  it('finds only the room asked for, whatever its name shares with other rooms', async () => {
    const { transcript } = await open();
    const rooms = ['ops', 'Ops', 'ops-2', 'ops 2', 'team ops', 'it\'s "ops"', 'опс', '運用', '🚀'];
    await transcript.append(rooms.map((room) => msg(room, `deploy notes for ${room}`)));
    for (const room of rooms)
      expect(texts(await find(transcript, room, 'deploy')), room).toEqual([`deploy notes for ${room}`]);
  });
});

describe('search terms', () => {
  it('are words, "phrases" and prefix* words; punctuation alone is nothing to search for', () => {
    expect(searchTerms('deploy "all green" stag* "half open')).toEqual([
      { text: 'deploy', prefix: false },
      { text: 'all green', prefix: false },
      { text: 'stag', prefix: true },
      { text: 'half open', prefix: false },
    ]);
    expect(searchTerms('"a b"* -- *** "" ?!')).toEqual([{ text: 'a b', prefix: true }]);
    expect(searchTerms('  ')).toEqual([]);
    expect(searchTerms('dep\u0000loy "a\u0007b"')).toEqual([
      { text: 'dep', prefix: false },
      { text: 'loy', prefix: false },
      { text: 'a b', prefix: false },
    ]);
  });
});

describe('a database from before search', () => {
  it('has its messages indexed when it is opened, without whispers or deleted ones', async () => {
    const path = join(dir, 'old.db');
    const client = await databaseBefore(path, '0004');
    const rows: Array<[string, number, string, string | null, number | null]> = [
      ['ops', 1, 'an old deploy note', null, null],
      ['ops', 2, 'an old deploy secret', null, 1_700_000_100],
      [conversationKey('alice', 'bob'), 1, 'a whispered deploy', 'bob', null],
      ['dev', 1, 'deploy elsewhere', null, null],
    ];
    for (const [i, [room, seq, text, recipient, deleted]] of rows.entries())
      await client.execute({
        sql: 'INSERT INTO messages (id, room, seq, sender, text, ts, recipient, deleted) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
        args: [`old-${i}`, room, seq, 'alice', deleted ? '' : text, 1_700_000_000 + i, recipient, deleted],
      });
    client.close();

    const database = await openDatabase(path);
    opened.push(database);
    const transcript = new LibsqlTranscript(database);
    expect(texts(await transcript.search('ops', searchTerms('deploy'), undefined, 10))).toEqual([
      'an old deploy note',
    ]);
    expect(texts(await transcript.search('dev', searchTerms('deploy'), undefined, 10))).toEqual([
      'deploy elsewhere',
    ]);
    await transcript.append([msg('ops', 'a new deploy')]);
    expect(texts(await transcript.search('ops', searchTerms('deploy'), undefined, 10))).toEqual([
      'a new deploy',
      'an old deploy note',
    ]);
  });
});

describe('the index filled behind the commits', () => {
  const ftsRows = async (database: Database): Promise<number> =>
    Number((await database.client.execute('SELECT count(*) FROM messages_fts_docsize')).rows[0]?.[0]);
  const find = (t: LibsqlTranscript, q: string, before?: number, limit = 20) =>
    t.search('ops', searchTerms(q), before, limit);

  it('leaves a commit alone, fills the index within a moment, and a search sees every message stored before it', async () => {
    const database = await openDatabase(join(dir, 'behind.db'));
    opened.push(database);
    const writer = await WorkerAppender.start(database.url, { script: WRITER_THREAD });
    writers.push(writer);
    const transcript = new LibsqlTranscript(database, writer);
    await transcript.append([msg('ops', 'first deploy'), msg('ops', 'second deploy')]);
    // The commit itself did not touch the index: that is the point.
    expect(await ftsRows(database)).toBe(0);
    // The indexer's pass follows shortly without anyone asking.
    await expect.poll(() => ftsRows(database), { timeout: 5_000 }).toBe(2);
    await transcript.append([msg('ops', 'third deploy')]);
    expect(texts(await find(transcript, 'deploy'))).toEqual([
      'third deploy',
      'second deploy',
      'first deploy',
    ]);
  });

  it('catches up over many passes for a search, and skips whispers and messages deleted before their turn', async () => {
    const database = await openDatabase(join(dir, 'many.db'));
    opened.push(database);
    const transcript = new LibsqlTranscript(database);
    const batch = Array.from({ length: 2500 }, (_, i) => msg('ops', `note ${i} deploy`));
    await transcript.append(batch);
    const gone = msg('ops', 'deploy secret hunter2');
    await transcript.append([
      gone,
      msg(conversationKey('alice', 'bob'), 'whispered hunter2', { recipient: 'bob' }),
    ]);
    const moderation = new ModerationStore(database);
    const entry = { ts: 1, actor: 'ada', via: 'console' as const, action: 'delete' };
    await moderation.tombstone('ops', gone.id, 1_800_000_000, entry);
    expect(await find(transcript, 'hunter2')).toEqual([]);
    expect(await find(transcript, 'deploy', undefined, 100)).toHaveLength(100);
    expect(await ftsRows(database)).toBe(2500);
    // Deleting a message that is in the index takes it out; the index stays consistent in itself
    // (rank 0: not compared with messages, which holds the whispers and deleted rows it leaves out).
    await moderation.tombstone('ops', batch[0]?.id ?? '', 1_800_000_001, entry);
    expect(await find(transcript, '"note 0 deploy"')).toEqual([]);
    await expect(
      database.client.execute("INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 0)"),
    ).resolves.toBeDefined();
  });

  it('writes nothing for a search when nothing was stored since the index caught up', async () => {
    const database = await openDatabase(join(dir, 'quiet.db'));
    opened.push(database);
    let passes = 0;
    const counted = new (class extends SqlAppender {
      override index(limit: number): Promise<Indexed> {
        passes += 1;
        return super.index(limit);
      }
    })(database.client);
    const transcript = new LibsqlTranscript(database, counted);
    await transcript.append([msg('ops', 'one deploy')]);
    expect(texts(await find(transcript, 'deploy'))).toEqual(['one deploy']);
    const after = passes;
    expect(after).toBeGreaterThan(0);
    for (let i = 0; i < 5; i++) expect(await find(transcript, 'deploy')).toHaveLength(1);
    expect(passes).toBe(after);
    await transcript.append([msg('ops', 'two deploy')]);
    expect(await find(transcript, 'deploy')).toHaveLength(2);
    expect(passes).toBeGreaterThan(after);
  });

  it('finds a new message at once after retention emptied a long-used database', async () => {
    const database = await openDatabase(join(dir, 'emptied.db'));
    opened.push(database);
    const transcript = new LibsqlTranscript(database);
    for (let i = 0; i < 7; i++)
      await transcript.append(Array.from({ length: 3000 }, (_, k) => msg('ops', `old note ${i}.${k}`)));
    while ((await ftsRows(database)) < 21_000) await find(transcript, 'old');
    // Retention takes everything; message numbers are never used again, so the next is 21,001.
    while ((await transcript.prune(Date.now() / 1000 + 86_400, 5000)).deleted > 0);
    expect(await find(transcript, 'old')).toEqual([]);
    await transcript.append([msg('ops', 'the needle')]);
    expect(texts(await find(transcript, 'needle'))).toEqual(['the needle']);
  }, 30_000);

  it('indexes what a database holds unindexed as soon as it is opened, without a search or a message', async () => {
    const path = join(dir, 'backlog.db');
    const before = await openDatabase(path);
    await storeUnindexed(before.client, 'ops', 2500, 'left unindexed');
    before.close();
    const store = await openStore(path, { writer: { script: WRITER_THREAD, onLost: () => {} } });
    try {
      const database = await openDatabase(path);
      opened.push(database);
      await expect.poll(() => ftsRows(database), { timeout: 10_000 }).toBe(2500);
    } finally {
      await store.close();
    }
  });

  it('answers a search during a rebuild from what is indexed so far, and finds everything once it is done', async () => {
    const path = join(dir, 'rebuild.db');
    const before = await openDatabase(path);
    await storeUnindexed(before.client, 'ops', 50_000, 'note');
    before.close();
    const database = await openDatabase(path);
    opened.push(database);
    const transcript = new LibsqlTranscript(database);
    transcript.indexBacklog();
    // Answered after at most the pass under way: a catch-up would have indexed 20 passes first.
    await transcript.search('ops', searchTerms('note'), undefined, 1);
    expect(await ftsRows(database)).toBeLessThan(5000);
    await expect.poll(() => ftsRows(database), { timeout: 20_000 }).toBe(50_000);
    expect((await find(transcript, 'note', undefined, 1)).map((m) => m.seq)).toEqual([50_000]);
    // The rebuild done, a search catches up with what was stored since, as ever.
    await transcript.append([msg('ops', 'a fresh note')]);
    expect(texts(await find(transcript, 'note', undefined, 1))).toEqual(['a fresh note']);
  }, 30_000);

  it('keeps what the earlier index held when a database from before this change is opened', async () => {
    const path = join(dir, 'triggers.db');
    const client = await databaseBefore(path, '0005');
    await client.execute({
      sql: "INSERT INTO messages (id, room, seq, sender, text, ts) VALUES ('a1', 'ops', 1, 'alice', 'indexed by the old trigger', 1)",
      args: [],
    });
    client.close();
    const database = await openDatabase(path);
    opened.push(database);
    const transcript = new LibsqlTranscript(database);
    await transcript.append([msg('ops', 'indexed behind')]);
    expect(texts(await find(transcript, 'indexed'))).toEqual([
      'indexed behind',
      'indexed by the old trigger',
    ]);
    expect(await ftsRows(database)).toBe(2);
  });
});

describe('the index by room', () => {
  const ftsRows = async (database: Database): Promise<number> =>
    Number((await database.client.execute('SELECT count(*) FROM messages_fts_docsize')).rows[0]?.[0]);
  /** The fastest of five runs: what the search costs, without the machine's hiccups. */
  async function fastest(search: () => Promise<unknown>): Promise<number> {
    let best = Number.POSITIVE_INFINITY;
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      await search();
      best = Math.min(best, performance.now() - started);
    }
    return best;
  }

  it('answers in a quiet room at once however often other rooms hold the word, and a deep page as fast as the first', async () => {
    const database = await openDatabase(join(dir, 'busy.db'));
    opened.push(database);
    const transcript = new LibsqlTranscript(database);
    const busy = 200_000;
    await storeUnindexed(database.client, 'busy', busy, 'deploy number');
    await transcript.append([
      msg('ops', 'lunch at noon'),
      msg('ops', 'the deploy is done'),
      msg('ops', 'ok'),
    ]);
    while ((await ftsRows(database)) < busy + 3)
      await transcript.search('ops', searchTerms('x'), undefined, 1);
    const quiet = () => transcript.search('ops', searchTerms('deploy'), undefined, 20);
    expect(texts(await quiet())).toEqual(['the deploy is done']);
    const deep = () => transcript.search('busy', searchTerms('deploy'), 50, 20);
    expect((await deep()).map((m) => m.seq)).toEqual(Array.from({ length: 20 }, (_, i) => 49 - i));
    // Walking the busy room's 200,000 matches took 47–64 ms here; the room's own few take well under 1.
    expect(await fastest(quiet)).toBeLessThan(20);
    expect(await fastest(deep)).toBeLessThan(20);
  }, 60_000);

  it('rebuilds the index of a database from before it, behind the commits, room by room', async () => {
    const path = join(dir, 'by-room.db');
    const client = await databaseBefore(path, '0006');
    const rows: Array<[string, number, string, string | null]> = [
      ['ops', 1, 'deploy at noon', null],
      ['ops-2', 1, 'deploy in the other ops', null],
      [conversationKey('alice', 'bob'), 1, 'a whispered deploy', 'bob'],
      ['ops', 2, 'deploy done', null],
    ];
    for (const [i, [room, seq, text, recipient]] of rows.entries())
      await client.execute({
        sql: 'INSERT INTO messages (id, room, seq, sender, text, ts, recipient) VALUES (?, ?, ?, ?, ?, ?, ?)',
        args: [`old-${i}`, room, seq, 'alice', text, 1_700_000_000 + i, recipient],
      });
    // As the earlier indexer left it: everything in the index of words alone.
    await client.execute(
      'INSERT INTO messages_fts (rowid, text) SELECT n, text FROM messages WHERE recipient IS NULL',
    );
    await client.execute('UPDATE search_progress SET indexed = (SELECT max(n) FROM messages)');
    client.close();

    const database = await openDatabase(path);
    opened.push(database);
    const transcript = new LibsqlTranscript(database);
    expect(texts(await transcript.search('ops', searchTerms('deploy'), undefined, 10))).toEqual([
      'deploy done',
      'deploy at noon',
    ]);
    expect(texts(await transcript.search('ops-2', searchTerms('deploy'), undefined, 10))).toEqual([
      'deploy in the other ops',
    ]);
    expect(await ftsRows(database)).toBe(3);
    // A delete after the rebuild takes the message out of the new index.
    const moderation = new ModerationStore(database);
    const entry = { ts: 1, actor: 'ada', via: 'console' as const, action: 'delete' };
    await moderation.tombstone('ops', 'old-3', 1_800_000_000, entry);
    expect(texts(await transcript.search('ops', searchTerms('deploy'), undefined, 10))).toEqual([
      'deploy at noon',
    ]);
    // The index matches what it was built from, message for message (rank 1: compared with the view).
    await expect(
      database.client.execute("INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)"),
    ).resolves.toBeDefined();
  });
});

describe.skipIf(!haveSshKeygen)('search on a running server', () => {
  let temp: { dir: string; cleanup: () => Promise<void> };
  let server: TestServer;

  beforeAll(async () => {
    temp = await tempDir();
    const db = join(temp.dir, 'room.db');
    const key = await makeKey(temp.dir, 'ada');
    expect((await runCli(['keys', 'add', 'ada', key.pub, '--db', db])).code).toBe(0);
    server = await startTestServer(db, [], { CONSOLE_ROOM_ADMINS: 'ada' });
    const { client: ada } = await keyConsole(
      server.consolePort,
      { room: 'ops', user: 'ada', key: key.pub },
      (nonce) => sign(key.file, nonce),
    );
    await ada.waitFor((f) => f.type === 'joined');
    const bob = await consoleClient(server.consolePort, {
      type: 'hello',
      room: 'lobby',
      user: 'bob',
      protocol: 2,
    });
    await bob.waitFor((f) => f.type === 'joined');
    await request(ada, { type: 'message', text: 'the release ships friday' });
    const doomed = await request(ada, { type: 'message', text: 'release password is swordfish' });
    await request(ada, { type: 'whisper', to: 'bob', text: 'release whisper' });
    await request(ada, { type: 'message', text: 'release notes are up' });
    expect(await request(ada, { type: 'delete', room: 'ops', id: doomed.id })).toMatchObject({ type: 'ack' });
    ada.close();
    bob.close();
  }, 30_000);

  afterAll(async () => {
    await server?.stop();
    await temp?.cleanup();
  });

  it('answers a search frame from a connection in another room: matches newest first, not deleted ones or whispers', async () => {
    const carol = await browserClient(server.url, 'carol', 'lobby');
    await carol.waitFor((f) => f.type === 'joined');
    const answer = await request(carol, { type: 'search', room: 'ops', q: 'release' });
    expect(answer).toMatchObject({ type: 'search', room: 'ops', q: 'release', more: false });
    expect(texts(answer.messages as Array<{ text: string }>)).toEqual([
      'release notes are up',
      'the release ships friday',
    ]);
    expect(await request(carol, { type: 'search', room: 'ops', q: 'swordfish' })).toMatchObject({
      messages: [],
    });
    const paged = await request(carol, { type: 'search', room: 'ops', q: 'release', limit: 1 });
    expect(paged).toMatchObject({ more: true, messages: [{ text: 'release notes are up', seq: 3 }] });
    const older = await request(carol, { type: 'search', room: 'ops', q: 'release', before: 3 });
    expect(texts(older.messages as Array<{ text: string }>)).toEqual(['the release ships friday']);
    carol.close();
  });

  it('refuses a search with nothing to search for, or too long, with bad_frame', async () => {
    const carol = await consoleClient(server.consolePort, {
      type: 'hello',
      room: 'lobby',
      user: 'carol',
      protocol: 2,
    });
    await carol.waitFor((f) => f.type === 'joined');
    for (const q of ['', '  "" -- ', 'x'.repeat(201), 42])
      expect(await request(carol, { type: 'search', room: 'ops', q })).toMatchObject({
        type: 'error',
        code: ErrorCode.BadFrame,
      });
    expect(await request(carol, { type: 'search', room: 'ops', q: 'x', limit: 101 })).toMatchObject({
      code: ErrorCode.BadFrame,
    });
    carol.close();
  });

  it('answers GET /api/rooms/:room/search with the same messages, and 400 for an unusable q', async () => {
    const response = await fetch(new URL('/api/rooms/ops/search?q=release', server.url));
    expect(response.status).toBe(200);
    const body = (await response.json()) as {
      room: string;
      q: string;
      messages: Array<{ text: string }>;
      more: boolean;
    };
    expect(body).toMatchObject({ room: 'ops', q: 'release', more: false });
    expect(texts(body.messages)).toEqual(['release notes are up', 'the release ships friday']);
    const page = (await (
      await fetch(new URL('/api/rooms/ops/search?q=release&limit=1&before=3', server.url))
    ).json()) as typeof body;
    expect(texts(page.messages)).toEqual(['the release ships friday']);
    for (const query of ['q=', 'q=%22%22', 'q=release&limit=0', 'q=release&before=x', ''])
      expect(await (await fetch(new URL(`/api/rooms/ops/search?${query}`, server.url))).json()).toMatchObject(
        {
          error: { code: RefusalCode.BadQuery },
        },
      );
  });
});

describe('searches on a thread of their own', () => {
  let temp: { dir: string; cleanup: () => Promise<void> };
  let server: TestServer;
  // 400,000 messages whose words start with t and d: a `t*` search merges 800,000 matches, about a
  // tenth of a second here, while a message's commit takes a few milliseconds.
  const busy = 400_000;

  beforeAll(async () => {
    temp = await tempDir();
    const db = join(temp.dir, 'room.db');
    const database = await openDatabase(db);
    await storeUnindexed(database.client, 'busy', busy, 'the deploy took time');
    await database.client.batch(
      [
        "INSERT INTO messages_fts (rowid, text, room_key) SELECT n, text, 'r' || hex(room) FROM messages",
        'UPDATE search_progress SET indexed = (SELECT max(n) FROM messages)',
      ],
      'write',
    );
    database.close();
    server = await startTestServer(db, ['--metrics-port', '0']);
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
    await temp?.cleanup();
  });

  /** Searches refused as busy so far, by reason, as the metrics say. */
  const refused = async (reason: 'server' | 'person'): Promise<number> => {
    const text = await (await fetch(server.metricsUrl ?? '')).text();
    const line = new RegExp(`^runspec_room_searches_refused_total\\{reason="${reason}"\\} (\\d+)$`, 'mu');
    return Number(line.exec(text)?.[1] ?? 0);
  };

  const joined = async (user: string, room: string) => {
    const client = await consoleClient(server.consolePort, { type: 'hello', room, user, protocol: 2 });
    await client.waitFor((f) => f.type === 'joined');
    return client;
  };

  it('echoes a message sent while a long search runs before the search answers', async () => {
    const searcher = await joined('sam', 'lobby');
    const talker = await joined('tess', 'ops');
    // Once, so the thread is running and the index has nothing to catch up on.
    expect(await request(searcher, { type: 'search', room: 'busy', q: 'deploy', limit: 1 })).toMatchObject({
      type: 'search',
    });
    searcher.send({ type: 'search', room: 'ops', q: 't*', ref: 'long' });
    const order: string[] = [];
    const answered = searcher.waitFor((f) => f.ref === 'long', 10_000).then(() => order.push('search'));
    const echoed = request(talker, { type: 'message', text: 'still here' }).then(() => order.push('echo'));
    await Promise.all([answered, echoed]);
    expect(order).toEqual(['echo', 'search']);
    searcher.close();
    talker.close();
  }, 20_000);

  it('turns away a search past the eight waiting with busy, over the protocol and over HTTP, and answers the rest', async () => {
    // Five people, two searches each: as many as each may have.
    const before = await refused('server');
    const searchers = await Promise.all(Array.from({ length: 5 }, (_, i) => joined(`sid${i}`, 'lobby')));
    const by = (i: number) => searchers[i % 5] as ConsoleClient;
    for (let i = 0; i < 10; i++) by(i).send({ type: 'search', room: 'busy', q: 't*', ref: `s${i}` });
    const replies = await Promise.all(
      Array.from({ length: 10 }, (_, i) => by(i).waitFor((f) => f.ref === `s${i}`, 15_000)),
    );
    const busyReplies = replies.filter((f) => f.type === 'error');
    expect(busyReplies.length).toBeGreaterThanOrEqual(2);
    for (const f of busyReplies) expect(f).toMatchObject({ code: ErrorCode.Busy });
    for (const f of replies.filter((r) => r.type !== 'error'))
      expect(f).toMatchObject({ type: 'search', more: true, messages: expect.any(Array) });
    const responses = await Promise.all(
      Array.from({ length: 10 }, () => fetch(new URL('/api/rooms/busy/search?q=t*', server.url))),
    );
    const turnedAway = responses.filter((r) => r.status === 503);
    expect(turnedAway.length).toBeGreaterThanOrEqual(2);
    expect(await refused('server')).toBe(before + busyReplies.length + turnedAway.length);
    for (const r of turnedAway) {
      expect(r.headers.get('retry-after')).toBe('1');
      expect(await r.json()).toMatchObject({ error: { code: RefusalCode.Busy } });
    }
    for (const r of responses.filter((x) => x.status !== 503)) {
      expect(r.status).toBe(200);
      expect(((await r.json()) as { messages: unknown[] }).messages).toHaveLength(20);
    }
    // And once they are done, a search is answered again.
    const [searcher] = searchers as [ConsoleClient];
    expect(await request(searcher, { type: 'search', room: 'busy', q: 'deploy', limit: 1 })).toMatchObject({
      type: 'search',
    });
    for (const c of searchers) c.close();
  }, 30_000);

  it('runs two searches of one person at a time, on all their connections together, and answers a third busy', async () => {
    const before = await refused('person');
    const first = await joined('solo', 'lobby');
    const second = await joined('solo', 'ops');
    first.send({ type: 'search', room: 'busy', q: 't*', ref: 'a' });
    second.send({ type: 'search', room: 'busy', q: 't*', ref: 'b' });
    const third = await request(first, { type: 'search', room: 'busy', q: 'deploy', limit: 1 });
    expect(third).toMatchObject({ type: 'error', code: ErrorCode.Busy });
    expect(third.message).toMatch(/at most 2 searches of one person/);
    expect(await refused('person')).toBe(before + 1);
    expect(await first.waitFor((f) => f.ref === 'a', 10_000)).toMatchObject({ type: 'search' });
    expect(await second.waitFor((f) => f.ref === 'b', 10_000)).toMatchObject({ type: 'search' });
    // Once those are answered, they may search again.
    expect(await request(first, { type: 'search', room: 'busy', q: 'deploy', limit: 1 })).toMatchObject({
      type: 'search',
    });
    first.close();
    second.close();
  }, 20_000);
});

describe('the search thread', () => {
  it('fails the searches a dying thread held, and starts a new one for the next', async () => {
    const database = await openDatabase(join(dir, 'thread.db'));
    opened.push(database);
    // The real thread, which ends itself when asked for a read of 'CRASH'.
    const code = [
      "import { parentPort } from 'node:worker_threads';",
      "parentPort.on('message', (r) => { if (r.sql === 'CRASH') process.exit(3); });",
      `await import(${JSON.stringify(SEARCH_THREAD.href)});`,
    ].join('\n');
    const lost: Error[] = [];
    const thread = new SearchThread(database.url, {
      script: new URL(`data:text/javascript,${encodeURIComponent(code)}`),
      onLost: (error) => lost.push(error),
    });
    try {
      expect(await thread.query('SELECT 41 + 1', [])).toEqual([[42]]);
      const held = thread.query('SELECT 1', []);
      const crashing = thread.query('CRASH', []);
      const after = thread.query('SELECT 2', []);
      // The first was answered before the crash; the crash takes the one behind it.
      expect(await held).toEqual([[1]]);
      await expect(crashing).rejects.toThrow(/search thread stopped/);
      await expect(after).rejects.toThrow(/search thread stopped/);
      expect(lost.map((e) => e.message)).toEqual(['the search thread stopped (exit code 3)']);
      expect(await thread.query('SELECT 3', [])).toEqual([[3]]);
    } finally {
      await thread.close();
    }
  });

  it('fails each search while no thread can be made, and tries again for the next', async () => {
    const database = await openDatabase(join(dir, 'nothread.db'));
    opened.push(database);
    // Node refuses to make a thread of an http: URL at once, as it does when the process may make no more.
    const thread = new SearchThread(database.url, { script: new URL('http://127.0.0.1/none.js') });
    for (let i = 0; i < 12; i++)
      await expect(thread.query('SELECT 1', [])).rejects.toMatchObject({ code: 'ERR_INVALID_URL_SCHEME' });
    await thread.close();
  });
});
