// Console identity by SSH key: enrolment, the challenge a hello with a key must answer, the policy for
// hellos without one, and closing the connections of a key removed anywhere (this server, the page,
// or `runspec-room keys remove` in another process).
import type { AuditEntry } from '../hub/admin.ts';
import type { Log } from '../log.ts';
import { ErrorCode } from '../protocol/codes.ts';
import { cleanText, SIGNATURE_NAMESPACE } from '../protocol/frames.ts';
import type { ConsoleKey, EnrolRefusal } from '../store/keys.ts';
import { parsePublicKey, type SshPublicKey, verifySshSignature } from './ssh-keys.ts';

/** Whether consoles must prove a key: never, for names that have one (default), or always. */
export const CONSOLE_AUTH_POLICIES = ['off', 'names', 'required'] as const;
export type ConsoleAuthPolicy = (typeof CONSOLE_AUTH_POLICIES)[number];

/** How long a challenge's nonce may be answered. */
export const NONCE_TTL_MS = 60_000;

/** How often the keys are checked for changes made by another process. */
export const KEY_POLL_MS = 500;

/** Longest label of a key, in characters. */
export const LABEL_MAX = 100;

/** What the keys service needs of the store. */
export interface KeyRecords {
  add(key: ConsoleKey, entry: AuditEntry): Promise<EnrolRefusal | undefined>;
  remove(fingerprint: string, entry: AuditEntry): Promise<ConsoleKey | undefined>;
  find(fingerprint: string): Promise<ConsoleKey | undefined>;
  list(user?: string): Promise<ConsoleKey[]>;
  owners(): Promise<Map<string, string>>;
  revision(): Promise<number>;
}

/** A name proven by a key. */
export interface Proven {
  user: string;
  fingerprint: string;
}

/** What became of a proof. */
export type Proof = { ok: true; proven: Proven } | { ok: false; message: string };

/** One console's challenge: its nonce may be answered once, within NONCE_TTL_MS. */
export interface Challenge {
  readonly nonce: string;
  readonly namespace: string;
  /** Milliseconds left to answer. */
  readonly expiresInMs: number;
  prove(signature: string): Promise<Proof>;
}

/** What a console's hello must do before it joins. */
export type HelloVerdict =
  | { kind: 'plain' }
  | { kind: 'refused'; code: ErrorCode; message: string }
  | { kind: 'challenge'; challenge: Challenge };

/** A joined console, as the keys service watches it. */
export interface LiveConsole {
  readonly user: string;
  /** The key it proved; undefined for a console that proved none. */
  readonly fingerprint: string | undefined;
  /** Tell it why (an opted-in console) and close it. */
  close(code: ErrorCode, message: string): void;
}

/** What the console door asks of console identity. */
export interface ConsoleIdentity {
  admit(hello: { user: string; key?: string | undefined }): HelloVerdict | Promise<HelloVerdict>;
  /** Watch a joined console; returns the function to call when it closes. */
  attach(live: LiveConsole): () => void;
}

/** What enrolling a key came to. */
export type Enrolment =
  | { ok: true; key: ConsoleKey }
  | { ok: false; reason: 'bad_key' | 'taken' | 'full'; message: string };

const encoder = new TextEncoder();

function randomNonce(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes))
    .replaceAll('+', '-')
    .replaceAll('/', '_')
    .replace(/=+$/u, '');
}

/** Console keys: enrolment, proof, policy and revocation. */
export class ConsoleKeys implements ConsoleIdentity {
  readonly #store: KeyRecords;
  readonly #policy: ConsoleAuthPolicy;
  readonly #log: Log;
  readonly #pollMs: number;
  readonly #now: () => number;
  /** Every enrolled fingerprint's name, as of `#revision`. */
  #owners = new Map<string, string>();
  /** Names with at least one key. */
  #protected = new Set<string>();
  #revision = -1;
  readonly #live = new Set<LiveConsole>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #polling: Promise<void> | undefined;

  constructor(
    store: KeyRecords,
    options: { policy: ConsoleAuthPolicy; log: Log; pollMs?: number; now?: () => number },
  ) {
    this.#store = store;
    this.#policy = options.policy;
    this.#log = options.log;
    this.#pollMs = options.pollMs ?? KEY_POLL_MS;
    this.#now = options.now ?? Date.now;
  }

  get policy(): ConsoleAuthPolicy {
    return this.#policy;
  }

