// `runspec-room console` as a person and a script use it: piped lines all echoed, --json, --ssh through a
// real sshd, a real terminal under tmux, and every line once across a server restart and a dropped link.
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type ClientProcess, haveTmux, spawnClient, TmuxPane } from './helpers/client-process.ts';
import { browserClient, type ConsoleClient, consoleClient, type Frame, request } from './helpers/clients.ts';
import { requireUnderCi } from './helpers/process.ts';
import { freePort, startTestServer, type TestServer, tempDir } from './helpers/server.ts';
import { MAIN, type Spawned, spawnServer } from './helpers/spawn.ts';
import { haveSsh, startSshd } from './helpers/sshd.ts';
import { tcpProxy } from './helpers/tcp-proxy.ts';

requireUnderCi('tmux', haveTmux, 'tmux is not installed');

let server: TestServer;
let dir: string;
let cleanup: () => Promise<void>;
const closers: Array<() => void | Promise<void>> = [];
let rooms = 0;
const freshRoom = () => `cc-${++rooms}`;
const ESC = String.fromCharCode(27);

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir());
  server = await startTestServer(join(dir, 'room.db'));
});

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

afterAll(async () => {
  await server?.stop();
  await cleanup?.();
});

function consoleProcess(args: string[], env: Record<string, string> = {}): ClientProcess {
  const client = spawnClient(['console', ...args], env);
  closers.push(() => client.kill());
  return client;
}

/** A protocol-2 console that watches a room and collects its messages. */
async function watcher(room: string, port = server.consolePort): Promise<ConsoleClient> {
  const c = await consoleClient(port, { type: 'hello', room, user: 'watcher', protocol: 2 });
  await c.waitFor((f) => f.type === 'joined', 10_000);
  closers.push(() => c.close());
  return c;
}

const messagesOf = (frames: Frame[]): Frame[] => frames.filter((f) => f.type === 'message');

/** The texts of the message frames in `--json` output lines. */
const jsonTexts = (lines: string[]): string[] =>
  lines
    .map((l) => JSON.parse(l) as Frame)
    .filter((f) => f.type === 'message')
    .map((f) => String(f.text));

const numbered = (from: number, to: number): string =>
  Array.from({ length: to - from + 1 }, (_, i) => `line ${from + i}\n`).join('');

const expected = (n: number): string[] => Array.from({ length: n }, (_, i) => `line ${i + 1}`);

/** Waits until `lines` holds `n` message frames (it is a console's --json output). */
async function untilMessages(client: ClientProcess, n: number, ms = 60_000): Promise<void> {
  await client.waitForLine(() => jsonTexts(client.lines).length >= n, ms);
}

