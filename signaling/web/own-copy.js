// "Save my own copy": records the local camera and microphone with MediaRecorder (WebM) and
// uploads it as it goes, one chunk every 2 s, through POST /video-calls/chunks/upload. Chunks
// wait in IndexedDB until the server has them, with the next sequence number, so a network drop
// (retried with backoff) or a reload neither loses nor duplicates one: after a reload the
// chunks still waiting are sent, then `final`, and the server turns the upload into a
// recording listed in the recordings panel.
import { $ } from './ui.js';
import { S } from './state.js';

const TIMESLICE_MS = 2000;
const DB = 'capstan-own-copy';

/** One IndexedDB request as a promise. */
const done = (req) => new Promise((resolve, reject) => {
  req.onsuccess = () => resolve(req.result);
  req.onerror = () => reject(req.error);
});

let dbOpen = null;
function db() {
  dbOpen ||= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => {
      // uploads: { id, room, me, next, stopped }; chunks: { id, sequence, blob, last }
      req.result.createObjectStore('uploads', { keyPath: 'id' });
      req.result.createObjectStore('chunks', { keyPath: ['id', 'sequence'] });
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  return dbOpen;
}

async function store(names, mode, fn) {
  const tx = (await db()).transaction(names, mode);
  const result = await fn(...names.map((n) => tx.objectStore(n)));
  await new Promise((resolve, reject) => {
    tx.oncomplete = resolve;
    tx.onerror = () => reject(tx.error);
  });
  return result;
}

/** Queues the next chunk of upload `id` (and advances its sequence) in one transaction. */
function queue(id, blob, last) {
  return store(['uploads', 'chunks'], 'readwrite', async (uploads, chunks) => {
    const upload = await done(uploads.get(id));
    chunks.put({ id, sequence: upload.next, blob, last });
    upload.next += 1;
    if (last) upload.stopped = true;
    uploads.put(upload);
  });
}

async function base64(blob) {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

const state = { recorder: null, id: null, sending: false, wake: null, sent: 0, failures: 0 };

/** Sends every queued chunk of every upload of ours, oldest first, until none is left. */
async function pump() {
  if (state.sending) return state.wake?.();
  state.sending = true;
  let backoff = 1000;
  try {
    for (;;) {
      const pending = await store(['chunks'], 'readonly', (chunks) => done(chunks.getAll()));
      const mine = pending.filter((c) => uploadsOfMine.has(c.id));
      if (!mine.length) return;
      const chunk = mine[0];
      try {
        await send(chunk);
        backoff = 1000;
        state.sent += 1;
        await store(['chunks', 'uploads'], 'readwrite', (chunks, uploads) => {
          chunks.delete([chunk.id, chunk.sequence]);
          if (chunk.last) uploads.delete(chunk.id);
        });
        if (chunk.last) finished(chunk.id);
      } catch (e) {
        state.failures += 1;
        console.warn(`capstan: chunk ${chunk.sequence} not uploaded (${e.message}); retrying in ${backoff} ms`);
        await new Promise((resolve) => {
          state.wake = resolve;
          setTimeout(resolve, backoff);
        });
        backoff = Math.min(backoff * 2, 30_000);
      }
    }
  } finally {
    state.sending = false;
    state.wake = null;
  }
}

async function send(chunk) {
  const body = JSON.stringify({
    recordingId: chunk.id,
    participantId: S.me.identity,
    sequence: chunk.sequence,
    chunk: await base64(chunk.blob),
    final: chunk.last,
  });
  const r = await fetch('/video-calls/chunks/upload', {
    method: 'POST',
    cache: 'no-store',
    headers: { Authorization: `Bearer ${S.token}`, 'Content-Type': 'application/json' },
    body,
  });
  if (r.ok) return;
  const answer = await r.json().catch(() => null);
  throw new Error(answer?.message || `HTTP ${r.status}`);
}

/** Upload ids of this room and identity (IndexedDB is shared by every room of the origin). */
const uploadsOfMine = new Set();

function finished(id) {
  uploadsOfMine.delete(id);
  if (id === state.id) state.id = null;
  render();
}

function render() {
  const box = $('own-copy');
  box.checked = !!state.recorder;
  box.disabled = S.phase !== 'joined' || (!state.recorder && !!state.id);
  $('own-copy-label').dataset.state = state.recorder ? 'recording' : state.id ? 'uploading' : 'idle';
}

async function startCopy() {
  const stream = S.localStream;
  if (!stream || !stream.getTracks().length) throw new Error('no camera or microphone to record');
  const mimeType = ['video/webm;codecs=vp8,opus', 'video/webm'].find((t) => MediaRecorder.isTypeSupported(t));
  const recorder = new MediaRecorder(stream, mimeType ? { mimeType } : undefined);
  const id = crypto.randomUUID();
  await store(['uploads'], 'readwrite', (uploads) => uploads.put({ id, room: S.room, me: S.me.identity, next: 0, stopped: false }));
  uploadsOfMine.add(id);
  Object.assign(state, { recorder, id });
  // Queued in order: each chunk waits for the one before it to be stored.
  let queued = Promise.resolve();
  recorder.ondataavailable = (e) => {
    if (!e.data.size) return;
    queued = queued.then(() => queue(id, e.data, false)).then(pump);
  };
  recorder.onstop = () => {
    queued = queued.then(() => queue(id, new Blob([]), true)).then(pump);
  };
  recorder.start(TIMESLICE_MS);
  render();
}

function stopCopy() {
  const { recorder } = state;
  state.recorder = null;
  if (recorder && recorder.state !== 'inactive') recorder.stop();
  render();
}

/** After a reload: finishes the uploads this room and identity left (their recorder is gone). */
async function resumeLeftovers() {
  const left = await store(['uploads'], 'readonly', (uploads) => done(uploads.getAll()));
  for (const upload of left.filter((u) => u.room === S.room && u.me === S.me.identity && u.id !== state.id)) {
    uploadsOfMine.add(upload.id);
    if (!upload.stopped) await queue(upload.id, new Blob([]), true);
  }
  pump();
}

let wired = false;

/** Wires the checkbox; called once joined (the token and identity are known). */
export function setupOwnCopy() {
  const box = $('own-copy');
  box.onchange = () => {
    if (box.checked) startCopy().catch((e) => {
      console.warn('capstan: cannot record a copy', e);
      state.recorder = null;
      render();
    });
    else stopCopy();
  };
  if (!wired) addEventListener('online', () => state.wake?.());
  wired = true;
  render();
  resumeLeftovers().catch((e) => console.warn('capstan: cannot resume uploads', e));
}

/** For the browser tests (window.capstan.ownCopy). */
export const ownCopyState = () => ({
  recording: !!state.recorder,
  id: state.id,
  sent: state.sent,
  failures: state.failures,
  pending: [...uploadsOfMine],
});
