// `runspec-room mcp` driven by the MCP SDK's own Client over stdio (node dist/main.js mcp …), as an agent's
// host runs it: its tools, long polls, mentions, the cursor across a restart, the loop guard, the inspector.
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type BrowserClient, browserClient, type ConsoleClient, consoleClient } from './helpers/clients.ts';
import { runProcess } from './helpers/process.ts';
import { freePort, startTestServer, type TestServer, tempDir } from './helpers/server.ts';
import { MAIN, type Spawned, spawnServer } from './helpers/spawn.ts';

let server: TestServer;
let dir: string;
let cleanup: () => Promise<void>;
const closers: Array<() => void | Promise<void>> = [];
let rooms = 0;
const freshRoom = () => `mcp-${++rooms}`;

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

/** What a tool answered: its JSON (or text), and whether it was an error. */
interface Answer {
  isError: boolean;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: a tool's JSON answer, read field by field in the tests
  value: any;
}

/** An agent's MCP host: the SDK client, connected to `runspec-room mcp` over stdio. */
async function agent(args: string[], port = server.consolePort) {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [MAIN, 'mcp', '--connect', `127.0.0.1:${port}`, ...args],
    env: { ...(process.env as Record<string, string>), NO_COLOR: '1' },
    stderr: 'pipe',
  });
  const client = new Client({ name: 'runspec-room-test', version: '1.0.0' });
  await client.connect(transport);
  closers.push(() => client.close());
  const call = async (name: string, args: Record<string, unknown> = {}): Promise<Answer> => {
    const result = await client.callTool({ name, arguments: args }, undefined, { timeout: 70_000 });
    const text = (result.content as Array<{ type: string; text: string }>)[0]?.text ?? '';
    let value: unknown = text;
    try {
      value = JSON.parse(text);
    } catch {
      // Errors are sentences, not JSON.
    }
    return { isError: result.isError === true, text, value };
  };
  return { client, call };
}

async function person(name: string, room: string): Promise<BrowserClient> {
  const b = await browserClient(server.url, name, room);
  await b.waitFor((f) => f.type === 'joined', 10_000);
  closers.push(() => b.close());
  return b;
}

async function bot(name: string, room: string, port = server.consolePort): Promise<ConsoleClient> {
  const c = await consoleClient(port, { type: 'hello', room, user: name, protocol: 2 });
  await c.waitFor((f) => f.type === 'joined', 10_000);
  closers.push(() => c.close());
  return c;
}

const texts = (answer: Answer): string[] =>
  (answer.value.messages as Array<{ text: string }>).map((m) => m.text);

