// Console keys: OpenSSH public keys parsed and SSHSIG signatures checked against the real ssh-keygen and ssh-agent (and on Deno).
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes, sign as rsaSign } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePublicKey, type SshPublicKey, verifySshSignature } from '../src/auth/ssh-keys.ts';
import { findDeno, ROOT, requireUnderCi, runProcess } from './helpers/process.ts';
import { tempDir } from './helpers/server.ts';

const run = promisify(execFile);
const NAMESPACE = 'runspec-room';

const onPath = (command: string) =>
  (process.env.PATH ?? '').split(delimiter).some((d) => d !== '' && existsSync(join(d, command)));
const haveOpenSsh = ['ssh-keygen', 'ssh-agent', 'ssh-add'].every(onPath);
requireUnderCi(
  'OpenSSH key',
  haveOpenSsh,
  'ssh-keygen, ssh-agent and ssh-add must be on PATH (openssh-client)',
);
const deno = haveOpenSsh ? findDeno() : undefined;
requireUnderCi(
  'Deno',
  deno !== undefined,
  'no Deno binary was found: run scripts/install-deno.sh or set DENO_BIN',
);

const KINDS = [
  { name: 'ed25519', algorithm: 'ssh-ed25519', args: ['-t', 'ed25519'] },
  { name: 'ecdsa-256', algorithm: 'ecdsa-sha2-nistp256', args: ['-t', 'ecdsa', '-b', '256'] },
  { name: 'ecdsa-384', algorithm: 'ecdsa-sha2-nistp384', args: ['-t', 'ecdsa', '-b', '384'] },
  { name: 'ecdsa-521', algorithm: 'ecdsa-sha2-nistp521', args: ['-t', 'ecdsa', '-b', '521'] },
  { name: 'rsa-3072', algorithm: 'ssh-rsa', args: ['-t', 'rsa', '-b', '3072'] },
] as const;
type Kind = (typeof KINDS)[number];

let dir: string;
let cleanup: () => Promise<void>;
let files = 0;

/** A fresh nonce as the server would send it: 32 random bytes, base64url. */
const nonce = () => new TextEncoder().encode(randomBytes(32).toString('base64url'));
const bytes = (text: string) => new TextEncoder().encode(text);

/** `ssh-keygen -q … -N '' -f DIR/name`: the private key's path (its public key is beside it, .pub). */
async function keygen(name: string, args: readonly string[], comment = `${name}@console`): Promise<string> {
  const path = join(dir, name);
  await run('ssh-keygen', ['-q', ...args, '-N', '', '-C', comment, '-f', path]);
  return path;
}

/** The .pub line of a key, parsed (the test fails if it does not parse). */
async function enrolled(keyPath: string): Promise<SshPublicKey> {
  const parsed = await parsePublicKey(await readFile(`${keyPath}.pub`, 'utf8'));
  if (!parsed.ok) throw new Error(`${keyPath}.pub did not parse: ${parsed.message}`);
  return parsed.key;
}

/** `ssh-keygen -Y sign` of a file holding exactly `message`: the armored signature it writes. */
async function sshSign(
  keyPath: string,
  message: Uint8Array,
  options: { namespace?: string; extra?: string[]; env?: Record<string, string> } = {},
): Promise<string> {
  const file = join(dir, `message-${files++}`);
  await writeFile(file, message);
  await run(
    'ssh-keygen',
    ['-Y', 'sign', '-n', options.namespace ?? NAMESPACE, '-f', keyPath, ...(options.extra ?? []), file],
    { env: { ...process.env, ...options.env } },
  );
  return readFile(`${file}.sig`, 'utf8');
}

/** A real ssh-agent holding the key, which is then deleted from disk: only the agent can sign with it. */
async function withAgent<T>(keyPath: string, use: (env: Record<string, string>) => Promise<T>): Promise<T> {
  const sock = join(dir, `agent-${files++}.sock`);
  const agent: ChildProcess = spawn('ssh-agent', ['-D', '-a', sock], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => agent.once('exit', () => resolve()));
  try {
    // The agent prints where it listens once the socket is bound.
    await new Promise<void>((resolve, reject) => {
      let out = '';
      agent.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('SSH_AUTH_SOCK=')) resolve();
      });
      agent.once('exit', (code) => reject(new Error(`ssh-agent exited ${code}`)));
    });
    const env = { SSH_AUTH_SOCK: sock };
    await run('ssh-add', ['-q', keyPath], { env: { ...process.env, ...env } });
    await rm(keyPath);
    expect(existsSync(keyPath)).toBe(false);
    return await use(env);
  } finally {
    agent.kill();
    await exited;
  }
}

