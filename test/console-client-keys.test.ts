// The console's --key sign-in end to end against the real server: a key file, a key in ssh-agent, a key
// nobody enrolled, and a key removed on the host while the console runs.
import { execFileSync, spawnSync } from 'node:child_process';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { spawnClient } from './helpers/client-process.ts';
import type { Frame } from './helpers/clients.ts';
import { runProcess } from './helpers/process.ts';
import { freePort, tempDir } from './helpers/server.ts';
import { MAIN, spawnServer } from './helpers/spawn.ts';

const { dir, cleanup } = await tempDir();
const db = join(dir, 'keys.db');

/** Enrol a key for its owner, and remove it, with `runspec-room keys` on the server's database. */
async function enrol(owner: string, publicKeyFile: string): Promise<void> {
  const done = await runProcess(process.execPath, [MAIN, 'keys', 'add', owner, publicKeyFile, '--db', db]);
  if (done.code !== 0) throw new Error(`keys add failed: ${done.stderr}`);
}
async function revoke(publicKeyFile: string): Promise<void> {
  const fingerprint = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', publicKeyFile], {
    encoding: 'utf8',
  }).split(' ')[1] as string;
  const done = await runProcess(process.execPath, [MAIN, 'keys', 'remove', fingerprint, '--db', db]);
  if (done.code !== 0) throw new Error(`keys remove failed: ${done.stderr}`);
}

for (const name of ['dana', 'erin', 'stranger']) {
  execFileSync('ssh-keygen', [
    '-q',
    '-t',
    'ed25519',
    '-N',
    '',
    '-C',
    `${name}@laptop`,
    '-f',
    join(dir, name),
  ]);
}
const server = await spawnServer(['--ndjson-only', '--ndjson-port', String(await freePort()), '--db', db]);
await enrol('dana', join(dir, 'dana.pub'));
await enrol('erin', join(dir, 'erin.pub'));
const closers: Array<() => void | Promise<void>> = [];

afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

afterAll(async () => {
  await server.stop('SIGKILL');
  await cleanup();
});

function consoleWithKey(user: string, key: string, extra: string[] = [], env: Record<string, string> = {}) {
  const c = spawnClient(
    [
      'console',
      '--room',
      'ops',
      '--connect',
      `127.0.0.1:${server.consolePort}`,
      '--user',
      user,
      '--key',
      key,
      ...extra,
    ],
    env,
  );
  closers.push(() => c.kill());
  return c;
}

describe('console --key', () => {
  it('signs in with a key file and is named as its owner, whatever --user says', async () => {
    const c = consoleWithKey('whoever', join(dir, 'dana'), ['--json']);
    c.write('signed in\n');
    c.end();
    expect(await c.exited).toBe(0);
    const frames = c.lines.map((l) => JSON.parse(l) as Frame);
    expect(frames.find((f) => f.type === 'welcome')).toMatchObject({ user: 'dana', authenticated: true });
    expect(frames.find((f) => f.type === 'message')).toMatchObject({ sender: 'dana', text: 'signed in' });
  });

  it('signs with ssh-agent when --key names the public key', async () => {
    const agent = spawnSync('ssh-agent', ['-s'], { encoding: 'utf8' }).stdout;
    const sock = /SSH_AUTH_SOCK=([^;]+);/u.exec(agent)?.[1] as string;
    const pid = /SSH_AGENT_PID=(\d+);/u.exec(agent)?.[1] as string;
    closers.push(() => void process.kill(Number(pid)));
    execFileSync('ssh-add', ['-q', join(dir, 'erin')], { env: { ...process.env, SSH_AUTH_SOCK: sock } });
    await rename(join(dir, 'erin'), join(dir, 'erin.away'));
    const c = consoleWithKey('whoever', join(dir, 'erin.pub'), ['--json'], { SSH_AUTH_SOCK: sock });
    c.write('from the agent\n');
    c.end();
    expect(await c.exited).toBe(0);
    const frames = c.lines.map((l) => JSON.parse(l) as Frame);
    expect(frames.find((f) => f.type === 'welcome')).toMatchObject({ user: 'erin', authenticated: true });
  });

  it('an unknown key is refused with one line and exit code 3', async () => {
    const c = consoleWithKey('stranger', join(dir, 'stranger'));
    c.write('let me in\n');
    c.end();
    expect(await c.exited).toBe(3);
    expect(c.stderr().trim().split('\n')).toHaveLength(1);
    expect(c.stderr()).toMatch(/refused the key/u);
  });

  it('a revoked key ends a running console calmly: one line, exit code 3', async () => {
    const c = consoleWithKey('dana', join(dir, 'dana'), ['--json']);
    await c.waitForLine((l) => l.includes('"type":"joined"'));
    await revoke(join(dir, 'dana.pub'));
    expect(await c.exited).toBe(3);
    expect(c.stderr()).toMatch(/^runspec-room: error: access revoked: .*\n$/u);
  });
});
