//! A room is an actor: it owns its members, their published tracks and the active speaker
//! (decided by [`SpeakerDetector`]).
//! Sessions and forwarders only send it commands.

use super::forwarder::ForwarderHandle;
use super::speaker::SpeakerDetector;
use super::RegistryHandle;
use crate::metrics::METRICS;
use signaling::protocol::{ErrorCode, MediaKind, ParticipantInfo, ServerMessage, TrackInfo};
use std::collections::HashMap;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// A track someone publishes, as handed to subscribers.
#[derive(Clone)]
pub struct PublishedTrack {
    pub info: TrackInfo,
    pub publisher: String,
    pub forwarder: ForwarderHandle,
}

/// What a room tells one member's session.
pub enum SessionCmd {
    Send(ServerMessage),
    Subscribe(PublishedTrack),
    Unsubscribe {
        track_id: String,
    },
    /// Leave now, telling the client why.
    Kick {
        code: ErrorCode,
        message: String,
    },
}

pub type SessionTx = mpsc::UnboundedSender<SessionCmd>;

/// What a room tells the recording attached to it.
pub enum RoomEvent {
    Joined(ParticipantInfo),
    Left(String),
    TrackPublished(PublishedTrack),
    TrackEnded(String),
    ActiveSpeaker(Option<String>),
}

pub type RoomEventTx = mpsc::UnboundedSender<RoomEvent>;

/// The room as a recording finds it when it attaches.
pub struct RoomSnapshot {
    pub participants: Vec<ParticipantInfo>,
    pub tracks: Vec<PublishedTrack>,
    pub active_speaker: Option<String>,
}

/// A request to join.
pub struct JoinRequest {
    pub info: ParticipantInfo,
    pub session: SessionTx,
    pub session_id: u64,
    /// Hidden members (WHEP viewers) neither appear to others nor count toward the limit.
    pub visible: bool,
}

/// What a joiner learns.
pub struct Joined {
    pub room: RoomHandle,
    pub participants: Vec<ParticipantInfo>,
    pub tracks: Vec<PublishedTrack>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("room `{0}` is full ({1} participants)")]
    RoomFull(String, usize),
    #[error("room `{0}` does not exist")]
    NoSuchRoom(String),
}

pub(super) enum RoomCmd {
    Join(JoinRequest, oneshot::Sender<Result<Joined, JoinError>>),
    Leave {
        identity: String,
        session_id: u64,
    },
    Publish(PublishedTrack),
    Mute {
        identity: String,
        kind: MediaKind,
        muted: bool,
    },
    AudioLevel {
        identity: String,
        level: u8,
    },
    Kick {
        identity: String,
        reply: oneshot::Sender<bool>,
    },
    /// A recording starts observing the room; the room stays open while it is attached.
    Attach(RoomEventTx, oneshot::Sender<RoomSnapshot>),
    Detach,
    /// How many tracks are published (a recording's cost depends on it).
    TrackCount(oneshot::Sender<usize>),
    /// Sends a message to every visible member.
    Announce(ServerMessage),
    Shutdown,
}

/// Cloneable handle to a room actor.
#[derive(Clone)]
pub struct RoomHandle {
    tx: mpsc::UnboundedSender<RoomCmd>,
}

impl RoomHandle {
    /// A handle to a room that has already ended.
    #[cfg(test)]
    pub(crate) fn closed() -> Self {
        let (tx, _) = mpsc::unbounded_channel();
        Self { tx }
    }

    pub fn leave(&self, identity: String, session_id: u64) {
        let _ = self.tx.send(RoomCmd::Leave {
            identity,
            session_id,
        });
    }

    pub fn publish(&self, track: PublishedTrack) {
        let _ = self.tx.send(RoomCmd::Publish(track));
    }

    pub fn mute(&self, identity: String, kind: MediaKind, muted: bool) {
        let _ = self.tx.send(RoomCmd::Mute {
            identity,
            kind,
            muted,
        });
    }

    pub fn audio_level(&self, identity: String, level: u8) {
        let _ = self.tx.send(RoomCmd::AudioLevel { identity, level });
    }

