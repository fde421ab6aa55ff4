// Sign-in sessions, console keys, bans, mutes, tombstones and the audit trail in PostgreSQL: the same
// promises as the libSQL stores (../sessions.ts, ../keys.ts, ../moderation.ts), each write with its
// audit line in one transaction.

import type postgres from 'postgres';
import type { AuditEntry } from '../../hub/admin.ts';
import type { Restriction, RestrictionKind } from '../../hub/restrictions.ts';
import { type ConsoleKey, type EnrolRefusal, KEYS_PER_USER } from '../keys.ts';
import type { AuditRecord, ModerationRecords } from '../moderation.ts';
import {
  hashToken,
  randomToken,
  type Session,
  type SessionLifetimes,
  type Sessions,
  type SessionUser,
  TOUCH_AFTER_SECONDS,
} from '../sessions.ts';
import type { Sql } from './db.ts';

type Row = Record<string, unknown>;
type Tx = postgres.TransactionSql;

/** Sessions in the sessions and users tables. */
export class PgSessionStore implements Sessions {
  readonly #sql: Sql;
  readonly #lifetimes: SessionLifetimes;
  readonly #now: () => number;

  constructor(
    sql: Sql,
    lifetimes: SessionLifetimes,
    now: () => number = () => Math.floor(Date.now() / 1000),
  ) {
    this.#sql = sql;
    this.#lifetimes = lifetimes;
    this.#now = now;
  }

  async create(user: SessionUser, idToken: string | undefined): Promise<{ token: string; session: Session }> {
    const now = this.#now();
    const token = randomToken();
    const id = await hashToken(token);
    const expiresAt = now + this.#lifetimes.maxSeconds;
    await this.#sql.begin(async (tx) => {
      const [row] = await tx`INSERT INTO users (issuer, subject, name, last_login_at)
        VALUES (${user.issuer}, ${user.subject}, ${user.name}, ${now})
        ON CONFLICT (issuer, subject) DO UPDATE SET name = excluded.name, last_login_at = excluded.last_login_at
        RETURNING id`;
      if (!row) throw new Error('user row was not written');
      await tx`INSERT INTO sessions (token_hash, user_id, id_token, created_at, last_seen_at, expires_at)
        VALUES (${id}, ${row.id as number}, ${idToken ?? null}, ${now}, ${now}, ${expiresAt})`;
    });
    return { token, session: { id, user, idToken: idToken ?? null, expiresAt } };
  }

  async find(token: string): Promise<Session | undefined> {
    const id = await hashToken(token);
    const now = this.#now();
    const [row] = await this.#sql`SELECT s.last_seen_at, s.expires_at, s.id_token, u.issuer, u.subject, u.name
      FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ${id}`;
    if (!row) return undefined;
    const times = { lastSeenAt: Number(row.last_seen_at), expiresAt: Number(row.expires_at) };
    if (!this.#valid(times, now)) return undefined;
    if (now - times.lastSeenAt >= TOUCH_AFTER_SECONDS) await this.touch([id]);
    return {
      id,
      user: { issuer: String(row.issuer), subject: String(row.subject), name: String(row.name) },
      idToken: row.id_token === null ? null : String(row.id_token),
      expiresAt: times.expiresAt,
    };
  }

  async alive(ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const now = this.#now();
    const rows = await this.#sql`SELECT token_hash, last_seen_at, expires_at FROM sessions
      WHERE token_hash = ANY(${[...ids]}::text[])`;
    return new Set(
      rows
        .filter((r) =>
          this.#valid({ lastSeenAt: Number(r.last_seen_at), expiresAt: Number(r.expires_at) }, now),
        )
        .map((r) => String(r.token_hash)),
    );
  }

  async touch(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await this
      .#sql`UPDATE sessions SET last_seen_at = ${this.#now()} WHERE token_hash = ANY(${[...ids]}::text[])`;
  }

  async delete(id: string): Promise<{ idToken: string | null } | undefined> {
    const [row] = await this.#sql`DELETE FROM sessions WHERE token_hash = ${id} RETURNING id_token`;
    return row ? { idToken: row.id_token === null ? null : String(row.id_token) } : undefined;
  }

  async sweep(): Promise<number> {
    const now = this.#now();
    const gone = await this.#sql`DELETE FROM sessions WHERE expires_at < ${now + 1}
      OR last_seen_at < ${now - this.#lifetimes.idleSeconds} RETURNING token_hash`;
    return gone.length;
  }

  #valid(row: { lastSeenAt: number; expiresAt: number }, now: number): boolean {
    return row.expiresAt > now && row.lastSeenAt + this.#lifetimes.idleSeconds > now;
  }
}

