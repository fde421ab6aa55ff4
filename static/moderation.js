// Admin actions on the page (the server says who is an admin in `welcome`): kick, ban, mute, unban and
// unmute a person in the current room from the moderation dialog, and delete a message after a
// confirmation. Each frame's ack or error is reported in one line.

import { confirmAction } from './dialogs.js';
import { nameProblem } from './names.js';
import { REASON_MAX } from './protocol.js';

const byId = (id) => document.getElementById(id);
const ui = {
  dialog: byId('moderate-dialog'),
  form: byId('moderate-form'),
  title: byId('moderate-title'),
  user: byId('moderate-user'),
  duration: byId('moderate-duration'),
  reason: byId('moderate-reason'),
  error: byId('moderate-error'),
  cancel: byId('moderate-cancel'),
};

const DURATIONS = new Map([...ui.duration.options].map((o) => [o.value, o.textContent]));

/** What each action did, for the status line. */
function outcome({ action, user, room, seconds }) {
  const time = seconds ? ` for ${DURATIONS.get(String(seconds))}` : '';
  switch (action) {
    case 'kick':
      return `${user} was removed from ${room}.`;
    case 'ban':
      return `${user} is banned from ${room}${time}.`;
    case 'mute':
      return `${user} is muted in ${room}${time}.`;
    case 'unban':
      return `${user} may join ${room} again.`;
    case 'unmute':
      return `${user} may write in ${room} again.`;
    default:
      return `The message was deleted from ${room}.`;
  }
}

/**
 * Wire the dialog. `send(frame, request)` sends with a ref (false when offline); `report(text)` says an
 * outcome. Returns `open(room, user)`, `deleteMessage(room, message)`, and the handlers of the answers.
 */
export function setUpModeration({ send, report }) {
  let room = '';
  ui.reason.maxLength = REASON_MAX;

  const act = (action) => {
    const user = ui.user.value.trim();
    const problem = nameProblem(user, 'The person’s name');
    ui.error.textContent = problem;
    ui.error.hidden = !problem;
    if (problem) {
      ui.user.setAttribute('aria-invalid', 'true');
      ui.user.focus();
      return;
    }
    ui.user.removeAttribute('aria-invalid');
    const frame = { type: action, room, user };
    const request = { kind: 'admin', action, room, user, seconds: 0 };
    const reason = ui.reason.value.trim();
    if (reason && (action === 'kick' || action === 'ban' || action === 'mute')) frame.reason = reason;
    if ((action === 'ban' || action === 'mute') && ui.duration.value) {
      request.seconds = Number(ui.duration.value);
      frame.until = Math.round(Date.now() / 1000) + request.seconds;
    }
    if (!send(frame, request)) {
      ui.error.textContent = 'Not connected: try again once the room is back.';
      ui.error.hidden = false;
      return;
    }
    ui.dialog.close();
  };

  ui.form.addEventListener('submit', (event) => event.preventDefault());
  ui.form.addEventListener('click', (event) => {
    const button = event.target.closest('button[data-action]');
    if (button) act(button.dataset.action);
  });
  ui.cancel.addEventListener('click', () => ui.dialog.close());

  return {
    /** Open the dialog for a person (or an empty name, for someone not in the list) in `name`. */
    open(name, user) {
      if (ui.dialog.open) return;
      room = name;
      ui.title.textContent = `Moderate in ${name}`;
      ui.user.value = user;
      ui.reason.value = '';
      ui.duration.value = '';
      ui.error.hidden = true;
      ui.user.removeAttribute('aria-invalid');
      ui.dialog.showModal();
      (user ? ui.reason : ui.user).focus();
    },

    /** Delete a message once the admin confirms. */
    async deleteMessage(name, message) {
      const text = String(message.text ?? '');
      const sure = await confirmAction({
        heading: 'Delete this message?',
        question: `${message.sender}: “${text.length > 120 ? `${text.slice(0, 120)}…` : text}” leaves the transcript for everyone.`,
        action: 'Delete message',
      });
      if (!sure) return;
      const request = { kind: 'admin', action: 'delete', room: name, user: message.sender, seconds: 0 };
      if (!send({ type: 'delete', room: name, id: message.id }, request))
        report('Not deleted: not connected. Try again once the room is back.');
    },

    /** An `ack` of an admin frame. */
    onAck(request) {
      report(outcome(request));
    },

    /** An `error` answering an admin frame. */
    onError(frame, request) {
      const message = String(frame.message || frame.code || 'error');
      const what = request.action === 'delete' ? 'delete the message' : `${request.action} ${request.user}`;
      report(`Could not ${what}: ${message}.`);
    },
  };
}
