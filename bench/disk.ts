// The disk's own commit latency: what a durable write costs here before any server is involved.
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Latency, sleep, summarizeValues } from './stats.ts';

/**
 * Append 4 KiB and fdatasync it, `rate` times a second for `seconds`, in the directory the servers'
 * databases live in. Every durable server pays at least this per commit; the floor's p99 cannot be
 * lower than this p99 plus the delivery itself.
 */
export async function diskSync(rate: number, seconds: number): Promise<Latency & { dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-disk-'));
  const fd = openSync(join(dir, 'probe'), 'a');
  const page = Buffer.alloc(4096, 1);
  const samples: number[] = [];
  try {
    for (let i = 0; i < rate * seconds; i++) {
      await sleep(1000 / rate);
      writeSync(fd, page);
      const t = performance.now();
      fdatasyncSync(fd);
      samples.push((performance.now() - t) * 1000);
    }
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
  return { ...summarizeValues(samples), dir: tmpdir() };
}