const toKey = (r: Row): ConsoleKey => ({
  fingerprint: String(r.fingerprint),
  user: String(r.user),
  algorithm: String(r.algorithm),
  publicKey: String(r.public_key),
  label: String(r.label),
  createdAt: Number(r.created_at),
  createdBy: String(r.created_by),
});

async function audit(tx: Tx, e: AuditEntry): Promise<void> {
  await tx`INSERT INTO audit (ts, actor, via, action, room, "user", message, fingerprint, until, reason)
    VALUES (${e.ts}, ${e.actor}, ${e.via}, ${e.action}, ${e.room ?? null}, ${e.user ?? null}, ${e.message ?? null},
            ${e.fingerprint ?? null}, ${e.until ?? null}, ${e.reason ?? null})`;
}

/** The console_keys table; its trigger moves key_changes.revision for every node to notice. */
export class PgKeyStore {
  readonly #sql: Sql;

  constructor(sql: Sql) {
    this.#sql = sql;
  }

  async add(key: ConsoleKey, entry: AuditEntry): Promise<EnrolRefusal | undefined> {
    try {
      return await this.#sql.begin(async (tx) => {
        // One enrolment per name at a time, so the count below holds until commit.
        await tx`SELECT pg_advisory_xact_lock(hashtext(${key.user}))`;
        const [owner] = await tx`SELECT "user" FROM console_keys WHERE fingerprint = ${key.fingerprint}`;
        if (owner) return { taken: String(owner.user) };
        const [count] = await tx`SELECT count(*) AS n FROM console_keys WHERE "user" = ${key.user}`;
        if (Number(count?.n ?? 0) >= KEYS_PER_USER) return { full: true } as const;
        await tx`INSERT INTO console_keys (fingerprint, "user", algorithm, public_key, label, created_at, created_by)
          VALUES (${key.fingerprint}, ${key.user}, ${key.algorithm}, ${key.publicKey}, ${key.label}, ${key.createdAt}, ${key.createdBy})`;
        await audit(tx, entry);
        return undefined;
      });
    } catch (error) {
      const now = await this.find(key.fingerprint);
      if (now) return { taken: now.user };
      throw error;
    }
  }

  remove(fingerprint: string, entry: AuditEntry): Promise<ConsoleKey | undefined> {
    return this.#sql.begin(async (tx) => {
      const [row] = await tx`DELETE FROM console_keys WHERE fingerprint = ${fingerprint} RETURNING *`;
      if (!row) return undefined;
      await audit(tx, { ...entry, fingerprint });
      return toKey(row);
    });
  }

  async find(fingerprint: string): Promise<ConsoleKey | undefined> {
    const [row] = await this.#sql`SELECT * FROM console_keys WHERE fingerprint = ${fingerprint}`;
    return row ? toKey(row) : undefined;
  }

  async list(user?: string): Promise<ConsoleKey[]> {
    const rows =
      user === undefined
        ? await this.#sql`SELECT * FROM console_keys ORDER BY "user", created_at`
        : await this.#sql`SELECT * FROM console_keys WHERE "user" = ${user} ORDER BY created_at`;
    return rows.map(toKey);
  }

  async owners(): Promise<Map<string, string>> {
    const rows = await this.#sql`SELECT fingerprint, "user" FROM console_keys`;
    return new Map(rows.map((r) => [String(r.fingerprint), String(r.user)]));
  }

  async revision(): Promise<number> {
    const [row] = await this.#sql`SELECT revision FROM key_changes WHERE id = 1`;
    return Number(row?.revision ?? 0);
  }
}

