// runspec-room browser client: join form, WebSocket with resume and backoff, transcript, presence and composer.

import { CloseCode, FORBIDDEN_IN_NAME, NAME_MAX } from './protocol.js';

const JOIN_KEY = 'runspec-room:join';
const TRANSCRIPT_CAP = 2000;
const NOTICE_MS = 6000;
const STABLE_MS = 10_000;
const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 30_000;
const NEAR_BOTTOM_PX = 80;
// The server's rule for names comes with its codes (protocol.js, made from src/protocol): catching a
// bad name here avoids a reconnect loop against an upgrade that can never succeed.

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

const byId = (id) => document.getElementById(id);
const ui = {
  joinView: byId('join-view'),
  joinForm: byId('join-form'),
  user: byId('user'),
  room: byId('room'),
  joinError: byId('join-error'),
  chatView: byId('chat-view'),
  roomName: byId('room-name'),
  status: byId('status'),
  leave: byId('leave'),
  notice: byId('notice'),
  signedOut: byId('signed-out'),
  signedIn: byId('signed-in'),
  signedInName: byId('signed-in-name'),
  whoami: byId('whoami'),
  logoutForm: byId('logout-form'),
  transcript: byId('transcript'),
  presence: byId('presence'),
  composeForm: byId('compose-form'),
  composer: byId('composer'),
  send: byId('send'),
};

/** @type {{user: string, room: string} | null} */
let session = null;
/** @type {WebSocket | null} */
let socket = null;
let state = 'offline';
let me = '';
let lastSeq = 0;
let attempt = 0;
let retryAt = 0;
let retryTimer = 0;
let stableTimer = 0;
let noticeTimer = 0;
/** The session's name when the server has sign-in on; empty in dev mode. */
let signedInName = '';
const seenIds = new Set();
/** @type {Map<string, 'available' | 'away'>} */
const presence = new Map();

// ---- Join and leave ----

function nameProblem(value, label) {
  if (value === '') return `${label} is required.`;
  if ([...value].length > NAME_MAX) return `${label} must be at most ${NAME_MAX} characters.`;
  if (FORBIDDEN_IN_NAME.test(value)) return `${label} must not contain control or invisible characters.`;
  return '';
}

function readStoredJoin() {
  try {
    const stored = JSON.parse(localStorage.getItem(JOIN_KEY) ?? '{}');
    return { user: String(stored.user ?? ''), room: String(stored.room ?? '') };
  } catch {
    return { user: '', room: '' };
  }
}

function submitJoin() {
  const user = ui.user.value.trim();
  const room = ui.room.value.trim();
  const problem = nameProblem(user, 'Your name') || nameProblem(room, 'Room');
  ui.joinError.textContent = problem;
  ui.joinError.hidden = !problem;
  if (problem) return;
  try {
    localStorage.setItem(JOIN_KEY, JSON.stringify({ user, room }));
  } catch {
    // Storage can be disabled or full; the page works without it.
  }
  // Signed in, the name comes from the session; only dev mode keeps it in the address.
  const query = `?room=${encodeURIComponent(room)}${signedInName ? '' : `&user=${encodeURIComponent(user)}`}`;
  history.replaceState(null, '', location.pathname + query);
  join(user, room);
}

function join(user, room) {
  session = { user, room };
  me = user;
  lastSeq = 0;
  attempt = 0;
  seenIds.clear();
  presence.clear();
  ui.transcript.replaceChildren();
  renderPresence();
  hideNotice();
  ui.signedOut.hidden = true;
  ui.roomName.textContent = room;
  ui.joinView.hidden = true;
  ui.chatView.hidden = false;
  connect();
  ui.composer.focus();
}

function leave() {
  session = null;
  dropSocket(1000, 'leaving');
  clearTimeout(retryTimer);
  presence.clear();
  renderPresence();
  setState('offline');
  // Without the query a reload shows the form again instead of rejoining.
  history.replaceState(null, '', location.pathname);
  ui.chatView.hidden = true;
  ui.joinView.hidden = false;
  ui.user.focus();
}