  /** Load the keys and start watching them for changes. */
  async start(): Promise<void> {
    await this.refresh();
    this.#timer = setInterval(() => void this.refresh(), this.#pollMs);
    this.#timer.unref?.();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * Re-read the keys if they changed, and close the consoles they no longer let in: one whose key
   * is gone (`revoked`), one without a key whose name now has one (`auth_required`).
   */
  refresh(): Promise<void> {
    this.#polling ??= this.#refresh().finally(() => {
      this.#polling = undefined;
    });
    return this.#polling;
  }

  async #refresh(): Promise<void> {
    let revision: number;
    try {
      revision = await this.#store.revision();
      if (revision === this.#revision) return;
      this.#owners = await this.#store.owners();
    } catch (error) {
      this.#log.warn('console keys could not be read', { error: String(error) });
      return;
    }
    this.#revision = revision;
    this.#protected = new Set(this.#owners.values());
    for (const live of [...this.#live]) this.#check(live);
  }

  #check(live: LiveConsole): void {
    if (live.fingerprint !== undefined) {
      if (this.#owners.get(live.fingerprint) !== live.user) {
        this.#log.info('console closed: its key was removed', {
          user: live.user,
          fingerprint: live.fingerprint,
        });
        this.#live.delete(live);
        live.close(ErrorCode.Revoked, 'the key this connection proved was removed');
      }
      return;
    }
    if (this.#policy !== 'off' && this.#protected.has(live.user)) {
      this.#log.info('console closed: its name now has an enrolled key', { user: live.user });
      this.#live.delete(live);
      live.close(
        ErrorCode.AuthRequired,
        `the name ${live.user} now has an enrolled key; prove it with hello key`,
      );
    }
  }

  admit(hello: { user: string; key?: string | undefined }): HelloVerdict | Promise<HelloVerdict> {
    if (hello.key !== undefined) return this.#challenge(hello.key);
    if (this.#policy === 'required')
      return {
        kind: 'refused',
        code: ErrorCode.AuthRequired,
        message: 'this server lets in only consoles that prove a key: hello with "key"',
      };
    if (this.#policy === 'names' && this.#protected.has(hello.user))
      return {
        kind: 'refused',
        code: ErrorCode.AuthRequired,
        message: `the name ${hello.user} has an enrolled key: hello with "key" and prove it`,
      };
    return { kind: 'plain' };
  }

  async #challenge(text: string): Promise<HelloVerdict> {
    const parsed = await parsePublicKey(text);
    if (!parsed.ok) return { kind: 'refused', code: ErrorCode.AuthFailed, message: `key: ${parsed.message}` };
    const key = parsed.key;
    let enrolled: ConsoleKey | undefined;
    try {
      enrolled = await this.#store.find(key.fingerprint);
    } catch (error) {
      this.#log.warn('console keys could not be read', { error: String(error) });
      return { kind: 'refused', code: ErrorCode.StoreUnavailable, message: 'the keys could not be read' };
    }
    if (!enrolled)
      return {
        kind: 'refused',
        code: ErrorCode.AuthFailed,
        message: `the key ${key.fingerprint} is not enrolled (runspec-room keys add, or the page's Console keys)`,
      };
    return { kind: 'challenge', challenge: this.#newChallenge(key) };
  }

  #newChallenge(key: SshPublicKey): Challenge {
    const nonce = randomNonce();
    const expiresAt = this.#now() + NONCE_TTL_MS;
    let used = false;
    const now = this.#now;
    const store = this.#store;
    return {
      nonce,
      namespace: SIGNATURE_NAMESPACE,
      get expiresInMs() {
        return Math.max(0, expiresAt - now());
      },
      prove: async (signature) => {
        if (used) return { ok: false, message: 'this challenge was answered already' };
        used = true;
        if (now() > expiresAt) return { ok: false, message: 'the challenge expired; say hello again' };
        // A file holding the nonce, as `ssh-keygen -Y sign` signs it; also with the newline `echo` adds.
        const verified = await verifySshSignature(signature, key, SIGNATURE_NAMESPACE, [
          encoder.encode(nonce),
          encoder.encode(`${nonce}\n`),
        ]);
        if (!verified.ok) return { ok: false, message: verified.message };
        // Removed while the console was signing.
        const still = await store.find(key.fingerprint);
        if (!still) return { ok: false, message: `the key ${key.fingerprint} is not enrolled` };
        return { ok: true, proven: { user: still.user, fingerprint: key.fingerprint } };
      },
    };
  }

  attach(live: LiveConsole): () => void {
    this.#live.add(live);
    if (live.fingerprint !== undefined && this.#owners.get(live.fingerprint) !== live.user) {
      // A key enrolled since the last look (its proof read it from the store): look again, after any
      // look already under way, which may have read the keys before it.
      void (this.#polling ?? Promise.resolve()).then(() => this.refresh());
    } else this.#check(live);
    return () => {
      this.#live.delete(live);
    };
  }

  /** Enrol a key for `user`. */
  async enrol(user: string, text: string, label: string, entry: AuditEntry): Promise<Enrolment> {
    const parsed = await parsePublicKey(text);
    if (!parsed.ok) return { ok: false, reason: 'bad_key', message: parsed.message };
    const { key } = parsed;
    const clean = cleanText(label).trim() || key.comment;
    if ([...clean].length > LABEL_MAX)
      return { ok: false, reason: 'bad_key', message: `label must be at most ${LABEL_MAX} characters` };
    const record: ConsoleKey = {
      fingerprint: key.fingerprint,
      user,
      algorithm: key.algorithm,
      publicKey: key.text,
      label: clean,
      createdAt: Math.floor(this.#now() / 1000),
      createdBy: entry.actor,
    };
    const refused = await this.#store.add(record, {
      ...entry,
      action: 'key_add',
      user,
      fingerprint: key.fingerprint,
    });
    if (refused && 'taken' in refused)
      return {
        ok: false,
        reason: 'taken',
        message:
          refused.taken === user
            ? `the key ${key.fingerprint} is enrolled for ${user} already`
            : `the key ${key.fingerprint} is enrolled for another name`,
      };
    if (refused)
      return { ok: false, reason: 'full', message: `${user} has as many keys as one name may have` };
    await this.refresh();
    return { ok: true, key: record };
  }

  /**
   * Remove a key (only one of `owner`'s, when given) and close its connections at once. The removed
   * key, or undefined when there was none.
   */
  async remove(fingerprint: string, entry: AuditEntry, owner?: string): Promise<ConsoleKey | undefined> {
    if (owner !== undefined && (await this.#store.find(fingerprint))?.user !== owner) return undefined;
    const removed = await this.#store.remove(fingerprint, { ...entry, fingerprint });
    if (removed) await this.refresh();
    return removed;
  }

  /** An admin's `revoke`: remove the key whoever holds it. */
  readonly revoke = async (fingerprint: string, entry: AuditEntry): Promise<boolean> =>
    (await this.remove(fingerprint, entry)) !== undefined;

  /** The keys of one name. */
  list(user: string): Promise<ConsoleKey[]> {
    return this.#store.list(user);
  }
}
