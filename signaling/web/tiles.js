// Remote media: one tile per participant, the grid layout, the participant list, the
// active speaker.
import { $, ICONS, h, initials, hue, toast } from './ui.js';
import { S } from './state.js';
import { mark } from './call.js';

export function ownerOf(event) {
  const stream = event.streams && event.streams[0];
  if (stream && stream.id) return stream.id;
  // No msid: fall back to the announced track ids.
  for (const [identity, p] of S.participants) {
    if ((p.tracks || []).some((t) => t.track_id === event.track.id)) return identity;
  }
  return null;
}

export function onRemoteTrack(event) {
  const identity = ownerOf(event);
  const track = event.track;
  if (!identity) {
    console.warn('capstan: remote track without a known publisher', track.id);
    return;
  }
  S.trackOwner.set(track.id, identity);
  const tile = ensureTile(identity);
  for (const old of tile.stream.getTracks()) {
    if (old.kind === track.kind && old !== track) tile.stream.removeTrack(old);
  }
  if (!tile.stream.getTracks().includes(track)) tile.stream.addTrack(track);
  const stream = event.streams && event.streams[0];
  if (stream && !stream.__capstan) {
    stream.__capstan = true;
    stream.addEventListener('removetrack', (e) => {
      const t = S.tiles.get(identity);
      if (t) t.stream.removeTrack(e.track);
      S.trackOwner.delete(e.track.id);
      refreshTile(identity);
    });
  }
  // Tracks added to the element's stream later play without re-attaching (which would flash).
  if (tile.video.srcObject !== tile.stream) tile.video.srcObject = tile.stream;
  playVideo(tile.video);
  refreshTile(identity);
}

let soundBlocked = false;
export function playVideo(video) {
  const p = video.play();
  if (p && p.catch) {
    p.catch((e) => {
      if (e.name === 'NotAllowedError' && !soundBlocked) {
        soundBlocked = true;
        const btn = h('button', { class: 'btn primary', type: 'button' }, 'Click to enable sound');
        btn.onclick = () => {
          soundBlocked = false;
          btn.closest('.toast')?.remove();
          for (const t of S.tiles.values()) t.video.play().catch(() => {});
        };
        const box = $('toasts');
        box.append(h('div', { class: 'toast info' }, 'The browser blocked autoplay. ', btn));
      }
    });
  }
}

export function ensureTile(identity) {
  let tile = S.tiles.get(identity);
  if (tile) return tile;
  const p = S.participants.get(identity);
  const name = p ? p.name : identity;
  const video = h('video', { autoplay: true, playsInline: true });
  video.setAttribute('playsinline', '');
  const avatar = h('div', { class: 'avatar', 'aria-hidden': 'true' }, initials(name));
  avatar.style.setProperty('--hue', hue(identity));
  const label = h('div', { class: 'tile-label' }, h('span', { class: 'tile-mic', html: ICONS.micOff }), h('span', { class: 'tile-name' }, name));
  const el = h('div', { class: 'tile remote', dataset: { identity, name } }, video, avatar, label);
  const stream = new MediaStream();
  tile = { el, video, stream };
  const markVideo = () => refreshTile(identity);
  video.addEventListener('resize', markVideo);
  video.addEventListener('playing', markVideo);
  S.tiles.set(identity, tile);
  $('grid').append(el);
  layoutGrid();
  return tile;
}

export function refreshTile(identity) {
  const tile = S.tiles.get(identity);
  if (!tile) return;
  const p = S.participants.get(identity);
  const tracks = (p && p.tracks) || [];
  const camMuted = tracks.some((t) => t.kind === 'video' && t.muted);
  const micMuted = tracks.some((t) => t.kind === 'audio' && t.muted);
  const hasVideo = tile.stream.getVideoTracks().length > 0 && tile.video.videoWidth > 0 && !camMuted;
  tile.el.classList.toggle('has-video', hasVideo);
  if (hasVideo) mark(`video:${identity}`);
  tile.el.classList.toggle('mic-muted', micMuted);
  tile.el.classList.toggle('speaking', S.activeSpeaker === identity);
  if (p) {
    tile.el.dataset.name = p.name;
    tile.el.querySelector('.tile-name').textContent = p.name + (p.role === 'host' ? ' · host' : '');
    tile.el.querySelector('.avatar').textContent = initials(p.name);
  }
}