// ---- Connection ----

function connect() {
  clearTimeout(retryTimer);
  if (!session || socket) return;
  const { user, room } = session;
  const url =
    `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws` +
    `?user=${encodeURIComponent(user)}&room=${encodeURIComponent(room)}` +
    (lastSeq > 0 ? `&since=${lastSeq}` : '');
  const ws = new WebSocket(url);
  socket = ws;
  setState('connecting');
  ws.addEventListener('open', () => {
    if (ws !== socket) return;
    stableTimer = setTimeout(() => {
      attempt = 0;
    }, STABLE_MS);
    setState('connected');
  });
  ws.addEventListener('message', (event) => {
    if (ws === socket) handleFrame(event.data);
  });
  ws.addEventListener('close', (event) => {
    if (ws === socket) onClose(event.code);
  });
}

/** Forget the current socket first, so its close event is not taken for a dropped connection. */
function dropSocket(code, reason) {
  const ws = socket;
  socket = null;
  clearTimeout(stableTimer);
  ws?.close(code, reason);
}

function onClose(code) {
  socket = null;
  clearTimeout(stableTimer);
  // The server re-sends everyone's presence on the next connection.
  presence.clear();
  renderPresence();
  if (code === CloseCode.Unauthorized) {
    ui.signedOut.hidden = false;
    setState('signed-out');
    return;
  }
  const delay = Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
  attempt += 1;
  retryAt = Date.now() + delay;
  retryTimer = setTimeout(connect, delay);
  setState('reconnecting');
}

function reconnectNow() {
  if (session && !socket && state === 'reconnecting') connect();
}

function setState(next) {
  state = next;
  const waitS = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
  const label = { reconnecting: `reconnecting in ${waitS}s`, 'signed-out': 'offline' }[state] ?? state;
  ui.status.textContent = label;
  ui.status.dataset.state = state;
  ui.send.disabled = state !== 'connected';
  document.body.dataset.state = state;
}

function sendFrame(frame) {
  if (state !== 'connected' || socket?.readyState !== WebSocket.OPEN) return false;
  socket.send(JSON.stringify(frame));
  return true;
}

// ---- Frames from the server ----

function handleFrame(data) {
  let frame;
  try {
    frame = JSON.parse(data);
  } catch {
    return;
  }
  switch (frame?.type) {
    case 'welcome':
      onWelcome(frame);
      break;
    case 'presence':
      if (typeof frame.user === 'string' && frame.user !== me) {
        presence.set(frame.user, frame.status === 'available' ? 'available' : 'away');
        renderPresence();
      }
      break;
    case 'message':
      addMessage(frame);
      break;
    case 'error':
      showNotice(String(frame.message || frame.code || 'error'));
      break;
  }
  document.body.dataset.state = state;
}

function onWelcome(frame) {
  attempt = 0;
  if (typeof frame.user === 'string') me = frame.user;
  if (typeof frame.room === 'string') ui.roomName.textContent = frame.room;
  if (Number.isFinite(frame.seq)) lastSeq = Math.max(lastSeq, frame.seq);
  presence.clear();
  presence.set(me, 'available');
  renderPresence();
  if (frame.complete === false) showNotice('Some earlier messages are not shown');
  if (document.visibilityState === 'hidden') sendFrame({ type: 'presence', status: 'away' });
}

// ---- Rendering ----

