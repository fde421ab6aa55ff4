// Keeps docs/protocol.md honest: every frame type and code of the protocol module is shown there, and
// every example frame in it is one the schemas take as it is written.
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import * as v from 'valibot';
import { describe, expect, it } from 'vitest';
import { CloseCode, ErrorCode, NoticeCode, RefusalCode } from '../src/protocol/codes.ts';
import {
  ClientFrame,
  type Decoded,
  decodeClientFrame,
  helloExtras,
  MessageOut,
  ServerFrame,
  WhisperOut,
} from '../src/protocol/frames.ts';

const DOC = readFileSync(new URL('../docs/protocol.md', import.meta.url), 'utf8');

/** One fenced block: its info string and its lines. */
interface Block {
  readonly info: string;
  readonly lines: string[];
}

const blocks: Block[] = [...DOC.matchAll(/^```([^\n]*)\n([\s\S]*?)^```$/gmu)].map((m) => ({
  info: (m[1] ?? '').trim(),
  lines: (m[2] ?? '').split('\n').filter((line) => line.trim() !== ''),
}));

/** One line of a session block: who, which way, and what (a frame, or `<…>` describing something else). */
interface Line {
  readonly who: string;
  readonly sent: boolean;
  readonly body: string;
}

const SESSION_LINE = /^(?<who>\S+) (?<arrow>→|←) (?<body>.+)$/u;

const sessions: Line[][] = blocks
  .filter((b) => b.info === 'session')
  .map((b) =>
    b.lines.flatMap((line) => {
      const m = SESSION_LINE.exec(line)?.groups;
      return m ? [{ who: m.who ?? '', sent: m.arrow === '→', body: m.body ?? '' }] : [];
    }),
  );
const lines = sessions.flat().filter((l) => !l.body.startsWith('<'));
const received = lines.filter((l) => !l.sent);
const sent = lines.filter((l) => l.sent);

/** Clients named seed… speak the seed protocol. */
const isSeed = (who: string): boolean => who.startsWith('seed');

const typesOf = (variant: { options: ReadonlyArray<{ entries: { type: { literal: string } } }> }) =>
  variant.options.map((o) => o.entries.type.literal);

/**
 * A client frame as the server decodes it (a protocol-2 hello with its since and ref), refused if any
 * field it carries is one the schema does not know: a field renamed in the code shows up here.
 */
function strictClientFrame(line: Line): Decoded<unknown> {
  const decoded = decodeClientFrame(line.body, !isSeed(line.who));
  if (!decoded.ok || isSeed(line.who)) return decoded;
  const raw = JSON.parse(line.body) as Record<string, unknown>;
  const known = new Set(Object.keys(decoded.frame));
  if (decoded.frame.type === 'hello' && (decoded.frame.protocol ?? 1) >= 2) {
    const extras = helloExtras(line.body);
    if (!extras.ok) return extras;
    for (const key of Object.keys(extras.frame)) known.add(key);
  }
  const unknown = Object.keys(raw).filter((key) => !known.has(key));
  expect(unknown, `fields the schema does not know in ${line.body}`).toEqual([]);
  return decoded;
}

/** A server frame as the schema takes it, and whether it had fields the schema does not know. */
function strictServerFrame(body: string): { ok: boolean; extra: boolean; issue?: string } {
  const raw: unknown = JSON.parse(body);
  const parsed = v.safeParse(ServerFrame, raw);
  if (!parsed.success) return { ok: false, extra: false, issue: parsed.issues[0].message };
  // The schemas strip fields they do not define: a field renamed in the code shows up here.
  return { ok: true, extra: !isDeepStrictEqual(parsed.output, raw) };
}

