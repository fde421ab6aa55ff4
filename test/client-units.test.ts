// The clients' parts on their own: ordering by seq, backoff, the loop guard, mentions, frame sizes, key
// signing with a real ssh-keygen, and flags checked at the door.
import { execFileSync } from 'node:child_process';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../src/cli/commands.ts';
import { Backoff, DEFAULT_BACKOFF } from '../src/client/backoff.ts';
import { fitText } from '../src/client/core.ts';
import { KEY_NAMESPACE, keySigner, publicKeyOf, signNonce } from '../src/client/keys.ts';
import { LoopGuard } from '../src/client/loop-guard.ts';
import { mentions } from '../src/client/mention.ts';
import { consoleSettings, mcpSettings } from '../src/client/options.ts';
import { Sequence } from '../src/client/sequence.ts';
import { MAX_FRAME_BYTES } from '../src/protocol/constants.ts';
import type { MessageOut } from '../src/protocol/frames.ts';
import { deferred } from './helpers/events.ts';
import { tempDir } from './helpers/server.ts';

const msg = (seq: number, via: 'browser' | 'console' = 'console', room = 'ops'): MessageOut => ({
  type: 'message',
  room,
  sender: via === 'browser' ? 'carol' : 'bot',
  text: `m${seq}`,
  id: String(seq).padStart(32, '0'),
  ts: 1_800_000_000 + seq,
  seq,
  via,
});

/** A conversation whose history holds messages 1..`stored` (minus `missing`), fetched as the test allows. */
function conversation(stored: number, missing: number[] = []) {
  const delivered: number[] = [];
  const lost: Array<[number, number]> = [];
  const fetches: number[] = [];
  const sequence = new Sequence<MessageOut>({
    deliver: (m) => delivered.push(m.seq),
    fetchAfter: async (after) => {
      fetches.push(after);
      const seqs = [];
      for (let s = after + 1; s <= stored && seqs.length < 3; s++) if (!missing.includes(s)) seqs.push(s);
      return { messages: seqs.map((s) => msg(s)), more: seqs.length === 3 };
    },
    lost: (from, to) => lost.push([from, to]),
  });
  return { sequence, delivered, lost, fetches };
}

