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

/** A fresh database with the schema, and the writer thread's kind of connection to it. */
async function fresh(name: string, search: boolean): Promise<{ path: string; writer: NativeAppender }> {
  const path = join(dir, name);
  const database = await openDatabase(path);
  if (!search)
    for (const trigger of ['messages_fts_insert', 'messages_fts_delete', 'messages_fts_update'])
      await database.client.execute(`DROP TRIGGER ${trigger}`);
  database.close();
  const writer = new NativeAppender(path);
  writer.setPragmas();
  return { path, writer };
}

/** CPU time per message of `count` messages stored in batches of `size`. */
function cpuPerMessage(writer: NativeAppender, count: number, size: number): number {
  const start = process.cpuUsage();
  for (let i = 0; i < count; i += size)
    writer.write([{ batch: batchOf(size, Date.now() / 1000), retried: false }]);
  const used = process.cpuUsage(start);
  return (used.user + used.system) / count;
}

const report: Record<string, unknown> = { messages: total };

// 1. The search index's cost on the write path, side by side (twice each, alternating).
const plain = await fresh('plain.db', false);
const indexed = await fresh('indexed.db', true);
const cost = { plain: [] as number[], indexed: [] as number[] };
for (let round = 0; round < 2; round++) {
  cost.plain.push(cpuPerMessage(plain.writer, 4000, 16));
  cost.indexed.push(cpuPerMessage(indexed.writer, 4000, 16));
}
report.cpuMicrosecondsPerMessage = {
  batchesOf: 16,
  withoutSearchIndex: Math.min(...cost.plain).toFixed(1),
  withSearchIndex: Math.min(...cost.indexed).toFixed(1),
};
plain.writer.close();
indexed.writer.close();

// 2. A database of `total` messages, all of them a year old.
const big = await fresh('big.db', true);
const old = Date.now() / 1000 - 365 * 86_400;
for (let stored = 0; stored < total; stored += 500)
  big.writer.write([{ batch: batchOf(500, old), retried: false }]);

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
