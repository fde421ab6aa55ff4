// A console reaches the door the way deployed ones do: through a real SSH direct-tcpip channel (ssh -W).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { browserClient } from './helpers/clients.ts';
import { startTestServer, type TestServer, tempDir } from './helpers/server.ts';
import { haveSsh, startSshd, type TestSshd } from './helpers/sshd.ts';

if (!haveSsh && process.env.CI)
  throw new Error('CI must run the SSH test: install openssh-server and openssh-client, run as root');

describe.skipIf(!haveSsh)('over SSH', () => {
  let sshd: TestSshd;
  let dir: string;
  let server: TestServer;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    const tmp = await tempDir();
    dir = tmp.dir;
    cleanup = tmp.cleanup;
    server = await startTestServer(join(dir, 'room.db'));
    // The deployment guide's keepalive, asked every second instead of every 15 so the test is quick.
    sshd = await startSshd(dir, ['ClientAliveInterval 1', 'ClientAliveCountMax 3']);
  }, 30_000);

  afterAll(async () => {
    sshd?.stop();
    await server?.stop();
    await cleanup?.();
  });

  it('a console talks to the room through ssh -W localhost:<port>, and a browser sees it', async () => {
    const watcher = await browserClient(server.url, 'watcher', 'ops');
    await watcher.waitFor((f) => f.type === 'welcome');
    const [program = 'ssh', ...options] = sshd.sshCommand;
    const ssh = spawn(program, [...options, '-W', `localhost:${server.consolePort}`, sshd.host], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    ssh.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    ssh.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
    });
    ssh.stdin?.write(`${JSON.stringify({ type: 'hello', room: 'ops', user: 'alice@web01' })}\n`);
    await watcher
      .waitFor((f) => f.type === 'presence' && f.user === 'alice@web01', 15_000)
      .catch((e: Error) => {
        throw new Error(`${e.message}\nssh stderr: ${err}`);
      });
    ssh.stdin?.write(`${JSON.stringify({ type: 'message', room: 'ops', text: 'rolling out' })}\n`);
    const seen = await watcher.waitFor((f) => f.type === 'message');
    expect(seen).toMatchObject({ sender: 'alice@web01', text: 'rolling out' });
    const acked = new Promise<void>((resolve) => {
      const check = (): void => {
        if (!out.includes('ack from the browser')) return;
        ssh.stdout?.off('data', check);
        resolve();
      };
      ssh.stdout?.on('data', check);
    });
    watcher.send({ type: 'message', text: 'ack from the browser' });
    await acked;
    const lines = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; text?: string; sender?: string });
    expect(lines.map((l) => l.text).filter(Boolean)).toEqual(['rolling out', 'ack from the browser']);
    ssh.stdin?.end();
    ssh.kill();
    await watcher.waitFor(
      (f) => f.type === 'presence' && f.user === 'alice@web01' && f.status === 'away',
      10_000,
    );
    watcher.close();
  }, 30_000);

  it('a seed console whose ssh stops answering (a laptop asleep, a network gone) leaves the room once sshd gives up on it', async () => {
    const watcher = await browserClient(server.url, 'watcher', 'night');
    await watcher.waitFor((f) => f.type === 'welcome');
    const [program = 'ssh', ...options] = sshd.sshCommand;
    const ssh = spawn(program, [...options, '-W', `localhost:${server.consolePort}`, sshd.host], {
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    try {
      ssh.stdin?.write(`${JSON.stringify({ type: 'hello', room: 'night', user: 'bob@laptop' })}\n`);
      await watcher.waitFor((f) => f.type === 'presence' && f.user === 'bob@laptop', 15_000);
      // Its TCP connection stays up (the kernel still answers), but nothing answers sshd any more.
      ssh.kill('SIGSTOP');
      const gone = await watcher.waitFor(
        (f) => f.type === 'presence' && f.user === 'bob@laptop' && f.status === 'away',
        15_000,
      );
      expect(gone).toMatchObject({ room: 'night', status: 'away' });
    } finally {
      ssh.kill('SIGKILL');
      watcher.close();
    }
  }, 30_000);
});
