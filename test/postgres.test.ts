// The server on PostgreSQL (`--db postgres://…`): the whole door suite against it, and what the store
// itself promises when several nodes share it (seqs without gaps, cid idempotency, durable settings).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { conversationKey, type NewMessage } from '../src/hub/transcript.ts';
import { noMetrics } from '../src/metrics/metrics.ts';
import { searchTerms } from '../src/protocol/search.ts';
import { openStore, type Store } from '../src/store/store.ts';
import { postgresBin, startPostgres, type TestPostgres } from '../support/engines.ts';
import { consoleClient, request } from './helpers/clients.ts';
import { describeDoors } from './helpers/door-suite.ts';
import { requireUnderCi } from './helpers/process.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

const bin = postgresBin();
requireUnderCi(
  'PostgreSQL',
  bin !== undefined,
  'initdb was not found under /usr/lib/postgresql (apt-get install postgresql)',
);

let pg: TestPostgres;
let server: TestServer;

beforeAll(async () => {
  if (!bin) return;
  pg = await startPostgres(bin);
  server = await startTestServer(await pg.database('doors'));
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await pg?.stop();
});

let ids = 0;
const message = (room: string, text: string, extra: Partial<NewMessage> = {}): NewMessage => ({
  id: `${Date.now().toString(16)}${String(++ids).padStart(16, '0')}`,
  room,
  sender: 'alice',
  text,
  ts: Date.now() / 1000,
  via: 'console',
  ...extra,
});

