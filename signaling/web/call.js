// Signaling (the /ws JSON protocol) and the two peer connections: publish (we offer) and
// subscribe (the server offers); connection state for the header.
import { $, initials, hue, makeIdentity, toast } from './ui.js';
import { params, urlRoom, S } from './state.js';
import { onRemoteTrack, upsertParticipant, removeParticipant, setActiveSpeaker, renderList } from './tiles.js';
import { showSelf, setupButtons, end, showPrejoin } from './controls.js';
import { onRecordingEvent, setupRecordControls } from './recording.js';
import { setupOwnCopy } from './own-copy.js';
import { loadRecordings } from './recordings-panel.js';

export function logMessage(dir, msg) {
  const type = msg.type === 'candidate' ? `candidate(${msg.pc})` : msg.type;
  S.messages.push({ dir, type, at: Date.now() });
  if (S.messages.length > 200) S.messages.shift();
}

export function send(msg) {
  if (!S.ws || S.ws.readyState !== WebSocket.OPEN) return false;
  logMessage('out', msg);
  S.ws.send(JSON.stringify(msg));
  return true;
}

export async function obtainToken() {
  const token = params.get('token');
  if (token) return token;
  const name = (params.get('name') || '').trim();
  if (!name) return null;
  const q = new URLSearchParams({ room: urlRoom, identity: makeIdentity(name), name });
  if (params.get('host') === '1' || params.get('host') === 'true') q.set('host', '1');
  const r = await fetch(`/api/dev/token?${q}`, { cache: 'no-store' });
  if (r.status === 404) {
    throw new Error('This server is not in development mode: join with the link your application gave you (it carries ?token=…).');
  }
  if (!r.ok) {
    const body = await r.json().catch(() => ({}));
    throw new Error(`Could not get a token: ${body.message || r.status}`);
  }
  return (await r.json()).token;
}

export async function getMedia() {
  const video = { width: { ideal: 640 }, height: { ideal: 480 } };
  const attempts = [{ audio: true, video }, { audio: true }, { video }];
  let firstError = null;
  for (const constraints of attempts) {
    try {
      return await navigator.mediaDevices.getUserMedia(constraints);
    } catch (e) {
      firstError = firstError || e;
    }
  }
  toast(`Camera and microphone unavailable (${firstError?.name || 'error'}): you join without sending media.`, 'warn');
  return null;
}

export async function start() {
  S.phase = 'joining';
  updateConn();
  let token;
  try {
    token = await obtainToken();
  } catch (e) {
    return end(e.message, 'Cannot join');
  }
  if (!token) return showPrejoin();
  S.token = token;
  S.localStream = await getMedia();
  showSelf();
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${proto}://${location.host}/ws?token=${encodeURIComponent(token)}`);
  S.ws = ws;
  let chain = Promise.resolve();
  ws.onopen = () => {
    S.wsOpened = true;
    updateConn();
  };
  ws.onmessage = (e) => {
    let msg;
    try {
      msg = JSON.parse(e.data);
    } catch {
      console.error('capstan: unparsable server message', e.data);
      return;
    }
    logMessage('in', msg);
    // Handle messages strictly in order: each may await WebRTC operations.
    chain = chain.then(() => handle(msg)).catch((err) => {
      console.error(`capstan: handling ${msg.type} failed`, err);
      toast(`Could not handle "${msg.type}": ${err.message || err}`);
    });
  };
  ws.onclose = (e) => {
    updateConn();
    if (S.phase === 'ended') return;
    if (!S.wsOpened) {
      end('Could not connect to the signaling server. The access token may be invalid or expired.', 'Cannot join');
    } else {
      end(`Lost the connection to the server${e.code && e.code !== 1000 && e.code !== 1005 ? ` (code ${e.code})` : ''}.`, 'Disconnected');
    }
  };
  ws.onerror = () => console.warn('capstan: websocket error');
}

export async function handle(msg) {
  if (S.phase === 'ended') return;
  switch (msg.type) {
    case 'welcome':
      return onWelcome(msg);
    case 'publish_answer':
      if (!S.pub) throw new Error('publish_answer without a publish connection');
      return S.pub.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
    case 'subscribe_offer':
      return onSubscribeOffer(msg.sdp);
    case 'participant_joined':
    case 'participant_updated':
      return upsertParticipant(msg.participant);
    case 'participant_left':
      return removeParticipant(msg.identity);
    case 'active_speaker':
      return setActiveSpeaker(msg.identity ?? null);
    case 'recording_started':
    case 'recording_paused':
    case 'recording_resumed':
    case 'recording_stopped':
    case 'recording_cancelled':
    case 'recording_completed':
    case 'recording_failed':
      return onRecordingEvent(msg.recording);
    case 'error':
      return onError(msg);
    default:
      console.warn('capstan: unknown server message', msg);
  }
}

export function onError({ code, message, fatal }) {
  S.lastError = { code, message, fatal };
  console.warn(`capstan: server error ${code}: ${message}`);
  if (fatal) {
    const reasons = {
      replaced: 'You joined this room again from another tab or device.',
      room_full: 'The room is full.',
    };
    end(reasons[code] ? `${reasons[code]} (${message})` : message, 'Call ended');
  } else {
    toast(`Server: ${message} (${code})`);
  }
}

