// How the text of one setting becomes its value: valibot schemas from string, one per kind of value.
import { isIP } from 'node:net';
import * as v from 'valibot';
import { CONSOLE_AUTH_POLICIES } from '../auth/console-keys.ts';
import { LOG_LEVELS } from '../log.ts';
import { nameProblem } from '../protocol/frames.ts';

/** The units a duration may be written in, with their length in milliseconds. */
export const DURATION_UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** The words a switch accepts for on, then for off (any case). */
export const SWITCH_WORDS = { on: ['1', 'true', 'yes', 'on'], off: ['0', 'false', 'no', 'off'] } as const;

const UNITS = Object.keys(DURATION_UNITS);
const DURATION = new RegExp(`^(\\d{1,15})\\s*(${UNITS.join('|')})$`, 'u');
const DURATION_HINT = `expected a duration: a whole number and a unit (${UNITS.join(', ')}), such as 500ms, 25s or 12h`;

/** Milliseconds in a duration such as `500ms`, `25s` or `7d`; undefined if the text is not one. */
export function durationMs(text: string): number | undefined {
  const match = DURATION.exec(text);
  return match ? Number(match[1]) * DURATION_UNITS[match[2] as keyof typeof DURATION_UNITS] : undefined;
}

/** A duration from `min` to `max` (both written as durations), in milliseconds or in whole seconds. */
export function duration(min: string, max: string, unit: 'ms' | 's' = 'ms') {
  const low = durationMs(min);
  const high = durationMs(max);
  if (low === undefined || high === undefined) throw new Error(`bad duration bounds ${min}, ${max}`);
  const perUnit = DURATION_UNITS[unit];
  return v.pipe(
    v.string(),
    v.regex(DURATION, DURATION_HINT),
    v.transform((text) => durationMs(text) as number),
    v.minValue(low, `must be at least ${min}`),
    v.maxValue(high, `must be at most ${max}`),
    v.check((ms) => ms % perUnit === 0, 'must be a whole number of seconds'),
    v.transform((ms) => ms / perUnit),
    v.metadata({ range: { min, max } }),
  );
}

/** On or off: 1/true/yes/on or 0/false/no/off, any case; anything else is refused. */
export const Switch = v.pipe(
  v.string(),
  v.transform((text) => text.toLowerCase()),
  v.picklist(
    [...SWITCH_WORDS.on, ...SWITCH_WORDS.off],
    `expected ${SWITCH_WORDS.on.join('/')} or ${SWITCH_WORDS.off.join('/')}`,
  ),
  v.transform((word) => (SWITCH_WORDS.on as readonly string[]).includes(word)),
);

/** A whole number of at least 1. */
export const Count = v.pipe(
  v.string(),
  v.regex(/^\d{1,12}$/u, 'expected a whole number of at least 1'),
  v.transform(Number),
  v.minValue(1, 'expected a whole number of at least 1'),
);

/** A TCP port; 0 lets the system pick a free one. */
export const Port = v.pipe(
  v.string(),
  v.regex(/^\d{1,5}$/u, 'must be a whole number from 0 to 65535'),
  v.transform(Number),
  v.maxValue(65535, 'must be a whole number from 0 to 65535'),
);

/** A host name or address to bind. */
export const Host = v.pipe(v.string(), v.nonEmpty('must not be empty'), v.maxLength(255, 'is too long'));

/** One of the log levels. */
export const LogLevel = v.pipe(v.string(), v.picklist(LOG_LEVELS, `must be one of ${LOG_LEVELS.join(', ')}`));

/** Any text that is not empty: a path, a name, a secret. */
export const Text = v.pipe(v.string(), v.nonEmpty('must not be empty'));

/** A secret that signs and encrypts cookies. */
export const SessionSecret = v.pipe(
  v.string(),
  v.minLength(32, 'must be at least 32 characters (openssl rand -hex 32)'),
);

