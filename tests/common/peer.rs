//! webrtc-rs test participants: publish GStreamer media, decode everything received.

use super::media::{rtp_source, DecodeStats, Decoder, Pipeline, AUDIO};
use super::TestServer;
use capstan::config::RtcConfig;
use capstan::sfu::peer::{codec, Peer, PeerEvent, PeerEvents, PeerFactory};
use futures::{SinkExt, StreamExt};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::extension::audio_level_extension::AudioLevelExtension;
use rtc::rtp::extension::HeaderExtension;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use signaling::protocol::{ClientMessage, MediaKind, ParticipantInfo, ServerMessage};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::media_stream::MediaStreamTrack;

/// Client-side connections bind loopback only.
pub fn client_factory() -> PeerFactory {
    PeerFactory::new(RtcConfig {
        bind_ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        ..RtcConfig::default()
    })
}

/// A received track and its decoder's counters.
#[derive(Clone)]
pub struct Received {
    pub publisher: String,
    pub kind: MediaKind,
    pub stats: Arc<DecodeStats>,
}

/// Send and receive instants of forwarded packets, for the benchmark's latency figures.
/// With a probe, received media is counted but not decoded (keeps the client's CPU low).
#[derive(Default)]
pub struct LatencyProbe {
    sent: Mutex<HashMap<(String, u8, u16), Instant>>,
    pub latencies: Mutex<Vec<Duration>>,
}

impl LatencyProbe {
    fn sent(&self, stream: &str, packet: &rtc::rtp::Packet) {
        let key = (
            stream.to_string(),
            packet.header.payload_type,
            packet.header.sequence_number,
        );
        self.sent.lock().unwrap().insert(key, Instant::now());
    }

    fn received(&self, stream: &str, packet: &rtc::rtp::Packet) {
        let key = (
            stream.to_string(),
            packet.header.payload_type,
            packet.header.sequence_number,
        );
        if let Some(at) = self.sent.lock().unwrap().get(&key) {
            self.latencies.lock().unwrap().push(at.elapsed());
        }
    }
}

/// What a participant has seen so far.
#[derive(Default)]
pub struct Seen {
    pub probe: Option<Arc<LatencyProbe>>,
    pub participants: HashMap<String, ParticipantInfo>,
    pub received: HashMap<String, Received>,
    pub errors: Vec<ServerMessage>,
    pub subscribe_offers: usize,
    pub active_speaker: Option<String>,
    /// Recording events received (`recording_started`, ...), in order.
    pub recording_events: Vec<String>,
}

/// Shared view of a test participant's state.
#[derive(Clone, Default)]
pub struct SeenHandle(Arc<Mutex<Seen>>);

impl SeenHandle {
    pub fn with<T>(&self, f: impl FnOnce(&mut Seen) -> T) -> T {
        f(&mut self.0.lock().unwrap())
    }

    /// Decoded frames of `publisher`'s track of `kind` (summed over re-subscriptions).
    pub fn frames_from(&self, publisher: &str, kind: MediaKind) -> u64 {
        self.with(|s| {
            s.received
                .values()
                .filter(|r| r.publisher == publisher && r.kind == kind)
                .map(|r| r.stats.frames())
                .sum()
        })
    }

    /// Decoded video size from `publisher`.
    pub fn video_size_from(&self, publisher: &str) -> Option<(u32, u32)> {
        self.with(|s| {
            s.received
                .values()
                .find(|r| r.publisher == publisher && r.kind == MediaKind::Video)
                .map(|r| r.stats.size())
        })
    }
}

/// How a test participant publishes and receives.
#[derive(Clone, Default)]
pub struct MediaOptions {
    /// Count and time received packets instead of decoding them.
    pub probe: Option<Arc<LatencyProbe>>,
    /// RFC 6464 level (0 loudest .. 127 silence) sent with every audio packet.
    pub audio_level: Option<u8>,
    /// `videotestsrc` pattern of the published video (`ball`, mostly black, by default).
    pub video_pattern: Option<&'static str>,
    /// Logs the keyframe requests (PLI and FIR) the published video receives.
    pub keyframe_requests: Option<Arc<KeyframeRequests>>,
    /// GStreamer source, Opus encoder and RTP payloader of the published audio
    /// ([`AUDIO`] by default).
    pub audio: Option<String>,
    /// Keeps a copy of every audio packet written to the track.
    pub sent_audio: Option<Arc<Mutex<Vec<rtc::rtp::Packet>>>>,
}

