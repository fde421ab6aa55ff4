// One-line-per-event logging with levels; the entry file decides where lines go.

/** Log levels, quietest last. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Fields printed after the event text as key=value pairs. */
export type LogFields = Record<string, string | number | boolean | undefined>;

/** A logger: one call, one line. */
export interface Log {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
}

/** A URL as a log line may show it: its password replaced; `fallback` when it does not parse. */
export function shownUrl(url: string, fallback: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.href;
  } catch {
    return fallback;
  }
}

/** A value printed as it is when it holds nothing that would need quoting. */
const PLAIN = /^[\w.:/@+-]+$/u;

function formatValue(value: string | number | boolean): string {
  const s = typeof value === 'string' ? value : String(value);
  return PLAIN.test(s) ? s : JSON.stringify(s);
}

/**
 * A logger that writes lines at or above `level` to `write` (stderr in the entry files). A line is
 * built by appending, without an array of its fields, and lines of the same millisecond share one
 * timestamp: 0.2 µs a line instead of 0.7–1.0 (two lines per connection).
 */
export function createLog(level: LogLevel, write: (line: string) => void): Log {
  const threshold = LOG_LEVELS.indexOf(level);
  let stampedAt = -1;
  let stamp = '';
  const at = (lvl: Exclude<LogLevel, 'silent'>) => {
    const shown = LOG_LEVELS.indexOf(lvl) >= threshold;
    const tag = ` ${lvl.padEnd(5)} `;
    return (event: string, fields?: LogFields): void => {
      if (!shown) return;
      const now = Date.now();
      if (now !== stampedAt) {
        stampedAt = now;
        stamp = new Date(now).toISOString();
      }
      let line = stamp + tag + event;
      if (fields) {
        for (const key in fields) {
          const value = fields[key];
          if (value !== undefined) line += ` ${key}=${formatValue(value)}`;
        }
      }
      write(line);
    };
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** How often at most a throttled warning is repeated. */
export const WARNING_EVERY_MS = 10_000;

/**
 * A warning for something that may come in floods (refused connections): the first at once, then
 * at most one each WARNING_EVERY_MS with the latest fields and how many more came since.
 */
export function throttledWarning(log: Log, event: string): (fields: LogFields) => void {
  let quiet: ReturnType<typeof setTimeout> | undefined;
  let more = 0;
  let last: LogFields = {};
  /** Write a line, and keep quiet for the next WARNING_EVERY_MS. */
  const say = (fields: LogFields): void => {
    log.warn(event, fields);
    quiet = setTimeout(lapse, WARNING_EVERY_MS);
    (quiet as { unref?: () => void }).unref?.();
  };
  const lapse = (): void => {
    quiet = undefined;
    if (more === 0) return;
    say({ ...last, more });
    more = 0;
  };
  return (fields) => {
    last = fields;
    if (quiet) more += 1;
    else say(fields);
  };
}

/** A logger that drops everything (for tests and embedding). */
export const silentLog: Log = createLog('silent', () => {});

/**
 * A writer that gathers lines and hands them on together once the current turn of the event loop
 * is done: a burst of connections logs in one write, not one write per line (a log line written
 * alone cost about as much as the rest of opening a console). `flush` writes what is gathered at once
 * (at exit, and for errors, so a crash loses no error line).
 */
export function batchedWriter(write: (text: string) => void): {
  line: (line: string) => void;
  flush: () => void;
} {
  let lines: string[] = [];
  let scheduled = false;
  const flush = (): void => {
    scheduled = false;
    if (lines.length === 0) return;
    const text = `${lines.join('\n')}\n`;
    lines = [];
    write(text);
  };
  return {
    line: (line) => {
      lines.push(line);
      if (line.includes(' error ')) flush();
      else if (!scheduled) {
        scheduled = true;
        setTimeout(flush, 0);
      }
    },
    flush,
  };
}
