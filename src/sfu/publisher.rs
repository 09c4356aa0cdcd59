//! The publish side of a participant: its connection and the forwarders of its tracks.

use super::forwarder::{self, ForwarderSpec, LevelSink};
use super::peer::{media_kind, Peer, PeerEvent, PeerEvents};
use super::room::{PublishedTrack, RoomHandle};
use signaling::protocol::TrackInfo;
use std::collections::HashSet;
use std::sync::Arc;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::RTCPeerConnectionState;

/// Whether a session goes on after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    End,
}

/// A participant's publish connection.
pub struct Publisher {
    pub peer: Peer,
    pub events: PeerEvents,
    identity: String,
    room: RoomHandle,
    /// RFC 6464 extension id from the latest offer.
    pub audio_level_ext: Option<u8>,
    seen: HashSet<String>,
    answered: bool,
}

impl Publisher {
    pub fn new(peer: Peer, events: PeerEvents, identity: String, room: RoomHandle) -> Self {
        Self {
            peer,
            events,
            identity,
            room,
            audio_level_ext: None,
            seen: HashSet::new(),
            answered: false,
        }
    }

    /// Answers a publish offer (initial or renegotiation).
    pub async fn answer(&mut self, offer: String) -> Result<String, super::peer::PeerError> {
        self.audio_level_ext = signaling::sdp::extmap_id(&offer, signaling::sdp::AUDIO_LEVEL_URI);
        let answer = self.peer.answer(offer).await?;
        self.answered = true;
        Ok(answer)
    }

    /// Whether an offer was ever answered on this connection.
    pub fn negotiated(&self) -> bool {
        self.answered
    }

    pub async fn on_event(&mut self, event: PeerEvent) -> Flow {
        match event {
            PeerEvent::Track(track) => {
                self.on_track(track).await;
                Flow::Continue
            }
            PeerEvent::State(RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) => {
                Flow::End
            }
            PeerEvent::State(_) => Flow::Continue,
        }
    }

    async fn on_track(&mut self, track: Arc<dyn TrackRemote>) {
        let Some(kind) = media_kind(track.kind().await) else {
            return;
        };
        let track_id = format!("{}:{}", self.identity, track.track_id().await);
        if !self.seen.insert(track_id.clone()) {
            return; // renegotiation re-announces tracks we already forward
        }
        let audio_levels = self
            .audio_level_ext
            .filter(|_| kind == signaling::protocol::MediaKind::Audio)
            .map(|ext| {
                let (room, identity) = (self.room.clone(), self.identity.clone());
                let sink: LevelSink =
                    Box::new(move |level| room.audio_level(identity.clone(), level));
                (ext, sink)
            });
        let spec = ForwarderSpec { kind, audio_levels };
        let forwarder = forwarder::spawn(track, spec);
        self.room.publish(PublishedTrack {
            info: TrackInfo {
                track_id,
                stream_id: self.identity.clone(),
                kind,
                muted: false,
            },
            publisher: self.identity.clone(),
            forwarder,
        });
    }
}

/// Next event of an optional publisher; pending forever when there is none.
pub async fn next_event(publisher: &mut Option<Publisher>) -> Option<PeerEvent> {
    match publisher {
        Some(p) => p.events.recv().await,
        None => std::future::pending().await,
    }
}