/// Publishes VP8 + Opus tracks fed by GStreamer on `peer`; returns what keeps them running.
pub async fn publish_test_media(
    peer: &Peer,
    stream_id: &str,
    options: MediaOptions,
) -> Vec<(Pipeline, JoinHandle<()>)> {
    let mut running = Vec::new();
    for kind in [MediaKind::Video, MediaKind::Audio] {
        let ssrc = rand::random::<u32>();
        let (rtc_kind, id) = match kind {
            MediaKind::Video => (RtpCodecKind::Video, "video"),
            MediaKind::Audio => (RtpCodecKind::Audio, "audio"),
        };
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            stream_id.into(),
            id.into(),
            id.into(),
            rtc_kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: codec(kind),
                ..Default::default()
            }],
        )));
        peer.pc
            .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
            .await
            .expect("add track");
        if let Some(count) = options
            .keyframe_requests
            .clone()
            .filter(|_| kind == MediaKind::Video)
        {
            tokio::spawn(count_keyframe_requests(Arc::clone(&track), count));
        }
        let (tx, mut rx) = mpsc::channel(512);
        let source = rtp_source(
            kind,
            options.video_pattern.unwrap_or("ball"),
            options.audio.as_deref().unwrap_or(AUDIO),
            tx,
        );
        let probe = options.probe.clone();
        let sent = options
            .sent_audio
            .clone()
            .filter(|_| kind == MediaKind::Audio);
        let level: Vec<_> = options
            .audio_level
            .filter(|_| kind == MediaKind::Audio)
            .map(|level| HeaderExtension::AudioLevel(AudioLevelExtension { level, voice: true }))
            .into_iter()
            .collect();
        let stream = stream_id.to_string();
        let writer = tokio::spawn(async move {
            while let Some(mut packet) = rx.recv().await {
                packet.header.ssrc = ssrc;
                if let Some(probe) = &probe {
                    probe.sent(&stream, &packet);
                }
                if let Some(sent) = &sent {
                    sent.lock().unwrap().push(packet.clone());
                }
                let _ = track.write_rtp_with_extensions(packet, &level).await;
            }
        });
        running.push((source, writer));
    }
    running
}

/// When a publisher's video was asked for a keyframe (a PLI or a FIR).
#[derive(Default)]
pub struct KeyframeRequests(Mutex<Vec<Instant>>);

impl KeyframeRequests {
    /// Requests received so far.
    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// When each request arrived, in order.
    pub fn times(&self) -> Vec<Instant> {
        self.0.lock().unwrap().clone()
    }
}

/// Logs the PLIs and FIRs arriving for `track` while the test holds `log`.
async fn count_keyframe_requests(track: Arc<TrackLocalStaticRTP>, log: Arc<KeyframeRequests>) {
    while Arc::strong_count(&log) > 1 {
        match track.poll().await {
            Some(TrackLocalEvent::OnRtcpPacket(packets)) => {
                let requests = packets.iter().filter(|p| {
                    let any = p.as_any();
                    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
                });
                let now = Instant::now();
                log.0.lock().unwrap().extend(requests.map(|_| now));
            }
            Some(_) => {}
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Decodes every track arriving on a connection; records them in `seen`.
pub fn decode_incoming(mut events: PeerEvents, seen: SeenHandle) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let PeerEvent::Track(track) = event {
                tokio::spawn(decode_track(track, seen.clone()));
            }
        }
    })
}

async fn decode_track(track: Arc<dyn TrackRemote>, seen: SeenHandle) {
    let kind = match track.kind().await {
        RtpCodecKind::Video => MediaKind::Video,
        RtpCodecKind::Audio => MediaKind::Audio,
        _ => return,
    };
    let key = format!("{}#{}", track.track_id().await, rand::random::<u32>());
    let publisher = track.stream_id().await;
    if let Some(probe) = seen.with(|s| s.probe.clone()) {
        while let Some(event) = track.poll().await {
            if let TrackRemoteEvent::OnRtpPacket(packet) = event {
                probe.received(&publisher, &packet);
            }
        }
        return;
    }
    let decoder = Decoder::new(kind);
    seen.with(|s| {
        s.received.insert(
            key,
            Received {
                publisher,
                kind,
                stats: Arc::clone(&decoder.stats),
            },
        )
    });
    while let Some(event) = track.poll().await {
        if let TrackRemoteEvent::OnRtpPacket(packet) = event {
            decoder.push(&packet);
        }
    }
}

/// A participant connected over the signaling WebSocket.
pub struct Participant {
    pub identity: String,
    pub seen: SeenHandle,
    outgoing: mpsc::UnboundedSender<ClientMessage>,
    tasks: Vec<JoinHandle<()>>,
    _media: Vec<(Pipeline, JoinHandle<()>)>,
}

impl Participant {
    /// Joins `room` as `identity` and publishes test media.
    pub async fn join(server: &TestServer, room: &str, identity: &str) -> Self {
        Self::join_with(server, room, identity, true, MediaOptions::default()).await
    }

