//! WHIP publishers (RFC 9725) and WHEP viewers: one connection each, negotiated once over HTTP.

use super::peer::{PeerError, PeerEvent};
use super::publisher::{Flow, Publisher};
use super::room::{JoinError, JoinRequest, Seat, SessionCmd};
use super::subscriber::Subscription;
use super::Sfu;
use signaling::protocol::ParticipantInfo;
use tokio::sync::mpsc;
use tokio::time::Instant;
use webrtc::peer_connection::RTCPeerConnectionState;

/// Why an HTTP session could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Join(#[from] JoinError),
    #[error(transparent)]
    Peer(#[from] PeerError),
    #[error("participant `{0}` publishes nothing in this room")]
    NoSuchPublisher(String),
}

/// Joins `room` as a WHIP publisher and returns the SDP answer; the session runs until
/// the resource is deleted, the connection fails, or ICE has not connected within the
/// configured connect timeout. `pending` is held until ICE connects.
pub async fn start_whip<P: Send + Sync + 'static>(
    sfu: &Sfu,
    room: &str,
    info: ParticipantInfo,
    offer: String,
    pending: P,
) -> Result<String, StartError> {
    let (cmd_tx, cmds) = mpsc::unbounded_channel();
    let session_id = super::next_id();
    let identity = info.identity.clone();
    let request = JoinRequest {
        info,
        session: cmd_tx,
        session_id,
        visible: true,
    };
    let joined = sfu.join(room, true, request).await?;
    let seat = Seat::new(joined.room.clone(), identity.clone(), session_id);
    let (peer, events) = sfu.peers.create().await?;
    let mut publisher = Publisher::new(peer, events, identity, joined.room);
    let answer = match publisher.answer(offer).await {
        Ok(answer) => answer,
        Err(e) => {
            publisher.peer.close().await;
            return Err(e.into());
        }
    };
    let connect_by = Instant::now() + sfu.peers.connect_timeout();
    tokio::spawn(async move {
        run_whip(&mut publisher, cmds, Connecting::new(connect_by, pending)).await;
        drop(seat);
        publisher.peer.close().await;
    });
    Ok(answer)
}

/// Until ICE connects: the deadline and what a pending session holds.
struct Connecting<P> {
    deadline: Instant,
    held: Option<P>,
}

impl<P> Connecting<P> {
    fn new(deadline: Instant, held: P) -> Self {
        Self {
            deadline,
            held: Some(held),
        }
    }

    fn pending(&self) -> bool {
        self.held.is_some()
    }

    /// Lets go of what was held once the connection is up.
    fn see(&mut self, event: &PeerEvent) {
        if matches!(event, PeerEvent::State(RTCPeerConnectionState::Connected)) {
            self.held = None;
        }
    }

    async fn expired(&self) {
        tokio::time::sleep_until(self.deadline).await;
        tracing::debug!("ending an HTTP session whose ICE did not connect in time");
    }
}

async fn run_whip<P>(
    publisher: &mut Publisher,
    mut cmds: mpsc::UnboundedReceiver<SessionCmd>,
    mut connecting: Connecting<P>,
) {
    loop {
        tokio::select! {
            event = publisher.events.recv() => match event {
                Some(event) => {
                    connecting.see(&event);
                    if publisher.on_event(event).await == Flow::End { return }
                }
                None => return,
            },
            () = connecting.expired(), if connecting.pending() => return,
            cmd = cmds.recv() => match cmd {
                Some(SessionCmd::Kick { .. }) | None => return,
                Some(_) => {} // a WHIP publisher subscribes to nothing
            },
        }
    }
}

/// Starts a WHEP viewer of `publisher`'s tracks in `room` and returns the SDP answer and
/// the viewer's id (for `DELETE`).
/// Like a WHIP session, it ends when ICE has not connected in time; `pending` is held until
/// it connects.
pub async fn start_whep<P: Send + Sync + 'static>(
    sfu: &Sfu,
    room: &str,
    publisher: &str,
    offer: String,
    pending: P,
) -> Result<(String, String), StartError> {
    let (cmd_tx, cmds) = mpsc::unbounded_channel();
    let session_id = super::next_id();
    let viewer = format!("whep-{}", uuid::Uuid::new_v4().simple());
    let request = JoinRequest {
        info: ParticipantInfo {
            identity: viewer.clone(),
            name: viewer.clone(),
            role: "viewer".into(),
            tracks: vec![],
        },
        session: cmd_tx,
        session_id,
        visible: false,
    };
    let joined = sfu.join(room, false, request).await?;
    let seat = Seat::new(joined.room.clone(), viewer.clone(), session_id);
    let tracks: Vec<_> = joined
        .tracks
        .iter()
        .filter(|t| t.publisher == publisher)
        .collect();
    if tracks.is_empty() {
        return Err(StartError::NoSuchPublisher(publisher.into()));
    }
    let (peer, events) = sfu.peers.create().await?;
    let mut subscriptions = Vec::new();
    let answer = match peer.apply_offer(offer).await {
        Ok(()) => {
            for track in tracks {
                match Subscription::start(&peer, track).await {
                    Ok(sub) => subscriptions.push(sub),
                    Err(e) => tracing::warn!("WHEP subscription failed: {e}"),
                }
            }
            peer.create_answer().await
        }
        Err(e) => Err(e),
    };
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => {
            subscriptions.iter().for_each(Subscription::stop_feeding);
            peer.close().await;
            return Err(e.into());
        }
    };
    let connecting = Connecting::new(Instant::now() + sfu.peers.connect_timeout(), pending);
    tokio::spawn(async move {
        run_whep(&subscriptions, events, cmds, connecting).await;
        futures::future::join_all(subscriptions.into_iter().map(|sub| sub.close(&peer.pc))).await;
        drop(seat);
        peer.close().await;
    });
    Ok((answer, viewer))
}

async fn run_whep<P>(
    subscriptions: &[Subscription],
    mut events: super::peer::PeerEvents,
    mut cmds: mpsc::UnboundedReceiver<SessionCmd>,
    mut connecting: Connecting<P>,
) {
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(PeerEvent::State(RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed)) | None => return,
                Some(event) => connecting.see(&event),
            },
            () = connecting.expired(), if connecting.pending() => return,
            cmd = cmds.recv() => match cmd {
                Some(SessionCmd::Unsubscribe { track_id }) => subscriptions
                    .iter()
                    .filter(|s| s.track_id == track_id)
                    .for_each(Subscription::stop_feeding),
                Some(SessionCmd::Kick { .. }) | None => return,
                Some(_) => {} // WHEP cannot renegotiate: new tracks need a new viewer
            },
        }
    }
}

/// Ends the WHIP publisher or WHEP viewer `identity` in `room`; false when not found.
pub async fn stop(sfu: &Sfu, room: &str, identity: &str) -> bool {
    match sfu.find(room).await {
        Some(handle) => handle.kick(identity.into()).await,
        None => false,
    }
}
