//! The decisions of a room, free of I/O: who is in it, what they publish, who speaks, and
//! what every member and the attached recording must be told. The room actor
//! (`sfu::room::Room`) feeds it commands with the current time and delivers the [`Effect`]s it
//! queues (`poll`), in order.
//!
//! Members are addressed by session id, not identity: when an identity joins again, the old
//! session is told `Replaced` and forgotten before the new one is announced, so no message
//! meant for one session reaches the other.

use super::speaker::SpeakerDetector;
use signaling::protocol::{ErrorCode, MediaKind, ParticipantInfo, ServerMessage, TrackInfo};
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// What the core needs of a published track (the actor's carries its forwarder).
pub trait Track: Clone {
    fn info(&self) -> &TrackInfo;
    fn publisher(&self) -> &str;
}

/// What a room tells one member's session.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionCmd<T> {
    Send(ServerMessage),
    Subscribe(T),
    Unsubscribe {
        track_id: String,
    },
    /// Leave now, telling the client why.
    Kick {
        code: ErrorCode,
        message: String,
    },
}

/// What a room tells the recording attached to it.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomEvent<T> {
    Joined(ParticipantInfo),
    Left(String),
    TrackPublished(T),
    TrackEnded(String),
    ActiveSpeaker(Option<String>),
}

/// What the actor must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect<T> {
    /// Send to the session with this id.
    Session(u64, SessionCmd<T>),
    /// Tell the attached recording, if any.
    Recording(RoomEvent<T>),
    /// The session with this id is no longer a member: drop its channel.
    Gone(u64),
    /// The visible participant count changed by this much (a metric).
    Participants(i64),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("room `{0}` is full ({1} participants)")]
    RoomFull(String, usize),
    #[error("room `{0}` does not exist")]
    NoSuchRoom(String),
}

/// What a joiner learns.
#[derive(Debug, Clone, PartialEq)]
pub struct Welcome<T> {
    pub participants: Vec<ParticipantInfo>,
    pub tracks: Vec<T>,
}

/// The room as a recording finds it when it attaches.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot<T> {
    pub participants: Vec<ParticipantInfo>,
    pub tracks: Vec<T>,
    pub active_speaker: Option<String>,
}

struct Member {
    info: ParticipantInfo,
    session_id: u64,
    visible: bool,
}

/// One room's membership, tracks and active speaker.
pub struct Membership<T> {
    name: String,
    max_participants: usize,
    members: HashMap<String, Member>,
    tracks: Vec<T>,
    speaker: SpeakerDetector,
    effects: VecDeque<Effect<T>>,
}

impl<T: Track> Membership<T> {
    pub fn new(name: String, max_participants: usize) -> Self {
        Self {
            name,
            max_participants,
            members: HashMap::new(),
            tracks: Vec::new(),
            speaker: SpeakerDetector::default(),
            effects: VecDeque::new(),
        }
    }

