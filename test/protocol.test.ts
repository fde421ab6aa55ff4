// Unit tests of the wire protocol in src/protocol/frames.ts: text cap, status, names and client-frame decoding.
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CloseCode, ErrorCode } from '../src/protocol/codes.ts';
import {
  type ClientFrame,
  capText,
  decodeClientFrame,
  HISTORY_MAX,
  NAME_MAX,
  nameProblem,
  normalizeStatus,
  REASON_MAX,
  TEXT_CAP,
} from '../src/protocol/frames.ts';
import { pageModule } from '../src/protocol/page-module.ts';

/** Decode as the seed protocol does (a console that did not opt in), and require success. */
function decodeOk(value: unknown): ClientFrame {
  const result = decodeClientFrame(JSON.stringify(value), false);
  if (!result.ok) throw new Error(`expected ok, got ${result.code}: ${result.message}`);
  return result.frame;
}

/** Decode raw JSON text as the seed protocol does, and require a refusal, returning it. */
function decodeRefused(text: string): { code: string; message: string; optedIn: boolean } {
  const result = decodeClientFrame(text, false);
  if (result.ok) throw new Error(`expected a refusal, got ${JSON.stringify(result.frame)}`);
  return result;
}

describe('capText', () => {
  it('leaves text of exactly 20,000 characters unchanged', () => {
    const text = 'a'.repeat(TEXT_CAP);
    expect(TEXT_CAP).toBe(20_000);
    expect(capText(text)).toBe(text);
  });

  it('cuts text of 20,001 characters to the first 20,000 and marks the cut with "…"', () => {
    const text = `${'b'.repeat(TEXT_CAP)}z`;
    expect(capText(text)).toBe(`${'b'.repeat(TEXT_CAP)}…`);
  });

  it('leaves short text alone', () => {
    expect(capText('')).toBe('');
    expect(capText('rolling out')).toBe('rolling out');
  });

  it('counts emoji as one character each, so 20,000 of them are kept whole', () => {
    const text = '😀'.repeat(TEXT_CAP);
    expect(capText(text)).toBe(text);
  });

  it('never splits an emoji when cutting', () => {
    const text = '😀'.repeat(TEXT_CAP + 1);
    const capped = capText(text);
    expect(capped).toBe(`${'😀'.repeat(TEXT_CAP)}…`);
    expect(capped.isWellFormed()).toBe(true);
    expect([...capped].length).toBe(TEXT_CAP + 1);
  });

  it('cuts at a character boundary when an emoji straddles the 20,000th UTF-16 unit', () => {
    const text = `${'a'.repeat(TEXT_CAP - 1)}😀${'c'.repeat(5)}`;
    expect(capText(text)).toBe(`${'a'.repeat(TEXT_CAP - 1)}😀…`);
  });

  it('replaces lone surrogates with U+FFFD', () => {
    expect(capText('a\ud800b')).toBe('a\ufffdb');
    expect(capText('\udc00')).toBe('\ufffd');
    expect(capText('x\ud83d')).toBe('x\ufffd');
  });
});

describe('normalizeStatus', () => {
  it('keeps "available"', () => {
    expect(normalizeStatus('available')).toBe('available');
  });

  it.each([['away'], ['Available'], [' available'], ['busy'], [''], [null], [undefined], [1], [true], [{}]])(
    'treats %j as "away"',
    (status) => {
      expect(normalizeStatus(status)).toBe('away');
    },
  );
});

