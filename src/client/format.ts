// How the console shows the room: local time, sender (people <alice>, consoles [bot]), the room when in
// several, your name highlighted, colour only when asked for.
import type { MessageOut, WhisperOut } from '../protocol/frames.ts';
import { mentionPattern } from './mention.ts';

// Text is cleaned by the server, but a transcript may predate that, and a terminal obeys escapes.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROLS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/gu;

const SGR = { reset: 0, bold: 1, dim: 2, inverse: 7, yellow: 33 } as const;
const NAME_COLOURS = [31, 32, 34, 35, 36, 91, 92, 94, 95, 96];

/** Paints text with ANSI styles, or leaves it plain. */
export interface Painter {
  readonly on: boolean;
  paint(text: string, ...codes: number[]): string;
}

/** A painter that colours when `on`. */
export function painter(on: boolean): Painter {
  return {
    on,
    paint: (text, ...codes) => (on && codes.length > 0 ? `\u001b[${codes.join(';')}m${text}\u001b[0m` : text),
  };
}

function nameColour(name: string): number {
  let hash = 0;
  for (const ch of name) hash = (hash * 31 + (ch.codePointAt(0) ?? 0)) >>> 0;
  return NAME_COLOURS[hash % NAME_COLOURS.length] ?? 36;
}

/** HH:MM in local time. */
export function clock(ts: number): string {
  const d = new Date(ts * 1000);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

/** Text safe for a terminal, with `me` highlighted where mentioned. */
function body(text: string, me: string, p: Painter): string {
  const safe = text.replace(CONTROLS, '');
  if (!p.on) return safe;
  return safe.replace(mentionPattern(me), (hit) => p.paint(hit, SGR.bold, SGR.inverse));
}

/** Lines after the first are indented under the first line's text. */
function indent(prefix: string, plainPrefixWidth: number, text: string): string {
  const [first = '', ...rest] = text.split('\n');
  const pad = ' '.repeat(plainPrefixWidth);
  return [`${prefix}${first}`, ...rest.map((line) => `${pad}${line}`)].join('\n');
}

/** What to show of a room message. */
export function formatMessage(m: MessageOut, me: string, showRoom: boolean, p: Painter): string {
  const human = m.via === 'browser';
  const label = human ? `<${m.sender}>` : `[${m.sender}]`;
  const room = showRoom ? `#${m.room} ` : '';
  const plain = `${clock(m.ts)} ${room}${label} `;
  const styledName =
    m.sender === me
      ? p.paint(label, SGR.bold)
      : p.paint(label, nameColour(m.sender), ...(human ? [] : [SGR.dim]));
  const prefix = `${p.paint(clock(m.ts), SGR.dim)} ${p.paint(room, SGR.dim)}${styledName} `;
  return indent(prefix, [...plain].length, body(m.text, me, p));
}

/** What to show of a whisper. */
export function formatWhisper(w: WhisperOut, me: string, p: Painter): string {
  const label = w.from === me ? `*you → ${w.to}*` : `*${w.from} → you*`;
  const plain = `${clock(w.ts)} ${label} `;
  const prefix = `${p.paint(clock(w.ts), SGR.dim)} ${p.paint(label, SGR.yellow)} `;
  return indent(prefix, [...plain].length, body(w.text, me, p));
}

/** A line of the client's own (presence, connection, command results), set apart from messages. */
export function note(text: string, p: Painter, ts = Date.now() / 1000): string {
  return `${p.paint(clock(ts), SGR.dim)} ${p.paint(`-- ${text.replace(CONTROLS, '')}`, SGR.dim)}`;
}