export function upsertParticipant(p) {
  if (!p || (S.me && p.identity === S.me.identity)) return;
  const isNew = !S.participants.has(p.identity);
  S.participants.set(p.identity, p);
  ensureTile(p.identity);
  refreshTile(p.identity);
  renderList();
  if (isNew && S.phase === 'joined' && S.me) toast(`${p.name} joined`, 'info', 3000);
}

export function removeParticipant(identity) {
  const p = S.participants.get(identity);
  S.participants.delete(identity);
  const tile = S.tiles.get(identity);
  if (tile) {
    tile.video.srcObject = null;
    tile.el.remove();
    S.tiles.delete(identity);
  }
  for (const [trackId, owner] of S.trackOwner) if (owner === identity) S.trackOwner.delete(trackId);
  if (S.activeSpeaker === identity) S.activeSpeaker = null;
  layoutGrid();
  renderList();
  if (p) toast(`${p.name} left`, 'info', 3000);
}

export function setActiveSpeaker(identity) {
  const previous = S.activeSpeaker;
  S.activeSpeaker = identity;
  if (previous) refreshTile(previous);
  if (identity) refreshTile(identity);
  $('self-view').classList.toggle('speaking', !!S.me && identity === S.me.identity);
  renderList();
}

export function layoutGrid() {
  const grid = $('grid');
  const n = S.tiles.size;
  // Pick the column count that shows 4:3 videos largest in the available area.
  const W = grid.parentElement.clientWidth || 1;
  const H = grid.parentElement.clientHeight || 1;
  let cols = 1;
  let best = -1;
  for (let c = 1; c <= Math.max(1, n); c++) {
    const r = Math.ceil(n / c);
    const w = W / c;
    const h = H / r;
    const area = Math.min(w, (h * 4) / 3) * Math.min(h, (w * 3) / 4);
    if (area > best + 1) {
      best = area;
      cols = c;
    }
  }
  const rows = Math.max(1, Math.ceil(n / cols));
  grid.dataset.count = String(n);
  grid.style.setProperty('--cols', cols);
  grid.style.setProperty('--rows', rows);
  $('empty').hidden = n > 0 || S.phase === 'ended';
}

export function renderList() {
  const list = $('participant-list');
  list.replaceChildren();
  const all = [];
  if (S.me) all.push({ ...S.me, self: true, tracks: [] });
  const others = [...S.participants.values()].sort((a, b) => a.name.localeCompare(b.name));
  all.push(...others);
  for (const p of all) {
    const micMuted = p.self ? S.muted.audio : (p.tracks || []).some((t) => t.kind === 'audio' && t.muted);
    const camMuted = p.self ? S.muted.video : (p.tracks || []).some((t) => t.kind === 'video' && t.muted);
    const avatar = h('span', { class: 'avatar small', 'aria-hidden': 'true' }, initials(p.name));
    avatar.style.setProperty('--hue', hue(p.identity));
    const li = h(
      'li',
      { class: `participant${S.activeSpeaker === p.identity ? ' speaking' : ''}`, dataset: { identity: p.identity } },
      avatar,
      h('span', { class: 'p-name' }, h('span', { class: 'p-text' }, p.name), p.self ? h('span', { class: 'p-you' }, '(you)') : null),
      p.role === 'host' ? h('span', { class: 'tag' }, 'host') : null,
      h('span', { class: 'p-icons' },
        micMuted ? h('span', { class: 'p-icon off', title: 'Microphone muted', html: ICONS.micOff }) : null,
        camMuted ? h('span', { class: 'p-icon off', title: 'Camera off', html: ICONS.camOff }) : null),
    );
    list.append(li);
  }
  $('participant-count').textContent = String(all.length);
  const pc = $('people-count');
  if (pc) pc.textContent = String(all.length);
}
