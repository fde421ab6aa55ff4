// What the operations features cost the writer: CPU per stored message with and without the search
// index, how long one retention batch holds the writer, and how commits fare while a backup copies a
// database of 100,000 messages. Usage: npm run build && npx tsx bench/ops.ts [--messages 100000]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { NewMessage } from '../src/hub/transcript.ts';
import { openDatabase } from '../src/store/db.ts';
import { NativeAppender } from '../src/store/native-append.ts';

const { values } = parseArgs({ options: { messages: { type: 'string', default: '100000' } } });
const total = Number(values.messages);
const dir = mkdtempSync(join(tmpdir(), 'runspec-ops-'));
const body = 'the deploy of release 42 went fine, staging is green again '.repeat(3);
let ids = 0;
const batchOf = (n: number, ts: number): NewMessage[] =>
  Array.from({ length: n }, () => {
    ids += 1;
    return {
      id: ids.toString(16).padStart(32, '0'),
      room: `room${ids % 50}`,
      sender: 'bench',
      text: `${ids} ${body}`,
      ts,
      via: 'console' as const,
    };
  });

const quantile = (sorted: number[], q: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] ?? 0;
const ms = (n: number): string => n.toFixed(2);

/** How the search index is kept: not at all, inside each commit (a trigger, as before 0005), or behind. */
type Indexing = 'none' | 'inline' | 'behind';

/** A fresh database with the schema, and the writer thread's kind of connection to it. */
async function fresh(name: string, indexing: Indexing): Promise<{ path: string; writer: NativeAppender }> {
  const path = join(dir, name);
  const database = await openDatabase(path);
  if (indexing === 'none')
    for (const trigger of ['messages_fts_delete', 'messages_fts_update'])
      await database.client.execute(`DROP TRIGGER ${trigger}`);
  if (indexing === 'inline')
    await database.client.execute(
      `CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN NEW.recipient IS NULL AND NEW.deleted IS NULL BEGIN INSERT INTO messages_fts (rowid, text, room_key) VALUES (NEW.n, NEW.text, 'r' || hex(NEW.room)); UPDATE search_progress SET indexed = NEW.n; END`,
    );
  database.close();
  const writer = new NativeAppender(path);
  writer.setPragmas();
  return { path, writer };
}

/**
 * CPU time per message of `count` messages stored in batches of `size` (with the indexer's passes
 * every 250 messages when it runs behind), and the commits' p99 in ms.
 */
function cpuPerMessage(writer: NativeAppender, count: number, size: number, behind: boolean) {
  const start = process.cpuUsage();
  const commits: number[] = [];
  for (let i = 0; i < count; i += size) {
    const began = performance.now();
    writer.write([{ batch: batchOf(size, Date.now() / 1000), retried: false }]);
    commits.push(performance.now() - began);
    if (behind && (i + size) % 256 === 0) while (writer.index(1000).more);
  }
  if (behind) while (writer.index(1000).more);
  const used = process.cpuUsage(start);
  commits.sort((a, b) => a - b);
  return { micros: (used.user + used.system) / count, commitP99: quantile(commits, 0.99) };
}

const report: Record<string, unknown> = { messages: total };

// 1. The search index's cost on the write path, side by side (twice each, alternating).
const kinds: Indexing[] = ['none', 'inline', 'behind'];
const writers = await Promise.all(kinds.map((kind) => fresh(`${kind}.db`, kind)));
const cost = new Map(kinds.map((kind) => [kind, [] as Array<{ micros: number; commitP99: number }>]));
for (let round = 0; round < 2; round++)
  kinds.forEach((kind, i) => {
    cost.get(kind)?.push(cpuPerMessage(writers[i]?.writer as NativeAppender, 4000, 16, kind === 'behind'));
  });
const best = (kind: Indexing) => {
  const runs = cost.get(kind) ?? [];
  return {
    cpuMicrosecondsPerMessage: Math.min(...runs.map((r) => r.micros)).toFixed(1),
    commitP99Ms: ms(Math.min(...runs.map((r) => r.commitP99))),
  };
};
report.searchIndexOnTheWritePath = {
  batchesOf: 16,
  withoutSearchIndex: best('none'),
  indexedInEachCommit: best('inline'),
  indexedBehind: best('behind'),
};
for (const { writer } of writers) writer.close();

// 2. A database of `total` messages, all of them a year old.
const big = await fresh('big.db', 'behind');
const old = Date.now() / 1000 - 365 * 86_400;
for (let stored = 0; stored < total; stored += 500)
  big.writer.write([{ batch: batchOf(500, old), retried: false }]);
while (big.writer.index(1000).more);

// 3. Commits while backups copy it (five, one after the other): one message per commit, back to back,
// from this thread; each backup runs as the command people use, in its own process.
const commits = (until: () => boolean): number[] => {
  const times: number[] = [];
  while (!until()) {
    const t0 = performance.now();
    big.writer.write([{ batch: batchOf(1, Date.now() / 1000), retried: false }]);
    times.push(performance.now() - t0);
  }
  return times;
};
const summary = (sorted: number[]) => ({
  commits: sorted.length,
  p50: ms(quantile(sorted, 0.5)),
  p99: ms(quantile(sorted, 0.99)),
  max: ms(quantile(sorted, 1)),
});
const baselineEnd = performance.now() + 3000;
const baseline = commits(() => performance.now() > baselineEnd).sort((a, b) => a - b);
const BACKUPS = 5;
const backups: string[] = [];
let backupDone = false;
const backupOnce = (i: number): void => {
  const child = spawn(process.execPath, [
    'dist/main.js',
    'backup',
    join(dir, `backup${i}.db`),
    '--db',
    big.path,
  ]);
  let output = '';
  child.stdout.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.on('close', () => {
    backups.push(output.trim().replace(/^.*: /u, ''));
    if (i + 1 < BACKUPS) backupOnce(i + 1);
    else backupDone = true;
  });
};
backupOnce(0);
// The writer loop is synchronous: let the children's events in between slices of commits.
const during: number[] = [];
while (!backupDone) {
  const sliceEnd = performance.now() + 50;
  during.push(...commits(() => performance.now() > sliceEnd));
  await new Promise((resolve) => setImmediate(resolve));
}
during.sort((a, b) => a - b);
report.commitMsWhileBackingUp = { backups, withoutBackup: summary(baseline), duringBackups: summary(during) };

// 4. Retention batches over the old messages: how long each holds the writer (BEGIN to COMMIT).
for (const size of [256, 1000]) {
  const held: number[] = [];
  for (let i = 0; i < 20; i++) {
    const { deleted, ms: took } = big.writer.prune(Date.now() / 1000 - 30 * 86_400, size);
    if (deleted === 0) break;
    held.push(took);
  }
  held.sort((a, b) => a - b);
  report[`retentionBatchOf${size}Ms`] = {
    batches: held.length,
    p50: ms(quantile(held, 0.5)),
    max: ms(quantile(held, 1)),
  };
}
big.writer.close();
console.log(JSON.stringify(report, null, 2));
rmSync(dir, { recursive: true, force: true });
