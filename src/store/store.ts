// The Store boundary: everything the server keeps (transcript, sign-in sessions, console keys, bans,
// mutes and the audit trail) on one of two databases: a libSQL file or server (the default, one node),
// or PostgreSQL (`--db postgres://…`, shared by the nodes of a cluster).
import type { KeyRecords } from '../auth/console-keys.ts';
import type { Transcript } from '../hub/transcript.ts';
import { type Metrics, noMetrics } from '../metrics/metrics.ts';
import type { Pruned } from './append.ts';
import { DatabaseOpenError, openDatabase } from './db.ts';
import { KeyStore } from './keys.ts';
import { type ModerationRecords, ModerationStore } from './moderation.ts';
import { SearchThread } from './search-thread.ts';
import { type SessionLifetimes, SessionStore, type Sessions } from './sessions.ts';
import { LibsqlTranscript } from './transcript.ts';
import { WorkerAppender } from './worker-appender.ts';

/** The transcript as the server runs it: the Hub's slice, plus health and shutdown. */
export interface StoredTranscript extends Transcript {
  /** Resolves when the database answers reads and takes writes: /healthz. */
  ping(): Promise<void>;
  /** One retention batch: of the `limit` messages stored first, delete those older than `before`. */
  prune(before: number, limit: number): Promise<Pruned>;
  /** Finish the write path (the database itself closes with the store). */
  close(): Promise<void>;
}

/** One open database and everything kept in it. */
export interface Store {
  /** Which database: the embedded libSQL one, or PostgreSQL. */
  readonly kind: 'libsql' | 'postgres';
  /** Where it is, as logs may show it (no password). */
  readonly shown: string;
  readonly transcript: StoredTranscript;
  readonly keys: KeyRecords;
  readonly moderation: ModerationRecords;
  /** Sign-in sessions with these lifetimes. */
  sessions(lifetimes: SessionLifetimes): Sessions;
  close(): Promise<void>;
}

/** How a store is opened. */
export interface StoreOptions {
  /** Auth token of a remote libSQL server. */
  authToken?: string | undefined;
  /** Where commits, reads and their failures are counted. */
  metrics?: Metrics | undefined;
  /** The server appends to a local file from a writer thread; a subcommand does not need one. */
  writer?: { script?: URL | undefined; onLost: (error: Error) => void } | undefined;
  /** The server searches a local file on a thread of its own (`script`: its entry, where not the built one). */
  searches?: { script?: URL | undefined; onLost: (error: Error) => void } | undefined;
  /**
   * PostgreSQL: how long one statement may run, in ms, before it is cancelled (and a transaction may
   * sit idle before it is ended). Unlimited unless given: a subcommand run by an operator is not cut.
   */
  statementTimeoutMs?: number | undefined;
}

export { DatabaseOpenError };

/** Whether `--db` names a PostgreSQL server rather than a libSQL file or server. */
export function isPostgres(target: string): boolean {
  return /^postgres(ql)?:\/\//iu.test(target);
}

/** Open the database `target` names (a file path, a libSQL URL or a postgres:// URL) and bring it up to date. */
export async function openStore(target: string, options: StoreOptions = {}): Promise<Store> {
  // Loaded only here, so a single node on a file never loads the PostgreSQL client.
  if (isPostgres(target))
    return (await import('./pg/store.ts')).openPgStore(
      target,
      options.metrics ?? noMetrics,
      options.statementTimeoutMs,
    );
  const database = await openDatabase(target, options.authToken);
  // A local file is written from its own thread, so commits and their fsync never stall the sockets.
  const writer =
    database.local && options.writer
      ? await WorkerAppender.start(database.url, {
          script: options.writer.script,
          onLost: options.writer.onLost,
        }).catch((error: unknown) => {
          database.close();
          throw new DatabaseOpenError(`cannot write to database ${target}: ${(error as Error).message}`);
        })
      : undefined;
  const searches =
    database.local && options.searches ? new SearchThread(database.url, options.searches) : undefined;
  const transcript = new LibsqlTranscript(database, writer, options.metrics ?? noMetrics, searches);
  const store: Store = {
    kind: 'libsql',
    shown: target,
    transcript,
    keys: new KeyStore(database),
    moderation: new ModerationStore(database),
    sessions: (lifetimes) => new SessionStore(database, lifetimes),
    close: async () => {
      await transcript.close();
      database.close();
    },
  };
  if (database.local && options.writer) {
    // The server is the file's one writer: it learns who has markers or whispers once, here.
    await transcript.knowNames().catch(async (error: unknown) => {
      await store.close();
      throw new DatabaseOpenError(`cannot read database ${target}: ${(error as Error).message}`);
    });
    // The promise "echoed means stored" rests on these settings of the connection that commits.
    const durability = await transcript.durability();
    if (durability.journalMode !== 'wal' || durability.synchronous !== 2) {
      await store.close();
      throw new DatabaseOpenError(
        `database ${target} does not commit durably (journal_mode=${durability.journalMode}, synchronous=${durability.synchronous}); expected WAL with synchronous=FULL`,
      );
    }
  }
  // The server indexes what the last run left; a subcommand on the same file leaves that to it.
  if (options.writer) transcript.indexBacklog();
  return store;
}
