//! Building webrtc-rs peer connections the way the SFU needs them, and turning their callbacks
//! into channel messages (callbacks run on the connection's driver task and must not block).

use super::ports::{PortLease, PortPool};
use super::rtx::RtxUnwrap;
use super::tap::{ReadRewrite, ReadTap};
use super::RtcConfig;
use rtc::interceptor::{Attribute, Packet, Slot, TaggedPacket};
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_RTX, MIME_TYPE_VP8,
};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability,
    RtpCodecKind, TYPE_RTCP_FB_NACK,
};
use signaling::protocol::{IceCandidate, MediaKind};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceCandidateInit, RTCIceGatheringState,
    RTCPeerConnectionState, RTCSessionDescription, Registry,
};

/// How long to wait for host candidates before answering/offering anyway.
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);
/// Ports tried from the configured range before giving up on one connection.
const BIND_ATTEMPTS: usize = 8;

/// Payload types the server offers (answers mirror the offerer's, see [`Peer::payload_type`]).
pub const VP8_PAYLOAD_TYPE: u8 = 96;
pub const OPUS_PAYLOAD_TYPE: u8 = 111;
/// RFC 4588 retransmissions of VP8 (`apt=96`).
pub const RTX_PAYLOAD_TYPE: u8 = 97;

/// What happened on a connection, delivered in order through [`PeerEvents`].
pub enum PeerEvent {
    Track(Arc<dyn TrackRemote>),
    State(RTCPeerConnectionState),
}

pub type PeerEvents = mpsc::UnboundedReceiver<PeerEvent>;

/// Errors of the offer/answer steps, worded for the client.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("invalid SDP: {0}")]
    InvalidSdp(String),
    #[error("negotiation failed: {0}")]
    Negotiation(String),
    #[error("cannot create a peer connection: {0}")]
    Create(String),
}

/// The codec of a forwarded track.
pub fn codec(kind: MediaKind) -> RTCRtpCodec {
    match kind {
        MediaKind::Video => RTCRtpCodec {
            mime_type: MIME_TYPE_VP8.into(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![],
        },
        MediaKind::Audio => RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.into(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
            // Audio is retransmitted on NACK too (libwebrtc supports it when negotiated): a
            // recording waits for what its jitter buffer can still use.
            rtcp_feedback: vec![RTCPFeedback {
                typ: TYPE_RTCP_FB_NACK.into(),
                parameter: String::new(),
            }],
        },
    }
}

/// The media kind of a webrtc-rs codec kind, if it is one we forward.
pub fn media_kind(kind: RtpCodecKind) -> Option<MediaKind> {
    match kind {
        RtpCodecKind::Audio => Some(MediaKind::Audio),
        RtpCodecKind::Video => Some(MediaKind::Video),
        _ => None,
    }
}

/// VP8 + Opus only, codecs registered before the default interceptors so NACK/PLI feedback is
/// attached to them; the audio-level extension is negotiated so publishers send it. RTX for VP8 is
/// registered after them (a repair stream takes no feedback of its own): publishers then send
/// retransmissions on their RTX SSRC, which [`RtxUnwrap`] turns back into VP8 packets below the
/// NACK generator, and the NACK responder retransmits to subscribers on RTX the same way.
fn media_engine() -> Result<(MediaEngine, Registry), PeerError> {
    let err = |e: webrtc::error::Error| PeerError::Create(e.to_string());
    let mut engine = MediaEngine::default();
    for (kind, rtc_kind, pt) in [
        (MediaKind::Video, RtpCodecKind::Video, VP8_PAYLOAD_TYPE),
        (MediaKind::Audio, RtpCodecKind::Audio, OPUS_PAYLOAD_TYPE),
    ] {
        let params = RTCRtpCodecParameters {
            rtp_codec: codec(kind),
            payload_type: pt,
        };
        engine.register_codec(params, rtc_kind).map_err(err)?;
    }
    engine
        .register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: signaling::sdp::AUDIO_LEVEL_URI.into(),
            },
            RtpCodecKind::Audio,
            None,
        )
        .map_err(err)?;
    let registry = register_default_interceptors(Registry::new(), &mut engine)
        .map_err(err)?
        .with(Slot::from(6_500), ReadTap::<RtxUnwrap>::default())
        .with(Slot::from(14_000), ReadTap::<KeyframeRequestTap>::default());
    let rtx = RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_RTX.into(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: format!("apt={VP8_PAYLOAD_TYPE}"),
            rtcp_feedback: vec![],
        },
        payload_type: RTX_PAYLOAD_TYPE,
    };
    engine
        .register_codec(rtx, RtpCodecKind::Video)
        .map_err(err)?;
    Ok((engine, registry))
}

