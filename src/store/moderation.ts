// Admin actions in the database: bans and mutes, message tombstones, and the audit trail that every
// action writes in the same transaction as its effect.
import type { InStatement, InValue } from '@libsql/client';
import type { AdminStore, AuditEntry } from '../hub/admin.ts';
import type { Restriction, RestrictionKind } from '../hub/restrictions.ts';
import type { Database } from './db.ts';

const AUDIT_COLUMNS = 'ts, actor, via, action, room, user, message, fingerprint, until, reason';

const auditArgs = (e: AuditEntry): InValue[] => [
  e.ts,
  e.actor,
  e.via,
  e.action,
  e.room ?? null,
  e.user ?? null,
  e.message ?? null,
  e.fingerprint ?? null,
  e.until ?? null,
  e.reason ?? null,
];

/** The INSERT of an audit line; with `when`, only if that SQL condition holds (in the same transaction). */
export function auditStatement(entry: AuditEntry, when?: string, whenArgs: InValue[] = []): InStatement {
  const args = auditArgs(entry);
  const values = args.map(() => '?').join(', ');
  return {
    sql: when
      ? `INSERT INTO audit (${AUDIT_COLUMNS}) SELECT ${values} WHERE ${when}`
      : `INSERT INTO audit (${AUDIT_COLUMNS}) VALUES (${values})`,
    args: [...args, ...whenArgs],
  };
}

/** An audit line as stored, with its number. */
export interface AuditRecord extends AuditEntry {
  n: number;
}

/** What the server and `runspec-room audit` need of moderation, on either database. */
export interface ModerationRecords extends AdminStore {
  /** The newest `limit` audit lines, or the first `limit` after line `after`; oldest first. */
  auditTrail(options: { limit: number; after?: number | undefined }): Promise<AuditRecord[]>;
}

/** Bans, mutes, tombstones and the audit trail. */
export class ModerationStore implements ModerationRecords {
  readonly #database: Database;

  constructor(database: Database) {
    this.#database = database;
  }

  /** The bans and mutes in force; those that have ended are removed. */
  async restrictions(now = Date.now() / 1000): Promise<Restriction[]> {
    const { client } = this.#database;
    await client.execute({
      sql: 'DELETE FROM restrictions WHERE until IS NOT NULL AND until <= ?',
      args: [now],
    });
    const rows = await this.#database.read.query(
      'SELECT kind, room, user, until, by, at, reason FROM restrictions',
      [],
    );
    return rows.map((r) => ({
      kind: String(r[0]) as RestrictionKind,
      room: String(r[1]),
      user: String(r[2]),
      until: r[3] === null ? undefined : Number(r[3]),
      by: String(r[4]),
      at: Number(r[5]),
      reason: r[6] === null ? undefined : String(r[6]),
    }));
  }

  async restrict(r: Restriction, entry: AuditEntry): Promise<void> {
    await this.#database.client.batch(
      [
        {
          sql: `INSERT INTO restrictions (kind, room, user, until, by, at, reason) VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (kind, room, user) DO UPDATE SET until = excluded.until, by = excluded.by, at = excluded.at, reason = excluded.reason`,
          args: [r.kind, r.room, r.user, r.until ?? null, r.by, r.at, r.reason ?? null],
        },
        auditStatement(entry),
      ],
      'write',
    );
  }

  async lift(kind: RestrictionKind, room: string, user: string, entry: AuditEntry): Promise<boolean> {
    const [deleted] = await this.#database.client.batch(
      [
        {
          sql: 'DELETE FROM restrictions WHERE kind = ? AND room = ? AND user = ?',
          args: [kind, room, user],
        },
        auditStatement(entry, 'changes() > 0'),
      ],
      'write',
    );
    return (deleted?.rowsAffected ?? 0) > 0;
  }

  async tombstone(
    room: string,
    id: string,
    at: number,
    entry: AuditEntry,
  ): Promise<{ seq: number; already: boolean } | undefined> {
    const [found] = await this.#database.client.batch(
      [
        { sql: 'SELECT seq, deleted FROM messages WHERE room = ? AND id = ?', args: [room, id] },
        {
          sql: "UPDATE messages SET text = '', deleted = ? WHERE room = ? AND id = ? AND deleted IS NULL",
          args: [at, room, id],
        },
        auditStatement(entry, 'EXISTS (SELECT 1 FROM messages WHERE room = ? AND id = ?)', [room, id]),
      ],
      'write',
    );
    const row = found?.rows[0];
    if (!row) return undefined;
    return { seq: Number(row[0]), already: row[1] !== null };
  }

  async audit(entry: AuditEntry): Promise<void> {
    await this.#database.client.execute(auditStatement(entry));
  }

  /** The newest `limit` audit lines, or the first `limit` after line `after`; oldest first. */
  async auditTrail(options: { limit: number; after?: number | undefined }): Promise<AuditRecord[]> {
    const rows =
      options.after === undefined
        ? (
            await this.#database.read.query(`SELECT n, ${AUDIT_COLUMNS} FROM audit ORDER BY n DESC LIMIT ?`, [
              options.limit,
            ])
          ).reverse()
        : await this.#database.read.query(
            `SELECT n, ${AUDIT_COLUMNS} FROM audit WHERE n > ? ORDER BY n LIMIT ?`,
            [options.after, options.limit],
          );
    return rows.map((r) => {
      const record: AuditRecord = {
        n: Number(r[0]),
        ts: Number(r[1]),
        actor: String(r[2]),
        via: String(r[3]) as AuditEntry['via'],
        action: String(r[4]),
      };
      const optional = ['room', 'user', 'message', 'fingerprint', 'until', 'reason'] as const;
      optional.forEach((name, i) => {
        const value = r[5 + i];
        if (value === null || value === undefined) return;
        if (name === 'until') record.until = Number(value);
        else record[name] = String(value);
      });
      return record;
    });
  }
}
