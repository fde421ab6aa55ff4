// The server's log lines: one per event, `TIMESTAMP LEVEL event key=value…`, at or above the level set.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { batchedWriter, createLog, throttledWarning, WARNING_EVERY_MS } from '../src/log.ts';

describe('log lines', () => {
  it('are the time, the level and the event, then each field as key=value, quoted only when it must be', () => {
    const lines: string[] = [];
    const log = createLog('info', (line) => lines.push(line));
    const before = Date.now();
    log.info('browser joined', {
      room: 'ops',
      user: 'zoë k',
      remote: '127.0.0.1:5000',
      since: undefined,
      n: 3,
    });
    log.warn('console refused', { ok: false, reason: 'a "quoted" reason' });
    expect(lines[0]).toMatch(
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info {2}browser joined room=ops user="zoë k" remote=127\.0\.0\.1:5000 n=3$/u,
    );
    expect(lines[1]).toMatch(/ warn {2}console refused ok=false reason="a \\"quoted\\" reason"$/u);
    const stamp = Date.parse(lines[0]?.split(' ')[0] ?? '');
    expect(stamp).toBeGreaterThanOrEqual(before);
    expect(stamp).toBeLessThanOrEqual(Date.now());
  });

  it('below the level set are not written; a later millisecond gets its own time', async () => {
    const lines: string[] = [];
    const log = createLog('warn', (line) => lines.push(line));
    log.debug('quiet');
    log.info('quiet too');
    log.error('loud');
    const first = Date.now();
    while (Date.now() === first) await new Promise((resolve) => setTimeout(resolve, 1));
    log.warn('later');
    expect(lines.map((l) => l.split(' ').slice(1).join(' ').trim())).toEqual(['error loud', 'warn  later']);
    expect(lines[0]?.split(' ')[0]).not.toBe(lines[1]?.split(' ')[0]);
  });

  it('gathered by the batched writer go out together, once the turn is done; an error line at once', async () => {
    const writes: string[] = [];
    const writer = batchedWriter((text) => writes.push(text));
    const log = createLog('info', writer.line);
    log.info('one');
    log.info('two');
    expect(writes).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(writes).toHaveLength(1);
    expect(writes[0]).toMatch(/ info {2}one\n.* info {2}two\n$/u);
    log.error('boom');
    expect(writes).toHaveLength(2);
  });
});

describe('a warning that may come in floods', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('is written at once, then at most once each 10 s with how many more came, and at once again after a quiet spell', () => {
    vi.useFakeTimers();
    const lines: string[] = [];
    const warn = throttledWarning(
      createLog('info', (line) => lines.push(line)),
      'console refused: connection limit reached',
    );
    for (let port = 1; port <= 1000; port++) warn({ remote: `127.0.0.1:${port}`, limit: 5 });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /warn {2}console refused: connection limit reached remote=127\.0\.0\.1:1 limit=5$/u,
    );
    vi.advanceTimersByTime(WARNING_EVERY_MS);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/remote=127\.0\.0\.1:1000 limit=5 more=999$/u);
    // Nothing more came: the next window says nothing, and the one after that is written at once.
    vi.advanceTimersByTime(WARNING_EVERY_MS);
    expect(lines).toHaveLength(2);
    warn({ remote: '127.0.0.1:1001', limit: 5 });
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatch(/remote=127\.0\.0\.1:1001 limit=5$/u);
  });
});