/// Builds peer connections bound to the configured IPs and port range.
#[derive(Clone)]
pub struct PeerFactory {
    rtc: RtcConfig,
    ports: Option<PortPool>,
}

impl PeerFactory {
    pub fn new(rtc: RtcConfig) -> Self {
        let ports = rtc.udp_ports.map(PortPool::new);
        Self { rtc, ports }
    }

    /// How long a WHIP/WHEP session may wait for ICE to connect.
    pub fn connect_timeout(&self) -> Duration {
        self.rtc.connect_timeout
    }

    /// A new connection and its event stream.
    pub async fn create(&self) -> Result<(Peer, PeerEvents), PeerError> {
        let mut last_error = String::from("UDP port range exhausted");
        for _ in 0..BIND_ATTEMPTS {
            let lease = match &self.ports {
                Some(pool) => match pool.lease() {
                    Some(lease) => Some(lease),
                    None => break,
                },
                None => None,
            };
            match self.build(lease).await {
                Ok(built) => return Ok(built),
                Err(e) => last_error = e.to_string(),
            }
            if self.ports.is_none() {
                break;
            }
        }
        Err(PeerError::Create(last_error))
    }

    async fn build(&self, lease: Option<PortLease>) -> Result<(Peer, PeerEvents), PeerError> {
        let port = lease.as_ref().map_or(0, |l| l.port);
        let addrs: Vec<String> = self
            .rtc
            .bind_ips
            .iter()
            .map(|ip| std::net::SocketAddr::new(*ip, port).to_string())
            .collect();
        let (engine, registry) = media_engine()?;
        let (events_tx, events) = mpsc::unbounded_channel();
        let (gathered_tx, gathered) = watch::channel(false);
        let connected = Arc::new(AtomicBool::new(false));
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(engine)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(EventBridge {
                events: events_tx,
                gathered: gathered_tx,
                connected: Arc::clone(&connected),
            }))
            .with_udp_addrs(addrs)
            .build()
            .await
            .map_err(|e| PeerError::Create(e.to_string()))?;
        let peer = Peer {
            pc: Arc::new(pc),
            gathered,
            connected,
            public_ip: self.rtc.public_ip,
            loopback_only: self.rtc.loopback_only(),
            _lease: lease,
        };
        Ok((peer, events))
    }
}

struct EventBridge {
    events: mpsc::UnboundedSender<PeerEvent>,
    gathered: watch::Sender<bool>,
    connected: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for EventBridge {
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.events.send(PeerEvent::Track(track));
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.connected.store(
            state == RTCPeerConnectionState::Connected,
            Ordering::Relaxed,
        );
        let _ = self.events.send(PeerEvent::State(state));
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
        }
    }
}

/// One peer connection plus what it needs to negotiate.
pub struct Peer {
    pub pc: Arc<dyn PeerConnection>,
    gathered: watch::Receiver<bool>,
    /// True while DTLS is up: RTP written before that is lost (and logged by webrtc-rs).
    pub connected: Arc<AtomicBool>,
    /// Announced in our candidates instead of the bound IPs (webrtc-rs 0.21 stores but does
    /// not apply `SettingEngine` 1:1 NAT IPs, so the SDP is rewritten here).
    public_ip: Option<IpAddr>,
    loopback_only: bool,
    _lease: Option<PortLease>,
}

impl Peer {
    /// Applies a remote offer and returns the complete local answer.
    pub async fn answer(&self, offer: String) -> Result<String, PeerError> {
        self.apply_offer(offer).await?;
        self.create_answer().await
    }

    /// Applies a remote offer (tracks added afterwards send on the offered sections).
    pub async fn apply_offer(&self, offer: String) -> Result<(), PeerError> {
        self.set_remote(RTCSessionDescription::offer(offer)).await
    }

    /// Creates and applies the answer to the applied offer and returns it complete.
    pub async fn create_answer(&self) -> Result<String, PeerError> {
        let answer = self.pc.create_answer(None).await;
        self.set_local(answer).await
    }

