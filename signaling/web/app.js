// Capstan call UI: the join form (index.html) and the call page (room.html).
// Plain JS, no build step. Wire protocol: signaling/src/protocol.rs (JSON tagged by `type`).
//
// Each participant has two RTCPeerConnections: *publish* (we offer, the server answers) and
// *subscribe* (the server offers whenever its set of tracks changes, we answer). Remote tracks
// arrive on the subscribe connection with stream id == the publisher's identity.
(() => {
  'use strict';

  const $ = (id) => document.getElementById(id);

  const svg = (body) =>
    `<svg viewBox="0 0 24 24" width="20" height="20" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">${body}</svg>`;
  const MIC = '<path d="M12 2a3 3 0 0 0-3 3v7a3 3 0 0 0 6 0V5a3 3 0 0 0-3-3z"/><path d="M19 10v2a7 7 0 0 1-14 0v-2"/><line x1="12" y1="19" x2="12" y2="22"/>';
  const CAM = '<rect x="2" y="6" width="14" height="12" rx="2"/><path d="M22 8l-6 4 6 4z"/>';
  const SLASH = '<line x1="2" y1="2" x2="22" y2="22"/>';
  const ICONS = {
    mic: svg(MIC),
    micOff: svg(MIC + SLASH),
    cam: svg(CAM),
    camOff: svg(CAM + SLASH),
    leave: svg('<path d="M9 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h4"/><polyline points="16 17 21 12 16 7"/><line x1="21" y1="12" x2="9" y2="12"/>'),
    people: svg('<path d="M17 21v-2a4 4 0 0 0-4-4H5a4 4 0 0 0-4 4v2"/><circle cx="9" cy="7" r="4"/><path d="M23 21v-2a4 4 0 0 0-3-3.87"/><path d="M16 3.13a4 4 0 0 1 0 7.75"/>'),
  };

  function h(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (v == null || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k === 'html') node.innerHTML = v;
      else if (k === 'dataset') Object.assign(node.dataset, v);
      else if (k in node && typeof v !== 'string') node[k] = v;
      else node.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children) if (c != null) node.append(c);
    return node;
  }

  const initials = (name) =>
    (name || '?').trim().split(/\s+/).slice(0, 2).map((w) => w[0]).join('').toUpperCase() || '?';

  /** A stable hue per identity, so each avatar keeps its colour. */
  function hue(s) {
    let x = 0;
    for (const ch of s || '') x = (x * 31 + ch.charCodeAt(0)) >>> 0;
    return x % 360;
  }

  /** identity = a slug of the name plus a short random suffix (two tabs, same name). */
  function makeIdentity(name) {
    const slug = name.toLowerCase().normalize('NFKD').replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 32) || 'guest';
    const suffix = Array.from(crypto.getRandomValues(new Uint8Array(4)), (b) => (b % 36).toString(36)).join('');
    return `${slug}-${suffix}`;
  }

  function toast(message, kind = 'error', ms = 7000) {
    const box = $('toasts');
    if (!box) return;
    const t = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, message);
    box.append(t);
    setTimeout(() => t.remove(), ms);
  }

  /** Whether the server hands out development tokens (it answers 404 when not in --dev). */
  async function devModeAvailable() {
    try {
      const r = await fetch('/api/dev/token?room=_probe&identity=_probe', { cache: 'no-store' });
      return r.ok;
    } catch {
      return false;
    }
  }

  /** Wires a join form (lobby or the room's pre-join card) to navigate to the call page. */
  async function bindJoinForm(form, note) {
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

  // ---------------------------------------------------------------------------------------
  // Lobby

  function initIndex() {
    const form = $('join-form');
    const params = new URLSearchParams(location.search);
    if (params.get('room')) form.elements.room.value = params.get('room');
    bindJoinForm(form, $('join-note'));
    (form.elements.room.value ? form.elements.name : form.elements.room).focus();
  }

  // ---------------------------------------------------------------------------------------
  // Call page

  function initRoom() {
    const params = new URLSearchParams(location.search);
    const urlRoom = decodeURIComponent(location.pathname.replace(/^\/room\//, '').replace(/\/+$/, ''));

    const S = {
      room: urlRoom,
      phase: 'init', // init → joining → joined → ended
      me: null,
      host: false,
      participants: new Map(), // identity → ParticipantInfo (remote only)
      tiles: new Map(), // identity → { el, video, stream }
      trackOwner: new Map(), // remote MediaStreamTrack.id → identity
      ws: null,
      wsOpened: false,
      pub: null,
      sub: null,
      pubOfferSent: false,
      pendingPubCandidates: [],
      localStream: null,
      muted: { audio: false, video: false },
      activeSpeaker: null,
      lastError: null,
      endReason: null,
      messages: [], // recent signaling messages, for debugging
      timeline: {}, // when (ms since page load) each connection milestone was first reached
      token: null,
      recordings: [], // the room's recording states, newest first
      liveRecording: null, // the pending, recording or paused one among them
      recordingBusy: false, // a recording request of ours is under way
    };

    $('room-title').textContent = urlRoom;
    $('empty-room').textContent = urlRoom;
    document.title = `${urlRoom} — Capstan`;
    $('mic-btn').innerHTML = ICONS.mic;
    $('cam-btn').innerHTML = ICONS.cam;
    $('leave-btn').innerHTML = `${ICONS.leave}<span>Leave</span>`;
    $('people-btn').innerHTML = `${ICONS.people}<span class="people-count" id="people-count">1</span>`;

    // ----- signaling ---------------------------------------------------------------------

    function logMessage(dir, msg) {
      const type = msg.type === 'candidate' ? `candidate(${msg.pc})` : msg.type;
      S.messages.push({ dir, type, at: Date.now() });
      if (S.messages.length > 200) S.messages.shift();
    }

    function send(msg) {
      if (!S.ws || S.ws.readyState !== WebSocket.OPEN) return false;
      logMessage('out', msg);
      S.ws.send(JSON.stringify(msg));
      return true;
    }

    async function obtainToken() {
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

    async function getMedia() {
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

    async function start() {
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

    async function handle(msg) {
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

    function onError({ code, message, fatal }) {
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

    async function onWelcome(msg) {
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

    function sendCandidate(pc, c) {
      if (!c || !c.candidate) return; // end-of-candidates: nothing to send
      const candidate = { candidate: c.candidate };
      if (c.sdpMid != null) candidate.sdpMid = c.sdpMid;
      if (c.sdpMLineIndex != null) candidate.sdpMLineIndex = c.sdpMLineIndex;
      send({ type: 'candidate', pc, candidate });
    }

    async function onSubscribeOffer(sdp) {
      if (!S.sub) throw new Error('subscribe_offer before welcome');
      await S.sub.setRemoteDescription({ type: 'offer', sdp });
      const answer = await S.sub.createAnswer();
      await S.sub.setLocalDescription(answer);
      send({ type: 'subscribe_answer', sdp: S.sub.localDescription.sdp });
    }

    // ----- remote media ------------------------------------------------------------------

    function ownerOf(event) {
      const stream = event.streams && event.streams[0];
      if (stream && stream.id) return stream.id;
      // No msid: fall back to the announced track ids.
      for (const [identity, p] of S.participants) {
        if ((p.tracks || []).some((t) => t.track_id === event.track.id)) return identity;
      }
      return null;
    }

    function onRemoteTrack(event) {
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
    function playVideo(video) {
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

    function ensureTile(identity) {
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

    function refreshTile(identity) {
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

    function upsertParticipant(p) {
      if (!p || (S.me && p.identity === S.me.identity)) return;
      const isNew = !S.participants.has(p.identity);
      S.participants.set(p.identity, p);
      ensureTile(p.identity);
      refreshTile(p.identity);
      renderList();
      if (isNew && S.phase === 'joined' && S.me) toast(`${p.name} joined`, 'info', 3000);
    }

    function removeParticipant(identity) {
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

    function setActiveSpeaker(identity) {
      const previous = S.activeSpeaker;
      S.activeSpeaker = identity;
      if (previous) refreshTile(previous);
      if (identity) refreshTile(identity);
      $('self-view').classList.toggle('speaking', !!S.me && identity === S.me.identity);
      renderList();
    }

    function layoutGrid() {
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

    function renderList() {
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

    // ----- local media and controls ------------------------------------------------------

    function showSelf() {
      const video = $('self-video');
      const hasVideo = !!S.localStream && S.localStream.getVideoTracks().length > 0;
      if (hasVideo) {
        video.srcObject = S.localStream;
        video.play().catch(() => {});
      }
      refreshSelf();
    }

    function refreshSelf() {
      const hasVideo = !!S.localStream && S.localStream.getVideoTracks().length > 0;
      $('self-view').classList.toggle('has-video', hasVideo && !S.muted.video);
      $('self-view').classList.toggle('mic-muted', S.muted.audio || !S.localStream?.getAudioTracks().length);
    }

    function setupButtons() {
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

    function refreshButtons() {
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

    function toggle(kind) {
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

    $('leave-btn').onclick = () => leave();
    $('people-btn').onclick = () => {
      const hidden = document.body.classList.toggle('sidebar-hidden');
      $('people-btn').setAttribute('aria-pressed', String(!hidden));
    };
    $('rejoin-btn').onclick = () => location.reload();

    function leave() {
      if (S.phase === 'ended') return;
      send({ type: 'leave' });
      end('You left the call.', 'You left');
    }

    window.addEventListener('pagehide', () => {
      if (S.phase !== 'ended') send({ type: 'leave' });
    });

    /** Ends the call UI: closes the connections, stops the camera and shows the reason. */
    function end(reason, title = 'Call ended') {
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

    function showPrejoin() {
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

    // ----- connection state --------------------------------------------------------------

    function connState() {
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

    function mark(what) {
      if (!(what in S.timeline)) S.timeline[what] = Math.round(performance.now());
    }

    let lastConn = null;
    function updateConn() {
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

    // ----- recording: indicator, host controls, recordings panel ----------------------------

    const LIVE_STATUSES = ['pending', 'recording', 'paused'];
    const receivedAt = new WeakMap(); // recording state object → Date.now() when it arrived
    let listRequest = 0; // only the newest list request may update the panel

    /** A call of the recording API with our token; throws the server's `message` on failure. */
    async function api(method, path) {
      const r = await fetch(path, { method, cache: 'no-store', headers: { Authorization: `Bearer ${S.token}` } });
      const body = r.status === 204 ? null : await r.json().catch(() => null);
      if (!r.ok) throw new Error(body?.message || `HTTP ${r.status}`);
      return body;
    }

    const roomPath = () => `/api/webrtc/rooms/${encodeURIComponent(S.room)}`;

    function stamp(recording) {
      receivedAt.set(recording, Date.now());
      return recording;
    }

    function onRecordingEvent(recording) {
      mergeRecording(recording);
      loadRecordings();
    }

    /** Shows `recording` at once, replacing the entry with its id. */
    function mergeRecording(recording) {
      const others = S.recordings.filter((r) => r.recording_id !== recording.recording_id);
      showRecordings([stamp(recording), ...others]);
    }

    async function loadRecordings() {
      const request = ++listRequest;
      try {
        const list = await api('GET', `${roomPath()}/recordings`);
        if (request === listRequest && S.phase === 'joined') showRecordings(list.map(stamp));
      } catch (e) {
        console.warn('capstan: cannot list recordings', e);
      }
    }

    const newness = (r) => r.created_at || r.started_at || '';

    function showRecordings(list) {
      S.recordings = list.sort((a, b) => newness(b).localeCompare(newness(a)));
      S.liveRecording = S.recordings.find((r) => LIVE_STATUSES.includes(r.status)) || null;
      setRecording(S.liveRecording);
      renderRecordControls();
      renderRecordings();
    }

    function formatDuration(seconds) {
      const s = Math.max(0, Math.floor(seconds || 0));
      const hh = Math.floor(s / 3600);
      const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
      const ss = String(s % 60).padStart(2, '0');
      return hh ? `${hh}:${mm}:${ss}` : `${mm}:${ss}`;
    }

    function formatBytes(n) {
      if (n < 1024) return `${n} B`;
      if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
      return `${(n / 1024 / 1024).toFixed(1)} MB`;
    }

    /** Recorded time: the server's count when the state arrived, plus the time since while recording. */
    function elapsedSeconds(recording) {
      const since = recording.status === 'recording' ? (Date.now() - receivedAt.get(recording)) / 1000 : 0;
      return (recording.duration_seconds || 0) + since;
    }

    let recTimer = null;
    /** Shows the indicator for a recording or paused `recording` state; anything else hides it. */
    function setRecording(recording) {
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

    function setupRecordControls() {
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
    function renderRecordControls() {
      if (!S.host) return;
      const status = S.phase !== 'joined' || S.recordingBusy ? 'busy' : S.liveRecording?.status || 'idle';
      for (const id of ['rec-format', 'rec-quality', 'rec-layout', 'rec-mode', 'rec-start']) $(id).disabled = status !== 'idle';
      $('rec-pause').disabled = status !== 'recording';
      $('rec-resume').disabled = status !== 'paused';
      for (const id of ['rec-stop', 'rec-cancel']) $(id).disabled = status !== 'recording' && status !== 'paused';
    }

    function startRecording() {
      const q = new URLSearchParams({
        recording_format: $('rec-format').value,
        quality: $('rec-quality').value,
        layout: $('rec-layout').value,
        mode: $('rec-mode').value,
      });
      return recordingRequest(`${roomPath()}/recording/start?${q}`);
    }

    function controlRecording(action) {
      if (!S.liveRecording) return;
      return recordingRequest(`${liveRecordingPath()}/${action}`);
    }

    /** Discards the live recording: the server stops it and deletes its files. */
    function cancelRecording() {
      if (!S.liveRecording) return;
      return recordingRequest(liveRecordingPath(), 'DELETE');
    }

    const liveRecordingPath = () => `${roomPath()}/recording/${encodeURIComponent(S.liveRecording.recording_id)}`;

    /** Sends a recording request; shows the resulting state, or the server's message inline. */
    async function recordingRequest(path, method = 'POST') {
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

    function renderRecordings() {
      $('recordings-list').replaceChildren(...S.recordings.map(recordingItem));
      $('recordings-count').textContent = String(S.recordings.length);
      $('recordings-empty').hidden = S.recordings.length > 0;
    }

    function recordingItem(r) {
      const when = r.started_at || r.created_at;
      const live = LIVE_STATUSES.includes(r.status);
      const details = [
        r.format.toUpperCase(),
        r.mode === 'tracks' ? 'per person' : r.layout,
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
    function uploadNote(r) {
      const upload = r.metadata?.upload;
      if (r.status !== 'processing' || !upload) return null;
      return h('div', { class: 'r-details' }, `Upload ${upload.state}${upload.percent != null ? ` ${Math.round(upload.percent)}%` : ''}`);
    }

    /** One link per file, for recordings the server lets us download (as it decides it). Links
     *  carry no token: a click asks for a short-lived signed URL and downloads from that. */
    function downloadLinks(r) {
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
    async function downloadSigned(mintPath, fileName) {
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

    // ----- debug hook for tests ----------------------------------------------------------

    async function inboundStats() {
      const out = {};
      if (!S.sub || S.sub.connectionState === 'closed') return out;
      for (const t of S.sub.getTransceivers()) {
        const track = t.receiver && t.receiver.track;
        const identity = track && S.trackOwner.get(track.id);
        if (!identity || t.currentDirection === 'inactive' || t.currentDirection === 'stopped') continue;
        const entry = (out[identity] ??= {
          identity,
          name: S.participants.get(identity)?.name ?? null,
          videoFramesDecoded: 0,
          videoFramesReceived: 0,
          videoBytesReceived: 0,
          videoPacketsReceived: 0,
          videoPacketsLost: 0,
          frameWidth: 0,
          frameHeight: 0,
          framesPerSecond: 0,
          audioBytesReceived: 0,
          audioPacketsReceived: 0,
          audioPacketsLost: 0,
          audioLevel: 0,
          codecs: [],
        });
        const report = await t.receiver.getStats();
        const codecs = new Map();
        report.forEach((s) => s.type === 'codec' && codecs.set(s.id, s.mimeType));
        report.forEach((s) => {
          if (s.type !== 'inbound-rtp') return;
          if (codecs.get(s.codecId)) entry.codecs.push(codecs.get(s.codecId));
          if (s.kind === 'video') {
            entry.videoFramesDecoded += s.framesDecoded || 0;
            entry.videoFramesReceived += s.framesReceived || 0;
            entry.videoBytesReceived += s.bytesReceived || 0;
            entry.videoPacketsReceived += s.packetsReceived || 0;
            entry.videoPacketsLost += s.packetsLost || 0;
            entry.frameWidth = Math.max(entry.frameWidth, s.frameWidth || 0);
            entry.frameHeight = Math.max(entry.frameHeight, s.frameHeight || 0);
            entry.framesPerSecond = Math.max(entry.framesPerSecond, s.framesPerSecond || 0);
          } else if (s.kind === 'audio') {
            entry.audioBytesReceived += s.bytesReceived || 0;
            entry.audioPacketsReceived += s.packetsReceived || 0;
            entry.audioPacketsLost += s.packetsLost || 0;
            entry.audioLevel = Math.max(entry.audioLevel, s.audioLevel || 0);
          }
        });
      }
      return out;
    }

    async function outboundStats() {
      const out = { audioBytesSent: 0, videoBytesSent: 0, framesEncoded: 0, frameWidth: 0, frameHeight: 0 };
      if (!S.pub || S.pub.connectionState === 'closed') return out;
      (await S.pub.getStats()).forEach((s) => {
        if (s.type !== 'outbound-rtp') return;
        if (s.kind === 'audio') out.audioBytesSent += s.bytesSent || 0;
        if (s.kind === 'video') {
          out.videoBytesSent += s.bytesSent || 0;
          out.framesEncoded += s.framesEncoded || 0;
          out.frameWidth = Math.max(out.frameWidth, s.frameWidth || 0);
          out.frameHeight = Math.max(out.frameHeight, s.frameHeight || 0);
        }
      });
      return out;
    }

    // Browser tests read state and stats here; served pages carry the attribute only when
    // the server runs with --ui-test-hooks.
    if (document.documentElement.hasAttribute('data-test-hooks')) window.capstan = {
      state() {
        const [connection, connectionText] = connState();
        return {
          phase: S.phase,
          room: S.room,
          connection,
          connectionText,
          signaling: S.ws ? ['connecting', 'open', 'closing', 'closed'][S.ws.readyState] : null,
          publish: S.pub ? S.pub.connectionState : null,
          subscribe: S.sub ? S.sub.connectionState : null,
          me: S.me,
          host: S.host,
          participants: [...S.participants.values()],
          tiles: [...S.tiles.keys()],
          muted: { ...S.muted },
          activeSpeaker: S.activeSpeaker,
          lastError: S.lastError,
          endReason: S.endReason,
          recording: S.liveRecording,
          recordings: S.recordings.slice(),
        };
      },
      stats: inboundStats,
      publishStats: outboundStats,
      messages: () => S.messages.slice(),
      timeline: () => ({ ...S.timeline }),
      leave,
      toggle,
      ui: { setRecording, toast },
    };

    updateConn();
    layoutGrid();
    renderList();
    new ResizeObserver(() => layoutGrid()).observe($('grid').parentElement);
    start().catch((e) => {
      console.error('capstan: join failed', e);
      end(`Could not join: ${e.message || e}`, 'Cannot join');
    });
  }

  if (document.body.dataset.page === 'room') initRoom();
  else initIndex();
})();
