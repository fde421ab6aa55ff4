// Console keys: enrolment on the host (`runspec-room keys`), proof by a real `ssh-keygen -Y sign` (from a
// key file and from a real ssh-agent), the policy for hellos without a key, and revocation that ends
// live consoles.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../src/protocol/codes.ts';
import { consoleClient, type Frame } from './helpers/clients.ts';
import { startTestServer, type TestServer, tempDir, untilRoomSize } from './helpers/server.ts';
import { runCli } from './helpers/spawn.ts';
import { haveSshKeygen, keyConsole, makeKey, sign, startAgent, type TestKey } from './helpers/ssh.ts';

if (!haveSshKeygen && process.env.CI)
  throw new Error('CI must run the console key tests: install openssh-client');

const isError = (code: string) => (f: Frame) => f.type === 'error' && f.code === code;

describe.skipIf(!haveSshKeygen)('console keys', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let server: TestServer;
  let alice: TestKey;
  let aliceLaptop: TestKey;
  let stranger: TestKey;
  let db: string;

  const keys = (...args: string[]) => runCli(['keys', ...args, '--db', db]);
  const signWith = (key: TestKey) => (nonce: string) => sign(key.file, nonce);

  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir());
    db = join(dir, 'room.db');
    [alice, aliceLaptop, stranger] = await Promise.all([
      makeKey(dir, 'alice'),
      makeKey(dir, 'alice-laptop', 'ecdsa'),
      makeKey(dir, 'stranger'),
    ]);
    server = await startTestServer(db);
  }, 30_000);

  afterAll(async () => {
    await server?.stop();
    await cleanup?.();
  });

  it('enrols a key from its .pub file on the host, listed with the fingerprint ssh-keygen -l prints', async () => {
    const added = await keys('add', 'alice', alice.pubFile, '--label', 'desktop');
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toContain(alice.fingerprint);
    const line = await keys('add', 'alice', aliceLaptop.pub);
    expect(line.code, line.stderr).toBe(0);
    const listed = await keys('list', 'alice');
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain(alice.fingerprint);
    expect(listed.stdout).toContain(aliceLaptop.fingerprint);
    expect(listed.stdout).toContain('desktop');
    const json = JSON.parse((await keys('list', '--json')).stdout) as Array<{
      user: string;
      fingerprint: string;
    }>;
    expect(json.map((k) => [k.user, k.fingerprint])).toEqual([
      ['alice', alice.fingerprint],
      ['alice', aliceLaptop.fingerprint],
    ]);
  });

  it('refuses a key enrolled for another name, a malformed key and a bad name, with exit codes 1 and 2', async () => {
    const taken = await keys('add', 'bob', alice.pub);
    expect(taken.code).toBe(1);
    expect(taken.stderr).toMatch(/enrolled for another name/);
    const bad = await keys('add', 'bob', 'ssh-ed25519 AAAAnotakey');
    expect(bad.code).toBe(1);
    const name = await keys('add', 'bo\u200bb', stranger.pub);
    expect(name.code).toBe(2);
    const usage = await keys('remove', 'not-a-fingerprint');
    expect(usage.code).toBe(2);
  });

  it('a console proves its key with ssh-keygen -Y sign and is welcomed as the key’s owner, whatever its hello said', async () => {
    const { client, challenge, answer } = await keyConsole(
      server.consolePort,
      { room: 'keys', user: 'someone-else', key: alice.pub, ref: 'h1' },
      signWith(alice),
    );
    expect(challenge).toMatchObject({ type: 'challenge', namespace: 'runspec-room' });
    expect(String(challenge.nonce).length).toBeGreaterThanOrEqual(32);
    expect(answer).toMatchObject({
      type: 'welcome',
      user: 'alice',
      authenticated: true,
      admin: false,
      ref: 'h1',
    });
    client.send({ type: 'message', text: 'signed and sealed', ref: 'm1' });
    expect(await client.waitFor((f) => f.ref === 'm1')).toMatchObject({ sender: 'alice' });
    client.close();
  });

  it('an ecdsa key works the same way', async () => {
    const { client, answer } = await keyConsole(
      server.consolePort,
      { room: 'keys', user: 'alice', key: aliceLaptop.pub },
      signWith(aliceLaptop),
    );
    expect(answer).toMatchObject({ type: 'welcome', user: 'alice', authenticated: true });
    client.close();
  });

  it('a key held only by a real ssh-agent proves the name (the private key file is gone)', async () => {
    const agentKey = await makeKey(dir, 'agent-held');
    expect((await keys('add', 'carol', agentKey.pubFile)).code).toBe(0);
    const agent = await startAgent(dir);
    try {
      agent.add(agentKey.file);
      await rm(agentKey.file);
      const { client, answer } = await keyConsole(
        server.consolePort,
        { room: 'keys', user: 'carol', key: agentKey.pub },
        (nonce) => sign(agentKey.pubFile, nonce, { env: agent.env }),
      );
      expect(answer, JSON.stringify(answer)).toMatchObject({
        type: 'welcome',
        user: 'carol',
        authenticated: true,
      });
      client.close();
    } finally {
      agent.stop();
    }
  });

  it('a signature by another key fails with auth_failed, and the connection is closed', async () => {
    const { client, answer } = await keyConsole(
      server.consolePort,
      { room: 'keys', user: 'alice', key: alice.pub },
      signWith(stranger),
    );
    expect(answer).toMatchObject({ type: 'error', code: ErrorCode.AuthFailed });
    await client.closed;
    expect(client.frames.some((f) => f.type === 'welcome')).toBe(false);
  });

  it('a signature over another nonce, or in another namespace, fails', async () => {
    const other = await keyConsole(server.consolePort, { room: 'keys', user: 'alice', key: alice.pub }, () =>
      sign(alice.file, 'a-nonce-of-my-own-choosing-0123456789abcdef'),
    );
    expect(other.answer).toMatchObject({ type: 'error', code: ErrorCode.AuthFailed });
    await other.client.closed;
    const namespace = await keyConsole(
      server.consolePort,
      { room: 'keys', user: 'alice', key: alice.pub },
      (nonce) => sign(alice.file, nonce, { namespace: 'git' }),
    );
    expect(namespace.answer).toMatchObject({ type: 'error', code: ErrorCode.AuthFailed });
    await namespace.client.closed;
  });

  it('a signature replayed from an earlier connection fails: every connection gets a nonce of its own', async () => {
    let seen = '';
    const first = await keyConsole(
      server.consolePort,
      { room: 'keys', user: 'alice', key: alice.pub },
      async (nonce) => {
        seen = await sign(alice.file, nonce);
        return seen;
      },
    );
    expect(first.answer).toMatchObject({ type: 'welcome', authenticated: true });
    const replay = await keyConsole(
      server.consolePort,
      { room: 'keys', user: 'alice', key: alice.pub },
      async () => seen,
    );
    expect(replay.challenge.nonce).not.toBe(first.challenge.nonce);
    expect(replay.answer).toMatchObject({ type: 'error', code: ErrorCode.AuthFailed });
    await replay.client.closed;
    // The same connection cannot answer twice either: after the welcome, auth is just a refused frame.
    first.client.send({ type: 'auth', signature: seen, ref: 'again' });
    expect(await first.client.waitFor((f) => f.ref === 'again')).toMatchObject({ code: ErrorCode.BadFrame });
    first.client.close();
  });

  it('a key nobody enrolled is refused at the hello, before any challenge', async () => {
    const { client, answer } = await keyConsole(
      server.consolePort,
      { room: 'keys', user: 'stranger', key: stranger.pub, ref: 'h2' },
      signWith(stranger),
    );
    expect(answer).toMatchObject({ type: 'error', code: ErrorCode.AuthFailed, ref: 'h2' });
    expect(client.frames.some((f) => f.type === 'challenge')).toBe(false);
    await client.closed;
  });

  it('names (the default): an enrolled name cannot be used without its key, other names work as before', async () => {
    const p2 = await consoleClient(server.consolePort, {
      type: 'hello',
      room: 'keys',
      user: 'alice',
      protocol: 2,
      ref: 'p',
    });
    expect(await p2.waitFor((f) => f.type === 'error')).toMatchObject({
      code: ErrorCode.AuthRequired,
      ref: 'p',
    });
    await p2.closed;
    const seed = await consoleClient(server.consolePort, { type: 'hello', room: 'keys', user: 'alice' });
    await seed.closed;
    expect(seed.frames).toEqual([]);
    // A name without a key: the seed console joins and hears the room, as it always did.
    const plain = await consoleClient(server.consolePort, { type: 'hello', room: 'names', user: 'dave' });
    await untilRoomSize(server, 'names', 1);
    const other = await consoleClient(server.consolePort, {
      type: 'hello',
      room: 'names',
      user: 'erin',
      protocol: 2,
    });
    await other.waitFor((f) => f.type === 'joined');
    other.send({ type: 'message', text: 'hello dave', ref: 'm' });
    expect(await plain.waitFor((f) => f.type === 'message')).toMatchObject({
      sender: 'erin',
      text: 'hello dave',
    });
    plain.close();
    other.close();
  });

  it('a console using a name as it gets its first key is closed with auth_required within a second', async () => {
    const fresh = await makeKey(dir, 'frank');
    const plain = await consoleClient(server.consolePort, {
      type: 'hello',
      room: 'keys',
      user: 'frank',
      protocol: 2,
    });
    await plain.waitFor((f) => f.type === 'joined');
    const added = await keys('add', 'frank', fresh.pub);
    const at = Date.now();
    expect(added.code).toBe(0);
    expect(await plain.waitFor(isError(ErrorCode.AuthRequired), 3000)).toBeTruthy();
    await plain.closed;
    expect(Date.now() - at).toBeLessThan(1000);
  });

  it('removing a key with runspec-room keys remove, in another process, closes its live console within a second, with revoked first', async () => {
    const temp = await makeKey(dir, 'gina');
    expect((await keys('add', 'gina', temp.pub)).code).toBe(0);
    const { client, answer } = await keyConsole(
      server.consolePort,
      { room: 'keys', user: 'gina', key: temp.pub },
      signWith(temp),
    );
    expect(answer).toMatchObject({ type: 'welcome', user: 'gina' });
    const removed = await keys('remove', temp.fingerprint);
    const at = Date.now();
    expect(removed.code, removed.stderr).toBe(0);
    await client.closed;
    expect(Date.now() - at).toBeLessThan(1000);
    expect(client.frames.at(-1)).toMatchObject({ type: 'error', code: ErrorCode.Revoked });
    // And the key no longer gets in.
    const again = await keyConsole(
      server.consolePort,
      { room: 'keys', user: 'gina', key: temp.pub },
      signWith(temp),
    );
    expect(again.answer).toMatchObject({ type: 'error', code: ErrorCode.AuthFailed });
    expect((await keys('remove', temp.fingerprint)).code).toBe(1);
  });
});

