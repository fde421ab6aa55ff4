// The page's confirmation dialog: asks before something that cannot be undone (removing a key, deleting a
// message). The browser's own confirm() would block the page and cannot be styled or read in order.

const dialog = document.getElementById('confirm-dialog');
const title = document.getElementById('confirm-title');
const text = document.getElementById('confirm-text');
const yes = document.getElementById('confirm-yes');
const no = document.getElementById('confirm-no');

/** Ask `question`; resolves true when the person chooses `action`, false on Cancel or Escape. */
export function confirmAction({ heading, question, action }) {
  if (dialog.open) dialog.close();
  title.textContent = heading;
  text.textContent = question;
  yes.textContent = action;
  dialog.returnValue = '';
  dialog.showModal();
  no.focus();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'yes'), { once: true });
  });
}