/** Bans, mutes, tombstones and the audit trail. */
export class PgModerationStore implements ModerationRecords {
  readonly #sql: Sql;

  constructor(sql: Sql) {
    this.#sql = sql;
  }

  async restrictions(now = Date.now() / 1000): Promise<Restriction[]> {
    await this.#sql`DELETE FROM restrictions WHERE until IS NOT NULL AND until <= ${now}`;
    const rows = await this.#sql`SELECT kind, room, "user", until, by, at, reason FROM restrictions`;
    return rows.map((r) => ({
      kind: String(r.kind) as RestrictionKind,
      room: String(r.room),
      user: String(r.user),
      until: r.until === null ? undefined : Number(r.until),
      by: String(r.by),
      at: Number(r.at),
      reason: r.reason === null ? undefined : String(r.reason),
    }));
  }

  async restrict(r: Restriction, entry: AuditEntry): Promise<void> {
    await this.#sql.begin(async (tx) => {
      await tx`INSERT INTO restrictions (kind, room, "user", until, by, at, reason)
        VALUES (${r.kind}, ${r.room}, ${r.user}, ${r.until ?? null}, ${r.by}, ${r.at}, ${r.reason ?? null})
        ON CONFLICT (kind, room, "user") DO UPDATE SET until = excluded.until, by = excluded.by, at = excluded.at, reason = excluded.reason`;
      await audit(tx, entry);
    });
  }

  lift(kind: RestrictionKind, room: string, user: string, entry: AuditEntry): Promise<boolean> {
    return this.#sql.begin(async (tx) => {
      const gone =
        await tx`DELETE FROM restrictions WHERE kind = ${kind} AND room = ${room} AND "user" = ${user} RETURNING kind`;
      if (gone.length > 0) await audit(tx, entry);
      return gone.length > 0;
    });
  }

  tombstone(
    room: string,
    id: string,
    at: number,
    entry: AuditEntry,
  ): Promise<{ seq: number; already: boolean } | undefined> {
    return this.#sql.begin(async (tx) => {
      const [row] =
        await tx`SELECT seq, deleted FROM messages WHERE room = ${room} AND id = ${id} FOR UPDATE`;
      if (!row) return undefined;
      await tx`UPDATE messages SET text = '', deleted = ${at} WHERE room = ${room} AND id = ${id} AND deleted IS NULL`;
      await audit(tx, entry);
      return { seq: Number(row.seq), already: row.deleted !== null };
    });
  }

  async audit(entry: AuditEntry): Promise<void> {
    await this.#sql.begin((tx) => audit(tx, entry));
  }

  async auditTrail(options: { limit: number; after?: number | undefined }): Promise<AuditRecord[]> {
    const rows =
      options.after === undefined
        ? (await this.#sql`SELECT * FROM audit ORDER BY n DESC LIMIT ${options.limit}`).reverse()
        : await this.#sql`SELECT * FROM audit WHERE n > ${options.after} ORDER BY n LIMIT ${options.limit}`;
    return rows.map((r) => {
      const record: AuditRecord = {
        n: Number(r.n),
        ts: Number(r.ts),
        actor: String(r.actor),
        via: String(r.via) as AuditEntry['via'],
        action: String(r.action),
      };
      for (const name of ['room', 'user', 'message', 'fingerprint', 'reason'] as const)
        if (r[name] !== null && r[name] !== undefined) record[name] = String(r[name]);
      if (r.until !== null && r.until !== undefined) record.until = Number(r.until);
      return record;
    });
  }
}
