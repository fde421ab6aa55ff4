// A room's transcript as a file: NDJSON lines that are exactly the wire `message` frames an opted-in
// client gets (deleted messages as their tombstones), or Markdown to read; in seq order, a page at a time.
import { richMessage } from './outgoing.ts';
import { type StoredMessage, type Transcript, yieldToIo } from './transcript.ts';

/** The formats an export is written in. */
export const EXPORT_FORMATS = ['ndjson', 'markdown'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** Messages read per page: memory stays bounded however long the room's transcript is. */
export const EXPORT_PAGE = 500;

/** What an export is of: a room, the messages after `since` (all from 0), and the format. */
export interface ExportRequest {
  room: string;
  since: number;
  format: ExportFormat;
  /** When it was made (ms since the epoch), for the Markdown heading. */
  now?: number;
}

/** The MIME type and file extension of each format. */
export const EXPORT_TYPES: Record<ExportFormat, { type: string; extension: string }> = {
  ndjson: { type: 'application/x-ndjson; charset=utf-8', extension: 'ndjson' },
  markdown: { type: 'text/markdown; charset=utf-8', extension: 'md' },
};

const utc = (seconds: number): string =>
  new Date(seconds * 1000)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d{3}Z$/u, ' UTC');

/** A name as Markdown text: characters Markdown would read as markup are escaped. */
const markdownText = (name: string): string => name.replace(/[\\`*_[\]<>#|~]/gu, (c) => `\\${c}`);

/** One message as Markdown: who, when and its number, then the text as a quote (a tombstone says deleted). */
function markdownMessage(m: StoredMessage): string {
  const head = `**${markdownText(m.sender)}** · ${utc(m.ts)} · #${m.seq}`;
  if (m.deleted !== undefined) return `${head}\n\n*deleted*\n\n`;
  const quoted = m.text
    .split('\n')
    .map((line) => (line === '' ? '>' : `> ${line}`))
    .join('\n');
  return `${head}\n\n${quoted}\n\n`;
}

/** The export as text chunks, one per page (the Markdown heading first). */
export async function* exportRoom(
  transcript: Pick<Transcript, 'after'>,
  request: ExportRequest,
): AsyncGenerator<string> {
  const { room, format } = request;
  if (format === 'markdown') {
    const when = new Date(request.now ?? Date.now()).toISOString().replace(/\.\d{3}Z$/u, 'Z');
    const which = request.since > 0 ? `messages after #${request.since}` : 'all messages';
    yield `# ${markdownText(room)}\n\nExported from runspec-room at ${when}: ${which}, oldest first.\n\n`;
  }
  let since = request.since;
  for (;;) {
    const page = await transcript.after(room, since, EXPORT_PAGE);
    if (page.length === 0) return;
    yield format === 'ndjson'
      ? `${page.map((m) => JSON.stringify(richMessage(m))).join('\n')}\n`
      : page.map(markdownMessage).join('');
    since = (page.at(-1) as StoredMessage).seq;
    if (page.length < EXPORT_PAGE) return;
    // Each page is read and handed on without waiting for any I/O while the reader keeps up: without
    // a turn of the loop between pages, one export held it from its first page to its last (250 ms
    // for 50,000 messages, every other connection waiting).
    await yieldToIo();
  }
}
