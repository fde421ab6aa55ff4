// Sessions on a real libSQL file: lifetimes, revocation, and what is (not) stored.
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Database, openDatabase } from '../src/store/db.ts';
import { hashToken, SessionStore } from '../src/store/sessions.ts';
import { tempDir } from './helpers/server.ts';

let database: Database;
let cleanup: () => Promise<void>;
let now = 1_000_000;
const clock = () => now;
const alice = { issuer: 'https://idp.example', subject: 'sub-1', name: 'alice' };

beforeEach(async () => {
  const tmp = await tempDir();
  cleanup = tmp.cleanup;
  database = await openDatabase(join(tmp.dir, 'room.db'));
  now = 1_000_000;
});

afterEach(async () => {
  database.close();
  await cleanup();
});

const store = (idleSeconds = 600, maxSeconds = 3600) =>
  new SessionStore(database, { idleSeconds, maxSeconds }, clock);

describe('sessions', () => {
  it('finds a session by its token and stores only the token hash', async () => {
    const sessions = store();
    const { token, session } = await sessions.create(alice, 'id-token');
    expect(session.id).toBe(await hashToken(token));
    expect((await sessions.find(token))?.user).toEqual(alice);
    const rows = await database.client.execute('SELECT token_hash FROM sessions');
    expect(rows.rows.map((r) => r.token_hash)).toEqual([session.id]);
    expect(JSON.stringify(rows.rows)).not.toContain(token);
  });

  it('ends a session left unused for the idle time, but not one in use', async () => {
    const sessions = store(600, 3600);
    const used = await sessions.create(alice, undefined);
    const idle = await sessions.create(alice, undefined);
    for (let i = 0; i < 5; i++) {
      now += 300;
      expect(await sessions.find(used.token)).toBeDefined();
    }
    expect(await sessions.find(idle.token)).toBeUndefined();
  });

  it('ends every session at its absolute lifetime, used or not', async () => {
    const sessions = store(600, 1000);
    const { token } = await sessions.create(alice, undefined);
    for (let i = 0; i < 3; i++) {
      now += 300;
      expect(await sessions.find(token)).toBeDefined();
    }
    now += 101;
    expect(await sessions.find(token)).toBeUndefined();
  });

  it('an open socket keeps a session from idling out', async () => {
    const sessions = store(600, 3600);
    const { session } = await sessions.create(alice, undefined);
    now += 500;
    await sessions.touch([session.id]);
    now += 500;
    expect(await sessions.alive([session.id])).toEqual(new Set([session.id]));
  });

  it('a deleted session is gone at once and hands back its ID token for the provider logout', async () => {
    const sessions = store();
    const { token, session } = await sessions.create(alice, 'the-id-token');
    expect(await sessions.delete(session.id)).toEqual({ idToken: 'the-id-token' });
    expect(await sessions.find(token)).toBeUndefined();
    expect(await sessions.alive([session.id])).toEqual(new Set());
  });

  it('keys people by issuer and subject, never by name: a renamed user keeps one identity', async () => {
    const sessions = store();
    await sessions.create(alice, undefined);
    await sessions.create({ ...alice, name: 'alice.renamed' }, undefined);
    await sessions.create({ ...alice, issuer: 'https://other.example' }, undefined);
    const users = await database.client.execute('SELECT issuer, subject, name FROM users ORDER BY id');
    expect(users.rows.map((r) => [r.issuer, r.subject, r.name])).toEqual([
      ['https://idp.example', 'sub-1', 'alice.renamed'],
      ['https://other.example', 'sub-1', 'alice'],
    ]);
  });

  it('sweeps expired sessions out of the database', async () => {
    const sessions = store(600, 3600);
    await sessions.create(alice, undefined);
    const kept = await sessions.create(alice, undefined);
    now += 601;
    await sessions.touch([kept.session.id]);
    expect(await sessions.sweep()).toBe(1);
    expect(await sessions.alive([kept.session.id])).toEqual(new Set([kept.session.id]));
  });
});
