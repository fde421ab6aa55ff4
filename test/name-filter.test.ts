// The filter of names a welcome consults: never "not here" for a name added, and rarely "perhaps" for
// one that was not.
import { describe, expect, it } from 'vitest';
import { NameFilter } from '../src/store/name-filter.ts';

describe('the filter of names with read markers or whispers', () => {
  it('finds every name added, of any length or script, and few that were not', () => {
    const filter = new NameFilter();
    const added = Array.from({ length: 100_000 }, (_, i) => `person-${i}`);
    added.push('', 'a', 'Ünïcödé 名前 🚀', 'x'.repeat(1000));
    for (const name of added) filter.add(name);
    expect(added.filter((name) => !filter.mayHold(name))).toEqual([]);
    const strangers = Array.from({ length: 100_000 }, (_, i) => `stranger-${i}`);
    const mistaken = strangers.filter((name) => filter.mayHold(name)).length;
    // About 1 in 50,000 at this size.
    expect(mistaken).toBeLessThan(20);
  });

  it('holds nothing at first', () => {
    const filter = new NameFilter();
    expect(['alice', '', 'bob'].some((name) => filter.mayHold(name))).toBe(false);
  });
});
