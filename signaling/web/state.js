// The one call page's state, shared by the modules of the call UI.

export const params = new URLSearchParams(location.search);
export const urlRoom = decodeURIComponent(location.pathname.replace(/^\/room\//, '').replace(/\/+$/, ''));
export const S = {
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
