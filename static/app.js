// runspec-room's page: several rooms on one socket, the transcript with scroll-back, unread and read
// markers, people and typing, mentions and notifications, and the keyboard. The socket is connection.js,
// room state rooms.js, the DOM render.js, message text format.js, name rules names.js; the search dialog
// search.js, admin actions moderation.js, console keys keys.js, confirmations dialogs.js.

import { Connection } from './connection.js';
import { setUpKeys } from './keys.js';
import { setUpModeration } from './moderation.js';
import { nameProblem } from './names.js';
import { CloseCode, ErrorCode, HISTORY_MAX } from './protocol.js';
import * as render from './render.js';
import { loadRooms, Room, saveRooms, WINDOW_CAP } from './rooms.js';
import { setUpSearch } from './search.js';

const USER_KEY = 'runspec-room:join';
const NOTICE_MS = 6000;
const NEAR_BOTTOM_PX = 80;
/** Older messages are asked for once the reader is this close to the top. */
const OLDER_MARGIN_PX = 400;
const OLDER_PAGE = 100;
/** The server relays one `active` per 2 s; repeating it sooner only keeps it alive. */
const TYPING_EVERY_MS = 2000;
const TYPING_IDLE_MS = 5000;
/** A relayed `active` lapses after 6 s on the server, which then sends `idle`; this is the backstop. */
const TYPING_SHOWN_MS = 8000;
const READ_DELAY_MS = 250;
const WHO_DELAY_MS = 300;
const ANNOUNCE_KEEP = 5;

const byId = (id) => document.getElementById(id);
const ui = {
  joinView: byId('join-view'),
  joinForm: byId('join-form'),
  user: byId('user'),
  room: byId('room'),
  joinError: byId('join-error'),
  chatView: byId('chat-view'),
  sidebar: byId('sidebar'),
  roomList: byId('room-list'),
  openRooms: byId('open-rooms'),
  notify: byId('notify'),
  whoami: byId('whoami'),
  logoutForm: byId('logout-form'),
  navToggle: byId('nav-toggle'),
  navUnread: byId('nav-unread'),
  navBackdrop: byId('nav-backdrop'),
  roomName: byId('room-name'),
  status: byId('status'),
  leave: byId('leave'),
  notice: byId('notice'),
  signedOut: byId('signed-out'),
  signedIn: byId('signed-in'),
  signedInName: byId('signed-in-name'),
  transcript: byId('transcript'),
  typing: byId('typing'),
  composeForm: byId('compose-form'),
  composer: byId('composer'),
  send: byId('send'),
  presence: byId('presence'),
  announcer: byId('announcer'),
  roomsDialog: byId('rooms-dialog'),
  roomsForm: byId('rooms-form'),
  roomInput: byId('room-input'),
  roomInputError: byId('room-input-error'),
  roomsCancel: byId('rooms-cancel'),
  roomChoices: byId('room-choices'),
  openSearch: byId('open-search'),
  moderate: byId('moderate'),
};

/** @type {Map<string, Room>} */
const rooms = new Map();
/** Room names in sidebar order. */
let order = [];
let active = '';
let me = '';
/** The session's name when the server has sign-in on; empty in dev mode. */
let signedInName = '';
/** Messages sent and not yet echoed, by cid: resent after a reconnect, stored once by the server. */
const outbox = new Map();
/** The room the current socket was opened for. */
let socketRoom = '';
/** The rooms the dialog offers, from the server's `rooms` answer. */
let serverRooms = [];
let noticeTimer = 0;
let readTimer = 0;
let typingRoom = '';
let typingSentAt = 0;
let typingIdleTimer = 0;
const whoTimers = new Map();
/** The server said this connection's name is an admin's (welcome `admin`): moderation is offered. */
let isAdmin = false;
/** The seq of the message a search result showed, marked until another room is shown. */
let foundSeq = null;
/** The page was hidden since the divider was placed: messages that came meanwhile are "new since you left". */
let wasHidden = document.visibilityState === 'hidden';

const connection = new Connection({
  url: socketUrl,
  onFrame: handleFrame,
  onClose: onDisconnected,
  onState: showState,
});
const send = (frame, request) => connection.send(frame, request);
const search = setUpSearch({ send, onChoose: jumpTo });
const moderation = setUpModeration({ send, report: showNotice });
const keys = setUpKeys({
  onSignedOut: () => {
    ui.signedOut.hidden = false;
  },
});

// ---- Rooms: joining, switching, leaving ----

const activeRoom = () => rooms.get(active);