describe('console, piped', () => {
  it('sends each stdin line as a message and exits 0 once all 500 were echoed (slowed by the shipped rate)', async () => {
    const room = freshRoom();
    const watch = await watcher(room);
    const piped = consoleProcess([
      '--room',
      room,
      '--connect',
      `127.0.0.1:${server.consolePort}`,
      '--user',
      'piper',
    ]);
    piped.write(numbered(1, 500));
    piped.end();
    expect(await piped.exited).toBe(0);
    await watch.waitFor(() => messagesOf(watch.frames).length >= 500, 10_000);
    const got = messagesOf(watch.frames);
    expect(got.map((f) => f.text)).toEqual(expected(500));
    expect(new Set(got.map((f) => f.sender))).toEqual(new Set(['piper']));
    expect(piped.stderr()).not.toMatch(/error/u);
  }, 90_000);

  it('exits 1 with one line when nothing answers, and 2 with one line for a bad flag', async () => {
    const port = await freePort();
    const refused = consoleProcess(['--room', 'ops', '--connect', `127.0.0.1:${port}`]);
    refused.write('never stored\n');
    refused.end();
    expect(await refused.exited).toBe(1);
    expect(refused.stderr().trim().split('\n')).toHaveLength(1);
    expect(refused.stderr()).toMatch(/could not connect to 127\.0\.0\.1:\d+.*1 of 1 lines were not echoed/u);
    const bad = consoleProcess(['--room', 'ops', '--connect', 'localhost:0']);
    expect(await bad.exited).toBe(2);
    expect(bad.stderr()).toMatch(/^runspec-room: error: --connect must be a port, 1 to 65535\n$/u);
  });

  it('--json prints every frame as one JSON object a line, its own messages once, with their ref', async () => {
    const room = freshRoom();
    const json = consoleProcess([
      '--room',
      room,
      '--connect',
      `127.0.0.1:${server.consolePort}`,
      '--user',
      'js',
      '--json',
    ]);
    await json.waitForLine((l) => l.includes('"type":"joined"'));
    const carol = await browserClient(server.url, 'carol', room);
    closers.push(() => carol.close());
    carol.send({ type: 'message', text: 'from a browser' });
    json.write('from a script\n');
    await untilMessages(json, 2);
    json.end();
    expect(await json.exited).toBe(0);
    const frames = json.lines.map((l) => JSON.parse(l) as Frame);
    expect(frames.map((f) => f.type)).toEqual(
      expect.arrayContaining(['welcome', 'joined', 'presence', 'message']),
    );
    expect(frames[0]).toMatchObject({ type: 'welcome', user: 'js', protocol: 2 });
    const messages = frames.filter((f) => f.type === 'message');
    expect(messages.map((m) => m.text).sort()).toEqual(['from a browser', 'from a script']);
    expect(messages.find((m) => m.sender === 'js')).toMatchObject({
      via: 'console',
      ref: expect.any(String),
    });
    expect(messages.find((m) => m.sender === 'carol')).toMatchObject({ via: 'browser' });
  });

  it.skipIf(!haveSsh)(
    '--ssh HOST talks through ssh -W localhost:PORT, with no port forwarding',
    async () => {
      const ssh = await tempDir();
      closers.push(ssh.cleanup);
      const sshd = await startSshd(ssh.dir);
      closers.push(() => sshd.stop());
      const room = freshRoom();
      const watch = await watcher(room);
      const tunnelled = consoleProcess(
        ['--room', room, '--ssh', sshd.host, '--port', String(server.consolePort), '--user', 'tunnel'],
        { CONSOLE_ROOM_SSH_COMMAND: sshd.sshCommand.join(' ') },
      );
      tunnelled.write('through ssh\n');
      tunnelled.end();
      expect(await tunnelled.exited).toBe(0);
      const seen = await watch.waitFor((f) => f.type === 'message', 10_000);
      expect(seen).toMatchObject({ sender: 'tunnel', text: 'through ssh', via: 'console' });
    },
    30_000,
  );
});

describe('console, across a server restart and a dropped link', () => {
  let restartDir: { dir: string; cleanup: () => Promise<void> };
  beforeAll(async () => {
    restartDir = await tempDir();
  });
  afterAll(() => restartDir?.cleanup());

  it('loses and doubles no line across a server restart: the sender resends, the reader resumes', async () => {
    const port = await freePort();
    const db = join(restartDir.dir, 'restart.db');
    const args = ['--ndjson-only', '--ndjson-port', String(port), '--db', db];
    let room: Spawned = await spawnServer(args);
    closers.push(() => void room.stop('SIGKILL'));
    const to = ['--room', 'ops', '--connect', `127.0.0.1:${port}`];
    const reader = consoleProcess([...to, '--user', 'reader', '--json']);
    await reader.waitForLine((l) => l.includes('"type":"joined"'));
    const sender = consoleProcess([...to, '--user', 'sender']);
    sender.write(numbered(1, 100));
    await untilMessages(reader, 100);
    expect(await room.stop('SIGTERM')).toBe(0);
    sender.write(numbered(101, 200));
    room = await spawnServer(args);
    closers.push(() => void room.stop('SIGKILL'));
    sender.write(numbered(201, 300));
    sender.end();
    expect(await sender.exited).toBe(0);
    await untilMessages(reader, 300);
    reader.end();
    expect(await reader.exited).toBe(0);
    expect(jsonTexts(reader.lines)).toEqual(expected(300));
    const check = await watcher('ops', port);
    const page = await request(check, { type: 'history', room: 'ops', after: 200, limit: 200 });
    expect((page.messages as Frame[]).map((m) => m.seq)).toEqual(
      Array.from({ length: 100 }, (_, i) => 201 + i),
    );
    expect(page.more).toBe(false);
  }, 120_000);

  it('loses and doubles no line when the link drops mid-burst: unechoed lines go again with their cid', async () => {
    const proxy = await tcpProxy(server.consolePort);
    closers.push(() => proxy.close());
    const room = freshRoom();
    const to = ['--room', room, '--connect', `127.0.0.1:${proxy.port}`];
    const reader = consoleProcess([...to, '--user', 'reader', '--json']);
    await reader.waitForLine((l) => l.includes('"type":"joined"'));
    const sender = consoleProcess([...to, '--user', 'sender']);
    sender.write(numbered(1, 300));
    await untilMessages(reader, 30);
    proxy.cut();
    sender.write(numbered(301, 400));
    sender.end();
    expect(await sender.exited).toBe(0);
    expect(sender.stderr()).toMatch(/connection lost/u);
    await untilMessages(reader, 400);
    reader.end();
    expect(await reader.exited).toBe(0);
    expect(jsonTexts(reader.lines)).toEqual(expected(400));
    const watch = await watcher(room);
    const pages = [
      await request(watch, { type: 'history', room, after: 0, limit: 200 }),
      await request(watch, { type: 'history', room, after: 200, limit: 200 }),
    ];
    const stored = pages.flatMap((p) => p.messages as Frame[]).map((m) => m.text);
    expect(stored).toEqual(expected(400));
    expect(pages[1]?.more).toBe(false);
  }, 120_000);
});

