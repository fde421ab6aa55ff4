// Unit tests of NDJSON framing in src/doors/ndjson.ts: LineSplitter (chunking, CRLF, line cap) and strict decodeUtf8.
import { describe, expect, it } from 'vitest';
import { decodeUtf8, LineSplitter } from '../src/doors/ndjson.ts';

const CAP = 64 * 1024;
const encoder = new TextEncoder();
const bytes = (text: string): Uint8Array => encoder.encode(text);
const text = (line: Uint8Array): string => new TextDecoder().decode(line);

/** Feed chunks in order; collect every line and whether any push overflowed. */
function feed(splitter: LineSplitter, chunks: Uint8Array[]): { lines: Uint8Array[]; overflow: boolean } {
  const lines: Uint8Array[] = [];
  let overflow = false;
  for (const chunk of chunks) {
    const split = splitter.push(chunk);
    lines.push(...split.lines);
    overflow ||= split.overflow;
  }
  return { lines, overflow };
}

describe('LineSplitter', () => {
  it('gives the same lines wherever the stream is cut into two chunks', () => {
    const stream = bytes(
      '{"type":"hello","room":"ops","user":"José 🚀"}\n{"type":"message","text":"hi"}\n\nend\n',
    );
    const expected = [
      '{"type":"hello","room":"ops","user":"José 🚀"}',
      '{"type":"message","text":"hi"}',
      '',
      'end',
    ];
    for (let cut = 0; cut <= stream.length; cut++) {
      const splitter = new LineSplitter(CAP);
      const { lines, overflow } = feed(splitter, [stream.subarray(0, cut), stream.subarray(cut)]);
      expect(overflow).toBe(false);
      expect(lines.map(text)).toEqual(expected);
      expect(splitter.buffered).toBe(0);
    }
  });

  it('gives the same lines when the stream arrives one byte at a time', () => {
    const stream = bytes('alpha\nbeta\r\ngamma\n');
    const splitter = new LineSplitter(CAP);
    const chunks = [...stream].map((b) => Uint8Array.of(b));
    expect(feed(splitter, chunks).lines.map(text)).toEqual(['alpha', 'beta', 'gamma']);
  });

  it('gives every line of a chunk that holds several', () => {
    const splitter = new LineSplitter(CAP);
    const split = splitter.push(bytes('one\ntwo\nthree\n'));
    expect(split.overflow).toBe(false);
    expect(split.lines.map(text)).toEqual(['one', 'two', 'three']);
  });

  it('holds a partial last line until its newline arrives', () => {
    const splitter = new LineSplitter(CAP);
    expect(splitter.push(bytes('one\ntw')).lines.map(text)).toEqual(['one']);
    expect(splitter.buffered).toBe(2);
    expect(splitter.push(bytes('o\n')).lines.map(text)).toEqual(['two']);
    expect(splitter.buffered).toBe(0);
  });

  it('drops the CR of a CRLF line ending', () => {
    const splitter = new LineSplitter(CAP);
    expect(splitter.push(bytes('one\r\ntwo\r\n')).lines.map(text)).toEqual(['one', 'two']);
  });

  it('drops the CR of a CRLF ending that is split between chunks', () => {
    const splitter = new LineSplitter(CAP);
    expect(feed(splitter, [bytes('one\r'), bytes('\n')]).lines.map(text)).toEqual(['one']);
  });

  it('keeps a CR that is not at the end of the line', () => {
    const splitter = new LineSplitter(CAP);
    expect(splitter.push(bytes('a\rb\n')).lines.map(text)).toEqual(['a\rb']);
  });

  it('gives an empty line as an empty Uint8Array', () => {
    const splitter = new LineSplitter(CAP);
    const { lines } = splitter.push(bytes('\n\r\n'));
    expect(lines).toHaveLength(2);
    for (const line of lines) {
      expect(line).toBeInstanceOf(Uint8Array);
      expect(line.length).toBe(0);
    }
  });

  it('passes a line of exactly the cap (65,536 bytes)', () => {
    const splitter = new LineSplitter(CAP);
    const line = new Uint8Array(CAP).fill(0x61);
    const { lines, overflow } = feed(splitter, [line, bytes('\n')]);
    expect(overflow).toBe(false);
    expect(lines).toHaveLength(1);
    expect(lines[0]?.length).toBe(CAP);
  });

  it('passes a line of exactly the cap that arrives in one chunk with its newline', () => {
    const splitter = new LineSplitter(CAP);
    const chunk = new Uint8Array(CAP + 1).fill(0x61);
    chunk[CAP] = 0x0a;
    const split = splitter.push(chunk);
    expect(split.overflow).toBe(false);
    expect(split.lines[0]?.length).toBe(CAP);
  });

  it('passes a CRLF line whose content is exactly the cap', () => {
    const splitter = new LineSplitter(CAP);
    const line = new Uint8Array(CAP).fill(0x61);
    const { lines, overflow } = feed(splitter, [line, bytes('\r\n')]);
    expect(overflow).toBe(false);
    expect(lines[0]?.length).toBe(CAP);
  });

  it('reports a line one byte over the cap as overflow before its newline arrives', () => {
    const splitter = new LineSplitter(CAP);
    const split = splitter.push(new Uint8Array(CAP + 1).fill(0x61));
    expect(split.overflow).toBe(true);
    expect(split.lines).toEqual([]);
  });

  it('reports a line one byte over the cap as overflow when its newline comes in the same chunk', () => {
    const whole = new Uint8Array(CAP + 2).fill(0x61);
    whole[CAP + 1] = 0x0a;
    expect(new LineSplitter(CAP).push(whole).overflow).toBe(true);
    // The cap reached in one chunk, the byte past it and the newline in the next.
    const splitter = new LineSplitter(CAP);
    expect(splitter.push(new Uint8Array(CAP).fill(0x61)).overflow).toBe(false);
    const split = splitter.push(bytes('x\n'));
    expect(split.overflow).toBe(true);
    expect(split.lines).toEqual([]);
  });

  it('reports overflow when the cap is passed across several chunks', () => {
    const splitter = new LineSplitter(CAP);
    expect(splitter.push(new Uint8Array(CAP - 10).fill(0x61)).overflow).toBe(false);
    expect(splitter.push(new Uint8Array(10).fill(0x62)).overflow).toBe(false);
    expect(splitter.buffered).toBe(CAP);
    expect(splitter.push(Uint8Array.of(0x63)).overflow).toBe(true);
  });

  it('still gives the complete lines that came before an overlong one in the same chunk', () => {
    const splitter = new LineSplitter(16);
    const split = splitter.push(bytes(`ok\n${'x'.repeat(17)}`));
    expect(split.overflow).toBe(true);
    expect(split.lines.map(text)).toEqual(['ok']);
  });

  it('discards the buffered bytes of an overlong line', () => {
    const splitter = new LineSplitter(16);
    expect(splitter.push(bytes('0123456789')).overflow).toBe(false);
    expect(splitter.buffered).toBe(10);
    expect(splitter.push(bytes('abcdefghij')).overflow).toBe(true);
    expect(splitter.buffered).toBe(0);
    // Nothing of the overlong line is glued onto what comes next.
    const next = splitter.push(bytes('tail\n'));
    expect(next.lines.map(text)).toEqual(['tail']);
  });

  it('decodes a multi-byte character split across chunks once the line is complete', () => {
    const line = bytes('é😀€\n');
    for (let cut = 1; cut < line.length - 1; cut++) {
      const splitter = new LineSplitter(CAP);
      const first = splitter.push(line.subarray(0, cut));
      expect(first.lines).toEqual([]);
      const second = splitter.push(line.subarray(cut));
      expect(second.lines).toHaveLength(1);
      const [whole] = second.lines;
      expect(whole && decodeUtf8(whole)).toBe('é😀€');
    }
  });

  it('does not change a line when the caller reuses its chunk buffer', () => {
    const splitter = new LineSplitter(CAP);
    const chunk = bytes('abc');
    splitter.push(chunk);
    chunk.fill(0x7a);
    expect(splitter.push(bytes('d\n')).lines.map(text)).toEqual(['abcd']);
  });
});

