// A property test over both doors: random joins, leaves, messages, resends with a cid, disconnects and
// resumes; every client must see each room as the transcript has it, with no gap and no duplicate.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../src/store/db.ts';
import { browserClient, consoleClient, type Frame, type TestClient } from './helpers/clients.ts';
import { startTestServer, type TestServer, tempDir } from './helpers/server.ts';

let server: TestServer;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  const tmp = await tempDir();
  cleanup = tmp.cleanup;
  server = await startTestServer(`${tmp.dir}/room.db`);
});

afterAll(async () => {
  await server.stop();
  await cleanup();
});

type Action =
  | { kind: 'join'; client: number; room: number }
  | { kind: 'leave'; client: number; room: number }
  | { kind: 'message'; client: number; room: number }
  | { kind: 'resend'; client: number; pick: number }
  | { kind: 'reconnect'; client: number };

const CLIENTS = 4;
const ROOMS = 3;

const action: fc.Arbitrary<Action> = fc.oneof(
  fc.record({ kind: fc.constant('join' as const), client: fc.nat(CLIENTS - 1), room: fc.nat(ROOMS - 1) }),
  fc.record({ kind: fc.constant('leave' as const), client: fc.nat(CLIENTS - 1), room: fc.nat(ROOMS - 1) }),
  fc.record({ kind: fc.constant('message' as const), client: fc.nat(CLIENTS - 1), room: fc.nat(ROOMS - 1) }),
  fc.record({ kind: fc.constant('message' as const), client: fc.nat(CLIENTS - 1), room: fc.nat(ROOMS - 1) }),
  fc.record({ kind: fc.constant('resend' as const), client: fc.nat(CLIENTS - 1), pick: fc.nat(50) }),
  fc.record({ kind: fc.constant('reconnect' as const), client: fc.nat(CLIENTS - 1) }),
);

let run = 0;
let refs = 0;

/** One simulated client: a console or a browser that resumes every room it is in with `since`. */
class Client {
  readonly user: string;
  readonly browser: boolean;
  readonly rooms = new Set<string>();
  /** Every seq received per room, over every connection, in arrival order. */
  readonly seen = new Map<string, number[]>();
  readonly ids = new Map<string, Map<number, string>>();
  /** Messages sent with a cid: room, cid and the seq they were stored at. */
  readonly sent: Array<{ room: string; cid: string; text: string; seq: number; id: string }> = [];
  /** Refs of resends: their answer repeats a seq already seen, by design. */
  readonly resendRefs = new Set<string>();
  conn: TestClient | undefined;
  #read = 0;

  constructor(user: string, browser: boolean) {
    this.user = user;
    this.browser = browser;
  }

  last(room: string): number {
    return this.seen.get(room)?.at(-1) ?? 0;
  }

