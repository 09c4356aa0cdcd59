//! One subscription: a publisher's track sent to one subscriber connection through its own
//! `TrackLocalStaticRTP` (own SSRC, negotiated payload type) and a writer task fed by a
//! bounded queue from the track's forwarder.

use super::forwarder::{ConsumerKind, ForwarderHandle};
use super::peer::{codec, is_keyframe_request, Peer, PeerError};
use super::room::PublishedTrack;
use crate::metrics::METRICS;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use signaling::protocol::MediaKind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::MediaStreamTrack;
use webrtc::peer_connection::PeerConnection;
use webrtc::rtp_transceiver::RtpSender;

/// Packets buffered per subscriber and track (~1 s of 1.5 Mbps video, ~2.5 s of audio).
const VIDEO_QUEUE: usize = 256;
const AUDIO_QUEUE: usize = 128;
/// Pause between looks for RTCP while the sender is not yet bound to a transport.
const UNBOUND_RETRY: Duration = Duration::from_millis(250);

/// A live subscription; [`Subscription::end`] tears it down.
pub struct Subscription {
    pub track_id: String,
    sender: Arc<dyn RtpSender>,
    forwarder: ForwarderHandle,
    consumer_id: u64,
    tasks: [JoinHandle<()>; 2],
}

impl Subscription {
    /// Adds `track` to `pc` and starts feeding it.
    pub async fn start(peer: &Peer, track: &PublishedTrack) -> Result<Self, PeerError> {
        let ssrc = rand::random::<u32>();
        let kind = track.info.kind;
        let codec = codec(kind);
        let mime = codec.mime_type.clone();
        let local = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            track.info.stream_id.clone(),
            track.info.track_id.clone(),
            track.info.track_id.clone(),
            match kind {
                MediaKind::Audio => RtpCodecKind::Audio,
                MediaKind::Video => RtpCodecKind::Video,
            },
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec,
                ..Default::default()
            }],
        )));
        let sender = peer
            .pc
            .add_track(Arc::clone(&local) as Arc<dyn TrackLocal>)
            .await
            .map_err(|e| PeerError::Negotiation(format!("add track: {e}")))?;
        let capacity = match kind {
            MediaKind::Video => VIDEO_QUEUE,
            MediaKind::Audio => AUDIO_QUEUE,
        };
        let (queue, packets) = mpsc::channel(capacity);
        let writer = Writer {
            forwarder: track.forwarder.clone(),
            connected: Arc::clone(&peer.connected),
            local: Arc::clone(&local),
            sender: Arc::clone(&sender),
            ssrc,
            mime,
            payload_type: None,
        };
        let tasks = [
            tokio::spawn(writer.run(packets)),
            tokio::spawn(relay_keyframe_requests(local, track.forwarder.clone())),
        ];
        let consumer_id = super::next_id();
        track
            .forwarder
            .add_consumer(consumer_id, queue, ConsumerKind::Subscriber);
        Ok(Self {
            track_id: track.info.track_id.clone(),
            sender,
            forwarder: track.forwarder.clone(),
            consumer_id,
            tasks,
        })
    }

    /// Stops feeding and removes the sender from `pc` (the caller renegotiates).
    pub async fn end(self, pc: &Arc<dyn PeerConnection>) {
        self.stop_feeding();
        // A write already handed to the driver must be processed before the removal, or the
        // driver meets a packet for a sender it no longer knows.
        for task in self.tasks {
            let _ = task.await;
        }
        let _ = pc.remove_track(&self.sender).await;
    }

    /// Stops feeding without touching the connection (it is closing anyway).
    pub fn stop_feeding(&self) {
        self.forwarder.remove_consumer(self.consumer_id);
        for task in &self.tasks {
            task.abort();
        }
    }
}

struct Writer {
    forwarder: ForwarderHandle,
    connected: Arc<AtomicBool>,
    local: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn RtpSender>,
    ssrc: u32,
    mime: String,
    payload_type: Option<u8>,
}

impl Writer {
    async fn run(mut self, mut packets: mpsc::Receiver<rtp::Packet>) {
        let mut started = false;
        while let Some(mut packet) = packets.recv().await {
            if !self.connected.load(Ordering::Relaxed) {
                METRICS.drop_packet("subscriber_not_connected");
                continue;
            }
            if !started {
                // Whatever was sent before is lost: decoding starts at the next keyframe.
                started = true;
                self.forwarder.request_keyframe();
            }
            if self.payload_type.is_none() {
                self.payload_type = Peer::payload_type(&self.sender, &self.mime).await;
            }
            let Some(pt) = self.payload_type else {
                METRICS.drop_packet("not_negotiated");
                continue;
            };
            packet.header.ssrc = self.ssrc;
            packet.header.payload_type = pt;
            let bytes = packet.payload.len() as u64;
            match self.local.write_rtp(packet).await {
                Ok(()) => {
                    METRICS.forwarded_packets.inc();
                    METRICS.forwarded_bytes.inc_by(bytes);
                }
                Err(_) => METRICS.drop_packet("write_failed"),
            }
        }
    }
}

/// Turns the subscriber's PLI/FIR for this track into a keyframe request to the publisher.
async fn relay_keyframe_requests(local: Arc<TrackLocalStaticRTP>, forwarder: ForwarderHandle) {
    loop {
        match local.poll().await {
            Some(TrackLocalEvent::OnRtcpPacket(packets)) => {
                if packets.iter().any(|p| is_keyframe_request(p.as_ref())) {
                    forwarder.request_keyframe();
                }
            }
            Some(_) => {}
            None => tokio::time::sleep(UNBOUND_RETRY).await,
        }
    }
}