function socketUrl() {
  const room = activeRoom() ?? rooms.get(order[0]);
  if (!room) return null;
  socketRoom = room.name;
  let query = `?room=${encodeURIComponent(room.name)}`;
  // Signed in, the name comes from the session; only dev mode names itself.
  if (!signedInName) query += `&user=${encodeURIComponent(me)}`;
  if (room.synced) query += `&since=${room.newest}`;
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws${query}`;
}

function sendJoin(room) {
  const frame = { type: 'join', room: room.name };
  if (room.synced) frame.since = room.newest;
  connection.send(frame, { kind: 'join', room: room.name });
}

/** Switch to a room, joining it first when it is new to this page. */
function openRoom(input) {
  const name = input.trim();
  const problem = nameProblem(name, 'Room');
  if (problem) return problem;
  if (!rooms.has(name)) {
    rooms.set(name, new Room(name));
    order.push(name);
    saveRooms(me, order);
    if (connection.state === 'connected') sendJoin(rooms.get(name));
    else if (connection.state === 'offline') enterChat();
  }
  setActive(name);
  return '';
}

function setActive(name) {
  const room = rooms.get(name);
  if (!room) return;
  const previous = activeRoom();
  if (previous) previous.scroll = scrollState();
  if (previous && previous !== room) {
    previous.draft = ui.composer.value;
    stopTyping();
    foundSeq = null;
  }
  active = name;
  history.replaceState(null, '', roomUrl(name));
  ui.roomName.textContent = name;
  if (previous !== room) ui.composer.value = room.draft;
  placeDivider(room);
  renderTranscript(room);
  if (room.dividerAt !== null) scrollToDivider(room);
  else if (room.scroll) restoreAnchor(room.scroll);
  else scrollToBottom();
  renderPeople();
  renderTyping();
  refreshCounts();
  closeNav();
  scheduleRead();
  maybeLoadOlder();
}

/**
 * The divider marks the first unread message once a room is shown (after its join, when it comes);
 * a room never read before has none: its newest messages are shown.
 */
function placeDivider(room) {
  room.dividerPending = !room.joined;
  room.dividerAt = room.joined && room.read > 0 && room.unread > 0 ? room.read : null;
}

function stepRoom(by) {
  if (order.length < 2) return;
  const at = order.indexOf(active);
  setActive(order[(at + by + order.length) % order.length]);
}

/** Leave a room on purpose: the server is told, the browser forgets it. */
function leaveRoom(name) {
  const room = rooms.get(name);
  if (!room) return;
  if (room.joined) connection.send({ type: 'leave', room: name }, { kind: 'leave', room: name });
  forgetRoom(name);
}

function forgetRoom(name) {
  const room = rooms.get(name);
  if (!room) return;
  room.disconnected();
  rooms.delete(name);
  const at = order.indexOf(name);
  order = order.filter((n) => n !== name);
  saveRooms(me, order);
  for (const [cid, queued] of outbox) if (queued.room === name) outbox.delete(cid);
  if (typingRoom === name) stopTyping();
  if (active !== name) {
    refreshCounts();
    return;
  }
  active = '';
  const next = order[at] ?? order[at - 1];
  if (next) setActive(next);
  else leaveChat();
}

// ---- Connection events ----

function showState(state) {
  const waitS = Math.max(0, Math.ceil((connection.retryAt - Date.now()) / 1000));
  const label = { reconnecting: `reconnecting in ${waitS}s`, 'signed-out': 'offline' }[state] ?? state;
  ui.status.textContent = label;
  ui.status.dataset.state = state;
  ui.send.disabled = state !== 'connected';
  ui.signedOut.hidden = state !== 'signed-out';
  document.body.dataset.state = state;
}

function onDisconnected(code) {
  for (const room of rooms.values()) room.disconnected();
  typingRoom = '';
  // Banned from the room the socket was opened for: the next socket opens for another room, if any.
  if (code === CloseCode.Forbidden && rooms.has(socketRoom)) {
    const banned = socketRoom;
    forgetRoom(banned);
    tell(`You are banned from ${banned}.`);
  }
  const room = activeRoom();
  if (room) {
    renderPeople();
    renderTyping();
    refreshHead(room);
  }
}

function handleFrame(frame, request) {
  switch (frame.type) {
    case 'welcome':
      return onWelcome(frame);
    case 'joined':
      return onJoined(frame);
    case 'message':
      return onMessage(frame, request);
    case 'presence':
      return onPresence(frame);
    case 'who':
      return onWho(frame);
    case 'history':
      return onHistory(frame, request);
    case 'typing':
      return onTyping(frame);
    case 'read':
      return onRead(frame);
    case 'rooms':
      return onRooms(frame);
    case 'deleted':
      return onDeleted(frame);
    case 'kicked':
      return onKicked(frame);
    case 'search':
      return request?.kind === 'search' ? search.onResults(frame, request) : undefined;
    case 'ack':
      return request?.kind === 'admin' ? moderation.onAck(request) : undefined;
    case 'error':
      return onError(frame, request);
  }
}

function onWelcome(frame) {
  if (typeof frame.user === 'string' && frame.user !== '') me = frame.user;
  setAdmin(frame.admin === true);
  const room = rooms.get(frame.room);
  if (room) takeMarks(room, frame);
  connection.welcomed();
  for (const name of order) if (name !== frame.room) sendJoin(rooms.get(name));
  if (document.visibilityState === 'hidden') connection.send({ type: 'presence', status: 'away' });
}

/** Offer moderation or stop offering it, as the server says. */
function setAdmin(admin) {
  if (admin === isAdmin) return;
  isAdmin = admin;
  ui.moderate.hidden = !admin;
  const room = activeRoom();
  if (room) {
    renderTranscript(room, true);
    renderPeople();
  }
}

/** A room's newest seq and read marker from `welcome` or `joined`. */
function takeMarks(room, frame) {
  const newest = Number(frame.seq) || 0;
  const read = Number(frame.read) || 0;
  if (newest < room.newest) {
    room.restart(newest, read);
    if (room.name === active) renderTranscript(room);
  }
  room.newest = Math.max(room.newest, newest);
  room.readUpTo(read);
}

function onJoined(frame) {
  const room = rooms.get(frame.room);
  if (!room) {
    // Left while the join was under way: the server has us there now, so leave again.
    connection.send({ type: 'leave', room: frame.room }, { kind: 'leave' });
    return;
  }
  room.joined = true;
  room.synced = true;
  takeMarks(room, frame);
  room.presence.set(me, 'available');
  if (frame.complete === false)
    showNotice(`Some messages of ${room.name} were missed; scroll up to read them.`);
  connection.send({ type: 'who', room: room.name }, { kind: 'who' });
  for (const [cid, queued] of outbox) {
    if (queued.room === room.name)
      connection.send({ type: 'message', room: room.name, text: queued.text, cid }, { kind: 'send', cid });
  }
  if (room.name === active) {
    // Shown before its first join ended: the divider and the first scroll wait for the marker.
    const first = room.dividerPending;
    const bottom = atBottom();
    if (first) placeDivider(room);
    renderTranscript(room, !bottom && !first);
    if (first && room.dividerAt !== null) scrollToDivider(room);
    else if (bottom || first) scrollToBottom();
    renderPeople();
    scheduleRead();
    if (room.jumpTo !== null) continueJump(room);
    else maybeLoadOlder();
  }
  refreshCounts();
}

function onMessage(frame, request) {
  const room = rooms.get(frame.room);
  if (!room || typeof frame.id !== 'string' || !Number.isSafeInteger(frame.seq)) return;
  if (typeof frame.cid === 'string' && frame.sender === me) outbox.delete(frame.cid);
  else if (request?.kind === 'send') outbox.delete(request.cid);
  const shown = room.name === active;
  const bottom = shown && atBottom();
  const prev = room.messages.at(-1);
  const result = room.add(frame, me);
  if (result === 'duplicate') {
    if (frame.deleted === true) redrawMessage(room, frame.id);
    return;
  }
  endTyping(room, frame.sender);
  const live = room.joined;
  if (live && frame.sender === me && room.read >= frame.seq - 1) markRead(room, frame.seq);
  if (shown) {
    if (result === 'append') ui.transcript.append(...render.itemsAfter(room, prev, frame, me, isAdmin));
    else renderTranscript(room, !bottom);
    // What this tab just sent is shown, wherever the reader was.
    if (bottom || request?.kind === 'send') scrollToBottom();
    scheduleRead();
  }
  if (live && frame.sender !== me) {
    const mention = room.mentioned.has(frame.seq);
    if (shown || mention) announce(`${shown ? '' : `${room.name}: `}${frame.sender}: ${frame.text ?? ''}`);
    if (mention && document.visibilityState === 'hidden') notify(room, frame);
  }
  refreshCounts();
}

function onPresence(frame) {
  const room = rooms.get(frame.room);
  if (!room || typeof frame.user !== 'string') return;
  const status = frame.status === 'available' ? 'available' : 'away';
  room.presence.set(frame.user, status);
  if (status === 'away') endTyping(room, frame.user);
  else if (!room.kinds.has(frame.user) && room.joined) askWho(room);
  if (room.name === active) renderPeople();
}

function askWho(room) {
  if (whoTimers.has(room.name)) return;
  whoTimers.set(
    room.name,
    setTimeout(() => {
      whoTimers.delete(room.name);
      if (rooms.get(room.name) === room && room.joined)
        connection.send({ type: 'who', room: room.name }, { kind: 'who' });
    }, WHO_DELAY_MS),
  );
}

function onWho(frame) {
  const room = rooms.get(frame.room);
  if (!room || !Array.isArray(frame.users)) return;
  for (const entry of frame.users) {
    if (typeof entry?.user !== 'string') continue;
    room.kinds.set(entry.user, entry.kind === 'console' ? 'console' : 'human');
    room.presence.set(entry.user, entry.status === 'available' ? 'available' : 'away');
  }
  if (room.name === active) renderPeople();
}

function onHistory(frame, request) {
  if (request?.kind !== 'older') return;
  const room = rooms.get(request.room);
  if (!room) return;
  room.loadingOlder = false;
  const page = Array.isArray(frame.messages)
    ? frame.messages.filter((m) => m?.type === 'message' && Number.isSafeInteger(m.seq))
    : [];
  const added = room.prepend(page, me);
  if (frame.more !== true || added === 0) room.exhausted = true;
  if (room.name === active) {
    renderTranscript(room, true);
    if (room.jumpTo !== null) continueJump(room);
    else maybeLoadOlder();
  }
  refreshCounts();
}

function onTyping(frame) {
  const room = rooms.get(frame.room);
  if (!room || typeof frame.user !== 'string' || frame.user === me) return;
  clearTimeout(room.typing.get(frame.user));
  if (frame.state === 'active') {
    room.typing.set(
      frame.user,
      setTimeout(() => endTyping(room, frame.user), TYPING_SHOWN_MS),
    );
  } else room.typing.delete(frame.user);
  if (room.name === active) renderTyping();
}

function endTyping(room, user) {
  if (!room.typing.has(user)) return;
  clearTimeout(room.typing.get(user));
  room.typing.delete(user);
  if (room.name === active) renderTyping();
}

function onRead(frame) {
  const room = rooms.get(frame.room);
  if (room?.readUpTo(Number(frame.seq))) refreshCounts();
}

function onRooms(frame) {
  if (!Array.isArray(frame.rooms)) return;
  serverRooms = frame.rooms.filter((r) => typeof r?.room === 'string');
  if (ui.roomsDialog.open) renderChoices();
}

function onDeleted(frame) {
  const room = rooms.get(frame.room);
  if (!room || typeof frame.id !== 'string' || !room.markDeleted(frame.id)) return;
  redrawMessage(room, frame.id);
  refreshCounts();
}

function onKicked(frame) {
  if (typeof frame.room !== 'string' || !rooms.has(frame.room)) return;
  const by = typeof frame.by === 'string' ? ` by ${frame.by}` : '';
  const banned = frame.banned === true ? ' and banned from it' : '';
  const why = typeof frame.reason === 'string' && frame.reason !== '' ? `: ${frame.reason}` : '';
  forgetRoom(frame.room);
  tell(`You were removed from ${frame.room}${by}${banned}${why}.`);
}

function onError(frame, request) {
  const message = String(frame.message || frame.code || 'error');
  switch (request?.kind) {
    case 'join':
      forgetRoom(request.room);
      showNotice(`Could not join ${request.room}: ${message}`);
      return;
    case 'older': {
      const room = rooms.get(request.room);
      if (!room) return;
      room.loadingOlder = false;
      room.olderFailed = true;
      room.jumpTo = null;
      if (room.name === active) refreshHead(room);
      showNotice(`Older messages could not be loaded: ${message}`);
      return;
    }
    case 'send': {
      // The server stops: it stored nothing, and the next connection sends it again.
      if (frame.code === ErrorCode.ShuttingDown) return;
      const queued = outbox.get(request.cid);
      outbox.delete(request.cid);
      if (queued && queued.room === active && ui.composer.value === '') ui.composer.value = queued.text;
      showNotice(`Not sent: ${message}`);
      return;
    }
    case 'search':
      return search.onError(frame, request);
    case 'admin':
      return moderation.onError(frame, request);
    case 'read':
    case 'who':
    case 'leave':
      return;
  }
  showNotice(message);
}

// ---- The transcript ----

function atBottom() {
  const list = ui.transcript;
  return list.scrollHeight - list.scrollTop - list.clientHeight < NEAR_BOTTOM_PX;
}

function scrollToBottom() {
  ui.transcript.scrollTop = ui.transcript.scrollHeight;
}

/** Show the divider near the top; when it is older than the messages loaded, start at the oldest of them. */
function scrollToDivider(room) {
  const divider = ui.transcript.querySelector('.divider');
  if (divider) {
    const top = ui.transcript.getBoundingClientRect().top;
    ui.transcript.scrollTop += divider.getBoundingClientRect().top - top - 8;
  } else if (room.dividerAt < room.oldest - 1) ui.transcript.scrollTop = 0;
  else scrollToBottom();
}

/** The message at the top of the view and how far below the top it is; null at the bottom. */
function scrollState() {
  if (atBottom()) return null;
  const top = ui.transcript.getBoundingClientRect().top;
  for (const item of ui.transcript.querySelectorAll('li.message')) {
    const rect = item.getBoundingClientRect();
    if (rect.bottom > top) return { seq: item.dataset.seq, offset: rect.top - top };
  }
  return null;
}

function restoreAnchor(anchor) {
  const item = ui.transcript.querySelector(`li.message[data-seq="${anchor.seq}"]`);
  if (!item) return scrollToBottom();
  const top = ui.transcript.getBoundingClientRect().top;
  ui.transcript.scrollTop += item.getBoundingClientRect().top - top - anchor.offset;
}

/**
 * Draw the room's whole transcript; with `keep`, the message at the top of the view stays where it
 * is (or the view stays at the bottom).
 */
function renderTranscript(room, keep = false) {
  const bottom = keep && atBottom();
  const anchor = keep && !bottom ? scrollState() : null;
  ui.transcript.replaceChildren(...render.transcriptItems(room, me, isAdmin));
  ui.transcript.setAttribute('aria-label', `Messages in ${room.name}`);
  if (foundSeq !== null) markFound(ui.transcript.querySelector(`li.message[data-seq="${foundSeq}"]`));
  if (anchor) restoreAnchor(anchor);
  else if (bottom) scrollToBottom();
}

function refreshHead(room) {
  const head = ui.transcript.querySelector('li.head');
  if (head && room.name === active) head.replaceWith(render.headItem(room));
}

function redrawMessage(room, id) {
  if (room.name !== active) return;
  const item = [...ui.transcript.querySelectorAll('li.message')].find((li) => li.dataset.id === id);
  const message = room.byId.get(id);
  if (!item || !message) return;
  const continued = item.classList.contains('continued');
  item.replaceWith(render.messageItem(message, { me, continued, mention: false, admin: isAdmin }));
  if (Number(item.dataset.seq) === foundSeq)
    markFound(ui.transcript.querySelector(`li.message[data-id="${id}"]`));
}

// ---- Showing a message found by a search ----

/** Mark the message a search result led to, so that it stands out and can take focus. */
function markFound(item) {
  if (!item) return;
  item.classList.add('found');
  item.tabIndex = -1;
}

/** Show a message of the active room in the middle of the view, with focus; false when it is not loaded. */
function showMessage(seq) {
  const item = ui.transcript.querySelector(`li.message[data-seq="${seq}"]`);
  if (!item) return false;
  for (const old of ui.transcript.querySelectorAll('li.found')) {
    old.classList.remove('found');
    old.removeAttribute('tabindex');
  }
  foundSeq = seq;
  markFound(item);
  item.scrollIntoView({ block: 'center' });
  item.focus({ preventScroll: true });
  scheduleRead();
  return true;
}

/**
 * Show a message of `name` (a search result): at once when it is loaded, else after older pages are
 * loaded up to it. A message farther back than a room's window can hold is not loaded.
 */
function jumpTo(name, seq) {
  const room = rooms.get(name);
  if (!room || !Number.isSafeInteger(seq)) return;
  if (active !== name) setActive(name);
  room.jumpTo = null;
  if (showMessage(seq)) return;
  if (seq >= room.oldest) {
    showNotice('That message is not in the room yet; try again in a moment.');
    return;
  }
  if (room.messages.length + room.oldest - seq > WINDOW_CAP) {
    showNotice('That message is too far back to show here; the search still lists it.');
    return;
  }
  room.jumpTo = seq;
  room.olderFailed = false;
  if (!room.loadingOlder) loadOlder(room);
}

/** After a page of older messages: show the message a search led to, or load the next page towards it. */
function continueJump(room) {
  const seq = room.jumpTo;
  if (showMessage(seq)) {
    room.jumpTo = null;
    return;
  }
  if (room.hasOlder && seq < room.oldest) loadOlder(room);
  else {
    room.jumpTo = null;
    showNotice('That message is no longer in the room.');
  }
}

function loadOlder(room) {
  if (!room.hasOlder || room.loadingOlder || !room.joined) return;
  room.olderFailed = false;
  // Towards a message a search found, pages are as large as the server gives.
  const limit = room.jumpTo !== null ? HISTORY_MAX : OLDER_PAGE;
  const sent = connection.send(
    { type: 'history', room: room.name, before: room.oldest, limit },
    { kind: 'older', room: room.name },
  );
  if (!sent) return;
  room.loadingOlder = true;
  refreshHead(room);
}

function maybeLoadOlder() {
  const room = activeRoom();
  if (room && !room.olderFailed && ui.transcript.scrollTop < OLDER_MARGIN_PX) loadOlder(room);
}

// ---- Read markers, counts and the title ----

function scheduleRead() {
  clearTimeout(readTimer);
  readTimer = setTimeout(markVisibleRead, READ_DELAY_MS);
}

/** Move the read marker to the newest message on screen, while the page is seen. */
function markVisibleRead() {
  const room = activeRoom();
  if (!room?.joined || document.visibilityState !== 'visible' || ui.chatView.hidden) return;
  const bottom = ui.transcript.getBoundingClientRect().bottom;
  const items = ui.transcript.querySelectorAll('li.message');
  for (let i = items.length - 1; i >= 0; i -= 1) {
    const rect = items[i].getBoundingClientRect();
    if (rect.top + Math.min(rect.height, 24) <= bottom) {
      markRead(room, Number(items[i].dataset.seq));
      return;
    }
  }
}

function markRead(room, seq) {
  if (!(seq > room.read)) return;
  if (!connection.send({ type: 'read', room: room.name, seq }, { kind: 'read' })) return;
  room.readUpTo(seq);
  refreshCounts();
}

function refreshCounts() {
  const list = order.map((name) => rooms.get(name));
  render.updateRoomList(ui.roomList, list, active);
  const total = list.reduce((sum, room) => sum + room.unread, 0);
  const elsewhere = list.reduce((sum, room) => sum + (room.name === active ? 0 : room.unread), 0);
  ui.navUnread.textContent = String(elsewhere);
  ui.navUnread.hidden = elsewhere === 0;
  document.title = `${total > 0 ? `(${total}) ` : ''}${active ? `${active} · ` : ''}runspec-room`;
}

// ---- People, typing, announcements, notifications ----

function renderPeople() {
  const room = activeRoom();
  ui.presence.replaceChildren(...(room ? render.peopleItems(room, me, isAdmin) : []));
}

function renderTyping() {
  const room = activeRoom();
  ui.typing.textContent = room ? render.typingText(room.typing.keys()) : '';
}

function announce(text) {
  ui.announcer.append(render.element('p', '', text.slice(0, 300)));
  while (ui.announcer.childElementCount > ANNOUNCE_KEEP) ui.announcer.firstElementChild.remove();
}

function notify(room, message) {
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  let note;
  try {
    note = new Notification(`${message.sender} in ${room.name}`, {
      body: String(message.text ?? '').slice(0, 200),
      tag: `${room.name}:${message.seq}`,
    });
  } catch {
    // Some browsers (Chrome on Android) only notify through a service worker; the badge still counts.
    return;
  }
  note.addEventListener('click', () => {
    window.focus();
    if (rooms.has(room.name)) setActive(room.name);
    note.close();
  });
}

function showNotifyButton() {
  ui.notify.hidden = !('Notification' in window) || Notification.permission !== 'default';
}

function showNotice(text) {
  ui.notice.textContent = text;
  ui.notice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(hideNotice, NOTICE_MS);
}

/** Say something about a room that is gone: in the chat, or on the join form when no room is left. */
function tell(text) {
  if (!ui.chatView.hidden) return showNotice(text);
  ui.joinError.textContent = text;
  ui.joinError.hidden = false;
}

function hideNotice() {
  clearTimeout(noticeTimer);
  ui.notice.hidden = true;
  ui.notice.textContent = '';
}

// ---- Composer and typing ----

function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function submitMessage() {
  const text = ui.composer.value;
  const room = activeRoom();
  if (text.trim() === '' || !room?.joined) return;
  const cid = randomId();
  if (!connection.send({ type: 'message', room: room.name, text, cid }, { kind: 'send', cid })) return;
  outbox.set(cid, { room: room.name, text });
  ui.composer.value = '';
  room.draft = '';
  stopTyping();
}

function onComposerInput() {
  const room = activeRoom();
  if (!room?.joined || ui.composer.value.trim() === '') return stopTyping();
  const now = Date.now();
  if (typingRoom !== room.name || now - typingSentAt >= TYPING_EVERY_MS) {
    if (connection.send({ type: 'typing', room: room.name, state: 'active' })) {
      typingRoom = room.name;
      typingSentAt = now;
    }
  }
  clearTimeout(typingIdleTimer);
  typingIdleTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
}

function stopTyping() {
  clearTimeout(typingIdleTimer);
  if (typingRoom && rooms.get(typingRoom)?.joined)
    connection.send({ type: 'typing', room: typingRoom, state: 'idle' });
  typingRoom = '';
  typingSentAt = 0;
}

// ---- The room dialog (Ctrl+K) ----

function openDialog() {
  if (ui.chatView.hidden || ui.roomsDialog.open) return;
  ui.roomInput.value = '';
  ui.roomInputError.hidden = true;
  renderChoices();
  connection.send({ type: 'rooms' }, { kind: 'rooms' });
  ui.roomsDialog.showModal();
  ui.roomInput.focus();
}

function renderChoices() {
  const filter = ui.roomInput.value.trim().toLowerCase();
  const seen = new Set();
  const items = [];
  const offer = (name, detail) => {
    if (seen.has(name) || (filter && !name.toLowerCase().includes(filter))) return;
    seen.add(name);
    items.push(render.roomChoice(name, detail));
  };
  for (const name of order) offer(name, name === active ? 'open now' : 'joined');
  for (const entry of serverRooms) {
    const members = Number(entry.members) || 0;
    offer(entry.room, members > 0 ? `${members} here` : 'nobody here');
  }
  ui.roomChoices.replaceChildren(...items);
}

function chooseRoom(name) {
  const problem = openRoom(name);
  ui.roomInputError.textContent = problem;
  ui.roomInputError.hidden = !problem;
  if (!problem) ui.roomsDialog.close();
}

function openSearch() {
  if (ui.chatView.hidden || !active) return;
  closeNav();
  search.open(active);
}

// ---- Phone layout: the sidebar as a drawer ----

function openNav() {
  ui.sidebar.classList.add('open');
  ui.navBackdrop.hidden = false;
  ui.navToggle.setAttribute('aria-expanded', 'true');
  (ui.roomList.querySelector('[aria-current]') ?? ui.openRooms).focus();
}

function closeNav() {
  if (!ui.sidebar.classList.contains('open')) return;
  const hadFocus = ui.sidebar.contains(document.activeElement);
  ui.sidebar.classList.remove('open');
  ui.navBackdrop.hidden = true;
  ui.navToggle.setAttribute('aria-expanded', 'false');
  if (hadFocus && getComputedStyle(ui.navToggle).display !== 'none') ui.navToggle.focus();
}

// ---- Entering and leaving the chat ----

function roomUrl(name) {
  const params = new URLSearchParams(location.search);
  params.delete('room');
  const query = params.toString();
  return `${location.pathname}${query ? `?${query}` : ''}#${encodeURIComponent(name)}`;
}

