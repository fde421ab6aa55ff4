// The small collections behind the Hub's per-connection state: they must behave as the Map and Set
// they stand in for, however entries come and go.
import { describe, expect, it } from 'vitest';
import { FewMap, Grouped } from '../src/hub/grouped.ts';

describe('Grouped (a user’s connections)', () => {
  it('says when a key gets its first value and when its last one goes, in any order', () => {
    const g = new Grouped<string, { n: number }>();
    const [a, b, c] = [{ n: 1 }, { n: 2 }, { n: 3 }];
    expect(g.add('alice', a)).toBe(true);
    expect(g.add('alice', a)).toBe(false);
    expect([...g.get('alice')]).toEqual([a]);
    expect(g.add('alice', b)).toBe(false);
    expect(g.add('alice', c)).toBe(false);
    expect([...g.get('alice')]).toEqual([a, b, c]);
    expect(g.delete('alice', b)).toBe(false);
    expect(g.delete('alice', a)).toBe(false);
    expect([...g.get('alice')]).toEqual([c]);
    expect(g.delete('alice', a)).toBe(false);
    expect(g.has('alice')).toBe(true);
    expect(g.delete('alice', c)).toBe(true);
    expect(g.has('alice')).toBe(false);
    expect([...g.get('alice')]).toEqual([]);
    expect(g.delete('alice', c)).toBe(false);
    expect(g.add('alice', b)).toBe(true);
  });
});

describe('FewMap (the rooms a connection is in)', () => {
  it('answers as a Map would through one entry, several, and back to none', () => {
    const few = new FewMap<string, number>();
    const map = new Map<string, number>();
    const same = (): void => {
      expect(few.size).toBe(map.size);
      expect([...few.keys()]).toEqual([...map.keys()]);
      expect([...few.values()]).toEqual([...map.values()]);
      for (const key of ['a', 'b', 'c', 'd']) {
        expect(few.get(key)).toBe(map.get(key));
        expect(few.has(key)).toBe(map.has(key));
      }
    };
    same();
    const steps: Array<['set', string, number] | ['delete', string]> = [
      ['set', 'a', 1],
      ['set', 'a', 2],
      ['delete', 'b'],
      ['delete', 'a'],
      ['set', 'b', 3],
      ['set', 'c', 4],
      ['set', 'b', 5],
      ['delete', 'b'],
      ['delete', 'c'],
      ['set', 'd', 6],
    ];
    for (const step of steps) {
      if (step[0] === 'set') {
        few.set(step[1], step[2]);
        map.set(step[1], step[2]);
      } else expect(few.delete(step[1])).toBe(map.delete(step[1]));
      same();
    }
  });
});