    /// Makes `identity` leave; false when no such member.
    pub async fn kick(&self, identity: String) -> bool {
        let (reply, rx) = oneshot::channel();
        let _ = self.tx.send(RoomCmd::Kick { identity, reply });
        rx.await.unwrap_or(false)
    }

    /// Attaches a recording: it gets the current members and tracks, then every change.
    /// `None` when the room has already closed.
    pub async fn attach(&self, events: RoomEventTx) -> Option<RoomSnapshot> {
        let (reply, rx) = oneshot::channel();
        let _ = self.tx.send(RoomCmd::Attach(events, reply));
        rx.await.ok()
    }

    pub fn detach(&self) {
        let _ = self.tx.send(RoomCmd::Detach);
    }

    /// Tracks published in the room now (0 when it has closed).
    pub async fn track_count(&self) -> usize {
        let (reply, rx) = oneshot::channel();
        let _ = self.tx.send(RoomCmd::TrackCount(reply));
        rx.await.unwrap_or(0)
    }

    pub fn announce(&self, message: ServerMessage) {
        let _ = self.tx.send(RoomCmd::Announce(message));
    }

    pub(super) fn send(&self, cmd: RoomCmd) {
        let _ = self.tx.send(cmd);
    }
}

struct Member {
    info: ParticipantInfo,
    session: SessionTx,
    session_id: u64,
    visible: bool,
}

pub(super) struct Room {
    name: String,
    generation: u64,
    handle: RoomHandle,
    registry: RegistryHandle,
    max_participants: usize,
    members: HashMap<String, Member>,
    tracks: Vec<PublishedTrack>,
    joins_handled: u64,
    speaker: SpeakerDetector,
    recording: Option<RoomEventTx>,
}

