// Message ids (src/hub/ids.ts): the Python server's shape, ordered by time.
import { describe, expect, it } from 'vitest';
import { newId } from '../src/hub/ids.ts';

describe('message ids', () => {
  it('are 32 lowercase hex digits, like uuid4().hex, and read as a version 7 UUID', () => {
    for (let i = 0; i < 1000; i++) {
      const id = newId();
      expect(id).toMatch(/^[0-9a-f]{32}$/u);
      expect(id[12]).toBe('7');
      expect('89ab').toContain(id[16]);
    }
  });

  it('carry the time they were made in milliseconds, so later ids sort after earlier ones', () => {
    const t = Date.UTC(2026, 10, 22, 12, 0, 0);
    expect(Number.parseInt(newId(t).slice(0, 12), 16)).toBe(t);
    const earlier = Array.from({ length: 50 }, () => newId(t));
    const later = Array.from({ length: 50 }, () => newId(t + 1));
    for (const a of earlier) for (const b of later) expect(a < b).toBe(true);
  });

  it('do not repeat over 200,000 ids made in the same millisecond', () => {
    const t = Date.now();
    const ids = new Set(Array.from({ length: 200_000 }, () => newId(t)));
    expect(ids.size).toBe(200_000);
  });
});
