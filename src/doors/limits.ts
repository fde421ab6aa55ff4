// Connection counting per door and per client address, for clean refusals at the limits.

/**
 * Connections per key on the other nodes of a cluster, so a per-key limit holds for the cluster: each
 * node records how many it holds, and an admission claims its place in one step against the others.
 */
export interface SharedCounts {
  /**
   * Record that this node holds `count` connections from `key` (the new one included) if the other
   * live nodes then hold at most `limit - count`; whether it was recorded. One step: two nodes
   * claiming the last place at the same instant cannot both have it. True when the others cannot be
   * asked in time (each node then counts its own).
   */
  claim(key: string, count: number, limit: number): Promise<boolean>;
  /** This node now holds `count` connections from `key`. */
  set(key: string, count: number): void;
}

/**
 * Connections the browser door holds besides its WebSockets: pages, API requests, and connections
 * not yet at a request or an upgrade. With the WebSocket limit this bounds the door's descriptors,
 * so a flood of bare connections cannot use up the process's and lock the console door out too.
 */
export const PAGE_CONNECTIONS = 1024;

/** The most connections the browser door holds at once; more are closed as they come. */
export const browserConnectionCap = (limits: { maxBrowsers: number }): number =>
  limits.maxBrowsers + PAGE_CONNECTIONS;

/**
 * The most connections one directly connected address (not a trusted proxy) may hold open that are
 * not WebSockets: waiting for their first request (over TLS from connecting, through the handshake),
 * in a request, or kept alive between requests. Its WebSockets' limit, and at least 64, so a
 * browser's parallel page loads behind one address always fit; at the limit its idle kept-alive
 * connections make room for new ones. One address can then hold neither the descriptors nor the
 * door's capacity, with bare connections or with requests that keep them alive.
 */
export const connectionsPerAddress = (limits: { maxBrowsersPerIp: number }): number =>
  Math.max(limits.maxBrowsersPerIp, 64);

/**
 * The key a client address is counted under by the per-address limits. An IPv6 client holds a whole
 * /64 (a home, an office, a phone), as an IPv4 client holds one address behind its NAT: counted by the
 * exact address, it could open the limit's worth from each of 2^64. So an IPv6 address counts with
 * its /64 (`2001:db8:1:2::/64`); one that carries an IPv4 client's address (IPv4-mapped
 * `::ffff:203.0.113.7`, or translated `64:ff9b::203.0.113.7`) as that IPv4 address; a port that a
 * proxy wrote after the address (`203.0.113.7:51234`, `[2001:db8::1]:443`) is not part of it; and
 * anything else counts as it is written.
 */
export function addressGroup(address: string): string {
  const withPort = IPV4_PORT.exec(address) ?? IPV6_PORT.exec(address);
  const host = withPort?.[1] ?? address;
  if (!host.includes(':')) return host;
  const hextets = ipv6Hextets(host);
  if (!hextets) return address;
  const [a = 0, b = 0, c = 0, d = 0, e = 0, f = 0, g = 0, h = 0] = hextets;
  const zeros = c === 0 && d === 0 && e === 0;
  const mapped = a === 0 && b === 0 && zeros && f === 0xffff;
  const translated = a === 0x64 && b === 0xff9b && zeros && f === 0;
  if (mapped || translated) {
    return `${g >> 8}.${g & 0xff}.${h >> 8}.${h & 0xff}`;
  }
  return `${ipv6Text([a, b, c, d, 0, 0, 0, 0])}/64`;
}

/** Eight groups as IPv6 text, the longest run of two or more zero groups written `::` (RFC 5952). */
function ipv6Text(hextets: readonly number[]): string {
  let start = -1;
  let length = 1;
  for (let i = 0; i < hextets.length; i++) {
    let j = i;
    while (j < hextets.length && hextets[j] === 0) j++;
    if (j - i > length) [start, length] = [i, j - i];
    i = j;
  }
  const text = (from: number, to: number): string =>
    hextets
      .slice(from, to)
      .map((x) => x.toString(16))
      .join(':');
  return start < 0 ? text(0, 8) : `${text(0, start)}::${text(start + length, 8)}`;
}

