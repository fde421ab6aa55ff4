// What the page knows of each joined room (a gapless window of its messages, read marker, unread and
// mentions, who is there and typing), and the rooms a browser remembers.

import { mentions } from './format.js';

/** Messages a room keeps in memory; older ones are dropped and can be paged in again. */
export const WINDOW_CAP = 5000;
const STORE_PREFIX = 'runspec-room:rooms:';

/** One joined room. Its messages are contiguous by seq (the server numbers a room's messages 1, 2, 3…). */
export class Room {
  constructor(name) {
    this.name = name;
    /** Oldest first, seq without gaps. */
    this.messages = [];
    this.byId = new Map();
    /** The room's newest seq as far as this page knows (welcome, joined, messages). */
    this.newest = 0;
    this.read = 0;
    /** Seqs of unread messages that mention me. */
    this.mentioned = new Set();
    /** The room's first message is in the window, or the server said there is nothing older. */
    this.exhausted = false;
    this.loadingOlder = false;
    /** Joined on the current socket (its `joined` came). */
    this.joined = false;
    /** Joined on some socket of this page: a rejoin resumes after `newest`. */
    this.synced = false;
    /** The divider goes before the message after this seq; null until the room is first shown. */
    this.dividerAt = null;
    /** Shown before its join ended: the divider is placed when the marker arrives. */
    this.dividerPending = false;
    /** The last page of older messages failed: wait for the reader to ask again. */
    this.olderFailed = false;
    /** The seq of a message a search result asked to show, while older pages are loaded up to it. */
    this.jumpTo = null;
    /** @type {Map<string, 'available' | 'away'>} */
    this.presence = new Map();
    /** @type {Map<string, 'human' | 'console'>} from `who` */
    this.kinds = new Map();
    /** @type {Map<string, 'browser' | 'console'>} from messages */
    this.vias = new Map();
    /** @type {Map<string, number>} user → timer that ends their typing */
    this.typing = new Map();
    this.draft = '';
    /** Where the reader was: null at the bottom, else the seq at the top of the view and its offset. */
    this.scroll = null;
  }

  get oldest() {
    return this.messages[0]?.seq ?? this.newest + 1;
  }

  get unread() {
    return Math.max(0, this.newest - this.read);
  }

  get mentionCount() {
    return this.mentioned.size;
  }

  /** Whether older messages than the window's can still be asked for. */
  get hasOlder() {
    return !this.exhausted && this.oldest > 1;
  }

  /**
   * Take a message frame in. Returns 'duplicate' (known: its deleted state is taken over), 'append',
   * 'trimmed' (appended, and the window's oldest dropped), or 'reset' when it does not follow the
   * window (a gap: the window restarts at it, older messages are paged in again).
   */
  add(message, me) {
    const known = this.byId.get(message.id);
    if (known) {
      if (message.deleted === true) this.#remove(known);
      return 'duplicate';
    }
    const last = this.messages.at(-1);
    if (last && message.seq <= last.seq) return 'duplicate';
    let result = 'append';
    if (last && message.seq !== last.seq + 1) {
      this.messages = [];
      this.byId.clear();
      this.exhausted = false;
      result = 'reset';
    }
    this.#keep(message, me);
    this.messages.push(message);
    this.newest = Math.max(this.newest, message.seq);
    if (this.messages.length > WINDOW_CAP) {
      while (this.messages.length > WINDOW_CAP) this.byId.delete(this.messages.shift().id);
      this.exhausted = false;
      if (result === 'append') result = 'trimmed';
    }
    return result;
  }

  /** Put a history page (oldest first) before the window; returns how many were new. */
  prepend(page, me) {
    const before = this.oldest;
    const older = page.filter((m) => m.seq < before && !this.byId.has(m.id));
    // Only the run that ends right before the window keeps it gapless.
    let start = older.length;
    while (start > 0 && older[start - 1].seq === (older[start]?.seq ?? before) - 1) start -= 1;
    const fresh = older.slice(start);
    for (const m of fresh) this.#keep(m, me);
    this.messages = [...fresh, ...this.messages];
    if (this.oldest <= 1) this.exhausted = true;
    return fresh.length;
  }

  /**
   * The server's newest seq is below what this page holds (its database was replaced or renumbered):
   * what the page holds no longer matches, so the window starts again from the server's word.
   */
  restart(newest, read) {
    this.messages = [];
    this.byId.clear();
    this.mentioned.clear();
    this.exhausted = false;
    this.newest = newest;
    this.read = read;
    this.dividerAt = null;
  }

  /** Mark a message removed (a `deleted` frame, or a message frame with `deleted: true`). */
  markDeleted(id) {
    const known = this.byId.get(id);
    if (known) this.#remove(known);
    return known;
  }

  /** Move the read marker forward (never back); mentions at or before it are read. */
  readUpTo(seq) {
    if (!(seq > this.read)) return false;
    this.read = seq;
    this.newest = Math.max(this.newest, seq);
    for (const s of this.mentioned) if (s <= seq) this.mentioned.delete(s);
    return true;
  }

  /** Whether a message is new to me and mentions me. */
  isMention(message, me) {
    return message.sender !== me && !message.deleted && mentions(String(message.text ?? ''), me);
  }

  #keep(message, me) {
    this.byId.set(message.id, message);
    if (message.via === 'browser' || message.via === 'console') this.vias.set(message.sender, message.via);
    if (message.seq > this.read && this.isMention(message, me)) this.mentioned.add(message.seq);
  }

  #remove(message) {
    message.deleted = true;
    message.text = '';
    this.mentioned.delete(message.seq);
  }

  /** The connection dropped: nothing is joined, presence and typing come again on the next one. */
  disconnected() {
    this.joined = false;
    this.loadingOlder = false;
    this.presence.clear();
    for (const timer of this.typing.values()) clearTimeout(timer);
    this.typing.clear();
  }
}

/** The rooms this browser had joined as `user`, in sidebar order. */
export function loadRooms(user) {
  try {
    const stored = JSON.parse(localStorage.getItem(STORE_PREFIX + user) ?? '[]');
    return Array.isArray(stored) ? stored.filter((name) => typeof name === 'string' && name !== '') : [];
  } catch {
    return [];
  }
}

/** Remember the joined rooms for the next visit. */
export function saveRooms(user, names) {
  try {
    localStorage.setItem(STORE_PREFIX + user, JSON.stringify(names));
  } catch {
    // Storage can be disabled or full; the page works without it.
  }
}
