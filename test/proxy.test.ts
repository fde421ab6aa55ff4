// Forwarding headers are believed only from trusted proxies.
import type { Context } from 'hono';
import { describe, expect, it } from 'vitest';
import { clientInfo, type PeerOf, trustList } from '../src/http/proxy.ts';

function ctx(remoteAddress: string, headers: Record<string, string>, encrypted = false): Context {
  return {
    env: { remoteAddress, encrypted },
    req: { header: (name: string) => headers[name.toLowerCase()] },
  } as unknown as Context;
}

/** The peer as a runtime would report it; here the test context carries it. */
const peer: PeerOf = (c) => {
  const env = c.env as { remoteAddress: string; encrypted: boolean };
  return { address: env.remoteAddress, encrypted: env.encrypted };
};

describe('trusted proxies', () => {
  const loopback = clientInfo(trustList(['loopback']), peer);

  it('takes the client address from X-Forwarded-For when the peer is a trusted proxy', () => {
    expect(loopback.remoteAddress(ctx('127.0.0.1', { 'x-forwarded-for': '203.0.113.7' }))).toBe(
      '203.0.113.7',
    );
    expect(loopback.remoteAddress(ctx('::ffff:127.0.0.1', { 'x-forwarded-for': '203.0.113.7' }))).toBe(
      '203.0.113.7',
    );
    expect(loopback.remoteAddress(ctx('::1', { 'x-forwarded-for': '2001:db8::1' }))).toBe('2001:db8::1');
  });

  it('ignores X-Forwarded-For and -Proto from anyone else', () => {
    const spoof = ctx('198.51.100.9', { 'x-forwarded-for': '10.0.0.1', 'x-forwarded-proto': 'https' });
    expect(loopback.remoteAddress(spoof)).toBe('198.51.100.9');
    expect(loopback.isSecure(spoof)).toBe(false);
  });

  it('skips trusted hops and a client-supplied prefix: the first untrusted hop from the right is the client', () => {
    const chain = clientInfo(trustList(['loopback', '10.0.0.0/8']), peer);
    const c = ctx('127.0.0.1', { 'x-forwarded-for': '6.6.6.6, 203.0.113.7, 10.1.2.3' });
    expect(chain.remoteAddress(c)).toBe('203.0.113.7');
  });

  it('believes X-Forwarded-Proto only from a trusted proxy; a TLS socket is always secure', () => {
    expect(loopback.isSecure(ctx('127.0.0.1', { 'x-forwarded-proto': 'https' }))).toBe(true);
    expect(loopback.isSecure(ctx('127.0.0.1', { 'x-forwarded-proto': 'http' }))).toBe(false);
    expect(loopback.isSecure(ctx('198.51.100.9', {}, true))).toBe(true);
  });

  it('trusts loopback as Node writes it, and nothing that only looks like it', () => {
    for (const address of ['127.0.0.1', '127.8.9.10', '::1', '::ffff:127.0.0.1', '::FFFF:127.0.0.1'])
      expect(loopback.remoteAddress(ctx(address, { 'x-forwarded-for': '203.0.113.7' })), address).toBe(
        '203.0.113.7',
      );
    for (const address of [
      '128.0.0.1',
      '127.0.0.256',
      '127.0.0',
      '::2',
      '::ffff:128.0.0.1',
      '1127.0.0.1',
      '',
    ])
      expect(loopback.remoteAddress(ctx(address, { 'x-forwarded-for': '203.0.113.7' })), address).toBe(
        address,
      );
  });

  it('trusts nobody with "none"', () => {
    const none = clientInfo(trustList([]), peer);
    expect(none.remoteAddress(ctx('127.0.0.1', { 'x-forwarded-for': '203.0.113.7' }))).toBe('127.0.0.1');
  });
});
