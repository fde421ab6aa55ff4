// The page's DOM, built from data: messages (grouped by sender, with date separators and the unread
// divider), the rooms sidebar, the people list, the typing line, search results and console keys. Text
// goes in through textContent only.

import { blocks, inline, searchPieces } from './format.js';
import { lookalikes } from './names.js';

/** Messages of one sender this close together (seconds) share one heading. */
const GROUP_GAP_S = 300;

/** A new element with a class and, optionally, text. */
export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const pad2 = (n) => String(n).padStart(2, '0');
const dateOf = (message) => new Date(Number.isFinite(message.ts) ? message.ts * 1000 : Date.now());
const dayKey = (date) => `${date.getFullYear()}-${date.getMonth()}-${date.getDate()}`;

/** "Today", "Yesterday", or the date in the reader's language. */
function dayLabel(date) {
  const now = new Date();
  if (dayKey(date) === dayKey(now)) return 'Today';
  const yesterday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1);
  if (dayKey(date) === dayKey(yesterday)) return 'Yesterday';
  return date.toLocaleDateString(undefined, {
    weekday: 'long',
    year: 'numeric',
    month: 'long',
    day: 'numeric',
  });
}

/** The inline pieces of prose as nodes: links open in a new tab without telling the target who sent them. */
function prose(text, me) {
  const nodes = [];
  for (const piece of inline(text, me)) {
    if (piece.kind === 'plain') nodes.push(document.createTextNode(piece.text));
    else if (piece.kind === 'code') nodes.push(element('code', 'inline-code', piece.text));
    else if (piece.kind === 'mention') nodes.push(element('mark', 'mention-me', piece.text));
    else {
      const link = element('a', 'link', piece.text);
      link.href = piece.href;
      link.target = '_blank';
      link.rel = 'noopener noreferrer';
      nodes.push(link);
    }
  }
  return nodes;
}

/** A message's text: prose, and fenced code in monospace with its whitespace kept. */
function messageText(message, me) {
  const text = element('div', message.via === 'console' ? 'text console-output' : 'text');
  if (message.deleted) {
    text.append(element('span', 'removed', 'message removed'));
    return text;
  }
  for (const block of blocks(String(message.text ?? ''))) {
    if (block.kind === 'code') {
      const pre = element('pre', 'code-block');
      pre.append(element('code', '', block.text));
      text.append(pre);
    } else {
      const part = element('span', 'prose');
      part.append(...prose(block.text, me));
      text.append(part);
    }
  }
  return text;
}

/** One message as a list item; `continued` when it follows a message of the same sender; `admin` adds Delete. */
export function messageItem(message, { me, continued, mention, admin = false }) {
  const classes = ['message'];
  if (message.sender === me) classes.push('mine');
  if (message.via === 'console') classes.push('from-console');
  if (continued) classes.push('continued');
  if (mention) classes.push('mention');
  if (message.deleted) classes.push('deleted');
  const item = element('li', classes.join(' '));
  item.dataset.id = message.id;
  item.dataset.seq = String(message.seq);

  const when = dateOf(message);
  const time = element('time', 'time', `${pad2(when.getHours())}:${pad2(when.getMinutes())}`);
  time.dateTime = when.toISOString();
  time.title = when.toLocaleString();
  const meta = element('div', 'meta');
  meta.append(element('span', 'sender', String(message.sender ?? '')));
  if (message.via === 'console') {
    const tag = element('span', 'via-tag', 'console');
    tag.title = 'sent from a console';
    meta.append(tag);
  }
  meta.append(time);
  item.append(meta, messageText(message, me));
  if (admin && !message.deleted) {
    const actions = element('div', 'message-actions');
    const remove = element('button', 'quiet small delete-message', 'Delete');
    remove.type = 'button';
    remove.setAttribute('aria-label', `Delete the message from ${message.sender} at ${time.textContent}`);
    actions.append(remove);
    item.append(actions);
  }
  return item;
}

/** Whether `message` continues `prev`'s group (same sender, same door, same day, close in time). */
function continues(prev, message, dividerAt) {
  if (!prev || prev.sender !== message.sender || prev.via !== message.via) return false;
  if (dividerAt !== null && message.seq === dividerAt + 1) return false;
  const [a, b] = [dateOf(prev), dateOf(message)];
  return dayKey(a) === dayKey(b) && b - a < GROUP_GAP_S * 1000;
}