impl Room {
    /// Starts a room actor.
    pub(super) fn spawn(
        name: String,
        generation: u64,
        max_participants: usize,
        registry: RegistryHandle,
    ) -> RoomHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = RoomHandle { tx };
        let room = Room {
            name,
            generation,
            handle: handle.clone(),
            registry,
            max_participants,
            members: HashMap::new(),
            tracks: Vec::new(),
            joins_handled: 0,
            speaker: SpeakerDetector::default(),
            recording: None,
        };
        tokio::spawn(room.run(rx));
        handle
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<RoomCmd>) {
        METRICS.rooms.inc();
        while let Some(cmd) = rx.recv().await {
            match cmd {
                RoomCmd::Join(request, reply) => {
                    self.joins_handled += 1;
                    let _ = reply.send(self.join(request));
                }
                RoomCmd::Leave {
                    identity,
                    session_id,
                } => {
                    if self
                        .members
                        .get(&identity)
                        .is_some_and(|m| m.session_id == session_id)
                    {
                        self.remove(&identity);
                    }
                }
                RoomCmd::Publish(track) => self.publish(track),
                RoomCmd::Mute {
                    identity,
                    kind,
                    muted,
                } => self.mute(&identity, kind, muted),
                RoomCmd::AudioLevel { identity, level } => {
                    if self.speaker.level(identity, level, Instant::now()) {
                        self.announce_speaker();
                    }
                }
                RoomCmd::Kick { identity, reply } => {
                    let found = self.kick(&identity, ErrorCode::Removed, "removed by request");
                    let _ = reply.send(found);
                }
                RoomCmd::TrackCount(reply) => {
                    let _ = reply.send(self.tracks.len());
                }
                RoomCmd::Attach(events, reply) => {
                    self.recording = Some(events);
                    let _ = reply.send(RoomSnapshot {
                        participants: self.visible_participants(),
                        tracks: self.tracks.clone(),
                        active_speaker: self.speaker.current().map(str::to_string),
                    });
                }
                RoomCmd::Detach => self.recording = None,
                RoomCmd::Announce(message) => self.announce_except("", message),
                RoomCmd::Shutdown => break,
            }
            if self.recording.as_ref().is_some_and(|r| r.is_closed()) {
                self.recording = None;
            }
            if self.members.is_empty() && self.recording.is_none() {
                self.registry
                    .room_idle(self.name.clone(), self.generation, self.joins_handled);
            }
        }
        METRICS.rooms.dec();
    }

    fn join(&mut self, request: JoinRequest) -> Result<Joined, JoinError> {
        let identity = request.info.identity.clone();
        self.kick(
            &identity,
            ErrorCode::Replaced,
            "the same identity joined again",
        );
        let visible_count = self.members.values().filter(|m| m.visible).count();
        if request.visible && visible_count >= self.max_participants {
            return Err(JoinError::RoomFull(
                self.name.clone(),
                self.max_participants,
            ));
        }
        let joined = Joined {
            room: self.handle.clone(),
            participants: self.visible_participants(),
            tracks: self.tracks.clone(),
        };
        if request.visible {
            METRICS.participants.inc();
            self.tell_recording(RoomEvent::Joined(request.info.clone()));
            self.announce_except(
                &identity,
                ServerMessage::ParticipantJoined {
                    participant: request.info.clone(),
                },
            );
        }
        self.members.insert(
            identity,
            Member {
                info: request.info,
                session: request.session,
                session_id: request.session_id,
                visible: request.visible,
            },
        );
        Ok(joined)
    }

    fn kick(&mut self, identity: &str, code: ErrorCode, message: &str) -> bool {
        let Some(member) = self.members.get(identity) else {
            return false;
        };
        let _ = member.session.send(SessionCmd::Kick {
            code,
            message: message.into(),
        });
        self.remove(identity);
        true
    }

    fn remove(&mut self, identity: &str) {
        let Some(member) = self.members.remove(identity) else {
            return;
        };
        let (gone, kept): (Vec<_>, Vec<_>) =
            self.tracks.drain(..).partition(|t| t.publisher == identity);
        self.tracks = kept;
        for track in gone {
            self.tell_recording(RoomEvent::TrackEnded(track.info.track_id.clone()));
            self.broadcast_except(identity, || SessionCmd::Unsubscribe {
                track_id: track.info.track_id.clone(),
            });
        }
        if member.visible {
            METRICS.participants.dec();
            self.tell_recording(RoomEvent::Left(identity.into()));
            self.announce_except(
                identity,
                ServerMessage::ParticipantLeft {
                    identity: identity.into(),
                },
            );
        }
        if self.speaker.left(identity) {
            self.announce_speaker();
        }
    }

    fn publish(&mut self, track: PublishedTrack) {
        let publisher = track.publisher.clone();
        let Some(member) = self.members.get_mut(&publisher) else {
            return; // left before its track opened
        };
        member.info.tracks.push(track.info.clone());
        let info = member.info.clone();
        self.tracks.push(track.clone());
        self.tell_recording(RoomEvent::TrackPublished(track.clone()));
        self.broadcast_except(&publisher, || SessionCmd::Subscribe(track.clone()));
        self.announce_except(
            &publisher,
            ServerMessage::ParticipantUpdated { participant: info },
        );
    }

    fn mute(&mut self, identity: &str, kind: MediaKind, muted: bool) {
        let Some(member) = self.members.get_mut(identity) else {
            return;
        };
        for track in member.info.tracks.iter_mut().filter(|t| t.kind == kind) {
            track.muted = muted;
        }
        let participant = member.info.clone();
        self.announce_except(identity, ServerMessage::ParticipantUpdated { participant });
    }

    fn announce_speaker(&self) {
        let identity = self.speaker.current().map(str::to_string);
        self.tell_recording(RoomEvent::ActiveSpeaker(identity.clone()));
        self.announce_except("", ServerMessage::ActiveSpeaker { identity });
    }

    fn visible_participants(&self) -> Vec<ParticipantInfo> {
        self.members
            .values()
            .filter(|m| m.visible)
            .map(|m| m.info.clone())
            .collect()
    }

    fn tell_recording(&self, event: RoomEvent) {
        if let Some(recording) = &self.recording {
            let _ = recording.send(event);
        }
    }

    /// Sends a command made by `make` to every member but `identity`.
    fn broadcast_except(&self, identity: &str, make: impl Fn() -> SessionCmd) {
        for (id, member) in &self.members {
            if id != identity {
                let _ = member.session.send(make());
            }
        }
    }

    fn announce_except(&self, identity: &str, message: ServerMessage) {
        self.broadcast_except(identity, || SessionCmd::Send(message.clone()));
    }
}
