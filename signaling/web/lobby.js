// The join form: the lobby page, and the prejoin form of a room link without a token.
import { $ } from './ui.js';
import { params } from './state.js';

/** Whether the server hands out development tokens (it answers 404 when not in --dev). */
export async function devModeAvailable() {
  try {
    const r = await fetch('/api/dev/token?room=_probe&identity=_probe', { cache: 'no-store' });
    return r.ok;
  } catch {
    return false;
  }
}

/** Wires a join form (lobby or the room's pre-join card) to navigate to the call page. */
export async function bindJoinForm(form, note) {
  const nameInput = form.elements.name;
  nameInput.value = nameInput.value || localStorage.getItem('capstan.name') || '';
  const dev = await devModeAvailable();
  form.classList.toggle('no-dev', !dev);
  if (!dev) {
    // Without dev tokens the name comes from the token.
    nameInput.required = false;
    nameInput.closest('.field').hidden = true;
    form.elements.token.required = true;
    form.querySelector('details.token-field').open = true;
    note.textContent = 'This server needs an access token from your application.';
  }
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const room = form.elements.room.value.trim();
    const name = nameInput.value.trim();
    const token = form.elements.token.value.trim();
    if (!room) return;
    if (!token && !dev) {
      note.textContent = 'Paste an access token to join.';
      return;
    }
    if (name) localStorage.setItem('capstan.name', name);
    const q = new URLSearchParams();
    if (token) q.set('token', token);
    else {
      if (!name) return;
      q.set('name', name);
      if (form.elements.host.checked) q.set('host', '1');
    }
    location.assign(`/room/${encodeURIComponent(room)}?${q}`);
  });
}

export function initIndex() {
  const form = $('join-form');
  const params = new URLSearchParams(location.search);
  if (params.get('room')) form.elements.room.value = params.get('room');
  bindJoinForm(form, $('join-note'));
  (form.elements.room.value ? form.elements.name : form.elements.room).focus();
}