describe.runIf(bin)('PostgreSQL store', () => {
  describeDoors(() => server, 'pg');

  describe('shared by several nodes', () => {
    let a: Store;
    let b: Store;
    beforeAll(async () => {
      const url = await pg.database('shared');
      [a, b] = await Promise.all([openStore(url), openStore(url)]);
    });
    afterAll(async () => {
      await a?.close();
      await b?.close();
    });

    it('numbers a room 1, 2, 3… without a gap or a repeat when two nodes append at once', async () => {
      const appends: Promise<unknown>[] = [];
      for (let i = 0; i < 40; i++) {
        const store = i % 2 === 0 ? a : b;
        appends.push(store.transcript.append([message('busy', `m${i}a`), message('busy', `m${i}b`)]));
      }
      await Promise.all(appends);
      const stored = await a.transcript.after('busy', 0, 1000);
      expect(stored.map((m) => m.seq)).toEqual(Array.from({ length: 80 }, (_, i) => i + 1));
      expect(await b.transcript.lastSeq('busy')).toBe(80);
    });

    it("keeps a sender's messages in the order sent though two appends are in flight at once", async () => {
      const order: string[] = [];
      for (let i = 0; i < 60; i++) {
        const appends = [0, 1, 2].map((k) => a.transcript.append([message('sent-order', `${i}.${k}`)]));
        await Promise.all(appends);
        order.push(...[0, 1, 2].map((k) => `${i}.${k}`));
      }
      const stored = await a.transcript.after('sent-order', 0, 1000);
      expect(stored.map((m) => m.text)).toEqual(order);
    });

    it('stores a cid once, whichever node the resend reaches', async () => {
      const [first] = await a.transcript.append([message('cids', 'once', { cid: 'c-1' })]);
      const [again] = await b.transcript.append([message('cids', 'once', { cid: 'c-1' })]);
      expect(first).toEqual({ seq: 1 });
      expect(again).toMatchObject({ duplicate: { seq: 1, text: 'once', cid: 'c-1' } });
      expect(await a.transcript.lastSeq('cids')).toBe(1);
    });

    it('a key removed on one node is seen by the other through the revision', async () => {
      const before = await b.keys.revision();
      await a.keys.add(
        {
          fingerprint: 'SHA256:test',
          user: 'ada',
          algorithm: 'ssh-ed25519',
          publicKey: 'ssh-ed25519 AAAA',
          label: 'l',
          createdAt: 1,
          createdBy: 'host:test',
        },
        { ts: 1, actor: 'host:test', via: 'host', action: 'key_add' },
      );
      expect(await b.keys.revision()).toBeGreaterThan(before);
      expect(await b.keys.find('SHA256:test')).toMatchObject({ user: 'ada' });
    });
  });

  it('a server on it answers search frames and exports a room, as on the embedded store', async () => {
    const ada = await consoleClient(server.consolePort, {
      type: 'hello',
      room: 'pg-ops',
      user: 'ada',
      protocol: 2,
    });
    await ada.waitFor((f) => f.type === 'joined');
    for (const text of ['the release ships friday', 'lunch', 'release notes are up']) {
      ada.send({ type: 'message', text });
      await ada.waitFor((f) => f.type === 'message' && f.text === text);
    }
    const answer = await request(ada, { type: 'search', room: 'pg-ops', q: 'releas*', limit: 1 });
    expect(answer).toMatchObject({
      type: 'search',
      more: true,
      messages: [{ text: 'release notes are up', seq: 3 }],
    });
    const exported = await fetch(new URL('/api/rooms/pg-ops/export', server.url));
    expect(exported.status).toBe(200);
    const lines = (await exported.text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { seq: number; text: string });
    expect(lines.map((m) => [m.seq, m.text])).toEqual([
      [1, 'the release ships friday'],
      [2, 'lunch'],
      [3, 'release notes are up'],
    ]);
    ada.close();
  });

  it('answers a history page and a message held up by a lock as store_unavailable once the statement timeout passes, stores nothing, and serves both once the lock goes', async () => {
    // The shipped default (10 s): a read waiting on someone else's lock is cancelled, not left to
    // hold its turn of the history reads and a pool connection for as long as the lock is held.
    const url = await pg.database('held');
    const node = await startTestServer(url);
    const { default: postgres } = await import('postgres');
    const holder = postgres(url, { max: 1, onnotice: () => {} });
    try {
      const ada = await consoleClient(node.consolePort, {
        type: 'hello',
        room: 'held',
        user: 'ada',
        protocol: 2,
      });
      await ada.waitFor((f) => f.type === 'joined');
      ada.send({ type: 'message', text: 'before the lock' });
      await ada.waitFor((f) => f.type === 'message' && f.text === 'before the lock');

      let release = (): void => {};
      const released = new Promise<void>((resolve) => {
        release = resolve;
      });
      let locked = (): void => {};
      const isLocked = new Promise<void>((resolve) => {
        locked = resolve;
      });
      const holding = holder.begin(async (tx) => {
        await tx`LOCK TABLE messages IN ACCESS EXCLUSIVE MODE`;
        locked();
        await released;
      });
      await isLocked;
      const started = performance.now();
      const [refused, unsent] = await Promise.all([
        request(ada, { type: 'history', room: 'held', before: 2, limit: 10 }, 20_000),
        request(ada, { type: 'message', room: 'held', text: 'during the lock' }, 20_000),
      ]);
      const waited = performance.now() - started;
      expect(refused).toMatchObject({ type: 'error', code: 'store_unavailable' });
      // A commit cancelled the same way is refused, never acknowledged.
      expect(unsent).toMatchObject({ type: 'error', code: 'store_unavailable' });
      expect(waited).toBeGreaterThan(9_000);
      release();
      await holding;

      const page = await request(ada, { type: 'history', room: 'held', before: 3, limit: 10 });
      expect(page).toMatchObject({ type: 'history', messages: [{ seq: 1, text: 'before the lock' }] });
      const sent = await request(ada, { type: 'message', room: 'held', text: 'after the lock' });
      expect(sent).toMatchObject({ type: 'message', seq: 2, text: 'after the lock' });
      ada.close();
    } finally {
      await holder.end({ timeout: 1 });
      await node.stop();
    }
  }, 40_000);

  it('answers a welcome with the read marker and the unread whispers in one read, as the embedded store does', async () => {
    const store = await openStore(await pg.database('arrival'));
    try {
      const pair = conversationKey('alice', 'bob');
      await store.transcript.append([
        message(pair, 'one', { sender: 'bob', recipient: 'alice' }),
        message(pair, 'two', { sender: 'bob', recipient: 'alice' }),
        message(pair, 'mine', { recipient: 'bob' }),
        message(pair, 'three', { sender: 'bob', recipient: 'alice' }),
      ]);
      await store.transcript.saveMarkers([{ user: 'alice', conversation: pair, seq: 2 }]);
      expect(await store.transcript.arrival('alice', pair)).toEqual({ read: 2, whispers: 1 });
      expect(await store.transcript.arrival('alice', 'ops')).toEqual({ read: 0, whispers: 1 });
      expect(await store.transcript.arrival('bob', 'ops')).toEqual({ read: 0, whispers: 1 });
      expect(await store.transcript.arrival('carol', 'ops')).toEqual({ read: 0, whispers: 0 });
      // The count alone, as a welcome asks it when the marker is known already.
      expect(await store.transcript.unreadWhispers('alice')).toBe(1);
      expect(await store.transcript.unreadWhispers('carol')).toBe(0);
    } finally {
      await store.close();
    }
  });

  it('counts the database errors of reads and writes, as the embedded store does', async () => {
    const errors: string[] = [];
    const store = await openStore(await pg.database('errors'), {
      metrics: { ...noMetrics, databaseError: (operation) => errors.push(operation) },
    });
    await store.close();
    await expect(store.transcript.lastSeq('ops')).rejects.toThrow();
    await expect(store.transcript.recent('ops', 10)).rejects.toThrow();
    await expect(
      store.transcript.saveMarkers([{ user: 'ada', conversation: 'ops', seq: 1 }]),
    ).rejects.toThrow();
    expect(errors).toEqual(['read', 'read', 'write']);
  });

  describe('search and retention', () => {
    let store: Store;
    beforeAll(async () => {
      store = await openStore(await pg.database('search'));
    });
    afterAll(async () => {
      await store?.close();
    });
    const find = (room: string, q: string, before?: number, limit = 20) =>
      store.transcript.search(room, searchTerms(q), before, limit).then((found) => found.map((m) => m.text));

    it('finds a room’s messages holding every word, newest first, pages with before, phrases and prefixes', async () => {
      await store.transcript.append([
        message('ops', 'the deploy starts at noon'),
        message('dev', 'deploy in dev too'),
        message('ops', 'lunch first'),
        message('ops', 'Deploy finished, all green'),
        message('ops', 'the deploy broke staging'),
      ]);
      expect(await find('ops', 'deploy')).toEqual([
        'the deploy broke staging',
        'Deploy finished, all green',
        'the deploy starts at noon',
      ]);
      expect(await find('ops', 'the deploy')).toEqual([
        'the deploy broke staging',
        'the deploy starts at noon',
      ]);
      expect(await find('ops', 'deploy', undefined, 1)).toEqual(['the deploy broke staging']);
      expect(await find('ops', 'deploy', 4)).toEqual([
        'Deploy finished, all green',
        'the deploy starts at noon',
      ]);
      expect(await find('ops', '"all green"')).toEqual(['Deploy finished, all green']);
      expect(await find('ops', '"green all"')).toEqual([]);
      expect(await find('ops', 'stag*')).toEqual(['the deploy broke staging']);
      expect(await find('ops', 'stag')).toEqual([]);
      expect(await find('dev', 'deploy')).toEqual(['deploy in dev too']);
    });

    it('ignores case and accents', async () => {
      await store.transcript.append([message('accents', 'Café au lait for the ÉQUIPE')]);
      expect(await find('accents', 'cafe equipe')).toHaveLength(1);
      expect(await find('accents', 'CAFÉ')).toHaveLength(1);
    });

    it('never finds a whisper, nor a message an admin deleted', async () => {
      const pair = conversationKey('alice', 'bob');
      const gone = message('hidden', 'the api key is hunter2');
      await store.transcript.append([
        message(pair, 'the secret hunter2', { recipient: 'bob' }),
        message('hidden', 'rotate the api key today'),
        gone,
      ]);
      expect(await find('hidden', 'hunter2')).toEqual(['the api key is hunter2']);
      expect(await find(pair, 'secret')).toEqual([]);
      const entry = { ts: 1, actor: 'ada', via: 'console' as const, action: 'delete' };
      await store.moderation.tombstone('hidden', gone.id, Date.now() / 1000, entry);
      expect(await find('hidden', 'hunter2')).toEqual([]);
      expect(await find('hidden', 'api key')).toEqual(['rotate the api key today']);
    });

    it('takes what people type as words, never as tsquery syntax', async () => {
      await store.transcript.append([
        message('syntax', "NEAR the OR gate, text: 'quoted' & stuff <-> !x"),
        message('syntax', 'plain words'),
      ]);
      for (const q of [
        "gate'",
        'gate & plain',
        'gate | plain',
        '!gate',
        '<->',
        'text:*',
        "'quoted'*",
        'a\\*',
        ':* gate*',
      ])
        await expect(find('syntax', q), q).resolves.toBeInstanceOf(Array);
      expect(await find('syntax', 'gate | plain')).toEqual([]);
      expect(await find('syntax', 'quot*')).toHaveLength(1);
      expect(await find('syntax', "gate'")).toHaveLength(1);
    });

    it('retention deletes what is older than its horizon and leaves the rest, seqs included', async () => {
      const old = Date.now() / 1000 - 86_400 * 10;
      await store.transcript.append([
        message('kept', 'old one', { ts: old }),
        message('kept', 'old two', { ts: old + 1 }),
        message('kept', 'new one'),
      ]);
      const horizon = Date.now() / 1000 - 86_400;
      expect((await store.transcript.prune(horizon, 256)).deleted).toBe(2);
      expect((await store.transcript.prune(horizon, 256)).deleted).toBe(0);
      expect((await store.transcript.after('kept', 0, 10)).map((m) => m.text)).toEqual(['new one']);
      expect(await store.transcript.lastSeq('kept')).toBe(3);
    });
  });
});
