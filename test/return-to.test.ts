// Where sign-in returns to: only paths of this origin, whatever a hostile return_to looks like.
import { describe, expect, it } from 'vitest';
import { safeReturnTo } from '../src/http/auth.ts';

const ORIGIN = 'https://room.example.com';

// Each of these, left as the parser normalises it, would send the browser to another host.
const HOSTILE = [
  '//evil.example/x',
  '/\\evil.example/x',
  '/\\/evil.example/x',
  '/\\\\evil.example/x',
  '/.//evil.example/x',
  '/..//evil.example/x',
  '/%2e//evil.example/x',
  '/%2E%2E//evil.example/x',
  '/.%2e//evil.example/x',
  '/./\\evil.example/x',
  '/.\\/evil.example/x',
  '/.\\\\evil.example/x',
  '/a/..//evil.example/x',
  '/a/b/../..//evil.example/x',
  '/../../..//evil.example/x',
  '/.\t//evil.example/x',
  '/\t/evil.example/x',
  '/\n/evil.example/x',
  '/\r\n/evil.example/x',
  '/.\n/\\evil.example/x',
  '\t//evil.example/x',
  ' //evil.example/x',
  '\\\\evil.example/x',
  'https://evil.example/x',
  'https:evil.example/x',
  '//room.example.com@evil.example/x',
  'javascript:alert(1)',
  'data:text/html,hi',
  '',
];

// Odd but harmless: they stay paths of this origin after normalisation.
const KEPT: Array<[string, string]> = [
  ['/', '/'],
  ['/?room=ops', '/?room=ops'],
  ['/?room=ops&since=42', '/?room=ops&since=42'],
  ['/?next=//evil.example/x', '/?next=//evil.example/x'],
  ['/./?room=ops', '/?room=ops'],
  ['/a/../?room=ops', '/?room=ops'],
  ['/%2F%2Fevil.example/x', '/%2F%2Fevil.example/x'],
  ['/%5C%5Cevil.example/x', '/%5C%5Cevil.example/x'],
  ['/.%2F/evil.example/x', '/.%2F/evil.example/x'],
  ['/?room=ops#top', '/?room=ops#top'],
  ['/#ops', '/#ops'],
  ['/#//evil.example/x', '/#//evil.example/x'],
  ['/#a b', '/#a%20b'],
];

/** What a browser does with a Location header on the callback: resolve it against the callback URL. */
const landsOn = (location: string) => new URL(location, `${ORIGIN}/auth/callback?code=x`).origin;

describe('the return path after sign-in', () => {
  it.each(HOSTILE)('sends %j back to / instead of another site', (value) => {
    const location = safeReturnTo(value, ORIGIN);
    expect(location).toBe('/');
  });

  it.each(KEPT)('keeps %j as the same-origin path %j', (value, expected) => {
    expect(safeReturnTo(value, ORIGIN)).toBe(expected);
  });

  it('never answers with a location that a browser could read as another host', () => {
    for (const value of [...HOSTILE, ...KEPT.map(([input]) => input)]) {
      const location = safeReturnTo(value, ORIGIN);
      expect(location, JSON.stringify(value)).toMatch(/^\/(?![/\\])/u);
      expect(landsOn(location), JSON.stringify(value)).toBe(ORIGIN);
    }
  });

  it('sends a missing or overlong return path to /', () => {
    expect(safeReturnTo(undefined, ORIGIN)).toBe('/');
    expect(safeReturnTo(`/?room=${'a'.repeat(5000)}`, ORIGIN)).toBe('/');
    const longest = `/?room=${'a'.repeat(793)}`;
    expect(safeReturnTo(longest, ORIGIN)).toBe(longest);
    expect(safeReturnTo(`${longest}a`, ORIGIN)).toBe('/');
  });
});
