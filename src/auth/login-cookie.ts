// Login transactions sealed for the browser to carry (AES-GCM, key from the session secret by HKDF), and the ones already used.
import * as v from 'valibot';
import type { LoginTransaction } from './oidc.ts';

/** A login transaction with the time (ms since the epoch) after which its callback is refused. */
export type SealedTransaction = LoginTransaction & { expires: number };

const Sealed = v.object({
  state: v.string(),
  nonce: v.string(),
  verifier: v.string(),
  returnTo: v.string(),
  expires: v.number(),
});

const IV_BYTES = 12;
const encoder = new TextEncoder();

function toBase64Url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes))
    .replaceAll('+', '-')
    .replaceAll('/', '_')
    .replace(/=+$/u, '');
}

function fromBase64Url(text: string): Uint8Array<ArrayBuffer> | undefined {
  if (!/^[A-Za-z0-9_-]+$/u.test(text)) return undefined;
  try {
    return Uint8Array.from(atob(text.replaceAll('-', '+').replaceAll('_', '/')), (ch) => ch.charCodeAt(0));
  } catch {
    return undefined;
  }
}

/** SHA-256 of a transaction's state, base64url: names its cookie and marks it used. */
export async function stateHash(state: string): Promise<string> {
  return toBase64Url(new Uint8Array(await crypto.subtle.digest('SHA-256', encoder.encode(state))));
}

/**
 * Seals login transactions into a cookie value and opens them again. AES-GCM both hides the PKCE
 * verifier and authenticates the whole value, so a changed or foreign cookie does not open.
 */
export class LoginSealer {
  readonly #key: Promise<CryptoKey>;

  constructor(secret: string) {
    this.#key = crypto.subtle
      .importKey('raw', encoder.encode(secret), 'HKDF', false, ['deriveKey'])
      .then((base) =>
        crypto.subtle.deriveKey(
          {
            name: 'HKDF',
            hash: 'SHA-256',
            salt: new Uint8Array(0),
            info: encoder.encode('runspec-room login transaction v1'),
          },
          base,
          { name: 'AES-GCM', length: 256 },
          false,
          ['encrypt', 'decrypt'],
        ),
      );
  }

  /** The cookie value for a transaction: base64url of IV and ciphertext. */
  async seal(tx: SealedTransaction): Promise<string> {
    const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
    const { state, nonce, verifier, returnTo, expires } = tx;
    const plain = encoder.encode(JSON.stringify({ state, nonce, verifier, returnTo, expires }));
    const sealed = new Uint8Array(
      await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, await this.#key, plain),
    );
    const out = new Uint8Array(IV_BYTES + sealed.length);
    out.set(iv);
    out.set(sealed, IV_BYTES);
    return toBase64Url(out);
  }

  /** The transaction in a cookie value, or undefined when it was not sealed with this secret. Expiry is not checked. */
  async open(value: string): Promise<SealedTransaction | undefined> {
    const bytes = fromBase64Url(value);
    if (!bytes || bytes.length <= IV_BYTES) return undefined;
    try {
      const plain = await crypto.subtle.decrypt(
        { name: 'AES-GCM', iv: bytes.subarray(0, IV_BYTES) },
        await this.#key,
        bytes.subarray(IV_BYTES),
      );
      const parsed = v.safeParse(Sealed, JSON.parse(new TextDecoder().decode(plain)));
      return parsed.success ? parsed.output : undefined;
    } catch {
      return undefined;
    }
  }
}

/**
 * The login transactions whose callback was taken, until they expire, so a replayed callback fails
 * here and not only at the provider. Bounded: past `max` the oldest are forgotten, which leaves
 * their replay to the provider's single-use code and never refuses anyone's first callback.
 */
export class UsedLogins {
  readonly #used = new Map<string, number>();
  readonly #max: number;

  constructor(max = 10_000) {
    this.#max = max;
  }

  /** Mark a transaction (by its state hash) used; false if it already was. */
  claim(hash: string, expires: number, now = Date.now()): boolean {
    for (const [key, until] of this.#used) {
      if (until > now) break; // claimed in about the order they expire
      this.#used.delete(key);
    }
    if (this.#used.has(hash)) return false;
    if (this.#used.size >= this.#max) {
      const oldest = this.#used.keys().next().value;
      if (oldest !== undefined) this.#used.delete(oldest);
    }
    this.#used.set(hash, expires);
    return true;
  }

  /** How many are remembered. */
  get size(): number {
    return this.#used.size;
  }
}