/** Let pending history reads finish. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('a conversation in order (seq == last + 1)', () => {
  it('hands on each message once, in order, and drops what it has already shown', () => {
    const { sequence, delivered, fetches } = conversation(10);
    sequence.open(2);
    for (const seq of [3, 4, 4, 2, 5]) sequence.receive(msg(seq));
    expect(delivered).toEqual([3, 4, 5]);
    expect(fetches).toEqual([]);
  });

  it('holds messages behind a gap and fills the gap from history, in order, none twice', async () => {
    const { sequence, delivered, fetches } = conversation(9);
    sequence.open(1);
    sequence.receive(msg(8));
    sequence.receive(msg(9));
    expect(delivered).toEqual([]);
    for (let i = 0; i < 5; i++) await settle();
    expect(delivered).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
    expect(fetches).toEqual([1, 4]);
  });

  it('waits for the join to finish before filling, then reads up to the joined seq', async () => {
    const { sequence, delivered } = conversation(6);
    sequence.last = 1;
    sequence.receive(msg(5));
    for (let i = 0; i < 3; i++) await settle();
    expect(delivered).toEqual([]);
    sequence.open(6);
    for (let i = 0; i < 5; i++) await settle();
    expect(delivered).toEqual([2, 3, 4, 5, 6]);
  });

  it('says what the store no longer has and goes on after it instead of waiting forever', async () => {
    const { sequence, delivered, lost } = conversation(6, [3, 4]);
    sequence.open(2);
    sequence.receive(msg(6));
    for (let i = 0; i < 5; i++) await settle();
    expect(delivered).toEqual([5, 6]);
    expect(lost).toEqual([[3, 4]]);
  });

  it('forgets what it held when the connection goes: the resume brings it again', () => {
    const { sequence, delivered } = conversation(9);
    sequence.last = 1;
    sequence.receive(msg(5));
    sequence.close();
    expect(sequence.held).toBe(0);
    sequence.receive(msg(2));
    expect(delivered).toEqual([2]);
  });
});

describe('reconnect backoff', () => {
  it('waits anywhere below a ceiling that doubles from 0.5 s up to 30 s', () => {
    const top = new Backoff(DEFAULT_BACKOFF, () => 0.999_999);
    const ceilings = Array.from({ length: 9 }, () => {
      const ceiling = top.ceilingMs;
      expect(top.next()).toBeLessThan(ceiling);
      return ceiling;
    });
    expect(ceilings).toEqual([500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
    expect(new Backoff(DEFAULT_BACKOFF, () => 0).next()).toBe(0);
  });

  it('starts over after a connection that held for a minute, not after a short one', () => {
    const backoff = new Backoff(DEFAULT_BACKOFF, () => 0.5);
    for (let i = 0; i < 5; i++) backoff.next();
    backoff.ended(59_000);
    expect(backoff.ceilingMs).toBe(16_000);
    backoff.ended(60_000);
    expect(backoff.ceilingMs).toBe(500);
  });
});

describe('the loop guard', () => {
  it('caps an agent’s messages per minute and lets it go on once the minute has passed', () => {
    let now = 0;
    const guard = new LoopGuard({ maxPerMinute: 3, maxAgentRun: 100 }, () => now);
    for (let i = 0; i < 3; i++) {
      expect(guard.refusal('ops')).toBeUndefined();
      guard.sent();
      now += 1000;
    }
    expect(guard.refusal('ops')).toMatch(/--max-per-minute 3/u);
    expect(guard.refusal()).toMatch(/Wait 57 s/u);
    now = 60_001;
    expect(guard.refusal('ops')).toBeUndefined();
  });

  it('stops agents answering agents in a room until a person speaks there', () => {
    const guard = new LoopGuard({ maxPerMinute: 1000, maxAgentRun: 3 });
    for (let seq = 1; seq <= 3; seq++) guard.observe(msg(seq, 'console'));
    expect(guard.refusal('ops')).toMatch(/wait_for_messages until a person/u);
    expect(guard.refusal('dev')).toBeUndefined();
    expect(guard.refusal()).toBeUndefined();
    guard.observe(msg(4, 'browser'));
    expect(guard.refusal('ops')).toBeUndefined();
  });
});

describe('mentions', () => {
  it('finds a name as a word, with or without @, and the short form of user@host', () => {
    expect(mentions('hey @alice, look', 'alice')).toBe(true);
    expect(mentions('ALICE: ping', 'alice')).toBe(true);
    expect(mentions('malice aforethought', 'alice')).toBe(false);
    expect(mentions('alice_bot is here', 'alice')).toBe(false);
    expect(mentions('ask alice', 'alice@web01')).toBe(true);
    expect(mentions('ask alice@web01', 'alice@web01')).toBe(true);
    expect(mentions('a.b+c? yes', 'a.b+c?')).toBe(true);
  });
});

describe('frame sizes', () => {
  it('cuts text that would make a line over 64 KiB, so the door never closes the connection', () => {
    const emoji = '😀'.repeat(20_000);
    const fitted = fitText(emoji);
    expect(Buffer.byteLength(JSON.stringify({ type: 'message', text: fitted }))).toBeLessThan(
      MAX_FRAME_BYTES,
    );
    expect(fitted.endsWith('…')).toBe(true);
    expect(fitText('short')).toBe('short');
  });
});

describe('signing in with an SSH key', () => {
  let dir: string;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir());
    execFileSync('ssh-keygen', [
      '-q',
      '-t',
      'ed25519',
      '-N',
      '',
      '-C',
      'alice@laptop',
      '-f',
      join(dir, 'id'),
    ]);
  });
  afterAll(() => cleanup?.());

  it('signs exactly the nonce with ssh-keygen, and the signature verifies for the room namespace', async () => {
    const nonce = 'c2VydmVyIG5vbmNlIDEyMzQ1Njc4OQ';
    const signature = await signNonce(join(dir, 'id'), nonce);
    expect(signature).toMatch(/^-----BEGIN SSH SIGNATURE-----\n[\s\S]+\n-----END SSH SIGNATURE-----$/u);
    const pub = (await readFile(join(dir, 'id.pub'), 'utf8')).trim();
    await writeFile(join(dir, 'allowed'), `alice ${pub}\n`);
    await writeFile(join(dir, 'sig'), `${signature}\n`);
    const verify = (data: string) =>
      execFileSync(
        'ssh-keygen',
        [
          '-Y',
          'verify',
          '-f',
          join(dir, 'allowed'),
          '-I',
          'alice',
          '-n',
          KEY_NAMESPACE,
          '-s',
          join(dir, 'sig'),
        ],
        { input: data, encoding: 'utf8' },
      );
    expect(verify(nonce)).toMatch(/Good "runspec-room" signature for alice/u);
    expect(() => verify(`${nonce}\n`)).toThrow();
  });

  it('sends the public key line, read from the key, its .pub, or a public key file', async () => {
    const pub = (await readFile(join(dir, 'id.pub'), 'utf8')).trim();
    expect(await publicKeyOf(join(dir, 'id'))).toBe(pub);
    expect(await publicKeyOf(join(dir, 'id.pub'))).toBe(pub);
    await copyFile(join(dir, 'id'), join(dir, 'lonely'));
    expect((await publicKeyOf(join(dir, 'lonely'))).split(' ').slice(0, 2)).toEqual(
      pub.split(' ').slice(0, 2),
    );
    expect((await keySigner(join(dir, 'id'))).publicKey).toBe(pub);
  });

  it('says why when ssh-keygen cannot sign', async () => {
    await writeFile(join(dir, 'junk'), 'not a key\n');
    const failed = deferred<Error>();
    signNonce(join(dir, 'junk'), 'n').then(() => failed.reject(new Error('signed junk')), failed.resolve);
    expect((await failed.promise).message).toMatch(/ssh-keygen -Y/u);
  });
});

describe('client flags, checked at the door', () => {
  const bad = (argv: string[], env: Record<string, string> = {}) => {
    try {
      consoleSettings(argv, env);
    } catch (error) {
      expect(error).toBeInstanceOf(UsageError);
      return (error as Error).message;
    }
    throw new Error(`accepted ${argv.join(' ')}`);
  };

  it('refuses a missing room, bad names, both transports, bad ports and unknown flags', () => {
    expect(bad([])).toMatch(/--room/u);
    expect(bad(['--room', 'a\u200bb'])).toMatch(/--room must not contain/u);
    expect(bad(['--room', 'ops', '--user', ' '])).toMatch(/--user must not be blank/u);
    expect(bad(['--room', 'ops', '--ssh', 'h', '--connect', 'h:1'])).toMatch(/not both/u);
    expect(bad(['--room', 'ops', '--connect', 'h:99999'])).toMatch(/port/u);
    expect(bad(['--room', 'ops'], { CONSOLE_ROOM_NDJSON_PORT: 'x' })).toMatch(/CONSOLE_ROOM_NDJSON_PORT/u);
    expect(bad(['--room', 'ops', '--key', '/nonexistent/key'])).toMatch(/cannot read/u);
    expect(bad(['--room', 'ops', '--colour'])).toMatch(/--colour/u);
    expect(() => mcpSettings(['--room', 'ops', '--max-per-minute', '0'], {})).toThrow(UsageError);
  });

  it('defaults to the local console door, and reads the port and the ssh command from the environment', () => {
    expect(consoleSettings(['--room', 'ops', '--user', 'al'], {})).toMatchObject({
      rooms: ['ops'],
      user: 'al',
      destination: { kind: 'tcp', host: '127.0.0.1', port: 8765 },
      json: false,
      noColor: false,
    });
    expect(
      consoleSettings(['--room', 'ops', '--room', 'dev', '--ssh', 'room-host'], {
        CONSOLE_ROOM_NDJSON_PORT: '9000',
        CONSOLE_ROOM_SSH_COMMAND: 'ssh -p 2222',
        NO_COLOR: '1',
      }),
    ).toMatchObject({
      rooms: ['ops', 'dev'],
      destination: { kind: 'ssh', host: 'room-host', port: 9000, command: ['ssh', '-p', '2222'] },
      noColor: true,
    });
    expect(consoleSettings(['--room', 'ops', '--connect', '[::1]:7000'], {})?.destination).toEqual({
      kind: 'tcp',
      host: '::1',
      port: 7000,
    });
    expect(mcpSettings(['--room', 'ops', '--mentions-only'], {})).toMatchObject({
      mentionsOnly: true,
      maxPerMinute: 30,
      maxAgentRun: 20,
    });
  });
});
