// In-process reporter for servers under test: on SIGUSR2, print memory (after GC if asked), event-loop
// delay and time spent in garbage collection.
import { constants, monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';

/** What a server prints on SIGUSR2, after the `BENCH ` prefix. */
export interface AgentReport {
  rssMiB: number;
  heapUsedMiB: number;
  externalMiB: number;
  /** Event-loop delay since the previous report, in ms (only for processes that opt in). */
  eld?: { p50: number; p99: number; max: number; mean: number };
  /** Garbage collection since the previous report: pause time in ms, and the major (mark-compact) ones. */
  gc: { ms: number; major: number };
}

const MiB = 1024 * 1024;

/**
 * Answer SIGUSR2 with one `BENCH {json}` line on stdout. With BENCH_AGENT_GC=1 and --expose-gc the
 * heap is collected first, so memory figures are after GC.
 */
export function installAgent(options: { eventLoopDelay: boolean }): void {
  const eld = options.eventLoopDelay ? monitorEventLoopDelay({ resolution: 10 }) : undefined;
  eld?.enable();
  const gcSince = { ms: 0, major: 0 };
  const count = (entries: PerformanceEntry[]): void => {
    for (const entry of entries) {
      gcSince.ms += entry.duration;
      const kind = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) gcSince.major += 1;
    }
  };
  const observer = new PerformanceObserver((list) => count(list.getEntries()));
  observer.observe({ entryTypes: ['gc'] });
  process.on('SIGUSR2', () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (process.env.BENCH_AGENT_GC === '1' && gc) {
      gc();
      gc();
    }
    // Collections not yet handed to the observer belong to this report, not the next.
    count(observer.takeRecords());
    const m = process.memoryUsage();
    const report: AgentReport = {
      rssMiB: m.rss / MiB,
      heapUsedMiB: m.heapUsed / MiB,
      externalMiB: (m.external + m.arrayBuffers) / MiB,
      gc: { ms: gcSince.ms, major: gcSince.major },
    };
    gcSince.ms = 0;
    gcSince.major = 0;
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
