// Browser sessions in the database: created at sign-in, ended by logout, idle time or age.
import { eq, inArray, lt, or } from 'drizzle-orm';
import type { Database } from './db.ts';
import { sessions, users } from './schema.ts';

/** Who a session belongs to. */
export interface SessionUser {
  issuer: string;
  subject: string;
  name: string;
}

/** A live session. `id` is the token's hash: safe to log and to key registries by. */
export interface Session {
  id: string;
  user: SessionUser;
  idToken: string | null;
  expiresAt: number;
}

/** Lifetimes, in seconds. */
export interface SessionLifetimes {
  idleSeconds: number;
  maxSeconds: number;
}

/** Use older than this is written back; more frequent use is not worth a write. */
export const TOUCH_AFTER_SECONDS = 60;

const encoder = new TextEncoder();

/** SHA-256 of a session token, hex. */
export async function hashToken(token: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', encoder.encode(token)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** A new session token: 32 random bytes, base64url. */
export function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes))
    .replaceAll('+', '-')
    .replaceAll('/', '_')
    .replace(/=+$/u, '');
}

/** What sign-in needs of a session store, on either database. */
export interface Sessions {
  /** Start a session for a signed-in user; returns the token for the cookie (never stored). */
  create(user: SessionUser, idToken: string | undefined): Promise<{ token: string; session: Session }>;
  /** The live session for a cookie token, or undefined; counts as use of the session. */
  find(token: string): Promise<Session | undefined>;
  /** Of the given session ids, those still live. */
  alive(ids: readonly string[]): Promise<Set<string>>;
  /** Record use (an open socket counts). */
  touch(ids: readonly string[]): Promise<void>;
  /** End a session (logout). Returns it as it was, for the provider's logout. */
  delete(id: string): Promise<{ idToken: string | null } | undefined>;
  /** Remove sessions that can no longer be used. Returns how many. */
  sweep(): Promise<number>;
}

/** Sessions backed by the sessions and users tables. */
export class SessionStore implements Sessions {
  readonly #database: Database;
  readonly #lifetimes: SessionLifetimes;
  readonly #now: () => number;

  constructor(
    database: Database,
    lifetimes: SessionLifetimes,
    now: () => number = () => Math.floor(Date.now() / 1000),
  ) {
    this.#database = database;
    this.#lifetimes = lifetimes;
    this.#now = now;
  }

  /** Start a session for a signed-in user; returns the token for the cookie (never stored). */
  async create(user: SessionUser, idToken: string | undefined): Promise<{ token: string; session: Session }> {
    const { db } = this.#database;
    const now = this.#now();
    const [row] = await db
      .insert(users)
      .values({ issuer: user.issuer, subject: user.subject, name: user.name, lastLoginAt: now })
      .onConflictDoUpdate({
        target: [users.issuer, users.subject],
        set: { name: user.name, lastLoginAt: now },
      })
      .returning({ id: users.id });
    if (!row) throw new Error('user row was not written');
    const token = randomToken();
    const id = await hashToken(token);
    const expiresAt = now + this.#lifetimes.maxSeconds;
    await db.insert(sessions).values({
      tokenHash: id,
      userId: row.id,
      idToken: idToken ?? null,
      createdAt: now,
      lastSeenAt: now,
      expiresAt,
    });
    return { token, session: { id, user, idToken: idToken ?? null, expiresAt } };
  }

  /** The live session for a cookie token, or undefined; counts as use of the session. */
  async find(token: string): Promise<Session | undefined> {
    const id = await hashToken(token);
    const now = this.#now();
    const [row] = await this.#database.db
      .select({
        lastSeenAt: sessions.lastSeenAt,
        expiresAt: sessions.expiresAt,
        idToken: sessions.idToken,
        issuer: users.issuer,
        subject: users.subject,
        name: users.name,
      })
      .from(sessions)
      .innerJoin(users, eq(users.id, sessions.userId))
      .where(eq(sessions.tokenHash, id));
    if (!row || !this.#valid(row, now)) return undefined;
    if (now - row.lastSeenAt >= TOUCH_AFTER_SECONDS) await this.touch([id]);
    return {
      id,
      user: { issuer: row.issuer, subject: row.subject, name: row.name },
      idToken: row.idToken,
      expiresAt: row.expiresAt,
    };
  }

  /** Of the given session ids, those still live. */
  async alive(ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const now = this.#now();
    const rows = await this.#database.db
      .select({ id: sessions.tokenHash, lastSeenAt: sessions.lastSeenAt, expiresAt: sessions.expiresAt })
      .from(sessions)
      .where(inArray(sessions.tokenHash, [...ids]));
    return new Set(rows.filter((r) => this.#valid(r, now)).map((r) => r.id));
  }

  /** Record use (an open socket counts) so the idle limit does not end a session in use. */
  async touch(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.#database.db
      .update(sessions)
      .set({ lastSeenAt: this.#now() })
      .where(inArray(sessions.tokenHash, [...ids]));
  }

  /** End a session (logout). Returns it as it was, for the provider's logout. */
  async delete(id: string): Promise<{ idToken: string | null } | undefined> {
    const [row] = await this.#database.db
      .delete(sessions)
      .where(eq(sessions.tokenHash, id))
      .returning({ idToken: sessions.idToken });
    return row;
  }

  /** Remove sessions that can no longer be used. Returns how many. */
  async sweep(): Promise<number> {
    const now = this.#now();
    const gone = await this.#database.db
      .delete(sessions)
      .where(or(lt(sessions.expiresAt, now + 1), lt(sessions.lastSeenAt, now - this.#lifetimes.idleSeconds)))
      .returning({ id: sessions.tokenHash });
    return gone.length;
  }

  #valid(row: { lastSeenAt: number; expiresAt: number }, now: number): boolean {
    return row.expiresAt > now && row.lastSeenAt + this.#lifetimes.idleSeconds > now;
  }
}