describe('nameProblem', () => {
  it.each([['alice@web01'], ['José 🚀'], ['ops'], ['a'.repeat(NAME_MAX)], ['🚀'.repeat(NAME_MAX)]])(
    'accepts %j',
    (name) => {
      expect(nameProblem(name)).toBeUndefined();
    },
  );

  it('refuses a blank name', () => {
    expect(nameProblem('')).toBeTypeOf('string');
  });

  it('refuses a name of 129 characters', () => {
    expect(NAME_MAX).toBe(128);
    expect(nameProblem('a'.repeat(129))).toBeTypeOf('string');
    expect(nameProblem('🚀'.repeat(129))).toBeTypeOf('string');
  });

  it.each([
    ['NUL', 'ali\u0000ce'],
    ['ESC', '\u001b[31malice'],
    ['DEL', 'alice\u007f'],
    ['a C1 control', 'alice\u0085'],
    ['a newline', 'alice\nbob'],
    ['a bidi override', 'alice\u202eecila'],
    ['a bidi isolate', 'alice\u2066x'],
    ['a zero-width space', 'ali\u200bce'],
    ['a byte-order mark', '\ufeffalice'],
  ])('refuses a name containing %s', (_what, name) => {
    expect(nameProblem(name)).toBeTypeOf('string');
  });

  // Each of these renders as nothing (or as a plain space) between "ali" and "ce", so the name would
  // show as "alice" in the people list.
  it.each([
    ['U+00AD soft hyphen', 0xad],
    ['U+034F combining grapheme joiner', 0x34f],
    ['U+061C Arabic letter mark', 0x61c],
    ['U+180E Mongolian vowel separator', 0x180e],
    ['U+115F Hangul choseong filler', 0x115f],
    ['U+3164 Hangul filler', 0x3164],
    ['U+FFA0 half-width Hangul filler', 0xffa0],
    ['U+FE0F variation selector 16', 0xfe0f],
    ['U+E0100 variation selector 17', 0xe0100],
    ['U+E0041 tag latin capital letter A', 0xe0041],
    ['U+206A inhibit symmetric swapping', 0x206a],
    ['U+2065 (reserved, default ignorable)', 0x2065],
    ['U+2028 line separator', 0x2028],
    ['U+2029 paragraph separator', 0x2029],
    ['U+0600 Arabic number sign (format)', 0x600],
    ['U+1D173 musical symbol begin beam', 0x1d173],
    ['U+1BCA0 shorthand format letter overlap', 0x1bca0],
  ])('refuses a name containing %s', (_what, codePoint) => {
    expect(nameProblem(`ali${String.fromCodePoint(codePoint)}ce`)).toBeTypeOf('string');
  });

  it('refuses every Default_Ignorable_Code_Point listed in DerivedCoreProperties.txt (Unicode 14.0 to 17.0)', () => {
    // Spelled out from the Unicode data rather than taken from the regex engine, so a runtime whose
    // property tables lack one of them fails here.
    const ranges = [
      [0x00ad, 0x00ad],
      [0x034f, 0x034f],
      [0x061c, 0x061c],
      [0x115f, 0x1160],
      [0x17b4, 0x17b5],
      [0x180b, 0x180f],
      [0x200b, 0x200f],
      [0x202a, 0x202e],
      [0x2060, 0x206f],
      [0x3164, 0x3164],
      [0xfe00, 0xfe0f],
      [0xfeff, 0xfeff],
      [0xffa0, 0xffa0],
      [0xfff0, 0xfff8],
      [0x1bca0, 0x1bca3],
      [0x1d173, 0x1d17a],
      [0xe0000, 0xe0fff],
    ];
    const accepted: string[] = [];
    for (const [from = 0, to = 0] of ranges) {
      for (let cp = from; cp <= to; cp++) {
        if (nameProblem(`a${String.fromCodePoint(cp)}b`) === undefined) accepted.push(cp.toString(16));
      }
    }
    expect(accepted).toEqual([]);
  });

  it('refuses a name with an unpaired surrogate, which could not be stored as it is', () => {
    expect(nameProblem('ali\ud800ce')).toBeTypeOf('string');
    expect(nameProblem('alice\udc00')).toBeTypeOf('string');
  });

  it.each([
    ['Greek', 'Ελένη'],
    ['Cyrillic', 'Алиса'],
    ['Han', '李雷'],
    ['Hangul syllables', '김민준'],
    ['Arabic', 'مريم'],
    ['Devanagari', 'प्रिया'],
    ['inner spaces and punctuation', "Seán O'Brien-Ng"],
    ['combining accents', 'Jose\u0301'],
  ])('accepts a name in %s', (_what, name) => {
    expect(nameProblem(name)).toBeUndefined();
  });
});

