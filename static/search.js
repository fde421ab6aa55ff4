// The search dialog: finds a room's messages by words (the protocol's `search`), newest first, with more
// pages on request and the found words marked; choosing a result shows that message in the room.

import { searchWords } from './format.js';
import { ErrorCode } from './protocol.js';
import { searchResult } from './render.js';

/** How long the page waits before asking again after each `busy` answer; then it gives up. */
const RETRY_MS = [500, 1000, 2000];

const byId = (id) => document.getElementById(id);
const ui = {
  dialog: byId('search-dialog'),
  form: byId('search-form'),
  room: byId('search-room'),
  input: byId('search-input'),
  status: byId('search-status'),
  results: byId('search-results'),
  more: byId('search-more'),
  close: byId('search-close'),
};

/**
 * Wire the dialog. `send(frame, request)` sends a frame with a ref (false when offline); `onChoose(room,
 * seq)` shows a message. Returns `open(room)` and the handlers of the answers to `search` requests.
 */
export function setUpSearch({ send, onChoose }) {
  let room = '';
  let q = '';
  let oldest = 0;
  /** The request whose answer is awaited; answers to older requests are dropped. */
  let waiting = null;

  const say = (text, problem = false) => {
    ui.status.textContent = text;
    ui.status.classList.toggle('problem', problem);
  };

  /** Ask for a page of results (older than `before`); `tries` is how many were answered busy. */
  const ask = (before, tries = 0) => {
    const frame = { type: 'search', room, q };
    if (before) frame.before = before;
    const request = { kind: 'search', room, q, before, tries };
    if (!send(frame, request)) {
      waiting = null;
      ui.more.disabled = false;
      say('Not connected: the search will work once the room is back.', true);
      return;
    }
    waiting = request;
    ui.more.disabled = true;
    if (tries === 0) say(before ? 'Loading more results…' : 'Searching…');
  };

  const submit = () => {
    const text = ui.input.value.trim();
    if (text === '') {
      say('Type a word to search for.', true);
      return;
    }
    q = text;
    oldest = 0;
    ui.results.replaceChildren();
    ui.more.hidden = true;
    ask(0);
  };

  ui.form.addEventListener('submit', (event) => {
    event.preventDefault();
    submit();
  });
  ui.more.addEventListener('click', () => {
    if (oldest > 0) ask(oldest);
  });
  ui.close.addEventListener('click', () => ui.dialog.close());
  ui.results.addEventListener('click', (event) => {
    const button = event.target.closest('button.search-result');
    if (!button) return;
    ui.dialog.close();
    onChoose(room, Number(button.dataset.seq));
  });

  return {
    /** Open the dialog for `name`; what was found in that room last stays until a new search. */
    open(name) {
      if (ui.dialog.open) return;
      if (name !== room) {
        // An answer still to come is for the other room's search.
        waiting = null;
        room = name;
        q = '';
        oldest = 0;
        ui.input.value = '';
        ui.results.replaceChildren();
        ui.more.hidden = true;
        say('');
      }
      ui.room.textContent = `in ${name}`;
      ui.dialog.showModal();
      ui.input.focus();
      ui.input.select();
    },

    /** A `search` answer. */
    onResults(frame, request) {
      if (request !== waiting) return;
      waiting = null;
      ui.more.disabled = false;
      const messages = Array.isArray(frame.messages)
        ? frame.messages.filter((m) => m?.type === 'message' && Number.isSafeInteger(m.seq) && !m.deleted)
        : [];
      const words = searchWords(request.q);
      ui.results.append(...messages.map((m) => searchResult(m, words)));
      for (const m of messages) oldest = oldest === 0 ? m.seq : Math.min(oldest, m.seq);
      const more = frame.more === true && messages.length > 0;
      ui.more.hidden = !more;
      const shown = ui.results.childElementCount;
      if (shown === 0) say(`Nothing in ${request.room} matches ${request.q}.`);
      else
        say(
          `${shown} message${shown === 1 ? '' : 's'}${more ? ' so far' : ''}, newest first. Choose one to see it in the room.`,
        );
    },

    /**
     * An `error` answering a search: a query the server cannot use is a hint, not a failure, and a
     * server busy with other searches is asked again, a little later each time.
     */
    onError(frame, request) {
      if (request !== waiting) return;
      const delay = RETRY_MS[request.tries];
      if (frame.code === ErrorCode.Busy && delay !== undefined) {
        say('The server is busy with other searches; trying again…');
        setTimeout(() => {
          if (waiting === request) ask(request.before, request.tries + 1);
        }, delay);
        return;
      }
      waiting = null;
      ui.more.disabled = false;
      const message = String(frame.message || frame.code || 'error').replace(/^q: /u, '');
      if (frame.code === ErrorCode.BadFrame) say(`Cannot search for that: ${message}.`, true);
      else if (frame.code === ErrorCode.Busy)
        say('The server is busy with other searches. Try again in a moment.', true);
      else say(`The search failed: ${message}.`, true);
    },
  };
}