describe.skipIf(!haveTmux)('console in a real terminal (tmux)', () => {
  function pane(user: string, room: string, env: Record<string, string> = { NO_COLOR: '1' }): TmuxPane {
    const p = new TmuxPane(
      [
        process.execPath,
        MAIN,
        'console',
        '--room',
        room,
        '--connect',
        `127.0.0.1:${server.consolePort}`,
        '--user',
        user,
      ],
      env,
    );
    closers.push(() => p.kill());
    return p;
  }

  const promptLine = (screen: string): string =>
    screen
      .split('\n')
      .filter((l) => l.trim())
      .pop() ?? '';

  it('shows what is said, people apart from consoles, and keeps a half-typed line on the prompt as messages arrive', async () => {
    const room = freshRoom();
    const carol = await browserClient(server.url, 'carol', room);
    closers.push(() => carol.close());
    const term = pane('alice', room);
    await term.waitForScreen((s) => s.includes(`in #${room} as alice`));
    await carol.waitFor((f) => f.type === 'presence' && f.user === 'alice', 10_000);
    term.keys('hello from the terminal');
    term.keys('Enter', false);
    await term.waitForScreen((s) => s.includes('[alice] hello from the terminal'));
    expect(await carol.waitFor((f) => f.type === 'message', 10_000)).toMatchObject({
      sender: 'alice',
      text: 'hello from the terminal',
      via: 'console',
    });
    term.keys('half-typed');
    await term.waitForScreen((s) => promptLine(s) === `#${room}> half-typed`);
    carol.send({ type: 'message', text: 'hi alice, are you there?' });
    const screen = await term.waitForScreen((s) => s.includes('<carol> hi alice, are you there?'));
    expect(promptLine(screen)).toBe(`#${room}> half-typed`);
    expect(screen).toMatch(/\d\d:\d\d <carol> hi alice/u);
    term.keys(' and finished');
    term.keys('Enter', false);
    await term.waitForScreen((s) => s.includes('[alice] half-typed and finished'));
    carol.close();
    await term.waitForScreen((s) => s.includes('carol is away'));
    term.keys('/who');
    term.keys('Enter', false);
    await term.waitForScreen((s) => s.includes(`in #${room}: alice (console)`));
    term.keys('/quit');
    term.keys('Enter', false);
    await term.waitForScreen(() => term.exitStatus() !== undefined);
    expect(term.exitStatus()).toBe(0);
  }, 60_000);

  it('colours only on a terminal and never with NO_COLOR, and highlights your name where it is mentioned', async () => {
    const room = freshRoom();
    const carol = await browserClient(server.url, 'carol', room);
    closers.push(() => carol.close());
    const plain = pane('dave', room, { NO_COLOR: '1' });
    const coloured = pane('erin', room, { NO_COLOR: '' });
    await plain.waitForScreen((s) => s.includes('as dave'));
    await coloured.waitForScreen((s) => s.includes('as erin'));
    carol.send({ type: 'message', text: 'erin and dave, look' });
    await plain.waitForScreen((s) => s.includes('erin and dave, look'));
    await coloured.waitForScreen((s) => s.includes('erin and dave, look'));
    expect(plain.screen(true)).not.toContain(`${ESC}[`);
    const line = coloured
      .screen(true)
      .split('\n')
      .find((l) => l.includes('and dave, look')) as string;
    // Inverse video (SGR 7) turned on right before the name: the mention of erin, not of dave.
    const inverseBefore = (name: string) => new RegExp(`${ESC}\\[[0-9;]*7m(${ESC}\\[[0-9;]*m)*${name}`, 'u');
    expect(line).toMatch(inverseBefore('erin'));
    expect(line).not.toMatch(inverseBefore('dave'));
  }, 60_000);
});
