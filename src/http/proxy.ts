// Who a request came from, believing X-Forwarded-For/-Proto only from trusted proxy addresses.
import { BlockList, isIPv4 } from 'node:net';
import type { Context } from 'hono';

/** An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) as the IPv4 address it is. */
function normalise(address: string): { address: string; type: 'ipv4' | 'ipv6' } {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/iu.exec(address);
  if (mapped?.[1]) return { address: mapped[1], type: 'ipv4' };
  return { address, type: isIPv4(address) ? 'ipv4' : 'ipv6' };
}

/** Whether a peer's address is a proxy whose forwarding headers are believed. */
export type Trusted = (address: string) => boolean;

/** A loopback address as Node reports one: 127.0.0.0/8, ::1, or IPv4-mapped 127.0.0.0/8. */
function isLoopback(raw: string): boolean {
  if (raw === '::1') return true;
  const v4 = raw.length > 7 && raw.slice(0, 7).toLowerCase() === '::ffff:' ? raw.slice(7) : raw;
  return v4.startsWith('127.') && isIPv4(v4);
}

/**
 * The addresses the trust list covers. `loopback` (the default) is told by the address's text; a
 * BlockList check builds an address object each time, and is asked only for the list's other items.
 * With `none` nothing is asked at all.
 */
export function trustList(items: readonly string[]): Trusted {
  const loopback = items.includes('loopback');
  const others = items.filter((item) => item !== 'loopback');
  if (others.length === 0) return loopback ? isLoopback : () => false;
  const list = new BlockList();
  for (const item of others) {
    const [address = '', bits] = item.split('/');
    const type = isIPv4(address) ? 'ipv4' : 'ipv6';
    if (bits === undefined) list.addAddress(address, type);
    else list.addSubnet(address, Number(bits), type);
  }
  return (raw) => {
    if (!raw) return false;
    if (loopback && isLoopback(raw)) return true;
    const { address, type } = normalise(raw);
    return list.check(address, type);
  };
}

/** The directly connected peer of a request, as a runtime reports it. */
export type PeerOf = (c: Context) => { address: string; encrypted: boolean };

/** A request as far as its origin is concerned: the peer it came from and its forwarding headers. */
export interface Hop {
  /** The directly connected peer's address. */
  address: string;
  /** The connection to the peer is TLS. */
  encrypted: boolean;
  /** A header of the request. */
  header(name: string): string | undefined;
}

/** The client address and https-ness of requests, honouring forwarding headers from trusted proxies. */
export function clientInfo(isTrusted: Trusted, peer: PeerOf) {
  const hop = (c: Context): Hop => ({ ...peer(c), header: (name) => c.req.header(name) });
  const of = {
    /** Whether a directly connected peer is a proxy whose forwarding headers are believed. */
    trusted: isTrusted,
    /** The client's address, from a request at any stage (before a framework has seen it, too). */
    address(request: Hop): string {
      if (!isTrusted(request.address)) return request.address;
      // Walk the chain from the nearest hop back; the first address we do not trust is the client.
      const hops = (request.header('x-forwarded-for') ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      for (let i = hops.length - 1; i >= 0; i--) {
        const h = hops[i] as string;
        if (!isTrusted(h)) return h;
      }
      return hops[0] ?? request.address;
    },
    /** Whether the client's request came over https, directly or through a trusted proxy. */
    secure(request: Hop): boolean {
      if (request.encrypted) return true;
      if (!isTrusted(request.address)) return false;
      return request.header('x-forwarded-proto')?.split(',')[0]?.trim().toLowerCase() === 'https';
    },
    remoteAddress: (c: Context): string => of.address(hop(c)),
    isSecure: (c: Context): boolean => of.secure(hop(c)),
  };
  return of;
}