export async function onWelcome(msg) {
  S.phase = 'joined';
  S.me = msg.me;
  S.host = msg.me.role === 'host' || msg.me.role === 'admin';
  S.room = msg.room;
  document.body.dataset.role = msg.me.role;
  $('room-title').textContent = msg.room;
  $('empty-room').textContent = msg.room;
  document.title = `${msg.room} — Capstan`;
  $('me-name').textContent = `${msg.me.name}${S.host ? ' · host' : ''}`;
  $('self-view').dataset.identity = msg.me.identity;
  $('self-avatar').textContent = initials(msg.me.name);
  $('self-avatar').style.setProperty('--hue', hue(msg.me.identity));
  for (const p of msg.participants) if (p.identity !== msg.me.identity) upsertParticipant(p);
  renderList();
  setupRecordControls();
  setupOwnCopy();
  loadRecordings();

  const config = {
    iceServers: (msg.ice_servers || []).map((s) => ({ urls: s.urls, username: s.username, credential: s.credential })),
    bundlePolicy: 'max-bundle',
  };
  S.sub = new RTCPeerConnection(config);
  S.sub.onicecandidate = (e) => sendCandidate('subscribe', e.candidate);
  S.sub.ontrack = onRemoteTrack;
  S.sub.onconnectionstatechange = updateConn;

  if (S.localStream && S.localStream.getTracks().length) {
    S.pub = new RTCPeerConnection(config);
    S.pub.onicecandidate = (e) => {
      if (!e.candidate || !e.candidate.candidate) return;
      if (S.pubOfferSent) sendCandidate('publish', e.candidate);
      else S.pendingPubCandidates.push(e.candidate);
    };
    S.pub.onconnectionstatechange = updateConn;
    for (const track of S.localStream.getTracks()) {
      S.pub.addTransceiver(track, { direction: 'sendonly', streams: [S.localStream] });
    }
    const offer = await S.pub.createOffer();
    await S.pub.setLocalDescription(offer);
    send({ type: 'publish_offer', sdp: S.pub.localDescription.sdp });
    S.pubOfferSent = true;
    for (const c of S.pendingPubCandidates.splice(0)) sendCandidate('publish', c);
  }
  setupButtons();
  updateConn();
}

export function sendCandidate(pc, c) {
  if (!c || !c.candidate) return; // end-of-candidates: nothing to send
  const candidate = { candidate: c.candidate };
  if (c.sdpMid != null) candidate.sdpMid = c.sdpMid;
  if (c.sdpMLineIndex != null) candidate.sdpMLineIndex = c.sdpMLineIndex;
  send({ type: 'candidate', pc, candidate });
}

export async function onSubscribeOffer(sdp) {
  if (!S.sub) throw new Error('subscribe_offer before welcome');
  await S.sub.setRemoteDescription({ type: 'offer', sdp });
  const answer = await S.sub.createAnswer();
  await S.sub.setLocalDescription(answer);
  send({ type: 'subscribe_answer', sdp: S.sub.localDescription.sdp });
}

export function connState() {
  if (S.phase === 'ended') return ['ended', 'Not connected'];
  if (S.phase === 'init') return ['idle', 'Not joined'];
  if (!S.ws || S.ws.readyState === WebSocket.CONNECTING || !S.me) return ['connecting', 'Connecting…'];
  if (S.ws.readyState !== WebSocket.OPEN) return ['failed', 'Disconnected'];
  const states = [S.pub, S.sub].filter(Boolean).map((pc) => pc.connectionState);
  if (states.includes('failed')) return ['failed', 'Media connection failed'];
  if (states.includes('disconnected')) return ['warn', 'Reconnecting…'];
  const pubOk = !S.pub || S.pub.connectionState === 'connected';
  const subOk = !S.sub || ['connected', 'new'].includes(S.sub.connectionState);
  if (pubOk && subOk) return ['connected', 'Connected'];
  return ['connecting', 'Connecting media…'];
}

export function mark(what) {
  if (!(what in S.timeline)) S.timeline[what] = Math.round(performance.now());
}

let lastConn = null;
export function updateConn() {
  const [state, text] = connState();
  if (S.ws && S.ws.readyState === WebSocket.OPEN) mark('signaling_open');
  if (S.me) mark('welcome');
  if (S.pub) mark(`publish_${S.pub.connectionState}`);
  if (S.sub) mark(`subscribe_${S.sub.connectionState}`);
  mark(state);
  const el = $('conn');
  el.dataset.state = state;
  $('conn-text').textContent = text;
  el.title = `signaling: ${S.ws ? ['connecting', 'open', 'closing', 'closed'][S.ws.readyState] : 'none'}; publish: ${S.pub ? S.pub.connectionState : 'none'}; subscribe: ${S.sub ? S.sub.connectionState : 'none'}`;
  if (lastConn === 'connected' && state === 'failed') toast('The media connection failed. Rejoin to continue.');
  lastConn = state;
}
