// Console keys in the database: which OpenSSH public key proves which name, and a revision that moves
// with every change so a running server notices changes made by another process.
import type { AuditEntry } from '../hub/admin.ts';
import type { Database } from './db.ts';
import { auditStatement } from './moderation.ts';

/** Most keys one name may have. */
export const KEYS_PER_USER = 32;

/** An enrolled key. */
export interface ConsoleKey {
  fingerprint: string;
  user: string;
  algorithm: string;
  /** "algorithm base64". */
  publicKey: string;
  label: string;
  /** Seconds since the epoch. */
  createdAt: number;
  createdBy: string;
}

/** Why a key was not enrolled. */
export type EnrolRefusal = { taken: string } | { full: true };

const COLUMNS = 'fingerprint, user, algorithm, public_key, label, created_at, created_by';

const toKey = (r: unknown[]): ConsoleKey => ({
  fingerprint: String(r[0]),
  user: String(r[1]),
  algorithm: String(r[2]),
  publicKey: String(r[3]),
  label: String(r[4]),
  createdAt: Number(r[5]),
  createdBy: String(r[6]),
});

/** The console_keys table. */
export class KeyStore {
  readonly #database: Database;

  constructor(database: Database) {
    this.#database = database;
  }

  /** Enrol a key for its user, with its audit line; refused when another name has it or the name has the most keys. */
  async add(key: ConsoleKey, entry: AuditEntry): Promise<EnrolRefusal | undefined> {
    const owner = await this.find(key.fingerprint);
    if (owner) return { taken: owner.user };
    try {
      const [inserted] = await this.#database.client.batch(
        [
          {
            sql: `INSERT INTO console_keys (${COLUMNS}) SELECT ?, ?, ?, ?, ?, ?, ?
                  WHERE (SELECT count(*) FROM console_keys WHERE user = ?) < ?`,
            args: [
              key.fingerprint,
              key.user,
              key.algorithm,
              key.publicKey,
              key.label,
              key.createdAt,
              key.createdBy,
              key.user,
              KEYS_PER_USER,
            ],
          },
          auditStatement(entry, 'changes() > 0'),
        ],
        'write',
      );
      return (inserted?.rowsAffected ?? 0) > 0 ? undefined : { full: true };
    } catch (error) {
      // Enrolled by someone else between the check and the insert.
      const now = await this.find(key.fingerprint);
      if (now) return { taken: now.user };
      throw error;
    }
  }

  /** Remove a key, with its audit line; the removed key, or undefined when none had that fingerprint. */
  async remove(fingerprint: string, entry: AuditEntry): Promise<ConsoleKey | undefined> {
    const [found] = await this.#database.client.batch(
      [
        { sql: `SELECT ${COLUMNS} FROM console_keys WHERE fingerprint = ?`, args: [fingerprint] },
        auditStatement(
          { ...entry, fingerprint },
          'EXISTS (SELECT 1 FROM console_keys WHERE fingerprint = ?)',
          [fingerprint],
        ),
        { sql: 'DELETE FROM console_keys WHERE fingerprint = ?', args: [fingerprint] },
      ],
      'write',
    );
    const row = found?.rows[0];
    return row ? toKey(Array.from(row)) : undefined;
  }

  /** The key with this fingerprint, if enrolled. */
  async find(fingerprint: string): Promise<ConsoleKey | undefined> {
    const row = await this.#database.read.one(`SELECT ${COLUMNS} FROM console_keys WHERE fingerprint = ?`, [
      fingerprint,
    ]);
    return row ? toKey(row) : undefined;
  }

  /** The keys of one name, or of everyone, oldest first. */
  async list(user?: string): Promise<ConsoleKey[]> {
    const rows =
      user === undefined
        ? await this.#database.read.query(`SELECT ${COLUMNS} FROM console_keys ORDER BY user, created_at`, [])
        : await this.#database.read.query(
            `SELECT ${COLUMNS} FROM console_keys WHERE user = ? ORDER BY created_at`,
            [user],
          );
    return rows.map(toKey);
  }

  /** Every enrolled fingerprint and its name. */
  async owners(): Promise<Map<string, string>> {
    const rows = await this.#database.read.query('SELECT fingerprint, user FROM console_keys', []);
    return new Map(rows.map((r) => [String(r[0]), String(r[1])]));
  }

  /** A number that changes whenever any key is added, removed or changed, by any process. */
  async revision(): Promise<number> {
    const row = await this.#database.read.one('SELECT revision FROM key_changes WHERE id = 1', []);
    return Number(row?.[0] ?? 0);
  }
}
