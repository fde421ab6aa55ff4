// Admins at the console door: a key-proven admin kicks, bans, mutes, deletes and revokes; everyone
// else is refused; bans and deletions outlive a restart; `runspec-room audit` lists every action.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloseCode, ErrorCode } from '../src/protocol/codes.ts';
import { browserClient, type ConsoleClient, consoleClient, type Frame, request } from './helpers/clients.ts';
import { startTestServer, type TestServer, tempDir } from './helpers/server.ts';
import { runCli } from './helpers/spawn.ts';
import { haveSshKeygen, keyConsole, makeKey, sign, type TestKey } from './helpers/ssh.ts';

if (!haveSshKeygen && process.env.CI) throw new Error('CI must run the admin tests: install openssh-client');

const ADMINS = { CONSOLE_ROOM_ADMINS: 'root-admin, ada' };

describe.skipIf(!haveSshKeygen)('admins at the console door', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let db: string;
  let server: TestServer;
  let adaKey: TestKey;
  let boKey: TestKey;
  let ada: ConsoleClient;

  const proven = async (key: TestKey, room: string, user: string): Promise<ConsoleClient> => {
    const { client, answer } = await keyConsole(server.consolePort, { room, user, key: key.pub }, (n) =>
      sign(key.file, n),
    );
    expect(answer, JSON.stringify(answer)).toMatchObject({ type: 'welcome' });
    await client.waitFor((f) => f.type === 'joined');
    return client;
  };
  const plain = async (room: string, user: string): Promise<ConsoleClient> => {
    const client = await consoleClient(server.consolePort, { type: 'hello', room, user, protocol: 2 });
    await client.waitFor((f) => f.type === 'joined');
    return client;
  };

  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir());
    db = join(dir, 'room.db');
    [adaKey, boKey] = await Promise.all([makeKey(dir, 'ada'), makeKey(dir, 'bo')]);
    expect((await runCli(['keys', 'add', 'ada', adaKey.pub, '--db', db])).code).toBe(0);
    expect((await runCli(['keys', 'add', 'bo', boKey.pub, '--db', db])).code).toBe(0);
    server = await startTestServer(db, [], ADMINS);
    ada = await proven(adaKey, 'lobby', 'ada');
  }, 30_000);

  afterAll(async () => {
    await server?.stop();
    await cleanup?.();
  });

  it('tells a proven admin so in its welcome, and nobody else', async () => {
    expect(ada.frames.find((f) => f.type === 'welcome')).toMatchObject({
      user: 'ada',
      authenticated: true,
      admin: true,
    });
    const bo = await proven(boKey, 'lobby', 'bo');
    expect(bo.frames.find((f) => f.type === 'welcome')).toMatchObject({ authenticated: true, admin: false });
    bo.close();
  });

  it('refuses every admin action from someone who is not an admin, with forbidden', async () => {
    const bo = await proven(boKey, 'lobby', 'bo');
    const frames = [
      { type: 'kick', room: 'lobby', user: 'ada' },
      { type: 'ban', room: 'lobby', user: 'ada' },
      { type: 'unban', room: 'lobby', user: 'ada' },
      { type: 'mute', room: 'lobby', user: 'ada' },
      { type: 'unmute', room: 'lobby', user: 'ada' },
      { type: 'delete', room: 'lobby', id: '0'.repeat(32) },
      { type: 'revoke', fingerprint: adaKey.fingerprint },
    ];
    for (const frame of frames)
      expect(await request(bo, frame)).toMatchObject({ type: 'error', code: ErrorCode.Forbidden });
    bo.close();
  });

  it('an admin’s name claimed without its key is not an admin (policy off lets the name in, not the power)', async () => {
    const offDb = join(dir, 'off.db');
    const off = await startTestServer(offDb, [], { ...ADMINS, CONSOLE_ROOM_CONSOLE_AUTH: 'off' });
    try {
      const fake = await consoleClient(off.consolePort, {
        type: 'hello',
        room: 'x',
        user: 'root-admin',
        protocol: 2,
      });
      expect(await fake.waitFor((f) => f.type === 'welcome')).toMatchObject({
        user: 'root-admin',
        authenticated: false,
        admin: false,
      });
      expect(await request(fake, { type: 'kick', room: 'x', user: 'root-admin' })).toMatchObject({
        code: ErrorCode.Forbidden,
      });
      fake.close();
    } finally {
      await off.stop();
    }
  });

  it('kick: the user’s connections leave the room and are told; a seed console is closed; they may come back', async () => {
    const eve = await plain('kick-room', 'eve');
    await plain('other-room', 'eve').then((c) => c.close());
    const seedEve = await consoleClient(server.consolePort, {
      type: 'hello',
      room: 'kick-room',
      user: 'eve',
    });
    expect(await request(ada, { type: 'join', room: 'kick-room' })).toMatchObject({ type: 'joined' });
    await ada.waitFor((f) => f.type === 'presence' && f.user === 'eve' && f.room === 'kick-room');
    const from = ada.frames.length;
    expect(
      await request(ada, { type: 'kick', room: 'kick-room', user: 'eve', reason: 'cool off' }),
    ).toMatchObject({ type: 'ack' });
    expect(await eve.waitFor((f) => f.type === 'kicked')).toEqual({
      type: 'kicked',
      room: 'kick-room',
      by: 'ada',
      banned: false,
      reason: 'cool off',
    });
    await seedEve.closed;
    expect(seedEve.frames.filter((f) => f.type !== 'message' && f.type !== 'presence')).toEqual([]);
    await ada.waitFor((f) => f.type === 'presence' && f.user === 'eve' && f.status === 'away', 3000, from);
    expect(server.hub.roomSize('kick-room')).toBe(1);
    // The connection stays, and a kick is not a ban.
    expect(await request(eve, { type: 'join', room: 'kick-room' })).toMatchObject({ type: 'joined' });
    expect(await request(ada, { type: 'kick', room: 'kick-room', user: 'nobody-here' })).toMatchObject({
      code: ErrorCode.NotFound,
    });
    eve.close();
  });

  it('ban: the user leaves and cannot join again, by join or by hello, until unbanned', async () => {
    const finn = await plain('ban-room', 'finn');
    await request(ada, { type: 'join', room: 'ban-room' });
    expect(await request(ada, { type: 'ban', room: 'ban-room', user: 'finn', reason: 'spam' })).toMatchObject(
      { type: 'ack' },
    );
    expect(await finn.waitFor((f) => f.type === 'kicked')).toMatchObject({
      room: 'ban-room',
      banned: true,
      by: 'ada',
    });
    expect(await request(finn, { type: 'join', room: 'ban-room' })).toMatchObject({
      type: 'error',
      code: ErrorCode.Banned,
    });
    const again = await consoleClient(server.consolePort, {
      type: 'hello',
      room: 'ban-room',
      user: 'finn',
      protocol: 2,
      ref: 'h',
    });
    expect(await again.waitFor((f) => f.type === 'error')).toMatchObject({
      code: ErrorCode.Banned,
      ref: 'h',
    });
    await again.closed;
    const browser = await browserClient(server.url, 'finn', 'ban-room');
    expect(await browser.waitFor((f) => f.type === 'error')).toMatchObject({ code: ErrorCode.Banned });
    expect(await browser.closed).toEqual({ code: CloseCode.Forbidden });
    expect(await request(ada, { type: 'unban', room: 'ban-room', user: 'finn' })).toMatchObject({
      type: 'ack',
    });
    expect(await request(finn, { type: 'join', room: 'ban-room' })).toMatchObject({ type: 'joined' });
    expect(await request(ada, { type: 'unban', room: 'ban-room', user: 'finn' })).toMatchObject({
      code: ErrorCode.NotFound,
    });
    finn.close();
  });

  it('a ban with until ends by itself', async () => {
    const until = Date.now() / 1000 + 1.5;
    expect(await request(ada, { type: 'ban', room: 'brief', user: 'gus', until })).toMatchObject({
      type: 'ack',
    });
    const gus = await consoleClient(server.consolePort, {
      type: 'hello',
      room: 'elsewhere',
      user: 'gus',
      protocol: 2,
    });
    await gus.waitFor((f) => f.type === 'joined');
    expect(await request(gus, { type: 'join', room: 'brief' })).toMatchObject({ code: ErrorCode.Banned });
    await new Promise((r) => setTimeout(r, Math.max(0, until * 1000 - Date.now() + 50)));
    expect(await request(gus, { type: 'join', room: 'brief' })).toMatchObject({ type: 'joined' });
    expect(await request(ada, { type: 'ban', room: 'brief', user: 'gus', until: 1 })).toMatchObject({
      code: ErrorCode.BadFrame,
    });
    gus.close();
  });

  it('mute: the user’s messages to that room are refused and not stored, until unmuted; whispers and other rooms are untouched', async () => {
    const hana = await plain('mute-room', 'hana');
    await request(ada, { type: 'join', room: 'mute-room' });
    expect(await request(ada, { type: 'mute', room: 'mute-room', user: 'hana' })).toMatchObject({
      type: 'ack',
    });
    expect(
      await request(hana, { type: 'message', room: 'mute-room', text: 'can you hear me' }),
    ).toMatchObject({
      type: 'error',
      code: ErrorCode.Muted,
    });
    expect(await request(hana, { type: 'whisper', to: 'ada', text: 'psst' })).toMatchObject({
      type: 'whisper',
    });
    expect(await request(ada, { type: 'unmute', room: 'mute-room', user: 'hana' })).toMatchObject({
      type: 'ack',
    });
    expect(await request(hana, { type: 'message', room: 'mute-room', text: 'back' })).toMatchObject({
      type: 'message',
      seq: 1,
    });
    hana.close();
  });

  it('delete: the text leaves the transcript, the seq stays; members are told; history, backscroll and HTTP show a tombstone', async () => {
    const ivan = await plain('del-room', 'ivan');
    await request(ada, { type: 'join', room: 'del-room' });
    const kept = await request(ivan, { type: 'message', room: 'del-room', text: 'fine' });
    const bad = await request(ivan, { type: 'message', room: 'del-room', text: 'my password is hunter2' });
    expect(await request(ada, { type: 'delete', room: 'del-room', id: bad.id })).toMatchObject({
      type: 'ack',
    });
    expect(await ivan.waitFor((f) => f.type === 'deleted')).toEqual({
      type: 'deleted',
      room: 'del-room',
      id: bad.id,
      seq: bad.seq,
    });
    const history = await request(ivan, { type: 'history', room: 'del-room' });
    const shown = history.messages as Frame[];
    expect(shown.map((m) => [m.seq, m.text, m.deleted])).toEqual([
      [kept.seq, 'fine', undefined],
      [bad.seq, '', true],
    ]);
    const browser = await browserClient(server.url, 'jo', 'del-room');
    await browser.waitFor((f) => f.type === 'joined');
    expect(browser.frames.filter((f) => f.type === 'message').map((m) => [m.text, m.deleted])).toEqual([
      ['fine', undefined],
      ['', true],
    ]);
    browser.close();
    const page = (await (await fetch(`${server.url}/api/rooms/del-room/messages`)).json()) as {
      messages: Frame[];
    };
    expect(JSON.stringify(page)).not.toContain('hunter2');
    expect(await request(ada, { type: 'delete', room: 'del-room', id: bad.id })).toMatchObject({
      type: 'ack',
    });
    expect(await request(ada, { type: 'delete', room: 'lobby', id: bad.id })).toMatchObject({
      code: ErrorCode.NotFound,
    });
    ivan.close();
  });

  it('revoke: the key’s live consoles get revoked and are closed at once; the key no longer gets in', async () => {
    const temp = await makeKey(dir, 'kit');
    expect((await runCli(['keys', 'add', 'kit', temp.pub, '--db', db])).code).toBe(0);
    const kit = await proven(temp, 'lobby', 'kit');
    expect(await request(ada, { type: 'revoke', fingerprint: temp.fingerprint })).toMatchObject({
      type: 'ack',
    });
    await kit.closed;
    expect(kit.frames.at(-1)).toMatchObject({ type: 'error', code: ErrorCode.Revoked });
    expect(await request(ada, { type: 'revoke', fingerprint: temp.fingerprint })).toMatchObject({
      code: ErrorCode.NotFound,
    });
  });

  it('bans, mutes and deletions outlive a restart; the audit lists every action with who did it', async () => {
    await request(ada, { type: 'ban', room: 'kept', user: 'lee' });
    await request(ada, { type: 'mute', room: 'kept', user: 'lee' });
    ada.close();
    await server.stop();
    server = await startTestServer(db, [], ADMINS);
    const lee = await consoleClient(server.consolePort, {
      type: 'hello',
      room: 'x',
      user: 'lee',
      protocol: 2,
    });
    await lee.waitFor((f) => f.type === 'joined');
    expect(await request(lee, { type: 'join', room: 'kept' })).toMatchObject({ code: ErrorCode.Banned });
    const page = (await (await fetch(`${server.url}/api/rooms/del-room/messages`)).json()) as {
      messages: Frame[];
    };
    expect(page.messages.map((m) => m.deleted)).toEqual([undefined, true]);
    lee.close();

    const audit = await runCli(['audit', '--db', db, '--json']);
    expect(audit.code, audit.stderr).toBe(0);
    const entries = audit.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const actions = entries.map((e) => e.action);
    for (const action of ['key_add', 'kick', 'ban', 'unban', 'mute', 'unmute', 'delete', 'revoke'])
      expect(actions).toContain(action);
    expect(entries.find((e) => e.action === 'ban' && e.room === 'ban-room')).toMatchObject({
      actor: 'ada',
      via: 'console',
      user: 'finn',
      reason: 'spam',
    });
    expect(entries.find((e) => e.action === 'key_add')).toMatchObject({ via: 'host', user: 'ada' });
    // Refused actions change nothing and are not recorded as done.
    expect(entries.filter((e) => e.actor === 'bo')).toEqual([]);
    const text = await runCli(['audit', '--db', db, '--limit', '3']);
    expect(text.stdout.trim().split('\n')).toHaveLength(3);
    expect(text.stdout).toContain('ada (console)  mute');
  });
});