describe('docs/protocol.md', () => {
  it('shows a real exchange for every client frame type, in a frame the server takes', () => {
    const shown = new Set<string>();
    for (const line of sent) {
      const decoded = decodeClientFrame(line.body, !isSeed(line.who));
      if (decoded.ok && strictClientFrame(line).ok) shown.add(decoded.frame.type);
    }
    expect([...shown].sort()).toEqual(typesOf(ClientFrame).sort());
  });

  it('shows every server frame type, and every frame it shows fits the ServerFrame schema field for field', () => {
    const shown = new Set<string>();
    for (const line of received) {
      const checked = strictServerFrame(line.body);
      expect(checked, line.body).toEqual({ ok: true, extra: false });
      shown.add((JSON.parse(line.body) as { type: string }).type);
    }
    expect([...shown].sort()).toEqual(typesOf(ServerFrame).sort());
  });

  it('shows seed consoles only message and presence frames, with the seed fields alone', () => {
    const seed = received
      .filter((l) => isSeed(l.who))
      .map((l) => JSON.parse(l.body) as Record<string, unknown>);
    expect(seed.length).toBeGreaterThan(0);
    for (const frame of seed) {
      expect(['message', 'presence']).toContain(frame.type);
      if (frame.type === 'message')
        expect(Object.keys(frame).sort()).toEqual(['id', 'room', 'sender', 'seq', 'text', 'ts', 'type']);
    }
  });

  it('follows a refused frame with the error the server gives for it, and answers each ref at most once', () => {
    for (const session of sessions) {
      session.forEach((line, i) => {
        if (!line.sent || line.body.startsWith('<') || isSeed(line.who)) return;
        const decoded = strictClientFrame(line);
        if (decoded.ok) return;
        const answer = session.slice(i + 1).find((l) => l.who === line.who && !l.sent);
        expect(answer && JSON.parse(answer.body), line.body).toMatchObject({
          type: 'error',
          code: decoded.code,
        });
      });
      const refs = session
        .filter((l) => !l.sent && !l.body.startsWith('<'))
        .map((l) => `${l.who} ${(JSON.parse(l.body) as { ref?: string }).ref ?? ''}`)
        .filter((key) => !key.endsWith(' '));
      expect(new Set(refs).size, refs.join(', ')).toBe(refs.length);
    }
  });

  it('shows every error code and notice code in a frame', () => {
    const codes = (type: string) =>
      new Set(
        received
          .map((l) => JSON.parse(l.body) as { type: string; code?: string })
          .filter((f) => f.type === type)
          .map((f) => f.code),
      );
    expect([...codes('error')].sort()).toEqual(Object.values(ErrorCode).sort());
    expect([...codes('notice')].sort()).toEqual(Object.values(NoticeCode).sort());
  });

  it('explains every close code', () => {
    for (const code of Object.values(CloseCode)) expect(DOC).toContain(`| \`${code}\` |`);
  });

  it('shows every HTTP refusal code in a body, HTTP history and search pages made of message and whisper frames, and export lines that are message frames', () => {
    const bodies = blocks
      .filter((b) => b.info === 'json')
      .flatMap((b) => b.lines.map((line) => JSON.parse(line) as Record<string, unknown>));
    const refusals = bodies.flatMap((b) => (b.error ? [(b.error as { code: string }).code] : []));
    expect([...new Set(refusals)].sort()).toEqual(Object.values(RefusalCode).sort());
    const pages = bodies.filter((b) => Array.isArray(b.messages));
    expect(pages.length).toBeGreaterThan(0);
    expect(pages.some((page) => 'q' in page)).toBe(true);
    for (const page of pages) {
      // A search page says what was searched for; a history page does not.
      expect(Object.keys(page).sort()).toEqual(
        'q' in page ? ['messages', 'more', 'q', 'room'] : ['messages', 'more', 'room'],
      );
      for (const m of page.messages as unknown[]) {
        const schema = (m as { type?: string }).type === 'whisper' ? WhisperOut : MessageOut;
        expect(v.parse(schema, m)).toEqual(m);
      }
    }
    const exported = bodies.filter((b) => typeof b.type === 'string');
    expect(exported.length).toBeGreaterThan(0);
    for (const line of exported) expect(v.parse(MessageOut, line)).toEqual(line);
  });

  it('keeps frames in session blocks and bodies in json blocks, where they are checked', () => {
    for (const block of blocks) {
      expect(['session', 'json', 'text', 'bash'], block.info).toContain(block.info);
      if (block.info === 'session') {
        for (const line of block.lines) {
          const m = SESSION_LINE.exec(line)?.groups;
          // Notes (a closed socket, an HTTP request) are free text; frames are never outside an arrow.
          if (!m) expect(line, 'a session line that is neither a frame nor a note').not.toMatch(/\{"type"/u);
        }
      }
      if (block.info === 'text' || block.info === 'bash')
        expect(block.lines.join('\n'), 'a frame outside a session block').not.toMatch(/"type"\s*:/u);
    }
  });
});