/** The binary SSHSIG inside an armored signature. */
function unarmor(armored: string): Buffer {
  const body = armored
    .replace('-----BEGIN SSH SIGNATURE-----', '')
    .replace('-----END SSH SIGNATURE-----', '');
  return Buffer.from(body.replace(/\s+/gu, ''), 'base64');
}

/** An SSHSIG armored as ssh-keygen does (70 columns). */
function armor(blob: Uint8Array): string {
  const lines =
    Buffer.from(blob)
      .toString('base64')
      .match(/.{1,70}/gu) ?? [];
  return ['-----BEGIN SSH SIGNATURE-----', ...lines, '-----END SSH SIGNATURE-----', ''].join('\n');
}

/** An SSH wire string: uint32 length, then the bytes. */
const wire = (data: Uint8Array | string) => {
  const body = Buffer.from(data);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length);
  return Buffer.concat([length, body]);
};

/** The fields of an SSHSIG blob after its magic and version. */
function sshsigFields(blob: Buffer): {
  publicKey: Buffer;
  namespace: Buffer;
  hash: Buffer;
  signature: Buffer;
} {
  let at = 10;
  const next = () => {
    const length = blob.readUInt32BE(at);
    const value = blob.subarray(at + 4, at + 4 + length);
    at += 4 + length;
    return value;
  };
  const publicKey = next();
  const namespace = next();
  next();
  const hash = next();
  const signature = next();
  return { publicKey, namespace, hash, signature };
}

/** An SSHSIG blob (version 1, empty reserved field) from its fields. */
function sshsig(fields: { publicKey: Uint8Array; namespace: string; hash: string; signature: Uint8Array }) {
  return Buffer.concat([
    Buffer.from('SSHSIG'),
    Buffer.from([0, 0, 0, 1]),
    wire(fields.publicKey),
    wire(fields.namespace),
    wire(''),
    wire(fields.hash),
    wire(fields.signature),
  ]);
}

/** A .pub line written by hand: any type in front of any key blob. */
function pubLine(type: string, blob: Uint8Array, comment = ''): string {
  return `${type} ${Buffer.from(blob).toString('base64')}${comment ? ` ${comment}` : ''}`;
}

