// In-process reporter for servers under test: on SIGUSR2, print memory (after GC if asked) and event-loop delay.
import { monitorEventLoopDelay } from 'node:perf_hooks';

/** What a server prints on SIGUSR2, after the `BENCH ` prefix. */
export interface AgentReport {
  rssMiB: number;
  heapUsedMiB: number;
  externalMiB: number;
  /** Event-loop delay since the previous report, in ms (only for processes that opt in). */
  eld?: { p50: number; p99: number; max: number; mean: number };
}

const MiB = 1024 * 1024;

/**
 * Answer SIGUSR2 with one `BENCH {json}` line on stdout. With BENCH_AGENT_GC=1 and --expose-gc the
 * heap is collected first, so memory figures are after GC.
 */
export function installAgent(options: { eventLoopDelay: boolean }): void {
  const eld = options.eventLoopDelay ? monitorEventLoopDelay({ resolution: 10 }) : undefined;
  eld?.enable();
  process.on('SIGUSR2', () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (process.env.BENCH_AGENT_GC === '1' && gc) {
      gc();
      gc();
    }
    const m = process.memoryUsage();
    const report: AgentReport = {
      rssMiB: m.rss / MiB,
      heapUsedMiB: m.heapUsed / MiB,
      externalMiB: (m.external + m.arrayBuffers) / MiB,
    };
    if (eld) {
      report.eld = {
        p50: eld.percentile(50) / 1e6,
        p99: eld.percentile(99) / 1e6,
        max: eld.max / 1e6,
        mean: eld.mean / 1e6,
      };
      eld.reset();
    }
    process.stdout.write(`BENCH ${JSON.stringify(report)}\n`);
  });
}
