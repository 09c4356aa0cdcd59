// The recordings panel: the room's recordings with status, size and download links.
import { $, h, toast, formatDuration, formatBytes } from './ui.js';
import { S } from './state.js';
import { LIVE_STATUSES, api, roomPath, stamp, setRecording, renderRecordControls } from './recording.js';

let listRequest = 0; // only the newest list request may update the panel
export async function loadRecordings() {
  const request = ++listRequest;
  try {
    const list = await api('GET', `${roomPath()}/recordings`);
    if (request === listRequest && S.phase === 'joined') showRecordings(list.map(stamp));
  } catch (e) {
    console.warn('capstan: cannot list recordings', e);
  }
}

export const newness = (r) => r.created_at || r.started_at || '';

export function showRecordings(list) {
  S.recordings = list.sort((a, b) => newness(b).localeCompare(newness(a)));
  S.liveRecording = S.recordings.find((r) => LIVE_STATUSES.includes(r.status)) || null;
  setRecording(S.liveRecording);
  renderRecordControls();
  renderRecordings();
}

export function renderRecordings() {
  $('recordings-list').replaceChildren(...S.recordings.map(recordingItem));
  $('recordings-count').textContent = String(S.recordings.length);
  $('recordings-empty').hidden = S.recordings.length > 0;
}

export function recordingItem(r) {
  const when = r.started_at || r.created_at;
  const live = LIVE_STATUSES.includes(r.status);
  const details = [
    r.format.toUpperCase(),
    r.source === 'client' ? `${r.user_id}'s own copy` : r.mode === 'tracks' ? 'per person' : r.layout,
    live ? null : formatDuration(r.duration_seconds),
    r.file_size_bytes ? formatBytes(r.file_size_bytes) : null,
  ];
  return h(
    'li',
    { class: 'recording', dataset: { recordingId: r.recording_id, status: r.status } },
    h('div', { class: 'r-head' },
      h('span', { class: 'r-status' }, r.status),
      when ? h('time', { class: 'r-when', datetime: when }, new Date(when).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })) : null),
    h('div', { class: 'r-details' }, details.filter(Boolean).join(' · ')),
    uploadNote(r),
    r.error ? h('div', { class: 'r-error' }, r.error) : null,
    downloadLinks(r),
  );
}

/** Upload progress to object storage, while processing. */
export function uploadNote(r) {
  const upload = r.metadata?.upload;
  if (r.status !== 'processing' || !upload) return null;
  return h('div', { class: 'r-details' }, `Upload ${upload.state}${upload.percent != null ? ` ${Math.round(upload.percent)}%` : ''}`);
}

/** One link per file, for recordings the server lets us download (as it decides it). Links
 *  carry no token: a click asks for a short-lived signed URL and downloads from that. */
export function downloadLinks(r) {
  const downloadable = r.status === 'completed' || (r.status === 'failed' && r.files.length > 0);
  if (!downloadable) return null;
  const path = `/api/webrtc/recordings/${encodeURIComponent(r.recording_id)}`;
  const links = r.files.map((f, i) => {
    const who = f.participant && (r.participants.find((p) => p.identity === f.participant)?.name || f.participant);
    const onclick = (e) => {
      e.preventDefault();
      downloadSigned(`${path}/download-url?file=${i}`, f.file_name);
    };
    return h(
      'a',
      { class: 'download', href: `${path}/download?file=${i}`, download: f.file_name, title: f.file_name, onclick },
      `Download${who ? ` ${who}` : ''} (${formatBytes(f.size_bytes)})`,
    );
  });
  return h('div', { class: 'r-files' }, ...links);
}

/** Mints a signed URL (the token goes in the Authorization header) and downloads from it. */
export async function downloadSigned(mintPath, fileName) {
  try {
    const { url } = await api('POST', mintPath);
    const link = h('a', { href: url, download: fileName, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
  } catch (e) {
    toast(`Cannot download: ${e.message}`);
  }
}