    /// Joins, publishing test media when `publish`; with a probe, received media is counted
    /// and timed instead of decoded.
    pub async fn join_with(
        server: &TestServer,
        room: &str,
        identity: &str,
        publish: bool,
        options: MediaOptions,
    ) -> Self {
        let token = server.token(room, identity, capstan::auth::Role::Participant);
        let url = format!("{}/ws?token={token}", server.ws_base);
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connect");
        let (mut ws_tx, mut ws_rx) = ws.split();
        let seen = SeenHandle::default();
        seen.with(|s| s.probe = options.probe.clone());
        let factory = client_factory();
        let (publisher, publish_events) = factory.create().await.expect("publish pc");
        let (subscriber, subscribe_events) = factory.create().await.expect("subscribe pc");
        let (outgoing, mut outgoing_rx) = mpsc::unbounded_channel::<ClientMessage>();
        let writer = tokio::spawn(async move {
            while let Some(msg) = outgoing_rx.recv().await {
                let text = serde_json::to_string(&msg).unwrap();
                if ws_tx.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            let _ = ws_tx.close().await;
        });
        let media = if publish {
            publish_test_media(&publisher, identity, options).await
        } else {
            Vec::new()
        };
        if publish {
            let sdp = publisher.offer().await.expect("publish offer");
            outgoing.send(ClientMessage::PublishOffer { sdp }).unwrap();
        }
        drop(publish_events);
        let decoding = decode_incoming(subscribe_events, seen.clone());
        let reply = outgoing.clone();
        let state = seen.clone();
        let signaling = tokio::spawn(async move {
            while let Some(Ok(frame)) = ws_rx.next().await {
                let Message::Text(text) = frame else { continue };
                let msg: ServerMessage = serde_json::from_str(&text).expect("server message");
                handle(msg, &publisher, &subscriber, &reply, &state).await;
            }
            publisher.close().await;
            subscriber.close().await;
        });
        Self {
            identity: identity.into(),
            seen,
            outgoing,
            tasks: vec![writer, decoding, signaling],
            _media: media,
        }
    }

    pub fn send(&self, msg: ClientMessage) {
        let _ = self.outgoing.send(msg);
    }

    /// Drops the connection without a word (the socket and both peer connections).
    pub fn vanish(self) {
        for task in &self.tasks {
            task.abort();
        }
    }

    /// Sends `leave` and tears everything down.
    pub async fn leave(self) {
        self.send(ClientMessage::Leave);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn handle(
    msg: ServerMessage,
    publisher: &Peer,
    subscriber: &Peer,
    reply: &mpsc::UnboundedSender<ClientMessage>,
    seen: &SeenHandle,
) {
    match msg {
        ServerMessage::Welcome { participants, .. } => seen.with(|s| {
            for p in participants {
                s.participants.insert(p.identity.clone(), p);
            }
        }),
        ServerMessage::PublishAnswer { sdp } => {
            publisher.accept_answer(sdp).await.expect("publish answer");
        }
        ServerMessage::SubscribeOffer { sdp } => {
            seen.with(|s| s.subscribe_offers += 1);
            let sdp = subscriber.answer(sdp).await.expect("subscribe answer");
            let _ = reply.send(ClientMessage::SubscribeAnswer { sdp });
        }
        ServerMessage::ParticipantJoined { participant }
        | ServerMessage::ParticipantUpdated { participant } => seen.with(|s| {
            s.participants
                .insert(participant.identity.clone(), participant);
        }),
        ServerMessage::ParticipantLeft { identity } => seen.with(|s| {
            s.participants.remove(&identity);
        }),
        ServerMessage::ActiveSpeaker { identity } => seen.with(|s| s.active_speaker = identity),
        error @ ServerMessage::Error { .. } => seen.with(|s| s.errors.push(error)),
        other => {
            let v = serde_json::to_value(&other).expect("server message");
            let kind = v["type"].as_str().unwrap_or_default().to_string();
            seen.with(|s| s.recording_events.push(kind));
        }
    }
}

/// A WHEP viewer: offers receive-only audio + video and decodes what arrives.
pub async fn whep_offer_peer() -> (Peer, PeerEvents) {
    let (peer, events) = client_factory().create().await.expect("whep pc");
    for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
        peer.pc
            .add_transceiver_from_kind(
                kind,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    ..Default::default()
                }),
            )
            .await
            .expect("recvonly transceiver");
    }
    (peer, events)
}

/// A WHEP viewer that decodes what it receives.
pub struct Viewer {
    pub peer: Peer,
    pub seen: SeenHandle,
    _decoding: JoinHandle<()>,
}

/// Watches `publisher` in `room` over WHEP as `identity`, connected directly.
pub async fn watch_over_whep(
    server: &TestServer,
    room: &str,
    publisher: &str,
    identity: &str,
) -> Viewer {
    let token = server.token(room, identity, capstan::auth::Role::Participant);
    let (peer, events) = whep_offer_peer().await;
    let reply = server
        .post_sdp(
            &format!("/whep/{room}/{publisher}"),
            Some(&token),
            "application/sdp",
            peer.offer().await.expect("offer"),
        )
        .await;
    assert_eq!(reply.status, reqwest::StatusCode::CREATED, "{}", reply.body);
    peer.accept_answer(reply.body).await.expect("answer");
    let seen = SeenHandle::default();
    let decoding = decode_incoming(events, seen.clone());
    Viewer {
        peer,
        seen,
        _decoding: decoding,
    }
}