/** The transcript items for `message` after `prev`: a date separator, the divider, then the message. */
export function itemsAfter(room, prev, message, me, admin = false) {
  const items = [];
  const date = dateOf(message);
  if (!prev || dayKey(dateOf(prev)) !== dayKey(date)) {
    const day = element('li', 'day');
    const label = element('time', '', dayLabel(date));
    label.dateTime = `${date.getFullYear()}-${pad2(date.getMonth() + 1)}-${pad2(date.getDate())}`;
    day.append(label);
    items.push(day);
  }
  if (room.dividerAt !== null && message.seq === room.dividerAt + 1) {
    items.push(element('li', 'divider', 'New since you left'));
  }
  const continued = continues(prev, message, room.dividerAt);
  items.push(messageItem(message, { me, continued, mention: room.isMention(message, me), admin }));
  return items;
}

/** The head of the transcript: a way to load older messages, or where the room begins. */
export function headItem(room) {
  const item = element('li', 'head');
  if (room.hasOlder) {
    const button = element(
      'button',
      'older',
      room.loadingOlder ? 'Loading older messages…' : 'Load older messages',
    );
    button.type = 'button';
    button.id = 'load-older';
    button.disabled = room.loadingOlder;
    item.append(button);
  } else if (room.synced) item.append(element('p', 'start', `This is the beginning of ${room.name}.`));
  else item.append(element('p', 'start', 'Loading…'));
  return item;
}

/** Every item of a room's transcript; `admin` offers Delete on each message. */
export function transcriptItems(room, me, admin = false) {
  const items = [headItem(room)];
  let prev = null;
  for (const message of room.messages) {
    items.push(...itemsAfter(room, prev, message, me, admin));
    prev = message;
  }
  return items;
}

/**
 * The people list: present first, then people before consoles, by name; look-alike names marked; for an
 * admin, a button that opens the moderation dialog for each other person.
 */
export function peopleItems(room, me, admin = false) {
  const kindOf = (user) =>
    room.kinds.get(user) ?? (room.vias.get(user) === 'console' && user !== me ? 'console' : 'human');
  const rank = (user, status) => (status === 'available' ? 0 : 2) + (kindOf(user) === 'console' ? 1 : 0);
  const entries = [...room.presence].sort(
    ([a, sa], [b, sb]) => rank(a, sa) - rank(b, sb) || a.localeCompare(b),
  );
  const alike = lookalikes(room.presence.keys());
  return entries.map(([user, status]) => {
    const kind = kindOf(user);
    const item = element('li', [status, kind, user === me ? 'me' : ''].join(' ').trim());
    item.dataset.user = user;
    item.dataset.kind = kind;
    item.append(element('span', 'name', user));
    if (kind === 'console') {
      const tag = element('span', 'kind-tag', 'console');
      tag.title = 'a console or agent, not a person in a browser';
      item.append(tag);
    }
    if (user === me) item.append(element('span', 'you', '(you)'));
    if (status === 'away') item.append(element('span', 'visually-hidden', '(away)'));
    if (alike.has(user)) {
      const mark = element('span', 'lookalike-mark', '⚠');
      mark.title = 'looks like another name here';
      mark.setAttribute('aria-label', 'looks like another name here');
      mark.setAttribute('role', 'img');
      item.append(mark);
    }
    if (admin && user !== me) {
      const act = element('button', 'quiet small person-actions', '⋯');
      act.type = 'button';
      act.dataset.user = user;
      act.title = `Moderate ${user}`;
      act.setAttribute('aria-label', `Moderate ${user}`);
      act.setAttribute('aria-haspopup', 'dialog');
      item.append(act);
    }
    return item;
  });
}

