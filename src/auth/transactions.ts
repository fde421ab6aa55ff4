// Pending sign-ins between /login and /auth/callback: single use, short-lived, bounded in number.
import type { LoginTransaction } from './oidc.ts';

/** Remembers login transactions in memory under a random id that the transaction cookie carries. */
export class Transactions {
  readonly #pending = new Map<string, { tx: LoginTransaction; expires: number }>();
  readonly #ttlMs: number;
  readonly #max: number;

  constructor(ttlMs = 10 * 60_000, max = 10_000) {
    this.#ttlMs = ttlMs;
    this.#max = max;
  }

  /** Store a transaction; returns its id. The oldest is forgotten when the bound is reached. */
  put(tx: LoginTransaction): string {
    this.#expire();
    if (this.#pending.size >= this.#max) {
      const oldest = this.#pending.keys().next().value;
      if (oldest !== undefined) this.#pending.delete(oldest);
    }
    const id = crypto.randomUUID();
    this.#pending.set(id, { tx, expires: Date.now() + this.#ttlMs });
    return id;
  }

  /** Take a transaction out: a second take of the same id finds nothing. */
  take(id: string): LoginTransaction | undefined {
    const entry = this.#pending.get(id);
    this.#pending.delete(id);
    if (!entry || entry.expires < Date.now()) return undefined;
    return entry.tx;
  }

  #expire(): void {
    const now = Date.now();
    for (const [id, entry] of this.#pending) {
      if (entry.expires >= now) break; // insertion order is expiry order
      this.#pending.delete(id);
    }
  }
}
