// Signed in with a real OpenID Provider: people manage their console keys over /api/keys (the page's
// panel), a removed key ends its consoles at once, and a signed-in admin acts from the browser door.
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import { CloseCode, ErrorCode, RefusalCode } from '../src/protocol/codes.ts';
import { type Frame, frameLogOf, openWebSocket } from './helpers/clients.ts';
import type { TestIdp } from './helpers/idp.ts';
import { CookieJar } from './helpers/jar.ts';
import type { TestPki } from './helpers/pki.ts';
import { type SignedInServer, startSignedInServer } from './helpers/signed-in.ts';
import { runCli, type Spawned } from './helpers/spawn.ts';
import { haveSshKeygen, keyConsole, makeKey, sign, type TestKey } from './helpers/ssh.ts';

if (!haveSshKeygen && process.env.CI)
  throw new Error('CI must run the key panel tests: install openssh-client');

describe.skipIf(!haveSshKeygen)('console keys and admins, signed in', () => {
  let pki: TestPki;
  let idp: TestIdp;
  let server: Spawned;
  let origin: string;
  let dir: string;
  let db: string;
  let signedIn: SignedInServer;
  let adaJar: CookieJar;
  let boJar: CookieJar;
  let adaKey: TestKey;

  const signIn = async (user: string): Promise<CookieJar> => {
    idp.user = user;
    const jar = new CookieJar(pki.ca);
    await jar.follow(`${origin}/login`);
    return jar;
  };
  const api = (jar: CookieJar, method: string, path: string, body?: unknown, from = origin) =>
    jar.fetch(`${origin}${path}`, {
      method,
      headers: { origin: from, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
  /** A signed-in browser on /ws: its frames, and its close code. */
  const browser = async (jar: CookieJar, room: string) => {
    const url = new URL(`/ws?room=${room}`, origin.replace('https', 'wss'));
    const ws = (await openWebSocket(url, {
      headers: { cookie: jar.header(new URL(origin)) },
      origin,
      ca: pki.ca,
    })) as WebSocket;
    const log = frameLogOf(ws);
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    let refs = 0;
    const request = async (frame: object): Promise<Frame> => {
      const ref = `b${++refs}`;
      ws.send(JSON.stringify({ ...frame, ref }));
      return log.waitFor((f) => f.ref === ref);
    };
    await log.waitFor((f) => f.type === 'joined');
    return { ws, ...log, closed, request };
  };

  beforeAll(async () => {
    signedIn = await startSignedInServer({ CONSOLE_ROOM_ADMINS: 'ada' });
    ({ server, idp, pki, origin, dir } = signedIn);
    db = join(dir, 'room.db');
    adaKey = await makeKey(dir, 'ada');
    adaJar = await signIn('ada');
    boJar = await signIn('bo');
  }, 60_000);

  afterAll(async () => {
    await signedIn?.stop();
  });

  it('a signed-in person adds a key with a label, sees it listed, and the console key then proves their name', async () => {
    expect(JSON.parse((await api(adaJar, 'GET', '/api/keys')).body)).toEqual({ user: 'ada', keys: [] });
    const added = await api(adaJar, 'POST', '/api/keys', { key: adaKey.pub, label: 'work laptop' });
    expect(added.status, added.body).toBe(201);
    expect(JSON.parse(added.body).key).toMatchObject({
      fingerprint: adaKey.fingerprint,
      label: 'work laptop',
      created_by: 'ada',
    });
    const listed = JSON.parse((await api(adaJar, 'GET', '/api/keys')).body) as {
      keys: Array<{ fingerprint: string }>;
    };
    expect(listed.keys.map((k) => k.fingerprint)).toEqual([adaKey.fingerprint]);
    const { client, answer } = await keyConsole(
      server.consolePort,
      { room: 'ops', user: 'ada', key: adaKey.pub },
      (n) => sign(adaKey.file, n),
    );
    expect(answer).toMatchObject({ type: 'welcome', user: 'ada', authenticated: true, admin: true });
    client.close();
  });

  it('refuses a key change from another origin, without a session, with a bad body, a bad key, or a key already enrolled', async () => {
    const other = await makeKey(dir, 'other');
    expect((await api(adaJar, 'POST', '/api/keys', { key: other.pub }, 'https://evil.example')).status).toBe(
      403,
    );
    const anonymous = await new CookieJar(pki.ca).fetch(`${origin}/api/keys`, {
      method: 'POST',
      headers: { origin },
      body: '{}',
    });
    expect(JSON.parse(anonymous.body).error.code).toBe(RefusalCode.Unauthenticated);
    const garbage = await api(adaJar, 'POST', '/api/keys', '{not json');
    expect([garbage.status, JSON.parse(garbage.body).error.code]).toEqual([400, RefusalCode.BadRequest]);
    const bad = await api(adaJar, 'POST', '/api/keys', { key: 'ssh-dss AAAAB3NzaC1kc3MAAACBAP' });
    expect([bad.status, JSON.parse(bad.body).error.code]).toEqual([400, RefusalCode.BadKey]);
    const taken = await api(boJar, 'POST', '/api/keys', { key: adaKey.pub });
    expect([taken.status, JSON.parse(taken.body).error.code]).toEqual([409, RefusalCode.KeyConflict]);
    const cached = await api(adaJar, 'GET', '/api/keys');
    expect(cached.headers['cache-control']).toBe('no-store');
  });

  it('a key upload that never ends is refused with 413 once it passes the limit, without waiting for its end', async () => {
    const url = new URL('/api/keys', origin);
    const sent = { bytes: 0 };
    const status = await new Promise<number>((resolve, reject) => {
      const request = httpsRequest(url, {
        method: 'POST',
        ca: pki.ca,
        headers: { origin, cookie: adaJar.header(url), 'content-type': 'application/json' },
      });
      request.on('response', (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
        request.destroy();
      });
      request.on('error', (error) => {
        if (sent.bytes < 8 * 1024 * 1024) reject(error);
      });
      // Chunked, 1 KiB at a time, for as long as the server reads: up to 8 MiB, then it fails.
      const chunk = Buffer.alloc(1024, 'a');
      const more = (): void => {
        while (sent.bytes < 8 * 1024 * 1024) {
          sent.bytes += chunk.length;
          if (!request.write(chunk)) {
            request.once('drain', more);
            return;
          }
        }
        reject(new Error('8 MiB sent and no answer'));
      };
      request.write('{"key": "');
      more();
    });
    expect(status).toBe(413);
  });

  it('removing a key on the page closes its live console at once, with revoked; someone else cannot remove it', async () => {
    const laptop = await makeKey(dir, 'ada-laptop');
    expect((await api(adaJar, 'POST', '/api/keys', { key: laptop.pub })).status).toBe(201);
    const { client, answer } = await keyConsole(
      server.consolePort,
      { room: 'ops', user: 'ada', key: laptop.pub },
      (n) => sign(laptop.file, n),
    );
    expect(answer).toMatchObject({ type: 'welcome', user: 'ada' });
    const path = `/api/keys/${encodeURIComponent(laptop.fingerprint)}`;
    expect((await api(boJar, 'DELETE', path)).status).toBe(404);
    expect((await api(adaJar, 'DELETE', path, undefined, 'https://evil.example')).status).toBe(403);
    const at = Date.now();
    expect((await api(adaJar, 'DELETE', path)).status).toBe(204);
    await client.closed;
    expect(Date.now() - at).toBeLessThan(1000);
    expect(client.frames.at(-1)).toMatchObject({ type: 'error', code: ErrorCode.Revoked });
    expect((await api(adaJar, 'DELETE', path)).status).toBe(404);
  });

  it('a signed-in admin kicks, bans, mutes and deletes from the browser door; a signed-in non-admin is forbidden', async () => {
    const ada = await browser(adaJar, 'page-room');
    expect(ada.frames.find((f) => f.type === 'welcome')).toMatchObject({
      user: 'ada',
      authenticated: true,
      admin: true,
    });
    const bo = await browser(boJar, 'page-room');
    expect(bo.frames.find((f) => f.type === 'welcome')).toMatchObject({
      user: 'bo',
      authenticated: true,
      admin: false,
    });
    for (const frame of [
      { type: 'kick', room: 'page-room', user: 'ada' },
      { type: 'ban', room: 'page-room', user: 'ada' },
      { type: 'mute', room: 'page-room', user: 'ada' },
      { type: 'delete', room: 'page-room', id: '0'.repeat(32) },
      { type: 'revoke', fingerprint: adaKey.fingerprint },
    ])
      expect(await bo.request(frame)).toMatchObject({ type: 'error', code: ErrorCode.Forbidden });

    const said = await bo.request({ type: 'message', text: 'something regrettable' });
    expect(await ada.request({ type: 'delete', room: 'page-room', id: said.id })).toMatchObject({
      type: 'ack',
    });
    expect(await bo.waitFor((f) => f.type === 'deleted')).toMatchObject({ id: said.id });
    expect(await ada.request({ type: 'mute', room: 'page-room', user: 'bo' })).toMatchObject({ type: 'ack' });
    expect(await bo.request({ type: 'message', text: 'hello?' })).toMatchObject({ code: ErrorCode.Muted });
    expect(await ada.request({ type: 'unmute', room: 'page-room', user: 'bo' })).toMatchObject({
      type: 'ack',
    });
    expect(await ada.request({ type: 'kick', room: 'page-room', user: 'bo' })).toMatchObject({ type: 'ack' });
    expect(await bo.waitFor((f) => f.type === 'kicked')).toMatchObject({
      room: 'page-room',
      by: 'ada',
      banned: false,
    });
    expect(await bo.request({ type: 'join', room: 'page-room' })).toMatchObject({ type: 'joined' });
    expect(await ada.request({ type: 'ban', room: 'page-room', user: 'bo' })).toMatchObject({ type: 'ack' });
    expect(await bo.waitFor((f) => f.type === 'kicked' && f.banned === true)).toBeTruthy();
    // Opened again for the banned room, the socket is told and closed with 4403.
    const url = new URL('/ws?room=page-room', origin.replace('https', 'wss'));
    const again = (await openWebSocket(url, {
      headers: { cookie: boJar.header(new URL(origin)) },
      origin,
      ca: pki.ca,
    })) as WebSocket;
    const againLog = frameLogOf(again);
    const code = await new Promise<number>((resolve) => again.once('close', resolve));
    expect(code).toBe(CloseCode.Forbidden);
    expect(againLog.frames).toEqual([expect.objectContaining({ type: 'error', code: ErrorCode.Banned })]);
    ada.ws.close();
    bo.ws.close();

    const audit = await runCli(['audit', '--db', db, '--json']);
    const entries = audit.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(entries.filter((e) => e.via === 'browser').map((e) => e.action)).toEqual([
      'key_add',
      'key_add',
      'key_remove',
      'delete',
      'mute',
      'unmute',
      'kick',
      'ban',
    ]);
    expect(entries.every((e) => e.actor === 'ada' || e.via === 'host')).toBe(true);
  });
});