function roomFromHash() {
  try {
    return decodeURIComponent(location.hash.slice(1)).trim();
  } catch {
    return '';
  }
}

function enterChat() {
  hideNotice();
  ui.joinView.hidden = true;
  ui.chatView.hidden = false;
  showNotifyButton();
  connection.start();
}

function leaveChat() {
  connection.stop();
  ui.chatView.hidden = true;
  ui.joinView.hidden = false;
  ui.room.value = '';
  history.replaceState(null, '', roomUrl('').replace(/#$/u, ''));
  document.title = 'runspec-room';
  (signedInName ? ui.room : ui.user).focus();
}

function submitJoin() {
  const user = ui.user.value.trim();
  const room = ui.room.value.trim();
  const problem = nameProblem(user, 'Your name') || nameProblem(room, 'Room');
  ui.joinError.textContent = problem;
  ui.joinError.hidden = !problem;
  if (problem) return;
  if (!signedInName) {
    try {
      localStorage.setItem(USER_KEY, JSON.stringify({ user }));
    } catch {
      // Storage can be disabled or full; the page works without it.
    }
  }
  begin(user, room);
}

/** Open the chat as `user`: the rooms this browser remembers, and `room` (shown first) if given. */
function begin(user, room) {
  me = user;
  order = loadRooms(user).filter((name) => !nameProblem(name, 'Room'));
  if (room && !order.includes(room)) order.push(room);
  rooms.clear();
  for (const name of order) rooms.set(name, new Room(name));
  saveRooms(me, order);
  ui.whoami.textContent = me;
  ui.whoami.hidden = false;
  active = room || order[0];
  setActive(active);
  enterChat();
  ui.composer.focus();
}

function storedUser() {
  try {
    return String(JSON.parse(localStorage.getItem(USER_KEY) ?? '{}').user ?? '');
  } catch {
    return '';
  }
}

/** Signed in (the server's sign-in is on): the name is the session's and cannot be changed here. */
function showSignedIn(name) {
  signedInName = name;
  ui.user.value = name;
  ui.user.readOnly = true;
  ui.signedInName.textContent = name;
  ui.signedIn.hidden = false;
  ui.logoutForm.hidden = false;
}

async function whoAmI() {
  try {
    const res = await fetch('/me', { headers: { accept: 'application/json' }, cache: 'no-store' });
    return res.ok ? await res.json() : null;
  } catch {
    return null;
  }
}

// ---- Wiring ----

ui.joinForm.addEventListener('submit', (event) => {
  event.preventDefault();
  submitJoin();
});
ui.leave.addEventListener('click', () => leaveRoom(active));
ui.roomList.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-room]');
  if (button) setActive(button.dataset.room);
});
ui.openRooms.addEventListener('click', openDialog);
ui.notify.addEventListener('click', async () => {
  await Notification.requestPermission();
  showNotifyButton();
});
ui.navToggle.addEventListener('click', () =>
  ui.sidebar.classList.contains('open') ? closeNav() : openNav(),
);
ui.navBackdrop.addEventListener('click', closeNav);

