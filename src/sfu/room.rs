//! A room is an actor: a thin shell around its [`Membership`] core, which decides who is in
//! the room, what they publish and who speaks. The shell owns the sessions' channels and the
//! attached recording's, and carries out the core's effects in order.
//! Sessions and forwarders only send it commands.

use super::forwarder::ForwarderHandle;
use super::membership::{self, Effect, Membership, Track};
use super::RegistryHandle;
use crate::metrics::METRICS;
use signaling::protocol::{ErrorCode, MediaKind, ParticipantInfo, ServerMessage, TrackInfo};
use std::collections::HashMap;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

pub use membership::JoinError;

/// A track someone publishes, as handed to subscribers.
#[derive(Clone)]
pub struct PublishedTrack {
    pub info: TrackInfo,
    pub publisher: String,
    pub forwarder: ForwarderHandle,
}

impl Track for PublishedTrack {
    fn info(&self) -> &TrackInfo {
        &self.info
    }
    fn publisher(&self) -> &str {
        &self.publisher
    }
}

/// What a room tells one member's session.
pub type SessionCmd = membership::SessionCmd<PublishedTrack>;

pub type SessionTx = mpsc::UnboundedSender<SessionCmd>;

/// What a room tells the recording attached to it.
pub type RoomEvent = membership::RoomEvent<PublishedTrack>;

pub type RoomEventTx = mpsc::UnboundedSender<RoomEvent>;

/// The room as a recording finds it when it attaches.
pub type RoomSnapshot = membership::Snapshot<PublishedTrack>;

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

/// A session's seat in a room: dropping it makes the member leave. Whoever joins holds one
/// from the join on, so a join that fails half-way, or whose caller goes away (an HTTP client
/// that hangs up during negotiation), leaves nobody behind.
pub struct Seat {
    room: RoomHandle,
    identity: String,
    session_id: u64,
}

impl Seat {
    pub fn new(room: RoomHandle, identity: String, session_id: u64) -> Self {
        Self {
            room,
            identity,
            session_id,
        }
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.room
            .leave(std::mem::take(&mut self.identity), self.session_id);
    }
}

pub(super) struct Room {
    name: String,
    generation: u64,
    handle: RoomHandle,
    registry: RegistryHandle,
    core: Membership<PublishedTrack>,
    /// Every member's session channel, by session id.
    sessions: HashMap<u64, SessionTx>,
    joins_handled: u64,
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
            core: Membership::new(name.clone(), max_participants),
            name,
            generation,
            handle: handle.clone(),
            registry,
            sessions: HashMap::new(),
            joins_handled: 0,
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
                    let joined = self.join(request);
                    let _ = reply.send(joined);
                }
                RoomCmd::Leave {
                    identity,
                    session_id,
                } => self.core.leave(&identity, session_id),
                RoomCmd::Publish(track) => self.core.publish(track),
                RoomCmd::Mute {
                    identity,
                    kind,
                    muted,
                } => self.core.mute(&identity, kind, muted),
                RoomCmd::AudioLevel { identity, level } => {
                    self.core.audio_level(identity, level, Instant::now())
                }
                RoomCmd::Kick { identity, reply } => {
                    let found = self
                        .core
                        .kick(&identity, ErrorCode::Removed, "removed by request");
                    let _ = reply.send(found);
                }
                RoomCmd::TrackCount(reply) => {
                    let _ = reply.send(self.core.track_count());
                }
                RoomCmd::Attach(events, reply) => {
                    self.recording = Some(events);
                    let _ = reply.send(self.core.snapshot());
                }
                RoomCmd::Detach => self.recording = None,
                RoomCmd::Announce(message) => self.core.announce(message),
                RoomCmd::Shutdown => break,
            }
            self.carry_out();
            if self.recording.as_ref().is_some_and(|r| r.is_closed()) {
                self.recording = None;
            }
            if self.core.is_empty() && self.recording.is_none() {
                self.registry
                    .room_idle(self.name.clone(), self.generation, self.joins_handled);
            }
        }
        METRICS.rooms.dec();
    }

    fn join(&mut self, request: JoinRequest) -> Result<Joined, JoinError> {
        let welcome = self
            .core
            .join(request.info, request.session_id, request.visible)?;
        self.sessions.insert(request.session_id, request.session);
        Ok(Joined {
            room: self.handle.clone(),
            participants: welcome.participants,
            tracks: welcome.tracks,
        })
    }

    /// Carries out the core's effects, in order.
    fn carry_out(&mut self) {
        while let Some(effect) = self.core.poll() {
            match effect {
                Effect::Session(id, cmd) => {
                    if let Some(session) = self.sessions.get(&id) {
                        let _ = session.send(cmd);
                    }
                }
                Effect::Recording(event) => {
                    if let Some(recording) = &self.recording {
                        let _ = recording.send(event);
                    }
                }
                Effect::Gone(id) => {
                    self.sessions.remove(&id);
                }
                Effect::Participants(delta) => METRICS.participants.add(delta),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sfu::peer::PeerFactory;
    use crate::sfu::Sfu;
    use std::time::Duration;

    #[tokio::test]
    async fn dropping_a_seat_leaves_the_room() {
        let sfu = Sfu::start(PeerFactory::new(Default::default()), 4);
        let (session, _cmds) = mpsc::unbounded_channel();
        let info = ParticipantInfo {
            identity: "a".into(),
            name: "a".into(),
            role: "participant".into(),
            tracks: vec![],
        };
        let request = JoinRequest {
            info,
            session,
            session_id: 7,
            visible: true,
        };
        let joined = sfu.join("r", true, request).await.unwrap();
        let seat = Seat::new(joined.room, "a".into(), 7);
        assert!(sfu.find("r").await.is_some());
        drop(seat);
        for _ in 0..100 {
            if sfu.find("r").await.is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the member stayed, so the room did too");
    }
}
