// Recording: the indicator everyone sees and the host's controls.
import { $, formatDuration } from './ui.js';
import { S } from './state.js';
import { loadRecordings, showRecordings } from './recordings-panel.js';

export const LIVE_STATUSES = ['pending', 'recording', 'paused'];
export const receivedAt = new WeakMap(); // recording state object → Date.now() when it arrived

/** A call of the recording API with our token; throws the server's `message` on failure. */
export async function api(method, path) {
  const r = await fetch(path, { method, cache: 'no-store', headers: { Authorization: `Bearer ${S.token}` } });
  const body = r.status === 204 ? null : await r.json().catch(() => null);
  if (!r.ok) throw new Error(body?.message || `HTTP ${r.status}`);
  return body;
}

export const roomPath = () => `/api/webrtc/rooms/${encodeURIComponent(S.room)}`;

export function stamp(recording) {
  receivedAt.set(recording, Date.now());
  return recording;
}

export function onRecordingEvent(recording) {
  mergeRecording(recording);
  loadRecordings();
}

/** Shows `recording` at once, replacing the entry with its id. */
export function mergeRecording(recording) {
  const others = S.recordings.filter((r) => r.recording_id !== recording.recording_id);
  showRecordings([stamp(recording), ...others]);
}

/** Recorded time: the server's count when the state arrived, plus the time since while recording. */
export function elapsedSeconds(recording) {
  const since = recording.status === 'recording' ? (Date.now() - receivedAt.get(recording)) / 1000 : 0;
  return (recording.duration_seconds || 0) + since;
}

let recTimer = null;
/** Shows the indicator for a recording or paused `recording` state; anything else hides it. */
export function setRecording(recording) {
  clearInterval(recTimer);
  recTimer = null;
  const el = $('recording-indicator');
  const status = recording?.status;
  el.hidden = status !== 'recording' && status !== 'paused';
  if (el.hidden) return;
  if (!receivedAt.has(recording)) stamp(recording);
  el.dataset.status = status;
  $('recording-label').textContent = status === 'paused' ? 'Paused' : 'REC';
  const tick = () => ($('recording-elapsed').textContent = formatDuration(elapsedSeconds(recording)));
  tick();
  // A quarter-second tick keeps the shown second within 250 ms of the true one.
  if (status === 'recording') recTimer = setInterval(tick, 250);
}

export function setupRecordControls() {
  if (!S.host) return;
  $('record-controls').hidden = false;
  $('rec-start').onclick = () => startRecording();
  $('rec-pause').onclick = () => controlRecording('pause');
  $('rec-resume').onclick = () => controlRecording('resume');
  $('rec-stop').onclick = () => controlRecording('stop');
  $('rec-cancel').onclick = () => {
    if (confirm('Discard this recording? Nothing of it will be kept.')) return cancelRecording();
  };
  renderRecordControls();
}

/** Enables what the current status allows: Record when idle, Pause/Resume/Stop while live. */
export function renderRecordControls() {
  if (!S.host) return;
  const status = S.phase !== 'joined' || S.recordingBusy ? 'busy' : S.liveRecording?.status || 'idle';
  for (const id of ['rec-format', 'rec-quality', 'rec-layout', 'rec-mode', 'rec-start']) $(id).disabled = status !== 'idle';
  $('rec-pause').disabled = status !== 'recording';
  $('rec-resume').disabled = status !== 'paused';
  for (const id of ['rec-stop', 'rec-cancel']) $(id).disabled = status !== 'recording' && status !== 'paused';
}

export function startRecording() {
  const q = new URLSearchParams({
    recording_format: $('rec-format').value,
    quality: $('rec-quality').value,
    layout: $('rec-layout').value,
    mode: $('rec-mode').value,
  });
  return recordingRequest(`${roomPath()}/recording/start?${q}`);
}

export function controlRecording(action) {
  if (!S.liveRecording) return;
  return recordingRequest(`${liveRecordingPath()}/${action}`);
}

/** Discards the live recording: the server stops it and deletes its files. */
export function cancelRecording() {
  if (!S.liveRecording) return;
  return recordingRequest(liveRecordingPath(), 'DELETE');
}

export const liveRecordingPath = () => `${roomPath()}/recording/${encodeURIComponent(S.liveRecording.recording_id)}`;

/** Sends a recording request; shows the resulting state, or the server's message inline. */
export async function recordingRequest(path, method = 'POST') {
  $('rec-error').textContent = '';
  S.recordingBusy = true;
  renderRecordControls();
  try {
    const recording = await api(method, path);
    if (S.phase === 'joined') mergeRecording(recording);
  } catch (e) {
    $('rec-error').textContent = e.message;
  } finally {
    S.recordingBusy = false;
    renderRecordControls();
  }
}
