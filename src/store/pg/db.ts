// Opens a PostgreSQL database (postgres.js), applies its migrations (drizzle-pg/) under an advisory lock
// so several nodes may start at once, and checks that a commit is durable before it returns.
import { fileURLToPath } from 'node:url';
import { drizzle } from 'drizzle-orm/postgres-js';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import { shownUrl } from '../../log.ts';
import { DatabaseOpenError } from '../db.ts';

/** The client: tagged-template queries on a small pool. */
export type Sql = postgres.Sql;

/** An open PostgreSQL database. */
export interface PgDatabase {
  readonly sql: Sql;
  /** The URL without its password, for logs. */
  readonly shown: string;
  close(): Promise<void>;
}

const MIGRATIONS = fileURLToPath(new URL('../../../drizzle-pg/', import.meta.url));
/** Held while migrating, so nodes starting together migrate one after another. */
const MIGRATION_LOCK = 0x72756e73;

/** The URL with its password replaced, as it may be logged. */
export const redactUrl = (target: string): string => shownUrl(target, 'postgres://…');

const options = (max: number): postgres.Options<Record<string, never>> => ({
  max,
  onnotice: () => {},
  connect_timeout: 10,
  // Every commit waits for its WAL flush, whatever the server's default: "echoed means stored".
  connection: { synchronous_commit: 'on', application_name: 'runspec-room' },
});

/** Open, migrate and check the database at `target` (a postgres:// URL). */
export async function openPostgres(target: string, poolSize = 10): Promise<PgDatabase> {
  const shown = redactUrl(target);
  const fail = (error: unknown): DatabaseOpenError =>
    new DatabaseOpenError(
      `cannot use database ${shown}: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`,
      { cause: error },
    );
  let sql: Sql;
  try {
    sql = postgres(target, options(poolSize));
  } catch (error) {
    throw fail(error);
  }
  const one = postgres(target, options(1));
  try {
    await one`SELECT pg_advisory_lock(${MIGRATION_LOCK})`;
    await migrate(drizzle(one), { migrationsFolder: MIGRATIONS });
    await one`SELECT pg_advisory_unlock(${MIGRATION_LOCK})`;
    const [settings] =
      await sql`SELECT current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS commit`;
    if (settings?.fsync !== 'on' || settings.commit === 'off')
      throw new Error(
        `it does not commit durably (fsync=${settings?.fsync}, synchronous_commit=${settings?.commit}); expected fsync=on`,
      );
  } catch (error) {
    await Promise.allSettled([one.end({ timeout: 1 }), sql.end({ timeout: 1 })]);
    throw error instanceof DatabaseOpenError ? error : fail(error);
  }
  await one.end({ timeout: 1 });
  return { sql, shown, close: () => sql.end({ timeout: 5 }) };
}
