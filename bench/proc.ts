// Process figures from /proc: CPU seconds (utime + stime) and resident memory.
import { readFileSync } from 'node:fs';

const CLK_TCK = 100;

/** User plus system CPU seconds a process (all its threads), or one thread as `pid/task/tid`, has used. */
export function cpuSeconds(pid: number | string): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** Resident set size in MiB (VmRSS). */
export function rssMiB(pid: number | 'self'): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/u);
  return Number(line?.[1] ?? 0) / 1024;
}

/** The soft limit on open files for a process. */
export function openFileLimit(pid: number | 'self'): number {
  const line = readFileSync(`/proc/${pid}/limits`, 'utf8').match(/Max open files\s+(\d+)/u);
  return Number(line?.[1] ?? 0);
}

/** CPU use between two calls, as a share of one core. */
export class CpuMeter {
  readonly #pid: number | string;
  #cpu: number;
  #at: number;

  constructor(pid: number | string) {
    this.#pid = pid;
    this.#cpu = cpuSeconds(pid);
    this.#at = performance.now();
  }

  /** Share of one core since construction or the last read; starts a new interval. */
  read(): number {
    const cpu = cpuSeconds(this.#pid);
    const at = performance.now();
    const share = (cpu - this.#cpu) / ((at - this.#at) / 1000);
    this.#cpu = cpu;
    this.#at = at;
    return share;
  }
}

/** Samples a process's RSS every `everyMs` and keeps the peak. */
export class RssSampler {
  peak = 0;
  readonly #timer: NodeJS.Timeout;

  constructor(pid: number, everyMs = 250) {
    const sample = (): void => {
      try {
        this.peak = Math.max(this.peak, rssMiB(pid));
      } catch {
        // The process is gone.
      }
    };
    sample();
    this.#timer = setInterval(sample, everyMs);
  }

  reset(): void {
    this.peak = 0;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

/** Busy CPU seconds of the whole machine (all cores; everything but idle and iowait). */
export function machineBusySeconds(): number {
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '')
    .trim()
    .split(/\s+/u)
    .slice(1)
    .map(Number);
  const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - (fields[3] ?? 0) - (fields[4] ?? 0)) / CLK_TCK;
}