describe('the MCP server', () => {
  it('lists its nine tools, each with a description and an input schema', async () => {
    const { client } = await agent(['--room', freshRoom(), '--user', 'lister']);
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual([
      'join_room',
      'leave_room',
      'list_rooms',
      'read_messages',
      'send_message',
      'set_status',
      'wait_for_messages',
      'whisper',
      'who',
    ]);
    for (const tool of tools) {
      expect(tool.description?.length).toBeGreaterThan(10);
      expect(tool.inputSchema.type).toBe('object');
    }
    const wait = tools.find((t) => t.name === 'wait_for_messages');
    expect(wait?.inputSchema.properties?.timeout_s).toMatchObject({ type: 'number', maximum: 50 });
  });

  it('sends, reads, whispers, joins, leaves, lists and sets status; refusals say what to do next', async () => {
    const room = freshRoom();
    const other = freshRoom();
    const carol = await person('carol', room);
    const { call } = await agent(['--room', room, '--user', 'helper']);
    const sent = await call('send_message', { text: 'hello from an agent' });
    expect(sent.isError).toBe(false);
    expect(sent.value).toMatchObject({ room, seq: 1, id: expect.stringMatching(/^[0-9a-f]{32}$/u) });
    expect(await carol.waitFor((f) => f.type === 'message', 10_000)).toMatchObject({
      sender: 'helper',
      text: 'hello from an agent',
      via: 'console',
    });
    const read = await call('read_messages', { room });
    expect(read.value).toMatchObject({ room, more: false });
    expect(texts(read)).toEqual(['hello from an agent']);
    expect((await call('who', { room })).value.users).toEqual([
      { user: 'carol', kind: 'person', status: 'available' },
      { user: 'helper', kind: 'console', status: 'available' },
    ]);
    const listed = await call('list_rooms');
    expect(listed.value.rooms).toContainEqual({ room, members: 2, messages: 1, joined: true });
    const whispered = await call('whisper', { to: 'carol', text: 'psst' });
    expect(whispered.value).toMatchObject({ to: 'carol', seq: 1 });
    expect(await carol.waitFor((f) => f.type === 'whisper', 10_000)).toMatchObject({
      from: 'helper',
      text: 'psst',
    });
    expect((await call('join_room', { room: other })).value).toMatchObject({
      room: other,
      rooms: [room, other],
    });
    expect((await call('send_message', { room: other, text: 'elsewhere' })).value).toMatchObject({ seq: 1 });
    expect((await call('leave_room', { room: other })).value).toMatchObject({ left: other, rooms: [room] });
    const notIn = await call('send_message', { room: other, text: 'lost?' });
    expect(notIn.isError).toBe(true);
    expect(notIn.text).toMatch(/join_room/u);
    expect((await call('set_status', { status: 'away' })).value).toEqual({ status: 'away' });
    expect(
      await carol.waitFor((f) => f.type === 'presence' && f.user === 'helper' && f.status === 'away', 10_000),
    ).toBeTruthy();
    const nobody = await call('whisper', { to: 'nobody-here', text: 'hi' });
    expect(nobody).toMatchObject({ isError: true, text: expect.stringMatching(/who/u) });
    expect((await call('who', { room: 'bad\u200bname' })).isError).toBe(true);
    expect((await call('leave_room', { room })).text).toMatch(/only room/u);
  });

  it('wait_for_messages is woken by a person, never returns its own messages or one twice, and times out empty', async () => {
    const room = freshRoom();
    const carol = await person('carol', room);
    const { call } = await agent(['--room', room, '--user', 'waiter']);
    await call('who', { room });
    const waiting = call('wait_for_messages', { timeout_s: 45 });
    carol.send({ type: 'message', text: 'wake up' });
    const woken = await waiting;
    expect(texts(woken)).toEqual(['wake up']);
    expect(woken.value.messages[0]).toMatchObject({ room, sender: 'carol', via: 'browser', seq: 1 });
    await call('send_message', { text: 'my own words' });
    carol.send({ type: 'message', text: 'one' });
    carol.send({ type: 'message', text: 'two' });
    await carol.waitFor((f) => f.type === 'message' && f.text === 'two', 10_000);
    expect(texts(await call('wait_for_messages', { timeout_s: 45 }))).toEqual(['one', 'two']);
    const quiet = await call('wait_for_messages', { timeout_s: 1 });
    expect(quiet.value).toEqual({ messages: [], timed_out: true });
  });

  it('--mentions-only wakes for mentions and whispers only, and says how many others it passed over', async () => {
    const room = freshRoom();
    const carol = await person('carol', room);
    const { call } = await agent(['--room', room, '--user', 'robo', '--mentions-only']);
    await call('who', { room });
    carol.send({ type: 'message', text: 'unrelated chatter' });
    carol.send({ type: 'message', text: 'robo: can you check the build?' });
    const mention = await call('wait_for_messages', { timeout_s: 45 });
    expect(texts(mention)).toEqual(['robo: can you check the build?']);
    expect(mention.value).toMatchObject({ skipped_without_mention: 1 });
    expect(mention.value.messages[0]).toMatchObject({ mentions_you: true });
    carol.send({ type: 'whisper', to: 'robo', text: 'just between us' });
    const whisper = await call('wait_for_messages', { timeout_s: 45 });
    expect(whisper.value.messages).toEqual([
      expect.objectContaining({ whisper: true, from: 'carol', text: 'just between us' }),
    ]);
    carol.send({ type: 'message', text: 'plain words' });
    expect(texts(await call('wait_for_messages', { timeout_s: 45, mentions_only: false }))).toEqual([
      'plain words',
    ]);
  });

  it('keeps the agent’s cursor across a server restart: nothing twice, nothing missed', async () => {
    const port = await freePort();
    const restart = await tempDir();
    closers.push(restart.cleanup);
    const args = ['--ndjson-only', '--ndjson-port', String(port), '--db', join(restart.dir, 'r.db')];
    let room: Spawned = await spawnServer(args);
    closers.push(() => void room.stop('SIGKILL'));
    const { call } = await agent(['--room', 'ops', '--user', 'keeper'], port);
    await call('who', { room: 'ops' });
    let speaker = await bot('speaker', 'ops', port);
    for (const text of ['m1', 'm2']) speaker.send({ type: 'message', text, ref: text });
    await speaker.waitFor((f) => f.ref === 'm2', 10_000);
    const got: string[] = [];
    while (got.length < 2) got.push(...texts(await call('wait_for_messages', { timeout_s: 45 })));
    speaker.send({ type: 'message', text: 'm3', ref: 'm3' });
    await speaker.waitFor((f) => f.ref === 'm3', 10_000);
    expect(await room.stop('SIGTERM')).toBe(0);
    room = await spawnServer(args);
    closers.push(() => void room.stop('SIGKILL'));
    speaker = await bot('speaker', 'ops', port);
    for (const text of ['m4', 'm5']) speaker.send({ type: 'message', text, ref: text });
    await speaker.waitFor((f) => f.ref === 'm5', 10_000);
    while (got.length < 5) got.push(...texts(await call('wait_for_messages', { timeout_s: 45 })));
    expect((await call('wait_for_messages', { timeout_s: 1 })).value.messages).toEqual([]);
    expect(got).toEqual(['m1', 'm2', 'm3', 'm4', 'm5']);
  }, 90_000);

  it('caps the agent’s messages per minute', async () => {
    const room = freshRoom();
    const { call } = await agent(['--room', room, '--user', 'chatty', '--max-per-minute', '3']);
    for (let i = 1; i <= 3; i++) expect((await call('send_message', { text: `n${i}` })).isError).toBe(false);
    const capped = await call('send_message', { text: 'n4' });
    expect(capped.isError).toBe(true);
    expect(capped.text).toMatch(/--max-per-minute 3/u);
    expect((await call('whisper', { to: 'chatty', text: 'x' })).isError).toBe(true);
  });

  it('stops agents answering agents: after a run of console messages it waits until a person speaks', async () => {
    const room = freshRoom();
    const other = await bot('other-agent', room);
    const { call } = await agent(['--room', room, '--user', 'looper', '--max-agent-run', '3']);
    await call('who', { room });
    for (const text of ['a1', 'a2']) other.send({ type: 'message', text, ref: text });
    await other.waitFor((f) => f.ref === 'a2', 10_000);
    const seen: string[] = [];
    while (seen.length < 2) seen.push(...texts(await call('wait_for_messages', { timeout_s: 45 })));
    expect((await call('send_message', { text: 'a3' })).isError).toBe(false);
    const looped = await call('send_message', { text: 'a4' });
    expect(looped.isError).toBe(true);
    expect(looped.text).toMatch(/until a person/u);
    const carol = await person('carol', room);
    carol.send({ type: 'message', text: 'a person speaks' });
    expect(texts(await call('wait_for_messages', { timeout_s: 45 }))).toEqual(['a person speaks']);
    expect((await call('send_message', { text: 'a4' })).isError).toBe(false);
    await other.waitFor((f) => f.type === 'message' && f.text === 'a4', 10_000);
    const stored = other.frames.filter((f) => f.type === 'message' && f.sender === 'looper');
    expect(stored.map((f) => f.text)).toEqual(['a3', 'a4']);
  });

  it('answers the MCP inspector’s command-line mode with its tool list', async () => {
    const room = freshRoom();
    const listed = await runProcess(
      'npx',
      [
        '--yes',
        '@modelcontextprotocol/inspector@0.15.0',
        '--cli',
        process.execPath,
        MAIN,
        'mcp',
        '--room',
        room,
        '--connect',
        `127.0.0.1:${server.consolePort}`,
        '--method',
        'tools/list',
      ],
      { deadlineMs: 150_000 },
    );
    expect(listed.code, listed.stderr).toBe(0);
    const { tools } = JSON.parse(listed.stdout) as { tools: Array<{ name: string }> };
    expect(tools.map((t) => t.name)).toContain('wait_for_messages');
    expect(tools).toHaveLength(9);
  }, 180_000);
});