describe.skipIf(!haveSshKeygen)('console key policy', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let key: TestKey;

  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir());
    key = await makeKey(dir, 'hal');
  });
  afterAll(async () => cleanup?.());

  it('required: plain hellos are refused (a protocol-2 one is told why), a key still gets in', async () => {
    const db = join(dir, 'required.db');
    expect((await runCli(['keys', 'add', 'hal', key.pub, '--db', db])).code).toBe(0);
    const server = await startTestServer(db, [], { CONSOLE_ROOM_CONSOLE_AUTH: 'required' });
    try {
      const p2 = await consoleClient(server.consolePort, {
        type: 'hello',
        room: 'r',
        user: 'ivy',
        protocol: 2,
      });
      expect(await p2.waitFor((f) => f.type === 'error')).toMatchObject({ code: ErrorCode.AuthRequired });
      await p2.closed;
      const seed = await consoleClient(server.consolePort, { type: 'hello', room: 'r', user: 'ivy' });
      await seed.closed;
      expect(seed.frames).toEqual([]);
      expect(server.hub.roomSize('r')).toBe(0);
      const { client, answer } = await keyConsole(
        server.consolePort,
        { room: 'r', user: 'x', key: key.pub },
        (n) => sign(key.file, n),
      );
      expect(answer).toMatchObject({ type: 'welcome', user: 'hal', authenticated: true });
      client.close();
    } finally {
      await server.stop();
    }
  });

  it('off: an enrolled name may be used without its key, as before keys existed', async () => {
    const db = join(dir, 'off.db');
    expect((await runCli(['keys', 'add', 'hal', key.pub, '--db', db])).code).toBe(0);
    const server = await startTestServer(db, [], { CONSOLE_ROOM_CONSOLE_AUTH: 'off' });
    try {
      const plain = await consoleClient(server.consolePort, {
        type: 'hello',
        room: 'o',
        user: 'hal',
        protocol: 2,
      });
      expect(await plain.waitFor((f) => f.type === 'welcome')).toMatchObject({
        user: 'hal',
        authenticated: false,
      });
      plain.close();
    } finally {
      await server.stop();
    }
  });
});
