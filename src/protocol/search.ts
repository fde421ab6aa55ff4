// Search requests as users type them: words (all must appear), "quoted phrases" and word* prefixes,
// turned into plain terms. Nothing of a search engine's own syntax passes through: a store quotes each
// term for its engine.

/** Longest search text, in characters. */
export const SEARCH_TEXT_MAX = 200;

/** Most terms (words and phrases) one search may have. */
export const SEARCH_TERMS_MAX = 16;

/** Most messages one search answers. */
export const SEARCH_MAX = 100;

/** Messages a search answers when it names no limit. */
export const SEARCH_DEFAULT = 20;

/** One term of a search: a word or a phrase (words in this order), and whether its last word is a prefix. */
export interface SearchTerm {
  readonly text: string;
  readonly prefix: boolean;
}

// A term needs something a search engine indexes: a letter, digit or symbol, not only punctuation.
const SEARCHABLE = /[^\p{P}\p{Z}\p{C}\s*]/u;
const TERM = /"([^"]*)"?(\*?)|([^\s"]+)/gu;

// Control characters separate words, as spaces do: none reaches a search engine (FTS5 stops reading
// a query at a NUL, inside the term's quotes, and refuses it).
const CONTROLS = /\p{Cc}/gu;

/** The terms of a search text; those with nothing searchable in them are left out. */
export function searchTerms(q: string): SearchTerm[] {
  const terms: SearchTerm[] = [];
  for (const match of q.replace(CONTROLS, ' ').matchAll(TERM)) {
    const phrase = match[1];
    const word = match[3] ?? '';
    const prefix = phrase === undefined ? word.endsWith('*') : match[2] === '*';
    const text = (phrase ?? word.replace(/\*+$/u, '')).trim().replace(/\s+/gu, ' ');
    if (SEARCHABLE.test(text)) terms.push({ text, prefix });
  }
  return terms;
}

/** Why a search text cannot be searched for, or undefined when it can. */
export function searchProblem(q: string): string | undefined {
  const terms = searchTerms(q);
  if (terms.length === 0) return 'has no word to search for';
  if (terms.length > SEARCH_TERMS_MAX) return `may have at most ${SEARCH_TERMS_MAX} words and phrases`;
  return undefined;
}