/** "alice is typing…", "alice and bob are typing…", "alice, bob and 2 others are typing…". */
export function typingText(names) {
  const sorted = [...names].sort((a, b) => a.localeCompare(b));
  if (sorted.length === 0) return '';
  if (sorted.length === 1) return `${sorted[0]} is typing…`;
  if (sorted.length === 2) return `${sorted[0]} and ${sorted[1]} are typing…`;
  const others = sorted.length - 2;
  return `${sorted[0]}, ${sorted[1]} and ${others} other${others === 1 ? '' : 's'} are typing…`;
}

/** A count badge with words around it for screen readers: ", 2 unread" reads where "2" shows. */
function countParts(className, shown, said) {
  return [
    element('span', 'visually-hidden', ', '),
    element('span', `badge ${className}`, shown),
    element('span', 'visually-hidden', ` ${said}`),
  ];
}

/** Bring the sidebar's room list up to date in place, so a focused room button keeps its focus. */
export function updateRoomList(list, rooms, active) {
  const existing = new Map([...list.children].map((li) => [li.dataset.room, li]));
  const items = rooms.map((room) => {
    let item = existing.get(room.name);
    if (!item) {
      item = element('li', 'room');
      item.dataset.room = room.name;
      const button = element('button', 'room-link');
      button.type = 'button';
      button.dataset.room = room.name;
      item.append(button);
    }
    const button = item.firstElementChild;
    if (room.name === active) button.setAttribute('aria-current', 'page');
    else button.removeAttribute('aria-current');
    const parts = [element('span', 'room-name', room.name)];
    const mentions = room.mentionCount;
    if (mentions > 0)
      parts.push(...countParts('mention-count', `@${mentions}`, `mention${mentions === 1 ? '' : 's'}`));
    if (room.unread > 0) parts.push(...countParts('unread-count', String(room.unread), 'unread'));
    button.replaceChildren(...parts);
    item.classList.toggle('has-unread', room.unread > 0);
    return item;
  });
  for (const [name, li] of existing) if (!rooms.some((room) => room.name === name)) li.remove();
  items.forEach((item, i) => {
    if (list.children[i] !== item) list.insertBefore(item, list.children[i] ?? null);
  });
}

/** A room offered in the join dialog. */
export function roomChoice(name, detail) {
  const item = element('li');
  const button = element('button', 'room-choice');
  button.type = 'button';
  button.dataset.room = name;
  button.append(element('span', 'room-name', name));
  if (detail) button.append(element('span', 'room-detail', detail));
  item.append(button);
  return item;
}

/** One search result: who, when, and the text with the found words marked; a button that shows the message. */
export function searchResult(message, words) {
  const item = element('li');
  const button = element('button', 'search-result');
  button.type = 'button';
  button.dataset.seq = String(message.seq);
  button.dataset.id = String(message.id);
  const when = dateOf(message);
  const meta = element('span', 'meta');
  const time = element(
    'time',
    'time',
    when.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }),
  );
  time.dateTime = when.toISOString();
  meta.append(element('span', 'sender', String(message.sender ?? '')), time);
  const snippet = element('span', 'snippet');
  for (const piece of searchPieces(String(message.text ?? ''), words)) {
    snippet.append(
      piece.kind === 'match' ? element('mark', 'match', piece.text) : document.createTextNode(piece.text),
    );
  }
  button.append(meta, snippet);
  item.append(button);
  return item;
}

/** One console key: its label, its fingerprint as `ssh-keygen -l` prints it, when it was added, and Remove. */
export function keyItem(key) {
  const item = element('li', 'key');
  const label = key.label || 'no label';
  const head = element('div', 'key-head');
  head.append(element('span', key.label ? 'key-label' : 'key-label unlabelled', label));
  head.append(element('span', 'via-tag', String(key.algorithm ?? '')));
  const fingerprint = element('code', 'fingerprint', String(key.fingerprint));
  const added = new Date(Number(key.created_at) * 1000);
  const when = element(
    'time',
    'time',
    `added ${added.toLocaleDateString(undefined, { dateStyle: 'medium' })}`,
  );
  when.dateTime = added.toISOString();
  const remove = element('button', 'quiet small remove-key', 'Remove');
  remove.type = 'button';
  remove.dataset.fingerprint = String(key.fingerprint);
  remove.setAttribute('aria-label', `Remove key ${label} (${key.fingerprint})`);
  item.append(head, fingerprint, when, remove);
  return item;
}
