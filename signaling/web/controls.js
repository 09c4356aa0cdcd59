// Local media and the call controls: mute, camera, leave, the end-of-call screen.
import { $, ICONS } from './ui.js';
import { bindJoinForm } from './lobby.js';
import { urlRoom, S } from './state.js';
import { send, updateConn } from './call.js';
import { layoutGrid, renderList } from './tiles.js';
import { setRecording, renderRecordControls } from './recording.js';

export function showSelf() {
  const video = $('self-video');
  const hasVideo = !!S.localStream && S.localStream.getVideoTracks().length > 0;
  if (hasVideo) {
    video.srcObject = S.localStream;
    video.play().catch(() => {});
  }
  refreshSelf();
}

export function refreshSelf() {
  const hasVideo = !!S.localStream && S.localStream.getVideoTracks().length > 0;
  $('self-view').classList.toggle('has-video', hasVideo && !S.muted.video);
  $('self-view').classList.toggle('mic-muted', S.muted.audio || !S.localStream?.getAudioTracks().length);
}

export function setupButtons() {
  const mic = $('mic-btn');
  const cam = $('cam-btn');
  const hasAudio = !!S.localStream?.getAudioTracks().length;
  const hasVideo = !!S.localStream?.getVideoTracks().length;
  mic.disabled = !hasAudio;
  cam.disabled = !hasVideo;
  if (!hasAudio) S.muted.audio = true;
  if (!hasVideo) S.muted.video = true;
  mic.onclick = () => toggle('audio');
  cam.onclick = () => toggle('video');
  refreshButtons();
}

export function refreshButtons() {
  const mic = $('mic-btn');
  const cam = $('cam-btn');
  mic.innerHTML = S.muted.audio ? ICONS.micOff : ICONS.mic;
  cam.innerHTML = S.muted.video ? ICONS.camOff : ICONS.cam;
  mic.classList.toggle('off', S.muted.audio);
  cam.classList.toggle('off', S.muted.video);
  mic.setAttribute('aria-pressed', String(S.muted.audio));
  cam.setAttribute('aria-pressed', String(S.muted.video));
  mic.title = S.muted.audio ? 'Unmute microphone' : 'Mute microphone';
  cam.title = S.muted.video ? 'Turn camera on' : 'Turn camera off';
}

export function toggle(kind) {
  if (!S.localStream) return;
  const tracks = kind === 'audio' ? S.localStream.getAudioTracks() : S.localStream.getVideoTracks();
  if (!tracks.length) return;
  const muted = !S.muted[kind];
  S.muted[kind] = muted;
  for (const t of tracks) t.enabled = !muted;
  send({ type: 'mute', kind, muted });
  refreshButtons();
  refreshSelf();
  renderList();
}

export function leave() {
  if (S.phase === 'ended') return;
  send({ type: 'leave' });
  end('You left the call.', 'You left');
}

/** Ends the call UI: closes the connections, stops the camera and shows the reason. */
export function end(reason, title = 'Call ended') {
  if (S.phase === 'ended') return;
  S.phase = 'ended';
  S.endReason = reason;
  const ws = S.ws;
  if (ws && ws.readyState <= WebSocket.OPEN) {
    // Give a just-sent `leave` time to go out; the server closes the socket itself.
    setTimeout(() => ws.readyState <= WebSocket.OPEN && ws.close(1000, 'left'), 500);
  }
  for (const pc of [S.pub, S.sub]) if (pc) pc.close();
  if (S.localStream) for (const t of S.localStream.getTracks()) t.stop();
  for (const identity of [...S.tiles.keys()]) {
    const tile = S.tiles.get(identity);
    tile.video.srcObject = null;
    tile.el.remove();
    S.tiles.delete(identity);
  }
  $('self-video').srcObject = null;
  $('self-view').classList.remove('speaking', 'has-video');
  S.participants.clear();
  S.trackOwner.clear();
  S.activeSpeaker = null;
  renderList();
  setRecording(null);
  renderRecordControls();
  layoutGrid();
  updateConn();
  for (const b of ['mic-btn', 'cam-btn', 'leave-btn']) $(b).disabled = true;
  $('rejoin-btn').hidden = title === 'Cannot join';
  $('ended-title').textContent = title;
  $('ended-reason').textContent = reason;
  $('join-form').hidden = true;
  $('ended').hidden = false;
  $('overlay').hidden = false;
}

export function showPrejoin() {
  S.phase = 'init';
  updateConn();
  const form = $('join-form');
  $('join-title').textContent = urlRoom;
  $('join-room').value = urlRoom;
  $('join-room-field').hidden = true;
  form.hidden = false;
  $('ended').hidden = true;
  $('overlay').hidden = false;
  bindJoinForm(form, $('join-note'));
  form.elements.name.focus();
}

/** Wires the leave, people and rejoin buttons and says goodbye when the page goes. */
export function initControls() {
  $('leave-btn').onclick = () => leave();
  $('people-btn').onclick = () => {
    const hidden = document.body.classList.toggle('sidebar-hidden');
    $('people-btn').setAttribute('aria-pressed', String(!hidden));
  };
  $('rejoin-btn').onclick = () => location.reload();

  window.addEventListener('pagehide', () => {
    if (S.phase !== 'ended') send({ type: 'leave' });
  });
}
