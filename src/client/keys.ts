// Signing in with an SSH key: the public key line for the hello, and the nonce signed by ssh-keygen, so a
// key held by ssh-agent works as well as a key file.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The namespace the server verifies signatures in (`ssh-keygen -Y … -n`). */
export const KEY_NAMESPACE = 'runspec-room';

/** A key to sign in with: its public line (sent in the hello) and a signer for the server's nonce. */
export interface KeySigner {
  readonly publicKey: string;
  sign(nonce: string): Promise<string>;
}

const PUBLIC_LINE = /^(ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+|sk-[a-z0-9@.-]+) [A-Za-z0-9+/=]+( .*)?$/u;

function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: 120_000, maxBuffer: 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) {
        const why = String(stderr).trim().split('\n').pop() || error.message;
        reject(new Error(`${file} ${args[0]} ${args[1] ?? ''}: ${why}`.replace(/\s+:/u, ':')));
      } else resolve(String(stdout));
    });
  });
}

/** The first line of a file, when it is an OpenSSH public key line. */
async function publicLineOf(path: string): Promise<string | undefined> {
  const text = await readFile(path, 'utf8').catch(() => undefined);
  const line = text?.trim().split('\n')[0]?.trim();
  return line !== undefined && PUBLIC_LINE.test(line) ? line : undefined;
}

/**
 * The public key line for `file`: the file itself when it is a public key (the private key then lives
 * in ssh-agent), else `file.pub`, else what `ssh-keygen -y` derives from the private key.
 */
export async function publicKeyOf(file: string): Promise<string> {
  const line = (await publicLineOf(file)) ?? (await publicLineOf(`${file}.pub`));
  if (line) return line;
  const derived = (await run('ssh-keygen', ['-y', '-f', file])).trim();
  if (!PUBLIC_LINE.test(derived)) throw new Error(`no SSH public key in ${file}`);
  return derived;
}

/** Sign exactly `nonce` with `ssh-keygen -Y sign -n runspec-room -f file`; the armored signature. */
export async function signNonce(file: string, nonce: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'runspec-room-sign-'));
  try {
    const data = join(dir, 'nonce');
    await writeFile(data, nonce, { mode: 0o600 });
    await run('ssh-keygen', ['-Y', 'sign', '-n', KEY_NAMESPACE, '-f', file, data]);
    return (await readFile(`${data}.sig`, 'utf8')).trim();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A signer for the key in `file` (a private key, or a public key whose private half is in ssh-agent). */
export async function keySigner(file: string): Promise<KeySigner> {
  const publicKey = await publicKeyOf(file);
  return { publicKey, sign: (nonce) => signNonce(file, nonce) };
}