describe('decodeUtf8', () => {
  it('decodes valid UTF-8', () => {
    expect(decodeUtf8(bytes('{"text":"José 🚀"}'))).toBe('{"text":"José 🚀"}');
    expect(decodeUtf8(new Uint8Array(0))).toBe('');
  });

  it.each([
    ['a lone 0xff byte', [0xff]],
    ['a lead byte followed by a non-continuation byte', [0xc3, 0x28]],
    ['an overlong encoding of "/"', [0xc0, 0xaf]],
    ['an encoded lone surrogate', [0xed, 0xa0, 0x80]],
    ['a truncated 4-byte sequence', [0xf0, 0x9f, 0x98]],
    ['a code point above U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
  ])('gives undefined for %s', (_what, raw) => {
    expect(decodeUtf8(Uint8Array.from(raw))).toBeUndefined();
    expect(decodeUtf8(Uint8Array.from([0x61, ...raw, 0x62]))).toBeUndefined();
  });

  it('never gives a replacement character for bad input, and keeps a real one', () => {
    for (const raw of [[0xff], [0xc3, 0x28], [0xc0, 0xaf], [0xed, 0xa0, 0x80]]) {
      const decoded = decodeUtf8(Uint8Array.from(raw));
      expect(decoded === undefined || !decoded.includes('\ufffd')).toBe(true);
    }
    expect(decodeUtf8(bytes('\ufffd'))).toBe('\ufffd');
  });
});
