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

/** How the pool's connections are made. */
export interface PgOptions {
  /** Connections in the pool. */
  poolSize?: number | undefined;
  /** How long a statement may run, and a transaction sit idle, in ms (unlimited unless given). */
  statementTimeoutMs?: number | undefined;
}

const options = (max: number, timeoutMs?: number): postgres.Options<Record<string, never>> => ({
  max,
  onnotice: () => {},
  connect_timeout: 10,
  connection: {
    // Every commit waits for its WAL flush, whatever the server's default: "echoed means stored".
    synchronous_commit: 'on',
    application_name: 'runspec-room',
    // A read stuck behind someone's lock would hold a turn of the history reads, and a pool
    // connection, for as long as the lock is held; cancelled, it is answered as a store failure. A
    // transaction whose node stopped mid-way would hold its conversations' counters from every node.
    ...(timeoutMs === undefined
      ? {}
      : { statement_timeout: timeoutMs, idle_in_transaction_session_timeout: timeoutMs }),
  },
});

/** Open, migrate and check the database at `target` (a postgres:// URL). */
export async function openPostgres(target: string, pg: PgOptions = {}): Promise<PgDatabase> {
  const poolSize = pg.poolSize ?? 10;
  const shown = redactUrl(target);
  const fail = (error: unknown): DatabaseOpenError =>
    new DatabaseOpenError(
      `cannot use database ${shown}: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`,
      { cause: error },
    );
  let sql: Sql;
  try {
    sql = postgres(target, options(poolSize, pg.statementTimeoutMs));
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
