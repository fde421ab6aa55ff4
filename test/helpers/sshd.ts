// A real sshd on a free loopback port with throwaway host and client keys, for tests that tunnel to the
// console door with `ssh -W`, and the ssh options that reach it.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from './server.ts';

const SSHD = '/usr/sbin/sshd';

/** Whether this machine can run the SSH tests (sshd, ssh, root). */
export const haveSsh = existsSync(SSHD) && existsSync('/usr/bin/ssh') && process.getuid?.() === 0;

/** A running sshd and how to reach it. */
export interface TestSshd {
  readonly port: number;
  /** The ssh program and options that reach it without prompts (its host key is not checked). */
  readonly sshCommand: string[];
  /** The host to name after those options. */
  readonly host: string;
  stop(): void;
}

/**
 * Start sshd in `dir` (keys, config and pid file go there), accepting the generated client key for
 * root; `settings` are further sshd_config lines.
 */
export async function startSshd(dir: string, settings: readonly string[] = []): Promise<TestSshd> {
  for (const name of ['host', 'client']) {
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, name)]);
  }
  await writeFile(join(dir, 'authorized_keys'), execFileSync('cat', [join(dir, 'client.pub')]), {
    mode: 0o600,
  });
  const port = await freePort();
  const config = [
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    `HostKey ${join(dir, 'host')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    `PidFile ${join(dir, 'sshd.pid')}`,
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PermitRootLogin prohibit-password',
    'AllowTcpForwarding yes',
    'StrictModes no',
    'UsePAM no',
    ...settings,
  ].join('\n');
  await writeFile(join(dir, 'sshd_config'), `${config}\n`);
  execFileSync('mkdir', ['-p', '/run/sshd']);
  const sshd: ChildProcess = spawn(SSHD, ['-D', '-e', '-f', join(dir, 'sshd_config')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  await new Promise<void>((resolve, reject) => {
    sshd.stderr?.on('data', (d: Buffer) => {
      log += d.toString();
      if (log.includes('Server listening')) resolve();
    });
    sshd.once('exit', (code) => reject(new Error(`sshd exited ${code}: ${log}`)));
  });
  return {
    port,
    host: 'root@127.0.0.1',
    sshCommand: [
      'ssh',
      '-q',
      '-i',
      join(dir, 'client'),
      '-p',
      String(port),
      '-o',
      'StrictHostKeyChecking=no',
      '-o',
      `UserKnownHostsFile=${join(dir, 'known_hosts')}`,
      '-o',
      'BatchMode=yes',
    ],
    stop: () => sshd.kill(),
  };
}
