// Which web origins may use the browser door, and which host names it answers to. Binding to loopback
// does not protect a dev-mode server from the user's own browser: any page the user visits can open
// a WebSocket to 127.0.0.1, or point a name of its own at 127.0.0.1 (DNS rebinding).

/** The browser door's origin rules. */
export interface OriginPolicy {
  /**
   * Whether a page from `origin` (the request's Origin header) may open the door. `host` is the
   * request's Host header.
   */
  allowsOrigin(origin: string | undefined, host: string | undefined): boolean;
  /** Whether a request naming `host` (its Host header) is meant for this server. */
  allowsHost(host: string | undefined): boolean;
}

/** Signed in: only pages of the public URL; whatever Host a proxy forwards. */
export function publicOriginPolicy(publicOrigin: string): OriginPolicy {
  return {
    allowsOrigin: (origin) => origin === publicOrigin,
    allowsHost: () => true,
  };
}

/** Where a dev-mode server listens, and what else it was told to allow. */
export interface DevBinding {
  /** The address the browser door binds (`--host`). */
  host: string;
  /** Its port, once listening. */
  port: () => number;
  tls: boolean;
  /** Further origins (CONSOLE_ROOM_ALLOWED_ORIGINS), such as a proxy's public one. */
  extra: readonly string[];
}

const isLoopback = (host: string): boolean =>
  host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/u.test(host);
const isWildcard = (host: string): boolean => host === '0.0.0.0' || host === '::' || host === '';
const bracket = (host: string): string => (host.includes(':') ? `[${host}]` : host);

/**
 * Dev mode: pages served by this server (its bound address and, on loopback, `localhost` and the
 * other loopback names) and the extra origins. A client that sends no Origin is not a browser and
 * cannot carry a visitor's identity, so it is let through. Bound to every interface, the server
 * cannot know its names: it takes pages whose origin is the Host they asked for.
 */
export function devOriginPolicy(binding: DevBinding): OriginPolicy {
  const scheme = binding.tls ? 'https' : 'http';
  const names = isLoopback(binding.host)
    ? ['127.0.0.1', 'localhost', '[::1]']
    : isWildcard(binding.host)
      ? []
      : [bracket(binding.host)];
  // Hosts and origins compared with their port spelled out: a browser leaves out a default one.
  const withPort = (origin: string): string => {
    const url = new URL(origin);
    return `${url.protocol}//${url.hostname}:${url.port || (url.protocol === 'https:' ? '443' : '80')}`;
  };
  const extra = binding.extra.map(withPort);
  const origins = (): Set<string> =>
    new Set([...names.map((name) => `${scheme}://${name}:${binding.port()}`), ...extra]);
  const hostnames = new Set([...names, ...binding.extra.map((origin) => new URL(origin).hostname)]);
  const known = (origin: string | undefined): string | undefined => {
    if (origin === undefined) return undefined;
    try {
      return withPort(origin);
    } catch {
      return undefined;
    }
  };
  return {
    allowsOrigin: (origin, host) => {
      if (origin === undefined) return true;
      const normal = known(origin);
      if (normal === undefined) return false;
      if (origins().has(normal)) return true;
      return isWildcard(binding.host) && host !== undefined && normal === known(`${scheme}://${host}`);
    },
    // By name only: a rebinding page brings a name of its own, and a proxy may change the port.
    allowsHost: (host) => {
      if (isWildcard(binding.host)) return true;
      if (host === undefined) return false;
      try {
        return hostnames.has(new URL(`http://${host}`).hostname);
      } catch {
        return false;
      }
    },
  };
}
