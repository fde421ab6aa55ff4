// The sealed login cookie and the memory of used sign-ins, without a server.
import { describe, expect, it } from 'vitest';
import { LoginSealer, stateHash, UsedLogins } from '../src/auth/login-cookie.ts';
import { Oidc } from '../src/auth/oidc.ts';

const SECRET = 'k'.repeat(40);

describe('the login cookie', () => {
  it('opens to the transaction it sealed, and shows nothing of it', async () => {
    const tx = { ...Oidc.newTransaction('/?room=ops'), expires: Date.now() + 600_000 };
    const sealer = new LoginSealer(SECRET);
    const value = await sealer.seal(tx);
    expect(value).toMatch(/^[A-Za-z0-9_-]+$/u);
    const plain = Buffer.from(value, 'base64url').toString('latin1');
    for (const part of [tx.state, tx.nonce, tx.verifier, 'room=ops']) expect(plain).not.toContain(part);
    expect(await sealer.open(value)).toEqual(tx);
    expect(await new LoginSealer(SECRET).open(value)).toEqual(tx);
  });

  it('seals the same transaction differently each time', async () => {
    const tx = { ...Oidc.newTransaction('/'), expires: Date.now() + 600_000 };
    const sealer = new LoginSealer(SECRET);
    expect(await sealer.seal(tx)).not.toBe(await sealer.seal(tx));
  });

  it('does not open under another secret, changed by one character, cut short, or made up', async () => {
    const tx = { ...Oidc.newTransaction('/'), expires: Date.now() + 600_000 };
    const value = await new LoginSealer(SECRET).seal(tx);
    const sealer = new LoginSealer(SECRET);
    expect(await new LoginSealer('j'.repeat(40)).open(value)).toBeUndefined();
    for (let i = 0; i < value.length; i += 7) {
      const changed = `${value.slice(0, i)}${value[i] === 'A' ? 'B' : 'A'}${value.slice(i + 1)}`;
      expect(await sealer.open(changed)).toBeUndefined();
    }
    for (const bad of [value.slice(0, -1), value.slice(0, 16), '', '%%%', 'a.b', 'A'.repeat(200)]) {
      expect(await sealer.open(bad)).toBeUndefined();
    }
  });

  it('names cookies by a hash of the state that does not show the state', async () => {
    const { state } = Oidc.newTransaction('/');
    const hash = await stateHash(state);
    expect(hash).toMatch(/^[A-Za-z0-9_-]{43}$/u);
    expect(hash).not.toContain(state.slice(0, 8));
    expect(await stateHash(state)).toBe(hash);
    expect(await stateHash(`${state}x`)).not.toBe(hash);
  });
});

describe('used sign-ins', () => {
  it('takes a sign-in once', () => {
    const used = new UsedLogins();
    const until = Date.now() + 600_000;
    expect(used.claim('a', until)).toBe(true);
    expect(used.claim('a', until)).toBe(false);
    expect(used.claim('b', until)).toBe(true);
  });

  it('forgets sign-ins once they have expired', () => {
    const used = new UsedLogins();
    const now = Date.now();
    used.claim('a', now + 1000, now);
    used.claim('b', now + 2000, now);
    expect(used.claim('c', now + 600_000, now + 1500)).toBe(true);
    expect(used.size).toBe(2);
  });

  it('remembers at most its bound, forgetting the oldest', () => {
    const used = new UsedLogins(3);
    const until = Date.now() + 600_000;
    for (const key of ['a', 'b', 'c', 'd']) expect(used.claim(key, until)).toBe(true);
    expect(used.size).toBe(3);
    expect(used.claim('d', until)).toBe(false);
    expect(used.claim('a', until)).toBe(true);
  });
});
