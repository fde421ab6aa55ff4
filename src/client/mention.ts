// Whether a text mentions a user: the name (or, for "alice@web01", also "alice") as a word, @ optional.

const literal = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/gu, '\\$&');

/** The pattern matching mentions of `name`, case-insensitively. */
export function mentionPattern(name: string): RegExp {
  const forms = [name];
  const local = name.split('@')[0] ?? '';
  if (local !== name && local.length >= 2) forms.push(local);
  const alternatives = forms.map(literal).join('|');
  return new RegExp(`(?<![\\p{L}\\p{N}_])@?(?:${alternatives})(?![\\p{L}\\p{N}_])`, 'giu');
}

/** Whether `text` mentions `name`. */
export function mentions(text: string, name: string): boolean {
  return mentionPattern(name).test(text);
}
