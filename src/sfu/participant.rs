//! A signaling-WebSocket participant: publishes through one connection (client offers) and
//! subscribes through another (server offers, one offer in flight).

use super::peer::{Peer, PeerError, PeerEvent, PeerEvents};
use super::publisher::{next_event, Flow, Publisher};
use super::room::{JoinError, JoinRequest, PublishedTrack, RoomHandle, Seat, SessionCmd};
use super::subscriber::Subscription;
use super::Sfu;
use signaling::negotiation::SubscribeNegotiator;
use signaling::protocol::{
    decode_client_message, ClientMessage, ErrorCode, IceServer, ParticipantInfo, PeerRole,
    ServerMessage,
};
use signaling::sdp::{check_media_offer, OfferProblem, OfferRoute};
use std::collections::HashMap;
use tokio::sync::mpsc;
use webrtc::peer_connection::RTCPeerConnectionState;

/// What the transport hands the session.
pub enum Incoming {
    Text(String),
    /// A frame the protocol does not allow (binary, or too large: its size).
    Rejected {
        code: ErrorCode,
        message: String,
    },
}

/// Who is joining and where.
pub struct Participant {
    pub room: String,
    pub info: ParticipantInfo,
    pub ice_servers: Vec<IceServer>,
}

/// Runs one participant until it leaves, is kicked, or its transport closes.
pub async fn run(
    sfu: Sfu,
    participant: Participant,
    mut incoming: mpsc::Receiver<Incoming>,
    out: mpsc::Sender<ServerMessage>,
) {
    let (cmd_tx, mut cmds) = mpsc::unbounded_channel();
    let session_id = super::next_id();
    let request = JoinRequest {
        info: participant.info.clone(),
        session: cmd_tx,
        session_id,
        visible: true,
    };
    let joined = match sfu.join(&participant.room, true, request).await {
        Ok(joined) => joined,
        Err(e) => {
            let code = match e {
                JoinError::RoomFull(..) => ErrorCode::RoomFull,
                JoinError::NoSuchRoom(_) => ErrorCode::RoomNotFound,
            };
            let _ = out.send(fatal(code, e.to_string())).await;
            return;
        }
    };
    let identity = participant.info.identity.clone();
    let seat = Seat::new(joined.room.clone(), identity.clone(), session_id);
    let mut session = match Session::new(&sfu, identity, joined.room.clone(), out.clone()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot create subscribe connection: {e}");
            let _ = out.send(fatal(ErrorCode::Internal, e.to_string())).await;
            return;
        }
    };
    session
        .send(ServerMessage::Welcome {
            room: participant.room,
            me: participant.info,
            participants: joined.participants,
            ice_servers: participant.ice_servers,
        })
        .await;
    for track in &joined.tracks {
        session.subscribe(track).await;
    }
    if !session.subscriptions.is_empty() {
        session.renegotiate().await;
    }
    loop {
        let flow = tokio::select! {
            msg = incoming.recv() => match msg {
                Some(msg) => session.on_incoming(msg).await,
                None => Flow::End,
            },
            cmd = cmds.recv() => match cmd {
                Some(cmd) => session.on_command(cmd).await,
                None => Flow::End,
            },
            event = next_event(&mut session.publisher) => match event {
                Some(event) => session.on_publish_event(event).await,
                None => Flow::End,
            },
            event = session.subscribe_events.recv() => match event {
                Some(event) => session.on_subscribe_event(event),
                None => Flow::End,
            },
        };
        if flow == Flow::End {
            break;
        }
    }
    drop(seat);
    session.close().await;
}

fn fatal(code: ErrorCode, message: String) -> ServerMessage {
    ServerMessage::Error {
        code,
        message,
        fatal: true,
    }
}

struct Session {
    sfu: Sfu,
    identity: String,
    room: RoomHandle,
    out: mpsc::Sender<ServerMessage>,
    publisher: Option<Publisher>,
    subscriber: Peer,
    subscribe_events: PeerEvents,
    subscriptions: HashMap<String, Subscription>,
    negotiator: SubscribeNegotiator,
}

impl Session {
    async fn new(
        sfu: &Sfu,
        identity: String,
        room: RoomHandle,
        out: mpsc::Sender<ServerMessage>,
    ) -> Result<Self, PeerError> {
        let (subscriber, subscribe_events) = sfu.peers.create().await?;
        Ok(Self {
            sfu: sfu.clone(),
            identity,
            room,
            out,
            publisher: None,
            subscriber,
            subscribe_events,
            subscriptions: HashMap::new(),
            negotiator: SubscribeNegotiator::default(),
        })
    }

    async fn send(&self, msg: ServerMessage) {
        let _ = self.out.send(msg).await;
    }

    async fn error(&self, code: ErrorCode, message: impl Into<String>) {
        self.send(ServerMessage::Error {
            code,
            message: message.into(),
            fatal: false,
        })
        .await;
    }

    async fn on_incoming(&mut self, msg: Incoming) -> Flow {
        let text = match msg {
            Incoming::Text(text) => text,
            Incoming::Rejected { code, message } => {
                self.error(code, message).await;
                return Flow::Continue;
            }
        };
        match decode_client_message(&text) {
            Ok(msg) => self.on_message(msg).await,
            Err(e) => {
                self.error(e.code, e.message).await;
                Flow::Continue
            }
        }
    }