describe('the page and the server share one source', () => {
  it('the page takes its codes and its name rule from protocol.js, made from the protocol module', async () => {
    const dir = new URL('../static/', import.meta.url);
    const modules = readdirSync(dir)
      .filter((file) => file.endsWith('.js'))
      .map((file) => ({ file, text: readFileSync(new URL(file, dir), 'utf8') }));
    const imported = modules.flatMap(({ text }) =>
      [...text.matchAll(/^import \{([^}]*)\} from '\.\/protocol\.js';$/gmu)].flatMap((m) =>
        (m[1] ?? '').split(',').map((name) => name.trim()),
      ),
    );
    expect(imported).toEqual(expect.arrayContaining(['CloseCode', 'FORBIDDEN_IN_NAME']));
    // No close code, and no copy of the name rule, restated in any of the page's modules.
    for (const { file, text } of modules) {
      expect(text, file).not.toMatch(/\b(4\d{3}|100[89]|101[0-3])\b/u);
      expect(text, file).not.toMatch(/Default_Ignorable/u);
    }
    const url = `data:text/javascript,${encodeURIComponent(pageModule())}`;
    const served = (await import(url)) as Record<string, unknown>;
    expect(served.CloseCode).toEqual(CloseCode);
    expect(served.ErrorCode).toEqual(ErrorCode);
    expect(served.NAME_MAX).toBe(NAME_MAX);
    expect(served.HISTORY_MAX).toBe(HISTORY_MAX);
    expect(served.REASON_MAX).toBe(REASON_MAX);
    const rule = served.FORBIDDEN_IN_NAME as RegExp;
    // Compared over every code point, so the page refuses exactly what the server refuses.
    const differ: string[] = [];
    for (let cp = 0; cp <= 0x10ffff; cp++) {
      const ch = String.fromCodePoint(cp);
      if (rule.test(ch) !== (nameProblem(`a${ch}b`) !== undefined)) differ.push(cp.toString(16));
    }
    expect(differ).toEqual([]);
  });
});

