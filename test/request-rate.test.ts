// The HTTP API's rate on its own: a bucket per requester, with a clock the tests move.
import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS } from '../src/config.ts';
import { KNOWN_FOR_MS, KnownSessions, RequestRate } from '../src/http/request-rate.ts';

const shipped = { burst: DEFAULT_LIMITS.apiBurst, perSecond: DEFAULT_LIMITS.apiPerSecond };

describe('the API rate', () => {
  it('lets a requester make its burst at once, then one request per tenth of a second', () => {
    let now = 0;
    const rate = new RequestRate(shipped, () => now);
    for (let i = 0; i < 60; i++) expect(rate.take('address 203.0.113.7')).toBe(0);
    expect(rate.take('address 203.0.113.7')).toBe(100);
    now += 50;
    expect(rate.take('address 203.0.113.7')).toBe(50);
    now += 50;
    expect(rate.take('address 203.0.113.7')).toBe(0);
    expect(rate.take('address 203.0.113.7')).toBe(100);
  });

  it('takes nothing for a refused request: asking again at once does not push the next answer back', () => {
    let now = 0;
    const rate = new RequestRate(shipped, () => now);
    for (let i = 0; i < 60; i++) rate.take('person alice');
    for (let i = 0; i < 1000; i++) expect(rate.take('person alice')).toBe(100);
    now += 100;
    expect(rate.take('person alice')).toBe(0);
  });

  it('gives each requester its own bucket, and a full one back after a quiet spell', () => {
    let now = 0;
    const rate = new RequestRate(shipped, () => now);
    for (let i = 0; i < 60; i++) rate.take('person alice');
    expect(rate.take('person alice')).toBeGreaterThan(0);
    expect(rate.take('person bob')).toBe(0);
    now += 6000;
    for (let i = 0; i < 60; i++) expect(rate.take('person alice')).toBe(0);
    expect(rate.take('person alice')).toBeGreaterThan(0);
  });

  it('keeps a bounded number of requesters, letting the least recently seen go', () => {
    const rate = new RequestRate(shipped, () => 0, 100);
    for (let i = 0; i < 60; i++) rate.take('address 203.0.113.7');
    for (let i = 0; i < 99; i++) rate.take(`address 198.51.100.${i}`);
    // Seen again: the flooder is the most recent, so newcomers push the quiet ones out first.
    expect(rate.take('address 203.0.113.7')).toBeGreaterThan(0);
    for (let i = 0; i < 99; i++) rate.take(`address 10.0.0.${i}`);
    expect(rate.size).toBe(100);
    expect(rate.take('address 203.0.113.7')).toBeGreaterThan(0);
  });
});

describe('sessions known for counting', () => {
  it('tells whom a token seen within the last second counted for, and asks again after it', () => {
    let now = 0;
    const known = new KnownSessions(() => now);
    expect(known.requesterOf('token-a')).toBeUndefined();
    known.learn('token-a', 'person dana');
    now += KNOWN_FOR_MS - 1;
    expect(known.requesterOf('token-a')).toBe('person dana');
    now += 1;
    expect(known.requesterOf('token-a')).toBeUndefined();
  });

  it('keeps a bounded number of tokens', () => {
    const known = new KnownSessions(() => 0, 100);
    for (let i = 0; i < 1000; i++) known.learn(`token-${i}`, `person p${i}`);
    expect(known.requesterOf('token-0')).toBeUndefined();
    expect(known.requesterOf('token-999')).toBe('person p999');
  });
});
