// What a runtime's browser door takes and gives: shared by the Node and Deno web doors and the server.
import type { Limits } from './config.ts';
import type { AuthDeps } from './http/auth.ts';
import type { Hub } from './hub/hub.ts';
import type { Log } from './log.ts';

/** Browser door settings. */
export interface WebOptions {
  hub: Hub;
  log: Log;
  host: string;
  port: number;
  checkDatabase: () => Promise<void>;
  /** PEM certificate and key: serve https and wss. */
  tls?: { cert: Buffer; key: Buffer } | undefined;
  /** Proxy addresses whose forwarding headers are believed. */
  trustProxy: readonly string[];
  auth?: AuthDeps | undefined;
  limits: Limits;
}

/** A listening browser door. */
export interface WebDoor {
  readonly url: string;
  /** Stop accepting connections and requests. */
  stopAccepting(): void;
  /** Close whatever is still open (keep-alive HTTP, unfinished WebSockets). */
  destroyAll(): void;
}