function element(tag, className, text) {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const pad2 = (n) => String(n).padStart(2, '0');

function addMessage(message) {
  const { id, seq, sender, text, ts } = message;
  if (typeof id !== 'string' || seenIds.has(id)) return;
  seenIds.add(id);
  if (Number.isFinite(seq)) lastSeq = Math.max(lastSeq, seq);

  const item = element('li', sender === me ? 'message mine' : 'message');
  item.dataset.id = id;
  item.dataset.seq = String(seq);
  const when = new Date(Number.isFinite(ts) ? ts * 1000 : Date.now());
  const time = element('time', 'time', `${pad2(when.getHours())}:${pad2(when.getMinutes())}`);
  time.dateTime = when.toISOString();
  time.title = when.toLocaleString();
  item.append(
    element('span', 'sender', String(sender ?? '')),
    time,
    element('div', 'text', String(text ?? '')),
  );

  const list = ui.transcript;
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < NEAR_BOTTOM_PX;
  list.append(item);
  // The id set shrinks with the list, so a long-open tab holds a bounded amount either way.
  while (list.childElementCount > TRANSCRIPT_CAP) {
    seenIds.delete(list.firstElementChild.dataset.id);
    list.firstElementChild.remove();
  }
  if (nearBottom) list.scrollTop = list.scrollHeight;
}

/** The names in the list that look like another name in it. */
function lookalikes(names) {
  const byKey = new Map();
  for (const name of names) {
    for (const key of lookalikeKeys(name)) byKey.set(key, (byKey.get(key) ?? new Set()).add(name));
  }
  const alike = new Set();
  for (const group of byKey.values()) if (group.size > 1) for (const name of group) alike.add(name);
  return alike;
}

function renderPresence() {
  const rank = (status) => (status === 'available' ? 0 : 1);
  const entries = [...presence].sort(
    ([userA, statusA], [userB, statusB]) => rank(statusA) - rank(statusB) || userA.localeCompare(userB),
  );
  const alike = lookalikes(presence.keys());
  ui.presence.replaceChildren(
    ...entries.map(([user, status]) => {
      const item = element('li', user === me ? `${status} me` : status, user);
      item.dataset.user = user;
      if (alike.has(user)) {
        const mark = element('span', 'lookalike-mark', '⚠');
        mark.title = 'looks like another name here';
        mark.setAttribute('aria-label', 'looks like another name here');
        mark.setAttribute('role', 'img');
        item.append(mark);
      }
      return item;
    }),
  );
}

function showNotice(text) {
  ui.notice.textContent = text;
  ui.notice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(hideNotice, NOTICE_MS);
}

function hideNotice() {
  clearTimeout(noticeTimer);
  ui.notice.hidden = true;
  ui.notice.textContent = '';
}

// ---- Composer ----

function submitMessage() {
  const text = ui.composer.value;
  if (text.trim() === '') return;
  if (sendFrame({ type: 'message', text })) ui.composer.value = '';
}

ui.composer.addEventListener('keydown', (event) => {
  // keyCode 229 is what some browsers report for the Enter that ends an IME composition.
  if (event.key !== 'Enter' || event.shiftKey || event.isComposing || event.keyCode === 229) return;
  event.preventDefault();
  submitMessage();
});

ui.composeForm.addEventListener('submit', (event) => {
  event.preventDefault();
  submitMessage();
});

// ---- Page wiring ----

ui.joinForm.addEventListener('submit', (event) => {
  event.preventDefault();
  submitJoin();
});
ui.leave.addEventListener('click', leave);
window.addEventListener('online', reconnectNow);
document.addEventListener('visibilitychange', () => {
  const visible = document.visibilityState === 'visible';
  sendFrame({ type: 'presence', status: visible ? 'available' : 'away' });
  if (visible) reconnectNow();
});

/** Signed in (the server's sign-in is on): the name is the session's and cannot be changed here. */
function showSignedIn(name) {
  signedInName = name;
  ui.user.value = name;
  ui.user.readOnly = true;
  ui.signedInName.textContent = name;
  ui.signedIn.hidden = false;
  ui.whoami.textContent = name;
  ui.whoami.hidden = false;
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

async function start() {
  const params = new URLSearchParams(location.search);
  const stored = readStoredJoin();
  setState('offline');
  const me = await whoAmI();
  const signedIn = me?.mode === 'oidc' ? String(me.user?.name ?? '') : '';
  if (signedIn) showSignedIn(signedIn);
  else ui.user.value = params.get('user') ?? stored.user;
  ui.room.value = params.get('room') ?? stored.room;
  if ((signedIn || params.get('user')) && params.get('room')) submitJoin();
  else (ui.user.value ? ui.room : ui.user).focus();
}

void start();
