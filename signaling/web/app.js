// Capstan call UI: the join form (index.html) and the call page (room.html).
// Plain JS, no build step. Wire protocol: signaling/src/protocol.rs (JSON tagged by `type`).
//
// Each participant has two RTCPeerConnections: *publish* (we offer, the server answers) and
// *subscribe* (the server offers whenever its set of tracks changes, we answer). Remote tracks
// arrive on the subscribe connection with stream id == the publisher's identity.
import { $, ICONS, toast } from './ui.js';
import { initIndex } from './lobby.js';
import { urlRoom, S } from './state.js';
import { start, connState, updateConn } from './call.js';
import { layoutGrid, renderList } from './tiles.js';
import { toggle, leave, end, initControls } from './controls.js';
import { setRecording } from './recording.js';
import { inboundStats, outboundStats } from './stats.js';
import { ownCopyState } from './own-copy.js';

function initRoom() {
  $('room-title').textContent = urlRoom;
  $('empty-room').textContent = urlRoom;
  document.title = `${urlRoom} — Capstan`;
  $('mic-btn').innerHTML = ICONS.mic;
  $('cam-btn').innerHTML = ICONS.cam;
  $('leave-btn').innerHTML = `${ICONS.leave}<span>Leave</span>`;
  $('people-btn').innerHTML = `${ICONS.people}<span class="people-count" id="people-count">1</span>`;

  initControls();

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
    ownCopy: ownCopyState,
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