  /** Take in what arrived since last time. */
  absorb(): void {
    const frames = this.conn?.frames ?? [];
    for (; this.#read < frames.length; this.#read++) {
      const f = frames[this.#read] as Frame;
      if (f.type !== 'message' || (typeof f.ref === 'string' && this.resendRefs.has(f.ref))) continue;
      const room = String(f.room);
      const list = this.seen.get(room) ?? [];
      list.push(Number(f.seq));
      this.seen.set(room, list);
      const ids = this.ids.get(room) ?? new Map<number, string>();
      ids.set(Number(f.seq), String(f.id));
      this.ids.set(room, ids);
    }
  }

  async request(frame: Record<string, unknown>, resend = false): Promise<Frame> {
    const ref = `p${++refs}`;
    if (resend) this.resendRefs.add(ref);
    this.conn?.send({ ...frame, ref });
    const reply = await (this.conn as TestClient).waitFor((f) => f.ref === ref, 5000);
    this.absorb();
    return reply;
  }

  /** Open a connection for the first room, then join the others, each resuming where it stopped. */
  async connect(first: string): Promise<void> {
    this.#read = 0;
    this.rooms.add(first);
    const since = this.seen.has(first) ? this.last(first) : undefined;
    if (this.browser) this.conn = await browserClient(server.url, this.user, first, since);
    else
      this.conn = await consoleClient(server.consolePort, {
        type: 'hello',
        room: first,
        user: this.user,
        protocol: 2,
        ...(since === undefined ? {} : { since }),
      });
    await this.conn.waitFor((f) => f.type === 'joined' && f.room === first, 5000);
    this.absorb();
    for (const room of this.rooms) {
      if (room === first) continue;
      await this.request({ type: 'join', room, ...(this.seen.has(room) ? { since: this.last(room) } : {}) });
    }
  }

  async close(): Promise<void> {
    const conn = this.conn;
    this.conn = undefined;
    conn?.close();
    await conn?.closed;
  }
}

describe('protocol 2, at random', () => {
  it('every client sees each room in the transcript’s order, with no gap and no duplicate, across resumes and resends', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(action, { minLength: 10, maxLength: 40 }), async (actions) => {
        run += 1;
        const room = (n: number): string => `prop-${run}-${n}`;
        const clients = Array.from({ length: CLIENTS }, (_, i) => new Client(`u${run}-${i}`, i % 2 === 1));
        for (const [i, c] of clients.entries()) await c.connect(room(i % ROOMS));
        // Someone else keeps talking in every room, so joins and resumes race with broadcasts.
        const chatter = await consoleClient(server.consolePort, {
          type: 'hello',
          room: room(0),
          user: `chatter-${run}`,
          protocol: 2,
        });
        await chatter.waitFor((f) => f.type === 'joined');
        for (let n = 1; n < ROOMS; n++) chatter.send({ type: 'join', room: room(n) });
        let texts = 0;
        try {
          for (const [step, a] of actions.entries()) {
            const c = clients[a.client] as Client;
            // A few messages into the room the action is about, in flight while it is carried out.
            const busy = room('room' in a ? a.room : step % ROOMS);
            for (let k = 0; k < 3; k++)
              chatter.send({ type: 'message', room: busy, text: `chatter ${step}.${k}` });
            if (a.kind === 'join') {
              const name = room(a.room);
              const since = c.seen.has(name) ? { since: c.last(name) } : {};
              const reply = await c.request({ type: 'join', room: name, ...since });
              expect(reply.type).toBe('joined');
              c.rooms.add(name);
            } else if (a.kind === 'leave') {
              const name = room(a.room);
              if (!c.rooms.has(name) || c.rooms.size === 1) continue;
              expect((await c.request({ type: 'leave', room: name })).type).toBe('left');
              c.rooms.delete(name);
            } else if (a.kind === 'message') {
              const name = room(a.room);
              if (!c.rooms.has(name)) continue;
              const text = `t${++texts}`;
              const cid = `${c.user}-${texts}`;
              const echo = await c.request({ type: 'message', room: name, text, cid });
              expect(echo).toMatchObject({ type: 'message', room: name, text, cid });
              c.sent.push({ room: name, cid, text, seq: Number(echo.seq), id: String(echo.id) });
            } else if (a.kind === 'resend') {
              const sent = c.sent[a.pick % Math.max(1, c.sent.length)];
              if (!sent || !c.rooms.has(sent.room)) continue;
              const echo = await c.request(
                { type: 'message', room: sent.room, text: sent.text, cid: sent.cid },
                true,
              );
              expect(echo).toMatchObject({ id: sent.id, seq: sent.seq, cid: sent.cid });
            } else {
              const first = [...c.rooms][0] as string;
              await c.close();
              await c.connect(first);
            }
          }
          // Everyone catches up: a barrier in each room each client is in.
          for (const c of clients) for (const name of c.rooms) await c.request({ type: 'who', room: name });
          for (const c of clients)
            for (const name of c.rooms)
              await c.request({ type: 'message', room: name, text: `end ${c.user}` });
          for (const c of clients) for (const name of c.rooms) await c.request({ type: 'who', room: name });
        } finally {
          chatter.close();
          for (const c of clients) await c.close();
        }

        const database = await openDatabase(server.dbPath);
        try {
          for (const c of clients) {
            for (const [name, seqs] of c.seen) {
              // No duplicate, no gap: each room's numbers, as received, go up by one.
              for (let i = 1; i < seqs.length; i++)
                expect(seqs[i], `${c.user} in ${name}`).toBe((seqs[i - 1] as number) + 1);
              const stored = await database.client.execute({
                sql: 'SELECT seq, id FROM messages WHERE room = ? ORDER BY seq',
                args: [name],
              });
              const byId = new Map(stored.rows.map((r) => [Number(r[0]), String(r[1])]));
              // The transcript's order: the same message under each number, for everyone.
              for (const [seq, id] of c.ids.get(name) ?? []) expect(byId.get(seq)).toBe(id);
            }
            // A resend is never stored twice.
            const cids = await database.client.execute({
              sql: 'SELECT cid, count(*) FROM messages WHERE sender = ? AND cid IS NOT NULL GROUP BY cid HAVING count(*) > 1',
              args: [c.user],
            });
            expect(cids.rows).toEqual([]);
          }
        } finally {
          database.close();
        }
      }),
      { numRuns: 15 },
    );
  }, 120_000);
});
