// The Store on PostgreSQL: loaded by openStore only for a postgres:// database.
import type { Metrics } from '../../metrics/metrics.ts';
import type { Store } from '../store.ts';
import { openPostgres, redactUrl } from './db.ts';
import { PgKeyStore, PgModerationStore, PgSessionStore } from './records.ts';
import { PgTranscript } from './transcript.ts';

/** Open, migrate and check the PostgreSQL database at `target`, and everything kept in it. */
export async function openPgStore(
  target: string,
  metrics: Metrics,
  statementTimeoutMs?: number,
): Promise<Store> {
  const database = await openPostgres(target, { statementTimeoutMs });
  const { sql } = database;
  const transcript = new PgTranscript(sql, metrics);
  return {
    kind: 'postgres',
    shown: redactUrl(target),
    transcript,
    keys: new PgKeyStore(sql),
    moderation: new PgModerationStore(sql),
    sessions: (lifetimes) => new PgSessionStore(sql, lifetimes),
    close: async () => {
      await transcript.close();
      await database.close();
    },
  };
}