    /// The next effect to carry out.
    pub fn poll(&mut self) -> Option<Effect<T>> {
        self.effects.pop_front()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn track_count(&self) -> usize {
        self.tracks.len()
    }

    /// Admits `info` under `session_id`. A member with the same identity is replaced (kicked
    /// first, whether or not the newcomer then fits). Hidden members (WHEP viewers) are
    /// neither announced nor counted toward the limit.
    pub fn join(
        &mut self,
        info: ParticipantInfo,
        session_id: u64,
        visible: bool,
    ) -> Result<Welcome<T>, JoinError> {
        self.kick(
            &info.identity,
            ErrorCode::Replaced,
            "the same identity joined again",
        );
        let visible_count = self.members.values().filter(|m| m.visible).count();
        if visible && visible_count >= self.max_participants {
            return Err(JoinError::RoomFull(
                self.name.clone(),
                self.max_participants,
            ));
        }
        let welcome = Welcome {
            participants: self.visible_participants(),
            tracks: self.tracks.clone(),
        };
        if visible {
            self.effects.push_back(Effect::Participants(1));
            self.effects
                .push_back(Effect::Recording(RoomEvent::Joined(info.clone())));
            self.announce_except(
                Some(&info.identity),
                ServerMessage::ParticipantJoined {
                    participant: info.clone(),
                },
            );
        }
        let member = Member {
            info,
            session_id,
            visible,
        };
        self.members.insert(member.info.identity.clone(), member);
        Ok(welcome)
    }

    /// `identity` leaves, if `session_id` is still its session (a replaced session's late
    /// leave is ignored).
    pub fn leave(&mut self, identity: &str, session_id: u64) {
        if self
            .members
            .get(identity)
            .is_some_and(|m| m.session_id == session_id)
        {
            self.remove(identity);
        }
    }

    /// Removes `identity`, telling its session why; whether it was a member.
    pub fn kick(&mut self, identity: &str, code: ErrorCode, message: &str) -> bool {
        let Some(member) = self.members.get(identity) else {
            return false;
        };
        let cmd = SessionCmd::Kick {
            code,
            message: message.into(),
        };
        self.effects
            .push_back(Effect::Session(member.session_id, cmd));
        self.remove(identity);
        true
    }

    /// A track opened; a publisher that already left is ignored.
    pub fn publish(&mut self, track: T) {
        let publisher = track.publisher().to_owned();
        let Some(member) = self.members.get_mut(&publisher) else {
            return;
        };
        member.info.tracks.push(track.info().clone());
        let participant = member.info.clone();
        self.tracks.push(track.clone());
        self.effects
            .push_back(Effect::Recording(RoomEvent::TrackPublished(track.clone())));
        self.broadcast_except(Some(&publisher), |_| SessionCmd::Subscribe(track.clone()));
        self.announce_except(
            Some(&publisher),
            ServerMessage::ParticipantUpdated { participant },
        );
    }

    pub fn mute(&mut self, identity: &str, kind: MediaKind, muted: bool) {
        let Some(member) = self.members.get_mut(identity) else {
            return;
        };
        for track in member.info.tracks.iter_mut().filter(|t| t.kind == kind) {
            track.muted = muted;
        }
        let participant = member.info.clone();
        self.announce_except(
            Some(identity),
            ServerMessage::ParticipantUpdated { participant },
        );
    }

    /// An audio level (RFC 6464, 0 loudest) of `identity` at `now`.
    pub fn audio_level(&mut self, identity: String, level: u8, now: Instant) {
        if self.speaker.level(identity, level, now) {
            self.announce_speaker();
        }
    }

    /// Sends `message` to every visible member.
    pub fn announce(&mut self, message: ServerMessage) {
        self.announce_except(None, message);
    }

    /// What a recording that attaches now starts from.
    pub fn snapshot(&self) -> Snapshot<T> {
        Snapshot {
            participants: self.visible_participants(),
            tracks: self.tracks.clone(),
            active_speaker: self.speaker.current().map(str::to_string),
        }
    }

    fn remove(&mut self, identity: &str) {
        let Some(member) = self.members.remove(identity) else {
            return;
        };
        self.effects.push_back(Effect::Gone(member.session_id));
        let (gone, kept): (Vec<_>, Vec<_>) = self
            .tracks
            .drain(..)
            .partition(|t| t.publisher() == identity);
        self.tracks = kept;
        for track in gone {
            let track_id = track.info().track_id.clone();
            self.effects
                .push_back(Effect::Recording(RoomEvent::TrackEnded(track_id.clone())));
            self.broadcast_except(Some(identity), |_| SessionCmd::Unsubscribe {
                track_id: track_id.clone(),
            });
        }
        if member.visible {
            self.effects.push_back(Effect::Participants(-1));
            self.effects
                .push_back(Effect::Recording(RoomEvent::Left(identity.into())));
            self.announce_except(
                Some(identity),
                ServerMessage::ParticipantLeft {
                    identity: identity.into(),
                },
            );
        }
        if self.speaker.left(identity) {
            self.announce_speaker();
        }
    }

    fn announce_speaker(&mut self) {
        let identity = self.speaker.current().map(str::to_string);
        self.effects
            .push_back(Effect::Recording(RoomEvent::ActiveSpeaker(
                identity.clone(),
            )));
        self.announce_except(None, ServerMessage::ActiveSpeaker { identity });
    }

    fn visible_participants(&self) -> Vec<ParticipantInfo> {
        let mut participants: Vec<_> = self
            .members
            .values()
            .filter(|m| m.visible)
            .map(|m| m.info.clone())
            .collect();
        participants.sort_by(|a, b| a.identity.cmp(&b.identity));
        participants
    }

    /// Queues a command made by `make` for every member but `except`, in identity order.
    fn broadcast_except(&mut self, except: Option<&str>, make: impl Fn(&str) -> SessionCmd<T>) {
        let mut to: Vec<(&String, u64)> = self
            .members
            .iter()
            .filter(|(id, _)| Some(id.as_str()) != except)
            .map(|(id, m)| (id, m.session_id))
            .collect();
        to.sort();
        for (id, session_id) in to {
            self.effects
                .push_back(Effect::Session(session_id, make(id)));
        }
    }

    fn announce_except(&mut self, except: Option<&str>, message: ServerMessage) {
        self.broadcast_except(except, |_| SessionCmd::Send(message.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[derive(Debug, Clone, PartialEq)]
    struct T {
        info: TrackInfo,
        publisher: String,
    }

    impl Track for T {
        fn info(&self) -> &TrackInfo {
            &self.info
        }
        fn publisher(&self) -> &str {
            &self.publisher
        }
    }

    fn track(publisher: &str, kind: MediaKind) -> T {
        T {
            info: TrackInfo {
                track_id: format!("{publisher}-{kind:?}"),
                stream_id: publisher.into(),
                kind,
                muted: false,
            },
            publisher: publisher.into(),
        }
    }

    fn info(identity: &str) -> ParticipantInfo {
        ParticipantInfo {
            identity: identity.into(),
            name: identity.to_uppercase(),
            role: "participant".into(),
            tracks: vec![],
        }
    }

    fn drain(room: &mut Membership<T>) -> Vec<Effect<T>> {
        std::iter::from_fn(|| room.poll()).collect()
    }

    /// Sessions each effect goes to, and recording events, as short strings.
    fn summary(effects: &[Effect<T>]) -> Vec<String> {
        effects
            .iter()
            .map(|e| match e {
                Effect::Session(s, SessionCmd::Send(m)) => {
                    let kind = serde_json::to_value(m).unwrap()["type"].clone();
                    format!("{s}:{}", kind.as_str().unwrap())
                }
                Effect::Session(s, SessionCmd::Subscribe(t)) => {
                    format!("{s}:sub {}", t.info.track_id)
                }
                Effect::Session(s, SessionCmd::Unsubscribe { track_id }) => {
                    format!("{s}:unsub {track_id}")
                }
                Effect::Session(s, SessionCmd::Kick { code, .. }) => format!("{s}:kick {code:?}"),
                Effect::Recording(RoomEvent::Joined(p)) => format!("rec:joined {}", p.identity),
                Effect::Recording(RoomEvent::Left(id)) => format!("rec:left {id}"),
                Effect::Recording(RoomEvent::TrackPublished(t)) => {
                    format!("rec:track {}", t.info.track_id)
                }
                Effect::Recording(RoomEvent::TrackEnded(id)) => format!("rec:ended {id}"),
                Effect::Recording(RoomEvent::ActiveSpeaker(id)) => format!("rec:speaker {id:?}"),
                Effect::Gone(s) => format!("gone {s}"),
                Effect::Participants(n) => format!("participants {n:+}"),
            })
            .collect()
    }

    #[test]
    fn a_joiner_is_announced_to_the_others_and_learns_the_room() {
        let mut room = Membership::new("r".into(), 10);
        room.join(info("a"), 1, true).unwrap();
        room.publish(track("a", MediaKind::Video));
        drain(&mut room);
        let welcome = room.join(info("b"), 2, true).unwrap();
        assert_eq!(welcome.participants.len(), 1);
        assert_eq!(welcome.participants[0].identity, "a");
        assert_eq!(welcome.participants[0].tracks.len(), 1);
        assert_eq!(welcome.tracks, vec![track("a", MediaKind::Video)]);
        assert_eq!(
            summary(&drain(&mut room)),
            ["participants +1", "rec:joined b", "1:participant_joined"]
        );
    }

    #[test]
    fn the_same_identity_replaces_its_old_session_before_it_is_announced() {
        let mut room = Membership::new("r".into(), 10);
        room.join(info("a"), 1, true).unwrap();
        room.join(info("b"), 2, true).unwrap();
        room.publish(track("a", MediaKind::Audio));
        drain(&mut room);
        room.join(info("a"), 3, true).unwrap();
        assert_eq!(
            summary(&drain(&mut room)),
            [
                "1:kick Replaced",
                "gone 1",
                "rec:ended a-Audio",
                "2:unsub a-Audio",
                "participants -1",
                "rec:left a",
                "2:participant_left",
                "participants +1",
                "rec:joined a",
                "2:participant_joined",
            ]
        );
        // The old session's late leave does not remove the new one.
        room.leave("a", 1);
        assert!(drain(&mut room).is_empty());
        room.leave("a", 3);
        assert_eq!(
            summary(&drain(&mut room)),
            [
                "gone 3",
                "participants -1",
                "rec:left a",
                "2:participant_left"
            ]
        );
    }

    #[test]
    fn a_full_room_refuses_visible_joiners_but_not_hidden_viewers() {
        let mut room = Membership::new("r".into(), 2);
        room.join(info("a"), 1, true).unwrap();
        room.join(info("b"), 2, true).unwrap();
        drain(&mut room);
        assert_eq!(
            room.join(info("c"), 3, true).unwrap_err(),
            JoinError::RoomFull("r".into(), 2)
        );
        assert!(
            drain(&mut room).is_empty(),
            "a refused join changes nothing"
        );
        room.join(info("whep-1"), 4, false).unwrap();
        assert!(
            drain(&mut room).is_empty(),
            "a hidden viewer is announced to nobody"
        );
        assert_eq!(room.snapshot().participants.len(), 2);
    }

    #[test]
    fn tracks_go_to_everyone_else_and_end_with_their_publisher() {
        let mut room = Membership::new("r".into(), 10);
        room.join(info("a"), 1, true).unwrap();
        room.join(info("v"), 2, false).unwrap();
        drain(&mut room);
        room.publish(track("a", MediaKind::Video));
        assert_eq!(
            summary(&drain(&mut room)),
            [
                "rec:track a-Video",
                "2:sub a-Video",
                "2:participant_updated"
            ]
        );
        assert_eq!(room.track_count(), 1);
        room.publish(track("ghost", MediaKind::Audio));
        assert!(drain(&mut room).is_empty(), "a publisher that left");
        assert!(room.kick("a", ErrorCode::Removed, "removed by request"));
        assert_eq!(
            summary(&drain(&mut room)),
            [
                "1:kick Removed",
                "gone 1",
                "rec:ended a-Video",
                "2:unsub a-Video",
                "participants -1",
                "rec:left a",
                "2:participant_left",
            ]
        );
        assert_eq!(room.track_count(), 0);
        assert!(!room.kick("a", ErrorCode::Removed, "again"));
    }

    #[test]
    fn mute_updates_the_member_for_the_others() {
        let mut room = Membership::new("r".into(), 10);
        room.join(info("a"), 1, true).unwrap();
        room.join(info("b"), 2, true).unwrap();
        room.publish(track("a", MediaKind::Audio));
        drain(&mut room);
        room.mute("a", MediaKind::Audio, true);
        let effects = drain(&mut room);
        let Effect::Session(2, SessionCmd::Send(ServerMessage::ParticipantUpdated { participant })) =
            &effects[0]
        else {
            panic!("{:?}", summary(&effects));
        };
        assert!(participant.tracks[0].muted);
        assert_eq!(effects.len(), 1);
    }

    #[test]
    fn the_active_speaker_follows_levels_on_the_given_clock_and_clears_when_it_leaves() {
        let mut room = Membership::new("r".into(), 10);
        room.join(info("a"), 1, true).unwrap();
        room.join(info("b"), 2, true).unwrap();
        drain(&mut room);
        let t0 = Instant::now();
        let mut speaker_events = Vec::new();
        for i in 0..40 {
            let now = t0 + Duration::from_millis(50 * i);
            room.audio_level("a".into(), 10, now);
            room.audio_level("b".into(), 127, now);
            speaker_events.extend(
                summary(&drain(&mut room))
                    .into_iter()
                    .filter(|s| s.starts_with("rec:speaker")),
            );
        }
        assert_eq!(speaker_events, [r#"rec:speaker Some("a")"#]);
        assert_eq!(room.snapshot().active_speaker.as_deref(), Some("a"));
        room.leave("a", 1);
        let after = summary(&drain(&mut room));
        assert!(after.contains(&"rec:speaker None".to_string()), "{after:?}");
        assert_eq!(room.snapshot().active_speaker, None);
    }
}