describe.skipIf(!haveOpenSsh)('console keys and their signatures', () => {
  const keys = new Map<string, string>();

  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir());
    await Promise.all(
      KINDS.flatMap((kind) =>
        ['', '-other', '-agent'].map(async (suffix) => {
          keys.set(`${kind.name}${suffix}`, await keygen(`${kind.name}${suffix}`, kind.args));
        }),
      ),
    );
  }, 120_000);

  afterAll(async () => {
    await cleanup?.();
  });

  const key = (name: string) => keys.get(name) as string;

  describe.each(KINDS)('with a $name key', (kind: Kind) => {
    it('parses the .pub line to the fingerprint, size and comment ssh-keygen shows', async () => {
      const pub = await readFile(`${key(kind.name)}.pub`, 'utf8');
      const parsed = await parsePublicKey(pub);
      expect(parsed.ok).toBe(true);
      if (!parsed.ok) return;
      const { stdout } = await run('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${key(kind.name)}.pub`]);
      const [bits, fingerprint] = stdout.trim().split(/\s+/u);
      expect(parsed.key.fingerprint).toBe(fingerprint);
      expect(parsed.key.fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/u);
      expect(parsed.key.bits).toBe(Number(bits));
      expect(parsed.key.algorithm).toBe(kind.algorithm);
      expect(parsed.key.comment).toBe(`${kind.name}@console`);
      expect(parsed.key.text).toBe(pub.trim().split(' ').slice(0, 2).join(' '));
      expect(Buffer.from(parsed.key.blob).toString('base64')).toBe(pub.split(' ')[1]);
    });

    it('a signature ssh-keygen makes over the nonce verifies', async () => {
      const n = nonce();
      const signature = await sshSign(key(kind.name), n);
      const result = await verifySshSignature(signature, await enrolled(key(kind.name)), NAMESPACE, [n]);
      expect(result).toEqual({ ok: true });
    });

    it(`a signature made by ssh-agent for an enrolled ${kind.name} key verifies`, async () => {
      const enrolledKey = await enrolled(key(`${kind.name}-agent`));
      const n = nonce();
      const signature = await withAgent(key(`${kind.name}-agent`), (env) =>
        sshSign(`${key(`${kind.name}-agent`)}.pub`, n, { env }),
      );
      expect(await verifySshSignature(signature, enrolledKey, NAMESPACE, [n])).toEqual({ ok: true });
      expect((await verifySshSignature(signature, enrolledKey, NAMESPACE, [nonce()])).ok).toBe(false);
    });

    it('a signature over another nonce does not verify', async () => {
      const signature = await sshSign(key(kind.name), nonce());
      const result = await verifySshSignature(signature, await enrolled(key(kind.name)), NAMESPACE, [
        nonce(),
      ]);
      expect(result).toMatchObject({ ok: false, message: expect.stringMatching(/does not match/u) });
    });

    it('a signature by another key does not verify, even with the enrolled key written into it', async () => {
      const n = nonce();
      const mine = await enrolled(key(kind.name));
      const theirs = await sshSign(key(`${kind.name}-other`), n);
      expect(await verifySshSignature(theirs, mine, NAMESPACE, [n])).toMatchObject({
        ok: false,
        message: expect.stringMatching(/different key/u),
      });
      // Claiming to be the enrolled key leaves only the cryptography to catch it.
      const forged = armor(sshsig({ ...decoded(theirs), publicKey: mine.blob }));
      expect(await verifySshSignature(forged, mine, NAMESPACE, [n])).toMatchObject({
        ok: false,
        message: expect.stringMatching(/does not match/u),
      });
    });

    it('a signature with one bit of its value flipped does not verify', async () => {
      const n = nonce();
      const blob = unarmor(await sshSign(key(kind.name), n));
      const last = blob.length - 5;
      blob[last] = (blob[last] ?? 0) ^ 0x01;
      const result = await verifySshSignature(armor(blob), await enrolled(key(kind.name)), NAMESPACE, [n]);
      expect(result.ok).toBe(false);
    });

    it('a signature cut short anywhere does not verify', async () => {
      const n = nonce();
      const blob = unarmor(await sshSign(key(kind.name), n));
      const mine = await enrolled(key(kind.name));
      for (const length of [0, 5, 10, 40, blob.length / 2, blob.length - 20, blob.length - 1]) {
        const result = await verifySshSignature(armor(blob.subarray(0, length)), mine, NAMESPACE, [n]);
        expect(result.ok).toBe(false);
      }
    });
  });

  /** The fields of an armored signature, re-buildable with sshsig(). */
  function decoded(armored: string) {
    const f = sshsigFields(unarmor(armored));
    return {
      publicKey: f.publicKey,
      namespace: f.namespace.toString(),
      hash: f.hash.toString(),
      signature: f.signature,
    };
  }

  describe('signatures', () => {
    it('a signature made for another namespace does not verify', async () => {
      const n = nonce();
      const signature = await sshSign(key('ed25519'), n, { namespace: 'other' });
      const result = await verifySshSignature(signature, await enrolled(key('ed25519')), NAMESPACE, [n]);
      expect(result).toMatchObject({ ok: false, message: expect.stringMatching(/namespace "other"/u) });
    });

    it('a signature whose namespace was rewritten does not verify either', async () => {
      const n = nonce();
      const signature = await sshSign(key('ed25519'), n, { namespace: 'other' });
      const rewritten = armor(sshsig({ ...decoded(signature), namespace: NAMESPACE }));
      const result = await verifySshSignature(rewritten, await enrolled(key('ed25519')), NAMESPACE, [n]);
      expect(result).toMatchObject({ ok: false, message: expect.stringMatching(/does not match/u) });
    });

    it('a changed character in the armored body does not verify', async () => {
      const n = nonce();
      const signature = await sshSign(key('ecdsa-256'), n);
      const lines = signature.split('\n');
      const at = lines.length - 4;
      const line = lines[at] as string;
      lines[at] = `${line.slice(0, 10)}${line[10] === 'A' ? 'B' : 'A'}${line.slice(11)}`;
      const result = await verifySshSignature(lines.join('\n'), await enrolled(key('ecdsa-256')), NAMESPACE, [
        n,
      ]);
      expect(result.ok).toBe(false);
    });

    it('a file holding the nonce and a newline verifies only when that candidate is offered', async () => {
      const n = nonce();
      const withNewline = bytes(`${new TextDecoder().decode(n)}\n`);
      const signature = await sshSign(key('ed25519'), withNewline);
      const mine = await enrolled(key('ed25519'));
      expect((await verifySshSignature(signature, mine, NAMESPACE, [n])).ok).toBe(false);
      expect(await verifySshSignature(signature, mine, NAMESPACE, [n, withNewline])).toEqual({ ok: true });
    });

    it('a signature hashed with sha256 (-O hashalg=sha256) verifies as well as the default sha512', async () => {
      const n = nonce();
      const signature = await sshSign(key('ecdsa-384'), n, { extra: ['-O', 'hashalg=sha256'] });
      expect(decoded(signature).hash).toBe('sha256');
      expect(await verifySshSignature(signature, await enrolled(key('ecdsa-384')), NAMESPACE, [n])).toEqual({
        ok: true,
      });
    });

    it('an RSA signature over SHA-1 (ssh-rsa) is refused, though the same construction over SHA-256 verifies', async () => {
      const pem = join(dir, 'rsa-pem');
      await writeFile(pem, await readFile(key('rsa-3072')), { mode: 0o600 });
      await run('ssh-keygen', ['-q', '-p', '-m', 'PEM', '-N', '', '-P', '', '-f', pem]);
      const privateKey = await readFile(pem, 'utf8');
      const mine = await enrolled(key('rsa-3072'));
      const n = nonce();
      const signed = Buffer.concat([
        Buffer.from('SSHSIG'),
        wire(NAMESPACE),
        wire(''),
        wire('sha512'),
        wire(new Uint8Array(await crypto.subtle.digest('SHA-512', n))),
      ]);
      const forge = (format: string, hash: 'sha1' | 'sha256') =>
        armor(
          sshsig({
            publicKey: mine.blob,
            namespace: NAMESPACE,
            hash: 'sha512',
            signature: Buffer.concat([wire(format), wire(rsaSign(hash, signed, privateKey))]),
          }),
        );
      expect(await verifySshSignature(forge('rsa-sha2-256', 'sha256'), mine, NAMESPACE, [n])).toEqual({
        ok: true,
      });
      expect(await verifySshSignature(forge('ssh-rsa', 'sha1'), mine, NAMESPACE, [n])).toMatchObject({
        ok: false,
        message: expect.stringMatching(/SHA-1/u),
      });
    });

    it('garbage, an empty string, a bare armor and oversized input are refused without throwing', async () => {
      const mine = await enrolled(key('ed25519'));
      const n = nonce();
      const good = await sshSign(key('ed25519'), n);
      const inputs = [
        '',
        'hello',
        '-----BEGIN SSH SIGNATURE-----\n-----END SSH SIGNATURE-----',
        '-----BEGIN SSH SIGNATURE-----\n!!!!\n-----END SSH SIGNATURE-----',
        armor(randomBytes(300)),
        armor(Buffer.concat([Buffer.from('SSHSIG'), Buffer.from([0, 0, 0, 2])])),
        armor(Buffer.concat([Buffer.from('SSHSIG'), Buffer.from([0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff])])),
        good.replace('-----END SSH SIGNATURE-----', ''),
        `${good}x`,
        // A good signature padded past 16 KiB with blank lines inside the armor.
        good.replace('\n', `\n${' \n'.repeat(9000)}`),
      ];
      for (const input of inputs) {
        const result = await verifySshSignature(input, mine, NAMESPACE, [n]);
        expect(result.ok, input.slice(0, 80)).toBe(false);
      }
      expect(await verifySshSignature(good, mine, NAMESPACE, [])).toMatchObject({ ok: false });
      expect(await verifySshSignature(good, mine, NAMESPACE, [n])).toEqual({ ok: true });
    });

    it('a signature with bytes appended to its blob does not verify', async () => {
      const n = nonce();
      const blob = unarmor(await sshSign(key('ed25519'), n));
      const longer = armor(Buffer.concat([blob, Buffer.from([0])]));
      expect((await verifySshSignature(longer, await enrolled(key('ed25519')), NAMESPACE, [n])).ok).toBe(
        false,
      );
    });
  });

  describe('public keys', () => {
    it('a pasted line with surrounding whitespace, tabs and a long comment with control characters parses', async () => {
      const [type, data] = (await readFile(`${key('ed25519')}.pub`, 'utf8')).trim().split(' ');
      const comment = `alice\u0007 laptop\u202e\t${'x'.repeat(300)}`;
      const parsed = await parsePublicKey(`  \t${type}\t${data}   ${comment}\n`);
      expect(parsed.ok).toBe(true);
      if (!parsed.ok) return;
      expect(parsed.key.text).toBe(`${type} ${data}`);
      expect(parsed.key.comment).toMatch(/^alice laptop x+$/u);
      expect(Array.from(parsed.key.comment)).toHaveLength(256);
      const bare = await parsePublicKey(`${type} ${data}`);
      expect(bare.ok && bare.key.comment).toBe('');
    });

    it('an RSA key under 2048 bits is refused', async () => {
      const small = await keygen('rsa-1024', ['-t', 'rsa', '-b', '1024']);
      const parsed = await parsePublicKey(await readFile(`${small}.pub`, 'utf8'));
      expect(parsed).toMatchObject({ ok: false, message: 'RSA keys must be at least 2048 bits' });
    });

    it('an RSA key over 16384 bits is refused', async () => {
      const n = Buffer.concat([Buffer.from([0x00, 0x80]), Buffer.alloc(2048, 0xff)]);
      const blob = Buffer.concat([wire('ssh-rsa'), wire(Buffer.from([1, 0, 1])), wire(n)]);
      expect(await parsePublicKey(pubLine('ssh-rsa', blob))).toMatchObject({
        ok: false,
        message: 'RSA keys must be at most 16384 bits',
      });
    });

    it('ssh-dss and security-key (sk-) keys are refused as unsupported types', async () => {
      const dss = await keygen('dsa', ['-t', 'dsa']);
      expect(await parsePublicKey(await readFile(`${dss}.pub`, 'utf8'))).toMatchObject({
        ok: false,
        message: 'unsupported key type ssh-dss; use ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa',
      });
      const ed = (await enrolled(key('ed25519'))).blob.subarray(15 + 4);
      const skBlob = Buffer.concat([wire('sk-ssh-ed25519@openssh.com'), wire(ed), wire('ssh:')]);
      const sk = await parsePublicKey(pubLine('sk-ssh-ed25519@openssh.com', skBlob, 'yubikey'));
      expect(sk).toMatchObject({
        ok: false,
        message: expect.stringMatching(/^unsupported key type sk-.*FIDO/u),
      });
      const skEcdsa = await parsePublicKey('sk-ecdsa-sha2-nistp256@openssh.com AAAA');
      expect(skEcdsa).toMatchObject({ ok: false, message: expect.stringMatching(/FIDO/u) });
    });

    it('key data whose own type differs from the type written before it is refused', async () => {
      const ed = await enrolled(key('ed25519'));
      const p256 = await enrolled(key('ecdsa-256'));
      for (const line of [
        pubLine('ssh-rsa', ed.blob),
        pubLine('ecdsa-sha2-nistp384', p256.blob),
        pubLine('ssh-ed25519', p256.blob),
      ]) {
        expect(await parsePublicKey(line)).toMatchObject({
          ok: false,
          message: expect.stringMatching(/^the key says it is /u),
        });
      }
    });

    it('malformed key data is refused: bytes appended, a point off the curve or not uncompressed, bad base64', async () => {
      const ed = await enrolled(key('ed25519'));
      const p256 = await enrolled(key('ecdsa-256'));
      const offCurve = Buffer.from(p256.blob);
      offCurve[offCurve.length - 1] = (offCurve[offCurve.length - 1] ?? 0) ^ 0x01;
      const point = p256.blob.subarray(p256.blob.length - 65);
      const compressed = Buffer.concat([
        wire('ecdsa-sha2-nistp256'),
        wire('nistp256'),
        wire(Buffer.concat([Buffer.from([2 + ((point[64] ?? 0) & 1)]), point.subarray(1, 33)])),
      ]);
      // The hybrid form (0x06/0x07, then x and y) is as long as the uncompressed one.
      const hybrid = Buffer.from(p256.blob);
      hybrid[hybrid.length - 65] = 6 + ((point[64] ?? 0) & 1);
      const shortEd = Buffer.concat([wire('ssh-ed25519'), wire(randomBytes(31))]);
      for (const line of [
        pubLine('ssh-ed25519', Buffer.concat([ed.blob, Buffer.from([0])])),
        pubLine('ecdsa-sha2-nistp256', offCurve),
        pubLine('ecdsa-sha2-nistp256', compressed),
        pubLine('ecdsa-sha2-nistp256', hybrid),
        pubLine('ssh-ed25519', shortEd),
        pubLine('ssh-ed25519', ed.blob.subarray(0, 30)),
        `ssh-ed25519 ${Buffer.from(ed.blob).toString('base64').slice(0, -1)}`,
        `ssh-ed25519 ${Buffer.from(ed.blob).toString('base64').replace('A', '*')}`,
        'ssh-ed25519',
      ]) {
        const parsed = await parsePublicKey(line);
        expect(parsed.ok, line).toBe(false);
      }
    });

    it('an authorized_keys line with options, a private key, several lines and oversized input are refused', async () => {
      const pub = (await readFile(`${key('ed25519')}.pub`, 'utf8')).trim();
      const withOptions = await parsePublicKey(`restrict,permitopen="localhost:7000" ${pub}`);
      expect(withOptions).toMatchObject({ ok: false, message: expect.stringMatching(/options/u) });
      const priv = await parsePublicKey(await readFile(key('ecdsa-256-other'), 'utf8'));
      expect(priv).toMatchObject({ ok: false, message: expect.stringMatching(/private key/u) });
      expect((await parsePublicKey(`${pub}\n${pub}`)).ok).toBe(false);
      expect((await parsePublicKey('')).ok).toBe(false);
      expect((await parsePublicKey('hello world')).ok).toBe(false);
      // Valid but for its length: a comment long enough to pass 16 KiB.
      const long = await parsePublicKey(`${pub} ${'c'.repeat(16 * 1024)}`);
      expect(long).toMatchObject({ ok: false, message: expect.stringMatching(/16 KiB/u) });
      expect((await parsePublicKey(`${pub} ${'c'.repeat(15 * 1024)}`)).ok).toBe(true);
    });
  });

  describe.skipIf(!deno)('on Deno', () => {
    it('every kind of key parses and its ssh-keygen signature verifies, and a wrong nonce does not', async () => {
      const cases = [];
      for (const kind of KINDS) {
        const n = new TextDecoder().decode(nonce());
        cases.push({
          pub: await readFile(`${key(kind.name)}.pub`, 'utf8'),
          signature: await sshSign(key(kind.name), bytes(n)),
          nonce: n,
          fingerprint: (await enrolled(key(kind.name))).fingerprint,
        });
      }
      const module = pathToFileURL(join(ROOT, 'src/auth/ssh-keys.ts')).href;
      const script = join(dir, 'deno-smoke.ts');
      await writeFile(
        script,
        [
          `import { parsePublicKey, verifySshSignature } from ${JSON.stringify(module)};`,
          `const cases: { pub: string; signature: string; nonce: string; fingerprint: string }[] = ${JSON.stringify(cases)};`,
          'const out = [];',
          'for (const c of cases) {',
          '  const parsed = await parsePublicKey(c.pub);',
          '  if (!parsed.ok) { out.push(parsed.message); continue; }',
          '  const good = await verifySshSignature(c.signature, parsed.key, "runspec-room", [new TextEncoder().encode(c.nonce)]);',
          '  const bad = await verifySshSignature(c.signature, parsed.key, "runspec-room", [new TextEncoder().encode("x")]);',
          '  out.push({ fingerprint: parsed.key.fingerprint === c.fingerprint, good: good.ok, bad: bad.ok });',
          '}',
          'console.log(JSON.stringify(out));',
        ].join('\n'),
      );
      const result = await runProcess(
        deno as string,
        ['run', '--check', '--config', join(ROOT, 'deno.json'), script],
        { cwd: ROOT },
      );
      expect(result.stderr).not.toMatch(/error/iu);
      expect(result.code).toBe(0);
      expect(JSON.parse(result.stdout)).toEqual(
        KINDS.map(() => ({ fingerprint: true, good: true, bad: false })),
      );
    }, 60_000);
  });
});
