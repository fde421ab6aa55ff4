// Real OpenSSH keys for tests: made by ssh-keygen, signatures by `ssh-keygen -Y sign` (from the key
// file, or from a real ssh-agent holding the key), and a console that proves its key.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type ConsoleClient, consoleClient, type Frame } from './clients.ts';

/** Whether ssh-keygen is here (under CI it must be). */
export const haveSshKeygen = existsSync('/usr/bin/ssh-keygen') && existsSync('/usr/bin/ssh-agent');

/** A key pair in a directory: the private key file, and the public key line. */
export interface TestKey {
  readonly file: string;
  readonly pub: string;
  readonly pubFile: string;
  /** As `ssh-keygen -l -E sha256` prints it. */
  readonly fingerprint: string;
}

/** Make a key with ssh-keygen (no passphrase). */
export async function makeKey(
  dir: string,
  name: string,
  type: 'ed25519' | 'ecdsa' | 'rsa' = 'ed25519',
): Promise<TestKey> {
  const file = join(dir, name);
  const bits = type === 'rsa' ? ['-b', '3072'] : type === 'ecdsa' ? ['-b', '256'] : [];
  execFileSync('ssh-keygen', ['-q', '-t', type, ...bits, '-N', '', '-C', `${name}@test`, '-f', file]);
  const pub = (await readFile(`${file}.pub`, 'utf8')).trim();
  const fingerprint =
    execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${file}.pub`], { encoding: 'utf8' }).split(
      ' ',
    )[1] ?? '';
  return { file, pub, pubFile: `${file}.pub`, fingerprint };
}

/**
 * The armored signature `ssh-keygen -Y sign -n NAMESPACE -f KEY` makes of a file holding exactly
 * `message`. `key` may be a public key file when `env` points SSH_AUTH_SOCK at an agent holding it.
 */
export async function sign(
  key: string,
  message: string,
  options: { namespace?: string; env?: Record<string, string> } = {},
): Promise<string> {
  const file = `${key}.message-${Math.random().toString(36).slice(2)}`;
  await writeFile(file, message);
  execFileSync(
    'ssh-keygen',
    ['-Y', 'sign', '-q', '-n', options.namespace ?? 'runspec-room', '-f', key, file],
    {
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  return readFile(`${file}.sig`, 'utf8');
}

/** A real ssh-agent on a socket of its own; `stop` kills it. */
export async function startAgent(
  dir: string,
): Promise<{ env: Record<string, string>; add: (key: string) => void; stop: () => void }> {
  const socket = join(dir, `agent-${Math.random().toString(36).slice(2)}.sock`);
  const agent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
  for (let i = 0; i < 200 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 10));
  if (!existsSync(socket)) throw new Error('ssh-agent did not start');
  const env = { SSH_AUTH_SOCK: socket };
  return {
    env,
    add: (key) => execFileSync('ssh-add', ['-q', key], { env: { ...process.env, ...env }, stdio: 'ignore' }),
    stop: () => agent.kill(),
  };
}

/** A protocol-2 console that offers `key` in its hello and answers the challenge with `signer`. */
export async function keyConsole(
  port: number,
  hello: { room: string; user: string; key: string; ref?: string },
  signer: (nonce: string) => Promise<string>,
): Promise<{ client: ConsoleClient; challenge: Frame; answer: Frame }> {
  const client = await consoleClient(port, { type: 'hello', protocol: 2, ...hello });
  const challenge = await client.waitFor((f) => f.type === 'challenge' || f.type === 'error', 5000);
  if (challenge.type !== 'challenge') return { client, challenge, answer: challenge };
  client.send({ type: 'auth', signature: await signer(String(challenge.nonce)) });
  const answer = await client.waitFor((f) => f.type === 'welcome' || f.type === 'error', 5000);
  return { client, challenge, answer };
}
