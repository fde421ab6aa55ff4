// Message text read as plain data: fenced code blocks, inline code, http(s) links, mentions of a name, and
// the words a search found. It returns pieces for render.js to build with textContent; nothing here ever
// becomes HTML.

const FENCE = /^\s*```/u;
const URLISH = /https?:\/\/[^\s<>"'`]+/giu;
const INLINE_CODE = /`[^`\n]+`/gu;
// Closing punctuation that ends a sentence rather than the address.
const TRAILING = /[.,;:!?'"»”’]+$/u;

/**
 * The text's blocks, in order: `{ kind: 'code', text }` for what stands between ``` lines (an unclosed
 * fence runs to the end), `{ kind: 'text', text }` for the rest. Whitespace is kept as it is.
 */
export function blocks(text) {
  const out = [];
  let prose = [];
  let code = null;
  for (const line of text.split('\n')) {
    if (code === null && FENCE.test(line)) {
      if (prose.length > 0) out.push({ kind: 'text', text: prose.join('\n') });
      prose = [];
      code = [];
    } else if (code !== null && FENCE.test(line)) {
      out.push({ kind: 'code', text: code.join('\n') });
      code = null;
    } else (code ?? prose).push(line);
  }
  if (code !== null) out.push({ kind: 'code', text: code.join('\n') });
  else if (prose.length > 0) out.push({ kind: 'text', text: prose.join('\n') });
  return out;
}

/** A link's address as the browser should open it, or null when it is not a plain http(s) URL. */
function safeHref(candidate) {
  try {
    const url = new URL(candidate);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

/** Where a URL found in running text really ends: sentence punctuation and an unopened ')' stay outside. */
function trimUrl(raw) {
  let url = raw.replace(TRAILING, '');
  while (url.endsWith(')') && (url.match(/\(/gu)?.length ?? 0) < (url.match(/\)/gu)?.length ?? 0))
    url = url.slice(0, -1).replace(TRAILING, '');
  return url;
}

const escapeRegExp = (text) => text.replace(/[.*+?^${}()|[\]\\]/gu, '\\$&');

/** A pattern for `@name` standing alone (not inside a word or a longer name), any case. */
function mentionPattern(name, flags = 'giu') {
  return new RegExp(`(?<![\\p{L}\\p{N}_])@${escapeRegExp(name)}(?![\\p{L}\\p{N}_-])`, flags);
}

/** Whether prose of the text (not its code) mentions `@name`. */
export function mentions(text, name) {
  if (!name) return false;
  const pattern = mentionPattern(name, 'iu');
  return blocks(text).some((b) => b.kind === 'text' && pattern.test(b.text.replace(INLINE_CODE, '')));
}

/** Cut `text` at every match of `pattern`, keeping matches as `{ kind, text }` pieces and the rest as 'plain'. */
function split(text, pattern, kind) {
  const out = [];
  let at = 0;
  for (const match of text.matchAll(pattern)) {
    if (match.index > at) out.push({ kind: 'plain', text: text.slice(at, match.index) });
    out.push({ kind, text: match[0] });
    at = match.index + match[0].length;
  }
  if (at < text.length) out.push({ kind: 'plain', text: text.slice(at) });
  return out;
}

/**
 * The inline pieces of prose: `{ kind: 'plain' | 'code' | 'mention', text }` and
 * `{ kind: 'link', text, href }`. Only http(s) addresses become links.
 */
export function inline(text, me) {
  const mention = me ? mentionPattern(me) : null;
  const out = [];
  for (const piece of split(text, INLINE_CODE, 'code')) {
    if (piece.kind === 'code') {
      out.push({ kind: 'code', text: piece.text.slice(1, -1) });
      continue;
    }
    let at = 0;
    const plain = (until) => {
      if (until <= at) return;
      const chunk = piece.text.slice(at, until);
      out.push(...(mention ? split(chunk, mention, 'mention') : [{ kind: 'plain', text: chunk }]));
    };
    for (const match of piece.text.matchAll(URLISH)) {
      const url = trimUrl(match[0]);
      const href = safeHref(url);
      if (!href) continue;
      plain(match.index);
      out.push({ kind: 'link', text: url, href });
      at = match.index + url.length;
    }
    plain(piece.text.length);
  }
  return out;
}

// A search's terms as the server reads them (src/protocol/search.ts): words, "phrases" and prefix* words.
const SEARCH_TERM = /"([^"]*)"?(\*?)|([^\s"]+)/gu;
// What the store's tokenizer (unicode61) takes as a word: letters, digits, their marks, private use.
const WORD = /[\p{L}\p{N}\p{M}\p{Co}]+/gu;
const fold = (word) => word.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase();

/** The words a search looks for, case and accents folded; `prefix` for a word that ends in `*`. */
export function searchWords(q) {
  const words = [];
  for (const match of q.matchAll(SEARCH_TERM)) {
    const phrase = match[1];
    const text = phrase ?? match[3] ?? '';
    const prefix = phrase === undefined ? text.endsWith('*') : match[2] === '*';
    const found = [...text.matchAll(WORD)].map((w) => fold(w[0])).filter((w) => w !== '');
    found.forEach((word, i) => {
      words.push({ word, prefix: prefix && i === found.length - 1 });
    });
  }
  return words;
}

/**
 * A search result's text as `{ kind: 'plain' | 'match', text }` pieces: the words the search found
 * are matches. A text longer than `max` is cut to a window that starts a little before the first match.
 */
export function searchPieces(text, words, max = 240) {
  const hits = [];
  for (const match of text.matchAll(WORD)) {
    const folded = fold(match[0]);
    if (words.some((w) => (w.prefix ? folded.startsWith(w.word) : folded === w.word)))
      hits.push([match.index, match.index + match[0].length]);
  }
  let from = 0;
  let to = text.length;
  if (to > max) {
    from = Math.max(0, (hits[0]?.[0] ?? 0) - Math.floor(max / 4));
    to = Math.min(text.length, from + max);
  }
  const out = [];
  if (from > 0) out.push({ kind: 'plain', text: '…' });
  let at = from;
  for (const [start, end] of hits) {
    if (end <= from || start >= to) continue;
    if (start > at) out.push({ kind: 'plain', text: text.slice(at, start) });
    out.push({ kind: 'match', text: text.slice(Math.max(start, at), Math.min(end, to)) });
    at = Math.min(end, to);
  }
  if (at < to) out.push({ kind: 'plain', text: text.slice(at, to) });
  if (to < text.length) out.push({ kind: 'plain', text: '…' });
  return out;
}
