// Names on the page: the server's rule for names (from protocol.js) and the look-alike check of the people list.

import { FORBIDDEN_IN_NAME, NAME_MAX } from './protocol.js';

/** Why a name typed on the page would be refused by the server, or '' when it is acceptable. */
export function nameProblem(value, label) {
  if (value === '') return `${label} is required.`;
  if ([...value].length > NAME_MAX) return `${label} must be at most ${NAME_MAX} characters.`;
  if (FORBIDDEN_IN_NAME.test(value)) return `${label} must not contain control or invisible characters.`;
  return '';
}

// Look-alike letters and digits from Cyrillic, Greek and Latin, each written before the Latin letter
// it passes for (after NFKC, which already folds full-width, mathematical and other compatibility
// forms). Deliberately small: the pairs people use to pass for someone else in a name. Upper-case
// pairs only matter for the key that keeps case (see lookalikeKeys).
const CONFUSABLE = new Map(
  [
    // Cyrillic
    'аa вb еe һh іi јj кk ӏl мm нh оo рp ԛq сc ѕs тt уy ԝw хx ԁd үy',
    'АA ВB ЕE Іl ЈJ КK МM НH ОO РP СC ЅS ТT ХX УY Ӏl ԀD ԚQ ԜW',
    // Greek
    'αa ιi κk νv οo ρp υu χx ϲc ϳj',
    'ΑA ΒB ΕE ΖZ ΗH Ιl ΚK ΜM ΝN ΟO ΡP ΤT ΥY ΧX ϹC',
    // Latin look-alikes, and the digits and capital I that pass for letters
    'ɑa ɡg ıi ɩi ǀl Il 1l 0o',
  ].flatMap((row) => row.split(' ').map((pair) => [...pair])),
);

const skeleton = (text) => [...text].map((ch) => CONFUSABLE.get(ch) ?? ch).join('');

/**
 * Two names look alike when they share a key. One key ignores case; the other keeps it, so that a
 * capital I passes for an l while an L does not. Keys of the two kinds never meet.
 */
function lookalikeKeys(name) {
  const text = name.normalize('NFKC');
  return [`folded:${skeleton(text.toLowerCase())}`, `cased:${skeleton(text)}`];
}

/** The names in the list that look like another name in it. */
export function lookalikes(names) {
  const byKey = new Map();
  for (const name of names) {
    for (const key of lookalikeKeys(name)) byKey.set(key, (byKey.get(key) ?? new Set()).add(name));
  }
  const alike = new Set();
  for (const group of byKey.values()) if (group.size > 1) for (const name of group) alike.add(name);
  return alike;
}
