// A minimal browser stand-in for tests: https requests with a CA, a cookie jar, manual redirects.
import { request } from 'node:https';

/** One response, body read as text. */
export interface JarResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  location: string | undefined;
  body: string;
  url: URL;
}

/** Cookies per host name (as browsers do, ports do not separate them). */
export class CookieJar {
  readonly cookies = new Map<string, Map<string, string>>();
  readonly #ca: Buffer;

  constructor(ca: Buffer) {
    this.#ca = ca;
  }

  /** The Cookie header this jar sends to `url`. */
  header(url: URL): string {
    return [...(this.cookies.get(url.hostname) ?? new Map<string, string>())]
      .map(([k, v]) => `${k}=${v}`)
      .join('; ');
  }

  get(url: URL, name: string): string | undefined {
    return this.cookies.get(url.hostname)?.get(name);
  }

  set(url: URL, name: string, value: string | undefined): void {
    let host = this.cookies.get(url.hostname);
    if (!host) {
      host = new Map();
      this.cookies.set(url.hostname, host);
    }
    if (value === undefined) host.delete(name);
    else host.set(name, value);
  }

  /** One request, no redirect following. */
  fetch(
    target: string | URL,
    init: { method?: string; headers?: Record<string, string>; body?: string; forgedHost?: boolean } = {},
  ): Promise<JarResponse> {
    const url = new URL(target);
    const headers: Record<string, string> = { ...init.headers };
    const cookie = this.header(url);
    if (cookie) headers.cookie = cookie;
    return new Promise((resolve, reject) => {
      // A forged Host header would also become the name the certificate is checked against.
      const identity = init.forgedHost ? { checkServerIdentity: () => undefined } : {};
      const req = request(
        url,
        { method: init.method ?? 'GET', headers, ca: this.#ca, ...identity },
        (res) => {
          for (const line of res.headers['set-cookie'] ?? []) this.#store(url, line);
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            body += chunk;
          });
          res.on('end', () => {
            const location = res.headers.location ? new URL(res.headers.location, url).href : undefined;
            resolve({ status: res.statusCode ?? 0, headers: res.headers, location, body, url });
          });
        },
      );
      req.on('error', reject);
      req.end(init.body);
    });
  }

  /** GET and follow redirects; returns every response on the way, the last one last. */
  async follow(target: string | URL, max = 20): Promise<JarResponse[]> {
    const chain: JarResponse[] = [];
    let next: string | undefined = new URL(target).href;
    while (next && chain.length < max) {
      const res = await this.fetch(next);
      chain.push(res);
      next = res.status >= 300 && res.status < 400 ? res.location : undefined;
    }
    return chain;
  }

  #store(url: URL, line: string): void {
    const [pair = '', ...attributes] = line.split(';').map((s) => s.trim());
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    const expired = attributes.some(
      (a) => /^max-age=0$/iu.test(a) || (/^expires=/iu.test(a) && Date.parse(a.slice(8)) < Date.now()),
    );
    this.set(url, name, expired || value === '' ? undefined : value);
  }
}