ui.roomsForm.addEventListener('submit', (event) => {
  event.preventDefault();
  chooseRoom(ui.roomInput.value);
});
ui.roomInput.addEventListener('input', renderChoices);
ui.roomsCancel.addEventListener('click', () => ui.roomsDialog.close());
ui.roomChoices.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-room]');
  if (button) chooseRoom(button.dataset.room);
});

ui.transcript.addEventListener(
  'scroll',
  () => {
    maybeLoadOlder();
    scheduleRead();
  },
  { passive: true },
);
ui.transcript.addEventListener('click', (event) => {
  const room = activeRoom();
  if (!room) return;
  if (event.target.closest('#load-older')) loadOlder(room);
  const remove = event.target.closest('button.delete-message');
  const message = remove && room.byId.get(remove.closest('li.message')?.dataset.id);
  if (message && isAdmin) void moderation.deleteMessage(room.name, message);
});
ui.presence.addEventListener('click', (event) => {
  const button = event.target.closest('button.person-actions');
  if (button && isAdmin && active) moderation.open(active, button.dataset.user);
});
ui.moderate.addEventListener('click', () => {
  if (isAdmin && active) moderation.open(active, '');
});
ui.openSearch.addEventListener('click', openSearch);

ui.composer.addEventListener('keydown', (event) => {
  // keyCode 229 is what some browsers report for the Enter that ends an IME composition.
  if (event.key !== 'Enter' || event.shiftKey || event.isComposing || event.keyCode === 229) return;
  event.preventDefault();
  submitMessage();
});
ui.composer.addEventListener('input', onComposerInput);
ui.composeForm.addEventListener('submit', (event) => {
  event.preventDefault();
  submitMessage();
});

