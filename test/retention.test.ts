// Retention: messages and whispers older than CONSOLE_ROOM_RETENTION are deleted in small batches,
// conversations keep their newest seq and read markers stay; a resume from before the horizon says
// complete: false.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { conversationKey, type NewMessage } from '../src/hub/transcript.ts';
import { silentLog } from '../src/log.ts';
import { noMetrics } from '../src/metrics/metrics.ts';
import { searchTerms } from '../src/protocol/search.ts';
import { type Database, openDatabase } from '../src/store/db.ts';
import { Retention } from '../src/store/retention.ts';
import { LibsqlTranscript } from '../src/store/transcript.ts';
import { WorkerAppender } from '../src/store/worker-appender.ts';
import { consoleClient, type Frame } from './helpers/clients.ts';
import { startTestServer } from './helpers/server.ts';
import { WRITER_THREAD } from './helpers/writer-thread.ts';

const DAY = 86_400;
const now = Date.now() / 1000;

let dir: string;
const opened: Database[] = [];
const writers: WorkerAppender[] = [];

let counter = 0;
function msg(room: string, text: string, ageDays: number, extra: Partial<NewMessage> = {}): NewMessage {
  counter += 1;
  return {
    id: counter.toString(16).padStart(32, '0'),
    room,
    sender: 'alice',
    text,
    ts: now - ageDays * DAY + counter / 1000,
    via: 'console',
    ...extra,
  };
}

const pair = conversationKey('alice', 'bob');

/** Three old and two new messages in ops, an old and a new whisper, and read markers. */
async function seed(transcript: LibsqlTranscript): Promise<void> {
  await transcript.append([
    msg('ops', 'old one', 100),
    msg('ops', 'old two', 90),
    msg(pair, 'old whisper', 80, { recipient: 'bob' }),
    msg('ops', 'old three', 40),
    msg('ops', 'new four', 10),
    msg(pair, 'new whisper', 5, { recipient: 'bob' }),
    msg('ops', 'new five', 1),
  ]);
  await transcript.saveMarkers([
    { user: 'alice', conversation: 'ops', seq: 2 },
    { user: 'bob', conversation: pair, seq: 1 },
  ]);
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'runspec-room-retention-'));
});

afterEach(async () => {
  for (const writer of writers.splice(0)) await writer.close();
  for (const database of opened.splice(0)) database.close();
  await rm(dir, { recursive: true, force: true });
});

describe.each(['connection', 'thread'] as const)('retention in the store, writing on the %s', (where) => {
  async function open(): Promise<LibsqlTranscript> {
    const database = await openDatabase(join(dir, 'room.db'));
    opened.push(database);
    if (where === 'connection') return new LibsqlTranscript(database);
    const writer = await WorkerAppender.start(database.url, { script: WRITER_THREAD });
    writers.push(writer);
    return new LibsqlTranscript(database, writer);
  }

  it('deletes messages and whispers older than the horizon; seqs go on, read markers stay', async () => {
    const transcript = await open();
    await seed(transcript);
    const pruned = await transcript.prune(now - 30 * DAY, 256);
    expect(pruned.deleted).toBe(4);
    expect(pruned.ms).toBeGreaterThan(0);
    expect((await transcript.after('ops', 0, 10)).map((m) => [m.seq, m.text])).toEqual([
      [4, 'new four'],
      [5, 'new five'],
    ]);
    expect((await transcript.after(pair, 0, 10)).map((m) => [m.seq, m.text])).toEqual([[2, 'new whisper']]);
    expect(await transcript.lastSeq('ops')).toBe(5);
    expect(await transcript.markers('alice')).toEqual(new Map([['ops', 2]]));
    expect(await transcript.markers('bob')).toEqual(new Map([[pair, 1]]));
    expect(await transcript.search('ops', searchTerms('old'), undefined, 10)).toEqual([]);
    expect(await transcript.append([msg('ops', 'six', 0)])).toEqual([{ seq: 6 }]);
    expect((await transcript.prune(now - 30 * DAY, 256)).deleted).toBe(0);
  });

  it('takes at most a batch per transaction, oldest first', async () => {
    const transcript = await open();
    await seed(transcript);
    expect((await transcript.prune(now - 30 * DAY, 2)).deleted).toBe(2);
    expect((await transcript.after('ops', 0, 10)).map((m) => m.text)).toEqual([
      'old three',
      'new four',
      'new five',
    ]);
    // The next two stored are the old whisper and the last old message.
    expect((await transcript.prune(now - 30 * DAY, 2)).deleted).toBe(2);
    expect((await transcript.prune(now - 30 * DAY, 2)).deleted).toBe(0);
    expect((await transcript.after('ops', 0, 10)).map((m) => m.text)).toEqual(['new four', 'new five']);
  });

  it('a pass runs batches until nothing is older, and says how many went', async () => {
    const transcript = await open();
    await seed(transcript);
    const batches: number[] = [];
    const retention = new Retention({
      store: transcript,
      keepSeconds: 30 * DAY,
      log: silentLog,
      metrics: { ...noMetrics, pruned: (n) => batches.push(n) },
      batch: 3,
      pauseMs: 0,
    });
    expect(await retention.run()).toBe(4);
    expect(batches).toEqual([3, 1]);
    await retention.stop();
  });
});

describe('retention on a running server', () => {
  it('deletes what is older than CONSOLE_ROOM_RETENTION at start, and a resume from before it says complete false', async () => {
    const path = join(dir, 'room.db');
    {
      const database = await openDatabase(path);
      await seed(new LibsqlTranscript(database));
      database.close();
    }
    const server = await startTestServer(path, [], { CONSOLE_ROOM_RETENTION: '30d' });
    try {
      let texts: string[] = [];
      for (let i = 0; i < 200; i++) {
        const page = (await (await fetch(new URL('/api/rooms/ops/messages', server.url))).json()) as {
          messages: Array<{ text: string }>;
        };
        texts = page.messages.map((m) => m.text);
        if (texts.length === 2) break;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      expect(texts).toEqual(['new four', 'new five']);

      const resume = async (since: number): Promise<Frame[]> => {
        const client = await consoleClient(server.consolePort, {
          type: 'hello',
          room: 'ops',
          user: `carol${since}`,
          protocol: 2,
          since,
        });
        await client.waitFor((f) => f.type === 'joined');
        client.close();
        return client.frames;
      };
      const behind = await resume(1);
      expect(behind.find((f) => f.type === 'welcome')).toMatchObject({ seq: 5, complete: false });
      expect(behind.filter((f) => f.type === 'message').map((f) => f.seq)).toEqual([4, 5]);
      expect(behind.find((f) => f.type === 'joined')).toMatchObject({ seq: 5, complete: false });
      const current = await resume(3);
      expect(current.find((f) => f.type === 'welcome')).toMatchObject({ seq: 5, complete: true });
      expect(current.filter((f) => f.type === 'message').map((f) => f.seq)).toEqual([4, 5]);
    } finally {
      await server.stop();
    }
    const database = await openDatabase(path);
    opened.push(database);
    const transcript = new LibsqlTranscript(database);
    expect((await transcript.after(pair, 0, 10)).map((m) => m.text)).toEqual(['new whisper']);
    expect(await transcript.markers('alice')).toEqual(new Map([['ops', 2]]));
  });
});