describe('decodeClientFrame: hello', () => {
  it('refuses a hello with a blank room', () => {
    const refused = decodeRefused(JSON.stringify({ type: 'hello', room: '', user: 'alice' }));
    expect(refused.code).toBe(ErrorCode.BadName);
  });

  it('refuses a hello with a whitespace-only room', () => {
    expect(decodeClientFrame(JSON.stringify({ type: 'hello', room: '  \t ', user: 'alice' })).ok).toBe(false);
  });

  it('refuses a hello with no room or a null room', () => {
    expect(decodeClientFrame(JSON.stringify({ type: 'hello', user: 'alice' })).ok).toBe(false);
    expect(decodeClientFrame(JSON.stringify({ type: 'hello', room: null, user: 'alice' })).ok).toBe(false);
  });

  it.each([
    ['blank', { user: '' }],
    ['whitespace-only', { user: '   ' }],
    ['missing', {}],
    ['null', { user: null }],
  ])('names a %s user "unknown"', (_what, extra) => {
    expect(decodeOk({ type: 'hello', room: 'ops', ...extra })).toEqual({
      type: 'hello',
      room: 'ops',
      user: 'unknown',
    });
  });

  it('trims the room and the user', () => {
    expect(decodeOk({ type: 'hello', room: '  ops ', user: '\talice@web01 ' })).toEqual({
      type: 'hello',
      room: 'ops',
      user: 'alice@web01',
    });
  });

  it('turns a numeric room or user into its string, as the original str() did', () => {
    expect(decodeOk({ type: 'hello', room: 123, user: 42 })).toEqual({
      type: 'hello',
      room: '123',
      user: '42',
    });
  });

  // The original server called str() on scalars: str(True) is "True", not JavaScript's "true".
  it('turns a boolean room into "True"/"False", as the original str() did', () => {
    expect(decodeOk({ type: 'hello', room: true, user: false })).toMatchObject({
      room: 'True',
      user: 'False',
    });
  });

  it('keeps the protocol version a console opts into', () => {
    expect(decodeOk({ type: 'hello', room: 'ops', user: 'alice', protocol: 2 })).toEqual({
      type: 'hello',
      room: 'ops',
      user: 'alice',
      protocol: 2,
    });
  });

  it('has no protocol when the hello did not ask for one', () => {
    const frame = decodeOk({ type: 'hello', room: 'ops', user: 'alice' });
    expect(frame).not.toHaveProperty('protocol');
  });

  it('refuses a user with a control character as bad_name, not opted in without protocol 2', () => {
    const refused = decodeRefused(JSON.stringify({ type: 'hello', room: 'ops', user: 'ali\u001bce' }));
    expect(refused.code).toBe(ErrorCode.BadName);
    expect(refused.optedIn).toBe(false);
  });

  it('refuses a user with a control character as bad_name, opted in with protocol 2', () => {
    const refused = decodeRefused(
      JSON.stringify({ type: 'hello', room: 'ops', user: 'ali\u0000ce', protocol: 2 }),
    );
    expect(refused.code).toBe(ErrorCode.BadName);
    expect(refused.optedIn).toBe(true);
  });

  it('refuses a room with a bidi override as bad_name', () => {
    const refused = decodeRefused(JSON.stringify({ type: 'hello', room: 'ops\u202e', user: 'alice' }));
    expect(refused.code).toBe(ErrorCode.BadName);
  });

  it('refuses a hello naming a user or room with an invisible character as bad_name', () => {
    for (const name of ['ali\u00adce', 'alice\u{E0041}', 'ali\u3164ce', 'alice\ufe0f']) {
      expect(decodeRefused(JSON.stringify({ type: 'hello', room: 'ops', user: name })).code).toBe(
        ErrorCode.BadName,
      );
      expect(decodeRefused(JSON.stringify({ type: 'hello', room: name, user: 'bob' })).code).toBe(
        ErrorCode.BadName,
      );
    }
  });

  it('treats a name of only ideographic or no-break spaces as blank', () => {
    for (const blank of ['\u3000', '\u00a0', '\u3000\u00a0\u2003']) {
      expect(decodeRefused(JSON.stringify({ type: 'hello', room: blank, user: 'bob' })).code).toBe(
        ErrorCode.BadName,
      );
      expect(decodeOk({ type: 'hello', room: 'ops', user: blank })).toMatchObject({ user: 'unknown' });
    }
  });

  it('refuses a user name of 129 characters as bad_name', () => {
    const refused = decodeRefused(JSON.stringify({ type: 'hello', room: 'ops', user: 'u'.repeat(129) }));
    expect(refused.code).toBe(ErrorCode.BadName);
  });

  it('refuses an object as a user name', () => {
    expect(decodeClientFrame(JSON.stringify({ type: 'hello', room: 'ops', user: { name: 'x' } })).ok).toBe(
      false,
    );
  });
});

describe('decodeClientFrame: message', () => {
  it('drops any user, sender, room, id or ts a client tries to set', () => {
    const frame = decodeOk({
      type: 'message',
      text: 'rolling out',
      user: 'mallory',
      sender: 'root',
      room: 'other',
      id: 'f'.repeat(32),
      ts: 0,
    });
    expect(frame).toEqual({ type: 'message', text: 'rolling out' });
    for (const key of ['user', 'sender', 'room', 'id', 'ts']) expect(frame).not.toHaveProperty(key);
  });

  it('caps text over 20,000 characters', () => {
    const frame = decodeOk({ type: 'message', text: 'x'.repeat(TEXT_CAP + 10) });
    expect(frame).toEqual({ type: 'message', text: `${'x'.repeat(TEXT_CAP)}…` });
  });

  it.each([
    ['missing', undefined],
    ['null', null],
    ['empty', ''],
    ['only control characters', '\u0000\u0007\u001b\u009b'],
    ['only whitespace', ' \t\n\r\n\u3000\u00a0'],
    ['only invisible characters', '\u200b\u00ad\u2060\ufe0f'],
  ])('refuses %s text as empty_message', (_what, text) => {
    const refused = decodeRefused(JSON.stringify({ type: 'message', text }));
    expect(refused.code).toBe(ErrorCode.EmptyMessage);
  });

  it('takes text with anything visible in it, however short', () => {
    expect(decodeOk({ type: 'message', text: '0' })).toEqual({ type: 'message', text: '0' });
    expect(decodeOk({ type: 'message', text: false })).toEqual({ type: 'message', text: 'False' });
    expect(decodeOk({ type: 'message', text: '\u0007 .\n' })).toEqual({ type: 'message', text: ' .\n' });
  });

  it('turns numeric text into its string', () => {
    expect(decodeOk({ type: 'message', text: 7 })).toEqual({ type: 'message', text: '7' });
  });

  it('replaces lone surrogates in text with U+FFFD', () => {
    const result = decodeClientFrame('{"type":"message","text":"a\\ud800b"}');
    expect(result).toEqual({ ok: true, frame: { type: 'message', text: 'a\ufffdb' } });
  });
});