/** A URL of any scheme; which schemes are allowed depends on other settings. */
export const Url = v.pipe(
  v.string(),
  v.check((text) => URL.canParse(text), 'not a URL'),
);

/** A Redis server's URL: redis:// or rediss:// (TLS). */
export const RedisUrl = v.pipe(
  Url,
  v.check((text) => /^rediss?:$/u.test(new URL(text).protocol), 'must be a redis:// or rediss:// URL'),
);

/** localhost, [::1] or 127.x.x.x. */
export const isLoopback = (host: string): boolean =>
  host === 'localhost' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/u.test(host);

/** The origin people use (https, or http on a loopback address), without a path; the value is the origin. */
export const PublicOrigin = v.pipe(
  Url,
  v.transform((text) => new URL(text)),
  v.check(
    (url) => url.protocol === 'https:' || (url.protocol === 'http:' && isLoopback(url.hostname)),
    'must be https unless it is a loopback address',
  ),
  v.check(
    (url) => (url.pathname === '/' || url.pathname === '') && !url.search && !url.hash,
    'must be an origin such as https://room.example.com, without a path',
  ),
  v.transform((url) => url.origin),
);

/** The items of a comma-separated list, trimmed, empty ones left out. */
const commaList = (text: string): string[] =>
  text
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);

/** Web origins (http or https, no path), separated by commas; the value is each one's origin. */
export const OriginList = v.pipe(
  v.string(),
  v.transform(commaList),
  v.check(
    (items) => items.every(isOrigin),
    (issue) =>
      `${JSON.stringify((issue.input as string[]).find((item) => !isOrigin(item)))} is not an origin such as https://room.example.com`,
  ),
  v.transform((items) => items.map((item) => new URL(item).origin)),
);

function isOrigin(text: string): boolean {
  try {
    const url = new URL(text);
    return (
      (url.protocol === 'http:' || url.protocol === 'https:') &&
      (url.pathname === '/' || url.pathname === '') &&
      !url.search &&
      !url.hash &&
      !url.username
    );
  } catch {
    return false;
  }
}

/** OIDC scopes, separated by spaces or commas; openid must be one of them. */
export const Scopes = v.pipe(
  v.string(),
  v.transform((text) => text.split(/[\s,]+/u).filter(Boolean)),
  v.check((scopes) => scopes.includes('openid'), 'must include openid'),
);

const isProxyItem = (item: string): boolean => {
  if (item === 'loopback') return true;
  const [address = '', bits, extra] = item.split('/');
  const family = isIP(address);
  const maxBits = family === 4 ? 32 : 128;
  const okBits = bits === undefined || (/^\d{1,3}$/u.test(bits) && Number(bits) <= maxBits);
  return family !== 0 && okBits && extra === undefined;
};

/** Comma-separated addresses, CIDRs and "loopback"; "none" alone is the empty list. */
export const ProxyList = v.pipe(
  v.string(),
  v.transform(commaList),
  v.transform((items) => (items.length === 1 && items[0] === 'none' ? [] : items)),
  v.check(
    (items) => items.every(isProxyItem),
    (issue) =>
      `${JSON.stringify((issue.input as string[]).find((item) => !isProxyItem(item)))} is not an IP address, a CIDR, "loopback" or "none"`,
  ),
);

/** Names separated by commas, each held to the rule for names in rooms. */
export const NameList = v.pipe(
  v.string(),
  v.transform(commaList),
  v.check(
    (items) => items.every((item) => nameProblem(item) === undefined),
    (issue) => {
      const bad = (issue.input as string[]).find((item) => nameProblem(item) !== undefined) ?? '';
      return `${JSON.stringify(bad)} is not a name: it ${nameProblem(bad)}`;
    },
  ),
);

/** Whether consoles must prove a key. */
export const ConsoleAuth = v.pipe(
  v.string(),
  v.picklist(CONSOLE_AUTH_POLICIES, `must be one of ${CONSOLE_AUTH_POLICIES.join(', ')}`),
);
