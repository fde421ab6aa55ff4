// The console keys panel of a signed-in page: the SSH keys that prove the person's name at the console
// door, listed, added and removed through /api/keys (same-origin fetches; the server checks Origin).

import { confirmAction } from './dialogs.js';
import { keyItem } from './render.js';

const byId = (id) => document.getElementById(id);
const ui = {
  open: byId('open-keys'),
  dialog: byId('keys-dialog'),
  status: byId('keys-status'),
  list: byId('key-list'),
  form: byId('key-form'),
  text: byId('key-text'),
  textError: byId('key-text-error'),
  label: byId('key-label'),
  labelError: byId('key-label-error'),
  add: byId('key-add'),
  close: byId('keys-close'),
};

/** What an /api/keys answer said: its status and its JSON body (`{}` when there is none). */
async function call(method, path, body) {
  const init = { method, headers: { accept: 'application/json' }, cache: 'no-store' };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  let json = {};
  try {
    json = res.status === 204 ? {} : await res.json();
  } catch {
    json = {};
  }
  return { status: res.status, json };
}

const messageOf = (json, fallback) => String(json?.error?.message || fallback);

function say(text) {
  ui.status.textContent = text;
}

function fieldError(field, box, text) {
  box.textContent = text;
  box.hidden = !text;
  if (text) field.setAttribute('aria-invalid', 'true');
  else field.removeAttribute('aria-invalid');
}

function clearErrors() {
  fieldError(ui.text, ui.textError, '');
  fieldError(ui.label, ui.labelError, '');
}

/**
 * Wire the panel. `onSignedOut` is called when the server says the sign-in has ended. Returns
 * `enable()`, which shows the panel's button (signed in only: dev mode has no keys).
 */
export function setUpKeys({ onSignedOut }) {
  let keys = [];

  /** An answer that means the panel cannot go on: signed out, or no keys on this server. */
  const refused = (status) => {
    if (status === 401) {
      say('Your sign-in has ended: sign in again to manage keys.');
      onSignedOut();
      return true;
    }
    if (status === 404) {
      say('This server keeps no console keys.');
      return true;
    }
    return false;
  };

  const render = () => {
    ui.list.replaceChildren(...keys.map(keyItem));
    ui.list.hidden = keys.length === 0;
  };

  const load = async () => {
    let answer;
    try {
      answer = await call('GET', '/api/keys');
    } catch {
      say('The keys could not be loaded: the server did not answer.');
      return false;
    }
    if (refused(answer.status)) return false;
    if (answer.status !== 200 || !Array.isArray(answer.json.keys)) {
      say(`The keys could not be loaded: ${messageOf(answer.json, `HTTP ${answer.status}`)}`);
      return false;
    }
    keys = answer.json.keys.filter((k) => typeof k?.fingerprint === 'string');
    render();
    return true;
  };

  const open = async () => {
    if (ui.dialog.open) return;
    clearErrors();
    say('Loading your keys…');
    ui.dialog.showModal();
    ui.text.focus();
    if (await load()) say(keys.length === 0 ? 'You have no console keys yet.' : '');
  };

  const add = async () => {
    clearErrors();
    const key = ui.text.value.trim();
    if (key === '') {
      fieldError(ui.text, ui.textError, 'Paste a public key, such as the contents of ~/.ssh/id_ed25519.pub.');
      ui.text.focus();
      return;
    }
    ui.add.disabled = true;
    let answer;
    try {
      answer = await call('POST', '/api/keys', { key, label: ui.label.value.trim() });
    } catch {
      say('The key could not be added: the server did not answer.');
      return;
    } finally {
      ui.add.disabled = false;
    }
    if (answer.status === 201 && answer.json.key) {
      ui.text.value = '';
      ui.label.value = '';
      await load();
      const added = answer.json.key;
      say(`Added ${added.label || 'a key'}: ${added.fingerprint}.`);
      return;
    }
    if (refused(answer.status)) return;
    const message = messageOf(answer.json, `HTTP ${answer.status}`);
    const aboutLabel = /^label\b/u.test(message);
    const [field, box] = aboutLabel ? [ui.label, ui.labelError] : [ui.text, ui.textError];
    fieldError(field, box, message);
    field.focus();
  };

  const remove = async (fingerprint) => {
    const key = keys.find((k) => k.fingerprint === fingerprint);
    const name = key?.label ? `“${key.label}”` : fingerprint;
    const sure = await confirmAction({
      heading: 'Remove this key?',
      question: `${name} (${fingerprint}) will no longer prove your name; consoles signed in with it are disconnected at once.`,
      action: 'Remove key',
    });
    if (!sure) return;
    let answer;
    try {
      answer = await call('DELETE', `/api/keys/${encodeURIComponent(fingerprint)}`);
    } catch {
      say('The key could not be removed: the server did not answer.');
      return;
    }
    if (answer.status === 204 || answer.status === 404) {
      const loaded = await load();
      if (loaded)
        say(
          answer.status === 204
            ? `Removed ${name}; its consoles were disconnected.`
            : `${name} was removed already.`,
        );
      ui.text.focus();
      return;
    }
    if (!refused(answer.status))
      say(`The key could not be removed: ${messageOf(answer.json, `HTTP ${answer.status}`)}`);
  };

  ui.open.addEventListener('click', () => void open());
  ui.close.addEventListener('click', () => ui.dialog.close());
  ui.form.addEventListener('submit', (event) => {
    event.preventDefault();
    void add();
  });
  ui.list.addEventListener('click', (event) => {
    const button = event.target.closest('button.remove-key');
    if (button) void remove(button.dataset.fingerprint);
  });

  return {
    enable() {
      ui.open.hidden = false;
    },
  };
}