    async fn on_message(&mut self, msg: ClientMessage) -> Flow {
        match msg {
            ClientMessage::PublishOffer { sdp } => self.on_publish_offer(sdp).await,
            ClientMessage::SubscribeAnswer { sdp } => self.on_subscribe_answer(sdp).await,
            ClientMessage::Candidate { pc, candidate } => {
                let peer = match pc {
                    PeerRole::Publish => self.publisher.as_ref().map(|p| &p.peer),
                    PeerRole::Subscribe => Some(&self.subscriber),
                };
                let result = match peer {
                    Some(peer) => peer.add_candidate(candidate).await,
                    None => Err(PeerError::Negotiation(
                        "candidate for the publish connection before its offer".into(),
                    )),
                };
                if let Err(e) = result {
                    self.error(ErrorCode::NegotiationFailed, e.to_string())
                        .await;
                }
            }
            ClientMessage::Mute { kind, muted } => {
                self.room.mute(self.identity.clone(), kind, muted);
            }
            ClientMessage::Leave => return Flow::End,
        }
        Flow::Continue
    }

    async fn on_publish_offer(&mut self, sdp: String) {
        if let Err(problem) = check_media_offer(&sdp, OfferRoute::Publish) {
            let code = match problem {
                OfferProblem::Malformed(_) | OfferProblem::WrongDirection(_) => {
                    ErrorCode::InvalidSdp
                }
                OfferProblem::UnsupportedCodecs(_) => ErrorCode::UnsupportedCodecs,
            };
            return self.error(code, problem.to_string()).await;
        }
        if self.publisher.is_none() {
            match self.sfu.peers.create().await {
                Ok((peer, events)) => {
                    self.publisher = Some(Publisher::new(
                        peer,
                        events,
                        self.identity.clone(),
                        self.room.clone(),
                    ));
                }
                Err(e) => return self.error(ErrorCode::Internal, e.to_string()).await,
            }
        }
        let publisher = self.publisher.as_mut().expect("created above");
        match publisher.answer(sdp).await {
            Ok(sdp) => self.send(ServerMessage::PublishAnswer { sdp }).await,
            Err(e) => {
                // A connection whose first offer failed holds nothing worth keeping: the
                // client may start over with a new one.
                if !publisher.negotiated() {
                    if let Some(failed) = self.publisher.take() {
                        failed.peer.close().await;
                    }
                }
                self.error(peer_error_code(&e), e.to_string()).await
            }
        }
    }

    async fn on_subscribe_answer(&mut self, sdp: String) {
        if !self.negotiator.awaiting_answer() {
            return self
                .error(
                    ErrorCode::NegotiationFailed,
                    "no subscribe offer is waiting for an answer",
                )
                .await;
        }
        if let Err(e) = self.subscriber.accept_answer(sdp).await {
            self.error(peer_error_code(&e), e.to_string()).await;
        }
        if self.negotiator.answer_applied() {
            self.send_offer().await;
        }
    }

    async fn on_command(&mut self, cmd: SessionCmd) -> Flow {
        match cmd {
            SessionCmd::Send(msg) => self.send(msg).await,
            SessionCmd::Subscribe(track) => {
                self.subscribe(&track).await;
                self.renegotiate().await;
            }
            SessionCmd::Unsubscribe { track_id } => {
                if let Some(sub) = self.subscriptions.remove(&track_id) {
                    sub.end(&self.subscriber.pc).await;
                    self.renegotiate().await;
                }
            }
            SessionCmd::Kick { code, message } => {
                self.send(fatal(code, message)).await;
                return Flow::End;
            }
        }
        Flow::Continue
    }

    async fn on_publish_event(&mut self, event: PeerEvent) -> Flow {
        let publisher = self.publisher.as_mut().expect("event came from it");
        publisher.on_event(event).await
    }

    fn on_subscribe_event(&mut self, event: PeerEvent) -> Flow {
        match event {
            PeerEvent::State(RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) => {
                Flow::End
            }
            _ => Flow::Continue,
        }
    }

    async fn subscribe(&mut self, track: &PublishedTrack) {
        match Subscription::start(&self.subscriber, track).await {
            Ok(sub) => {
                self.subscriptions.insert(sub.track_id.clone(), sub);
            }
            Err(e) => tracing::warn!(identity = %self.identity, "cannot subscribe: {e}"),
        }
    }

    async fn renegotiate(&mut self) {
        if self.negotiator.tracks_changed() {
            self.send_offer().await;
        }
    }

    async fn send_offer(&mut self) {
        match self.subscriber.offer().await {
            Ok(sdp) => self.send(ServerMessage::SubscribeOffer { sdp }).await,
            Err(e) => {
                tracing::warn!(identity = %self.identity, "subscribe offer failed: {e}");
                self.negotiator.answer_applied();
            }
        }
    }

    async fn close(self) {
        let pc = &self.subscriber.pc;
        futures::future::join_all(self.subscriptions.into_values().map(|sub| sub.close(pc))).await;
        if let Some(publisher) = &self.publisher {
            publisher.peer.close().await;
        }
        self.subscriber.close().await;
    }
}

/// The wire error code for a failed negotiation step.
pub fn peer_error_code(e: &PeerError) -> ErrorCode {
    match e {
        PeerError::InvalidSdp(_) => ErrorCode::InvalidSdp,
        PeerError::Negotiation(_) => ErrorCode::NegotiationFailed,
        PeerError::Create(_) => ErrorCode::NoMediaPort,
    }
}
