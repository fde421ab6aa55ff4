// The server on PostgreSQL (`--db postgres://…`): the whole door suite against it, and what the store
// itself promises when several nodes share it (seqs without gaps, cid idempotency, durable settings).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NewMessage } from '../src/hub/transcript.ts';
import { openStore, type Store } from '../src/store/store.ts';
import { postgresBin, startPostgres, type TestPostgres } from '../support/engines.ts';
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
});
