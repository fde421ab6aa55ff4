// Property tests of the input edge: NDJSON framing and frame validation under arbitrary input.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeUtf8, LineSplitter } from '../src/doors/ndjson.ts';
import { decodeClientFrame, NAME_MAX, nameProblem, TEXT_CAP } from '../src/protocol/frames.ts';

const CAP = 256;

/** Feed bytes in the given chunk sizes; returns the decoded verdicts: lines or an overflow marker. */
function frame(bytes: Uint8Array, cuts: number[]): string[] {
  const splitter = new LineSplitter(CAP);
  const out: string[] = [];
  let at = 0;
  const sizes = [...cuts, bytes.length];
  for (const size of sizes) {
    if (at >= bytes.length) break;
    const { lines, overflow } = splitter.push(bytes.subarray(at, at + Math.max(1, size)));
    at += Math.max(1, size);
    for (const line of lines) out.push(decodeUtf8(line) ?? '<bad utf-8>');
    if (overflow) {
      out.push('<overflow>');
      return out;
    }
  }
  return out;
}

describe('NDJSON framing', () => {
  it('gives the same lines however the bytes are split', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 2000 }),
        fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 50 }),
        (bytes, cuts) => {
          expect(frame(bytes, cuts)).toEqual(frame(bytes, [bytes.length]));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('gives the same verdict when split at every single byte', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        expect(frame(bytes, Array(bytes.length).fill(1))).toEqual(frame(bytes, [bytes.length]));
      }),
      { numRuns: 200 },
    );
  });

  it('never yields a line longer than the cap, and reports overflow for one', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), (bytes) => {
        for (const line of frame(bytes, [97])) {
          if (line !== '<overflow>' && line !== '<bad utf-8>')
            expect(new TextEncoder().encode(line).length).toBeLessThanOrEqual(CAP + 1);
        }
      }),
    );
  });

  it('round-trips any well-formed text line, and never invents replacement characters', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 60 }), (text) => {
        const line = text.replaceAll('\n', ' ').replaceAll('\r', ' ');
        const got = frame(new TextEncoder().encode(`${line}\n`), [3]);
        expect(got).toEqual([line]);
      }),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const text = decodeUtf8(bytes);
        if (text !== undefined) expect(new TextEncoder().encode(text)).toEqual(bytes);
      }),
    );
  });
});

describe('frame validation', () => {
  const anyJson = fc.jsonValue({ maxDepth: 6 });
  const frameLike = fc.record(
    {
      type: fc.oneof(
        fc.constantFrom('hello', 'message', 'presence', 'pong', '__proto__', 'constructor'),
        fc.string(),
      ),
      room: fc.oneof(fc.string(), anyJson),
      user: fc.oneof(fc.string({ unit: 'binary' }), anyJson),
      text: fc.oneof(fc.string({ unit: 'binary', maxLength: 25_000 }), anyJson),
      status: anyJson,
      protocol: fc.oneof(fc.integer(), fc.double(), anyJson),
      __proto__: anyJson,
      constructor: anyJson,
    },
    { requiredKeys: [] },
  );

  it('never throws and never pollutes prototypes, whatever JSON arrives', () => {
    fc.assert(
      fc.property(fc.oneof(anyJson, frameLike), (value) => {
        const text = JSON.stringify(value) ?? 'null';
        const withProto = text.startsWith('{') ? `{"__proto__":{"polluted":1},${text.slice(1)}` : text;
        for (const input of [text, withProto]) {
          const result = decodeClientFrame(input);
          expect(typeof result.ok).toBe('boolean');
        }
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
        expect(Object.hasOwn(Object.prototype, 'polluted')).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });

  it('keeps every accepted frame within the rules: names clean and bounded, text capped, well-formed and not blank', () => {
    fc.assert(
      fc.property(frameLike, (value) => {
        const result = decodeClientFrame(JSON.stringify(value));
        if (!result.ok) return;
        const f = result.frame;
        if (f.type === 'hello') {
          expect(nameProblem(f.room)).toBeUndefined();
          expect(nameProblem(f.user)).toBeUndefined();
          expect([...f.user].length).toBeLessThanOrEqual(NAME_MAX);
        }
        if (f.type === 'message') {
          expect([...f.text].length).toBeLessThanOrEqual(TEXT_CAP + 1);
          expect(f.text.isWellFormed()).toBe(true);
          // biome-ignore lint/suspicious/noControlCharactersInRegex: checking that none are left
          expect(f.text).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/u);
          expect(f.text).toMatch(/[^\s\p{Default_Ignorable_Code_Point}]/u);
        }
        if (f.type === 'presence') expect(['available', 'away']).toContain(f.status);
      }),
      { numRuns: 2000 },
    );
  });

  it('survives deep nesting, huge numbers and lone surrogates', () => {
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    expect(decodeClientFrame(deep).ok).toBe(false);
    const deepObject = `{"type":"message","text":${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}}`;
    expect(decodeClientFrame(deepObject).ok).toBe(false);
    expect(decodeClientFrame('{"type":"hello","room":1e400,"user":-1e400}')).toMatchObject({ ok: true });
    const lone = decodeClientFrame('{"type":"message","text":"a\\ud800b\\udc00"}');
    expect(lone.ok && lone.frame.type === 'message' && lone.frame.text).toBe('a\ufffdb\ufffd');
  });
});