document.addEventListener('keydown', (event) => {
  if (ui.chatView.hidden || event.defaultPrevented) return;
  const key = event.key.toLowerCase();
  const dialogOpen = document.querySelector('dialog[open]') !== null;
  if ((event.ctrlKey || event.metaKey) && !event.altKey && !event.shiftKey && key === 'k') {
    event.preventDefault();
    if (!dialogOpen) openDialog();
  } else if ((event.ctrlKey || event.metaKey) && !event.altKey && event.shiftKey && key === 'f') {
    event.preventDefault();
    if (!dialogOpen) openSearch();
  } else if (event.altKey && !event.ctrlKey && (key === 'arrowup' || key === 'arrowdown')) {
    if (dialogOpen) return;
    event.preventDefault();
    stepRoom(key === 'arrowup' ? -1 : 1);
  } else if (key === 'escape' && ui.sidebar.classList.contains('open')) {
    closeNav();
  }
});

window.addEventListener('hashchange', () => {
  const name = roomFromHash();
  if (ui.chatView.hidden) ui.room.value = name;
  if (!name || name === active || ui.chatView.hidden) return;
  const problem = openRoom(name);
  if (problem) showNotice(problem);
});
window.addEventListener('online', () => connection.reconnectNow());
document.addEventListener('visibilitychange', () => {
  const visible = document.visibilityState === 'visible';
  connection.send({ type: 'presence', status: visible ? 'available' : 'away' });
  if (!visible) {
    wasHidden = true;
    return;
  }
  connection.reconnectNow();
  const room = activeRoom();
  if (room && wasHidden && room.unread > 0) {
    // Back after a while away: what came meanwhile is "new since you left".
    placeDivider(room);
    renderTranscript(room, true);
  }
  wasHidden = false;
  scheduleRead();
});

async function start() {
  const params = new URLSearchParams(location.search);
  showState('offline');
  const identity = await whoAmI();
  const signedIn = identity?.mode === 'oidc' ? String(identity.user?.name ?? '') : '';
  if (signedIn) {
    showSignedIn(signedIn);
    keys.enable();
  }
  const user = signedIn || (params.get('user') ?? storedUser()).trim();
  const wanted = roomFromHash() || (params.get('room') ?? '').trim();
  if (!signedIn) ui.user.value = user;
  ui.room.value = wanted;
  const remembered = user && !nameProblem(user, 'Your name') ? loadRooms(user) : [];
  const room = wanted && !nameProblem(wanted, 'Room') ? wanted : '';
  if (user && !nameProblem(user, 'Your name') && (room || remembered.length > 0)) begin(user, room);
  else (ui.user.value ? ui.room : ui.user).focus();
}

void start();
