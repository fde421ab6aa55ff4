// Who a request came from, believing X-Forwarded-For/-Proto only from trusted proxy addresses.
import { BlockList, isIPv4 } from 'node:net';
import type { Context } from 'hono';

/** Addresses the trust list covers. */
export function trustList(items: readonly string[]): BlockList {
  const list = new BlockList();
  for (const item of items) {
    if (item === 'loopback') {
      list.addSubnet('127.0.0.0', 8, 'ipv4');
      list.addAddress('::1', 'ipv6');
      continue;
    }
    const [address = '', bits] = item.split('/');
    const type = isIPv4(address) ? 'ipv4' : 'ipv6';
    if (bits === undefined) list.addAddress(address, type);
    else list.addSubnet(address, Number(bits), type);
  }
  return list;
}

function normalise(address: string): { address: string; type: 'ipv4' | 'ipv6' } {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/iu.exec(address);
  if (mapped?.[1]) return { address: mapped[1], type: 'ipv4' };
  return { address, type: isIPv4(address) ? 'ipv4' : 'ipv6' };
}

/** The directly connected peer of a request, as a runtime reports it. */
export type PeerOf = (c: Context) => { address: string; encrypted: boolean };

/** The client address and https-ness of requests, honouring forwarding headers from trusted proxies. */
export function clientInfo(trusted: BlockList, peer: PeerOf) {
  const isTrusted = (raw: string): boolean => {
    if (!raw) return false;
    const { address, type } = normalise(raw);
    return trusted.check(address, type);
  };
  return {
    remoteAddress(c: Context): string {
      const { address } = peer(c);
      if (!isTrusted(address)) return address;
      // Walk the chain from the nearest hop back; the first address we do not trust is the client.
      const hops = (c.req.header('x-forwarded-for') ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      for (let i = hops.length - 1; i >= 0; i--) {
        const hop = hops[i] as string;
        if (!isTrusted(hop)) return hop;
      }
      return hops[0] ?? address;
    },
    isSecure(c: Context): boolean {
      const { address, encrypted } = peer(c);
      if (encrypted) return true;
      if (!isTrusted(address)) return false;
      return c.req.header('x-forwarded-proto')?.split(',')[0]?.trim().toLowerCase() === 'https';
    },
  };
}