    /// Creates and applies a local offer and returns it complete.
    pub async fn offer(&self) -> Result<String, PeerError> {
        let offer = self.pc.create_offer(None).await;
        self.set_local(offer).await
    }

    /// Applies a freshly created description and returns it with its candidates.
    async fn set_local(
        &self,
        desc: webrtc::error::Result<RTCSessionDescription>,
    ) -> Result<String, PeerError> {
        self.pc
            .set_local_description(desc.map_err(negotiation)?)
            .await
            .map_err(negotiation)?;
        self.local_sdp().await
    }

    /// Applies the remote answer to our offer.
    pub async fn accept_answer(&self, answer: String) -> Result<(), PeerError> {
        self.set_remote(RTCSessionDescription::answer(answer)).await
    }

    async fn set_remote(
        &self,
        desc: webrtc::error::Result<RTCSessionDescription>,
    ) -> Result<(), PeerError> {
        let invalid = |e: webrtc::error::Error| PeerError::InvalidSdp(e.to_string());
        self.pc
            .set_remote_description(desc.map_err(invalid)?)
            .await
            .map_err(invalid)
    }

    /// Adds a trickled remote candidate; candidates that can never pair with our sockets
    /// (non-loopback ones when we bind loopback only) are skipped rather than probed.
    pub async fn add_candidate(&self, c: IceCandidate) -> Result<(), PeerError> {
        if c.candidate.trim().is_empty()
            || (self.loopback_only && !is_loopback_candidate(&c.candidate))
        {
            return Ok(());
        }
        self.pc
            .add_ice_candidate(RTCIceCandidateInit {
                candidate: c.candidate,
                sdp_mid: c.sdp_mid,
                sdp_mline_index: c.sdp_mline_index,
                ..Default::default()
            })
            .await
            .map_err(|e| PeerError::Negotiation(format!("bad candidate: {e}")))
    }

    async fn local_sdp(&self) -> Result<String, PeerError> {
        let mut gathered = self.gathered.clone();
        let _ = tokio::time::timeout(GATHER_TIMEOUT, gathered.wait_for(|done| *done)).await;
        let sdp = self
            .pc
            .local_description()
            .await
            .map(|d| d.sdp)
            .ok_or_else(|| PeerError::Negotiation("no local description".into()))?;
        Ok(match self.public_ip {
            Some(ip) => signaling::sdp::announce_address(&sdp, &ip.to_string()),
            None => sdp,
        })
    }

    /// The payload type negotiated for `mime` on `sender`, once negotiation completed.
    pub async fn payload_type(
        sender: &Arc<dyn webrtc::rtp_transceiver::RtpSender>,
        mime: &str,
    ) -> Option<u8> {
        let params = sender.get_parameters().await.ok()?;
        params
            .rtp_parameters
            .codecs
            .iter()
            .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime))
            .map(|c| c.payload_type)
    }

    pub async fn close(&self) {
        let _ = self.pc.close().await;
    }
}

fn negotiation(e: webrtc::error::Error) -> PeerError {
    PeerError::Negotiation(e.to_string())
}

/// Whether an ICE candidate line's connection address is a loopback IP.
fn is_loopback_candidate(candidate: &str) -> bool {
    candidate
        .split_whitespace()
        .nth(4)
        .and_then(|addr| addr.parse::<IpAddr>().ok())
        .is_some_and(|ip| ip.is_loopback())
}

/// Marks inbound PLI/FIR for delivery to the application, so a subscriber's keyframe request
/// reaches the forwarder of the track it is about.
#[derive(Default)]
struct KeyframeRequestTap;

pub(crate) fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

impl ReadRewrite for KeyframeRequestTap {
    fn rewrite(&mut self, msg: &mut TaggedPacket) {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let requests: Vec<_> = packets
                .iter()
                .filter(|p| is_keyframe_request(p.as_ref()))
                .cloned()
                .collect();
            if !requests.is_empty() {
                msg.message.packet = Packet::Rtcp(requests);
                msg.message.add(Attribute::DeliverToApplication);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_candidates_are_recognised() {
        assert!(is_loopback_candidate(
            "candidate:1 1 udp 2122260223 127.0.0.1 54321 typ host generation 0"
        ));
        assert!(!is_loopback_candidate(
            "candidate:2 1 udp 2122260223 10.0.0.5 54321 typ host"
        ));
        assert!(!is_loopback_candidate("garbage"));
    }
}