const IPV4_PORT = /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/u;
const IPV6_PORT = /^\[([0-9A-Fa-f:.]+)\]:\d{1,5}$/u;
const HEXTET = /^[0-9a-f]{1,4}$/iu;
const DOTTED = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/u;

/** An IPv6 address's eight 16-bit groups (zone and brackets dropped), or undefined if it is not one. */
function ipv6Hextets(address: string): number[] | undefined {
  let text = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (half: string | undefined): string[] => (half ? half.split(':') : []);
  const head = groups(halves[0]);
  const tail = groups(halves[1]);
  // A trailing dotted IPv4 address is the last two groups.
  const last = halves.length === 2 ? tail : head;
  const dotted = DOTTED.exec(last.at(-1) ?? '');
  if (dotted) {
    const octets = dotted.slice(1).map(Number);
    if (octets.some((o) => o > 255)) return undefined;
    const [p = 0, q = 0, r = 0, s = 0] = octets;
    last.splice(-1, 1, ((p << 8) | q).toString(16), ((r << 8) | s).toString(16));
  }
  const given = head.length + tail.length;
  if (halves.length === 2 ? given > 7 : given !== 8) return undefined;
  if (![...head, ...tail].every((x) => HEXTET.test(x))) return undefined;
  const parse = (x: string): number => Number.parseInt(x, 16);
  return [...head.map(parse), ...new Array<number>(8 - given).fill(0), ...tail.map(parse)];
}

/** A counted connection's release, or why it was not counted. */
export type Acquired = (() => void) | 'total' | 'per_key';

/** Counts open connections in total and per key (a client address). */
export class ConnectionLimit {
  readonly #maxTotal: number;
  readonly #maxPerKey: number;
  readonly #perKey = new Map<string, number>();
  readonly #shared: SharedCounts | undefined;
  #total = 0;

  constructor(maxTotal: number, maxPerKey = Number.POSITIVE_INFINITY, shared?: SharedCounts) {
    this.#maxTotal = maxTotal;
    this.#maxPerKey = maxPerKey;
    this.#shared = Number.isFinite(maxPerKey) ? shared : undefined;
  }

  /**
   * Count a connection from `key`, with the other nodes' connections from it counted against the
   * per-key limit (a cluster): its release, or why it was refused. It is counted here before the
   * cluster is asked, so admissions on this node at the same time count each other too.
   */
  acquireShared(key: string): Acquired | Promise<Acquired> {
    const why = this.why(key);
    if (why) return why;
    const count = this.#count(key);
    const release = this.#releaseOf(key);
    // Alone, the answer is known at once.
    if (!this.#shared) return release;
    // Any answer but a refusal admits: with Redis away each node counts its own.
    return this.#shared.claim(key, count, this.#maxPerKey).then(
      (admitted) => {
        if (admitted) return release;
        release();
        return 'per_key';
      },
      () => release,
    );
  }

  /** Whether one more connection from `key` would be within the limits (checked before an upgrade). */
  why(key: string): 'total' | 'per_key' | undefined {
    if (this.#total >= this.#maxTotal) return 'total';
    if ((this.#perKey.get(key) ?? 0) >= this.#maxPerKey) return 'per_key';
    return undefined;
  }

  /** Gives back one counted connection, once however often it is called. */
  #releaseOf(key: string): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.give(key);
    };
  }

  /** Count a connection if the limits allow it; whether they did. Each take is given back once. */
  take(key: string): boolean {
    if (this.why(key)) return false;
    // Counted apart from the call: `shared?.set(key, count(key))` would skip the count without a cluster.
    const count = this.#count(key);
    this.#shared?.set(key, count);
    return true;
  }

  /** One more connection from `key`, counted here; how many there are now. */
  #count(key: string): number {
    this.#total += 1;
    const count = (this.#perKey.get(key) ?? 0) + 1;
    this.#perKey.set(key, count);
    return count;
  }

  /** Give back what one take counted. */
  give(key: string): void {
    this.#total -= 1;
    const left = (this.#perKey.get(key) ?? 1) - 1;
    if (left === 0) this.#perKey.delete(key);
    else this.#perKey.set(key, left);
    this.#shared?.set(key, left);
  }
}