describe('decodeClientFrame: presence', () => {
  it('keeps "available"', () => {
    expect(decodeOk({ type: 'presence', status: 'available' })).toEqual({
      type: 'presence',
      status: 'available',
    });
  });

  it.each([['away'], ['Available'], ['busy'], [null], [1]])('turns status %j into "away"', (status) => {
    expect(decodeOk({ type: 'presence', status })).toEqual({ type: 'presence', status: 'away' });
  });

  it('turns a missing status into "away"', () => {
    expect(decodeOk({ type: 'presence' })).toEqual({ type: 'presence', status: 'away' });
  });

  it('ignores a room or user on a presence frame', () => {
    expect(decodeOk({ type: 'presence', room: 'other', user: 'mallory', status: 'available' })).toEqual({
      type: 'presence',
      status: 'available',
    });
  });
});

describe('decodeClientFrame: refusals', () => {
  it.each([['{'], ['not json'], [''], ['{"type":"message",}']])('refuses %j as bad_json', (text) => {
    const refused = decodeRefused(text);
    expect(refused.code).toBe(ErrorCode.BadJson);
    expect(refused.optedIn).toBe(false);
  });

  it.each([['[]'], ['[{"type":"message"}]'], ['42'], ['null'], ['"hello"'], ['true']])(
    'refuses %s (not an object) as bad_frame',
    (text) => {
      expect(decodeRefused(text).code).toBe(ErrorCode.BadFrame);
    },
  );

  it.each([['{"type":"shout","text":"hi"}'], ['{"text":"hi"}'], ['{"type":null}'], ['{"type":"Hello"}']])(
    'refuses %s as unknown_type',
    (text) => {
      expect(decodeRefused(text).code).toBe(ErrorCode.UnknownType);
    },
  );

  it('reports an unknown type as opted in when the frame asked for protocol 2', () => {
    expect(decodeRefused('{"type":"shout","protocol":2}').optedIn).toBe(true);
    expect(decodeRefused('{"type":"shout"}').optedIn).toBe(false);
  });

  it('refuses an object as message text as bad_frame', () => {
    expect(decodeRefused('{"type":"message","text":{"a":1}}').code).toBe(ErrorCode.BadFrame);
  });

  it('refuses a hello with a non-numeric protocol as bad_frame', () => {
    expect(decodeRefused('{"type":"hello","room":"ops","user":"a","protocol":"2"}').code).toBe(
      ErrorCode.BadFrame,
    );
  });
});

