// Histogram summaries (node:perf_hooks createHistogram, values in µs) and small number helpers.
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';

/** Latency percentiles in milliseconds. */
export interface Latency {
  count: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

const ms = (us: number): number => Math.round(us) / 1000;

/** Summarise a histogram of microseconds. */
export function summarize(h: RecordableHistogram): Latency {
  if (h.count === 0) return { count: 0, p50: 0, p99: 0, p999: 0, max: 0, mean: 0 };
  return {
    count: h.count,
    p50: ms(h.percentile(50)),
    p99: ms(h.percentile(99)),
    p999: ms(h.percentile(99.9)),
    max: ms(h.max),
    mean: ms(h.mean),
  };
}

/** Summarise a list of microsecond samples. */
export function summarizeValues(us: readonly number[]): Latency {
  const h = createHistogram({ lowest: 1, highest: 120_000_000, figures: 3 });
  for (const v of us) h.record(Math.max(1, Math.round(v)));
  return summarize(h);
}

/** Round to `digits` decimals. */
export function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