describe('decodeClientFrame: __proto__', () => {
  it('does not let a "__proto__" key pollute Object.prototype', () => {
    const texts = [
      '{"type":"hello","room":"ops","user":"alice","__proto__":{"polluted":"yes"}}',
      '{"type":"message","text":"hi","__proto__":{"polluted":"yes","text":"evil"}}',
      '{"type":"presence","status":"available","__proto__":{"polluted":"yes"}}',
      '{"__proto__":{"polluted":"yes"},"type":"nope"}',
    ];
    for (const text of texts) decodeClientFrame(text);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
  });

  it('decodes a frame carrying "__proto__" without taking anything from it', () => {
    const result = decodeClientFrame('{"type":"message","text":"hi","__proto__":{"polluted":"yes"}}');
    expect(result).toEqual({ ok: true, frame: { type: 'message', text: 'hi' } });
    if (result.ok) expect((result.frame as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('does not let "__proto__" stand in for a missing type', () => {
    expect(decodeRefused('{"__proto__":{"type":"message"},"text":"hi"}').code).toBe(ErrorCode.UnknownType);
  });
});

describe('decodeClientFrame: protocol 2', () => {
  const decode = (value: unknown) => decodeClientFrame(JSON.stringify(value), true);

  it('reads every frame type of the contract, with its fields', () => {
    const frames = [
      { type: 'message', text: 'hi', room: 'ops', cid: 'c1', ref: 'r1' },
      { type: 'join', room: 'ops', since: 42, ref: 'r' },
      { type: 'leave', room: 'ops' },
      { type: 'who', room: 'ops' },
      { type: 'rooms' },
      { type: 'history', room: 'ops', before: 123, limit: 50 },
      { type: 'history', with: 'bob', after: 3 },
      { type: 'whisper', to: 'bob', text: 'psst', cid: 'w' },
      { type: 'typing', room: 'ops', state: 'active' },
      { type: 'read', room: 'ops', seq: 120 },
      { type: 'read', with: 'bob', seq: 1 },
      { type: 'presence', status: 'away', room: 'ops' },
      { type: 'pong', ref: 'p' },
    ];
    for (const frame of frames) expect(decode(frame)).toEqual({ ok: true, frame });
  });

  it('refuses what the seed protocol would ignore: a bad room, a long ref or cid, a bad seq or limit', () => {
    const refused = (value: unknown) => {
      const result = decode(value);
      if (result.ok) throw new Error(`expected a refusal of ${JSON.stringify(value)}`);
      return result;
    };
    expect(refused({ type: 'message', text: 'x', room: 'a\u200bb' }).code).toBe(ErrorCode.BadName);
    expect(refused({ type: 'message', text: 'x', ref: 'r'.repeat(65) }).code).toBe(ErrorCode.BadFrame);
    expect(refused({ type: 'message', text: 'x', cid: 'c'.repeat(65) }).code).toBe(ErrorCode.BadFrame);
    expect(refused({ type: 'join', room: 'ops', since: -1 }).code).toBe(ErrorCode.BadFrame);
    expect(refused({ type: 'join', room: 'ops', since: 1.5 }).code).toBe(ErrorCode.BadFrame);
    expect(refused({ type: 'history', room: 'ops', limit: 201 }).code).toBe(ErrorCode.BadFrame);
    expect(refused({ type: 'history', room: 'ops', with: 'bob' }).code).toBe(ErrorCode.BadFrame);
    expect(refused({ type: 'history', room: 'ops', before: 2, after: 1 }).code).toBe(ErrorCode.BadFrame);
    expect(refused({ type: 'typing', room: 'ops', state: 'busy' }).code).toBe(ErrorCode.BadFrame);
    expect(refused({ type: 'whisper', to: '', text: 'x' }).code).toBe(ErrorCode.BadName);
  });

  it('carries the ref of a refused frame, so the refusal answers it', () => {
    const result = decode({ type: 'join', room: '', ref: 'r-7' });
    expect(result).toMatchObject({ ok: false, code: ErrorCode.BadName, ref: 'r-7' });
    expect(decodeClientFrame('{"type":"teleport","ref":"r-8"}', true)).toMatchObject({
      ok: false,
      code: ErrorCode.UnknownType,
      ref: 'r-8',
    });
  });

  it('keeps the new frame types from seed consoles: to them they are unknown', () => {
    expect(decodeClientFrame('{"type":"join","room":"ops"}', false)).toMatchObject({
      ok: false,
      code: ErrorCode.UnknownType,
    });
  });
});
