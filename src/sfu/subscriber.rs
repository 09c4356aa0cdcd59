//! One subscription: a publisher's track sent to one subscriber connection through its own
//! `TrackLocalStaticRTP` (own SSRC, negotiated payload type) and a writer task fed by a
//! bounded queue from the track's forwarder.

use super::forwarder::{ConsumerQueue, ForwarderHandle};
use super::peer::{codec, is_keyframe_request, Peer, PeerError};
use super::room::PublishedTrack;
use crate::metrics::METRICS;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::statistics::StatsSelector;
use signaling::protocol::MediaKind;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
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
/// How long an ending subscription waits for its writer to hand over what is queued.
const WRITER_DRAIN: Duration = Duration::from_secs(2);
/// How long an ending subscription waits for the connection's driver to send what was
/// handed to it, and how often it looks.
const DRIVER_DRAIN: Duration = Duration::from_secs(2);
const DRIVER_POLL: Duration = Duration::from_millis(10);

/// A live subscription; [`Subscription::end`] tears it down.
pub struct Subscription {
    pub track_id: String,
    sender: Arc<dyn RtpSender>,
    ssrc: u32,
    forwarder: ForwarderHandle,
    consumer_id: u64,
    /// Packets the writer handed to the connection's driver.
    handed: Arc<AtomicU64>,
    writer: JoinHandle<()>,
    keyframe_relay: JoinHandle<()>,
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
        let handed = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            forwarder: track.forwarder.clone(),
            connected: Arc::clone(&peer.connected),
            local: Arc::clone(&local),
            sender: Arc::clone(&sender),
            ssrc,
            mime,
            payload_type: None,
            handed: Arc::clone(&handed),
        };
        let writer = tokio::spawn(writer.run(packets));
        let keyframe_relay = tokio::spawn(relay_keyframe_requests(local, track.forwarder.clone()));
        let consumer_id = super::next_id();
        track
            .forwarder
            .add_consumer(consumer_id, ConsumerQueue::Subscriber(queue));
        Ok(Self {
            track_id: track.info.track_id.clone(),
            sender,
            ssrc,
            forwarder: track.forwarder.clone(),
            consumer_id,
            handed,
            writer,
            keyframe_relay,
        })
    }

    /// Stops feeding and removes the sender from `pc` (the caller renegotiates).
    pub async fn end(mut self, pc: &Arc<dyn PeerConnection>) {
        self.drain(pc).await;
        let _ = pc.remove_track(&self.sender).await;
    }

    /// Stops feeding before `pc` is closed.
    pub async fn close(mut self, pc: &Arc<dyn PeerConnection>) {
        self.drain(pc).await;
    }

    /// Stops feeding; the writer hands over what is queued and ends with the queue.
    pub fn stop_feeding(&self) {
        self.forwarder.remove_consumer(self.consumer_id);
        self.keyframe_relay.abort();
    }

    /// Stops feeding and waits (bounded) until `pc` has sent every packet handed to it.
    ///
    /// Removing the sender or closing `pc` takes effect at once, while RTP already handed
    /// to the connection waits in its driver's queue, and the driver logs an error for
    /// each such packet it meets afterwards. So the writer is let finish (never aborted
    /// mid-write, so that `handed` is exact) and the caller goes on only once the
    /// connection's stats count all of it as sent.
    async fn drain(&mut self, pc: &Arc<dyn PeerConnection>) {
        self.stop_feeding();
        if tokio::time::timeout(WRITER_DRAIN, &mut self.writer)
            .await
            .is_err()
        {
            self.writer.abort();
        }
        self.await_driver(pc).await;
    }

    /// Waits (bounded) until `pc` reports every handed packet of this track as sent.
    async fn await_driver(&self, pc: &Arc<dyn PeerConnection>) {
        let handed = self.handed.load(Ordering::Acquire);
        let deadline = tokio::time::Instant::now() + DRIVER_DRAIN;
        loop {
            let sent = self.packets_sent(pc).await;
            if sent >= handed {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    track = %self.track_id,
                    "giving up on the sender with {} of {handed} handed packets not yet sent",
                    handed - sent
                );
                return;
            }
            tokio::time::sleep(DRIVER_POLL).await;
        }
    }

    async fn packets_sent(&self, pc: &Arc<dyn PeerConnection>) -> u64 {
        let report = pc
            .get_stats(Instant::now(), StatsSelector::Sender(self.sender.id()))
            .await;
        report
            .outbound_rtp_streams()
            .filter(|s| s.sent_rtp_stream_stats.rtp_stream_stats.ssrc == self.ssrc)
            .map(|s| s.sent_rtp_stream_stats.packets_sent)
            .sum()
    }
}

/// A subscription dropped without [`Subscription::end`] or [`Subscription::close`] (its
/// session's task panicked or was cancelled) still leaves its forwarder and stops its tasks:
/// the writer ends once the forwarder lets go of its queue.
impl Drop for Subscription {
    fn drop(&mut self) {
        self.stop_feeding();
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
    handed: Arc<AtomicU64>,
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
                    self.handed.fetch_add(1, Ordering::Release);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sfu::forwarder::{test_handle, Command};
    use crate::sfu::peer::PeerFactory;
    use crate::sfu::RtcConfig;
    use signaling::protocol::TrackInfo;

    fn alive_tasks() -> usize {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    }

    #[tokio::test]
    async fn a_dropped_subscription_leaves_its_forwarder_and_ends_its_tasks() {
        let (peer, _events) = PeerFactory::new(RtcConfig::default())
            .create()
            .await
            .unwrap();
        let (forwarder, mut commands) = test_handle();
        let track = PublishedTrack {
            info: TrackInfo {
                track_id: "t".into(),
                stream_id: "s".into(),
                kind: MediaKind::Video,
                muted: false,
            },
            publisher: "p".into(),
            forwarder,
        };
        let before = alive_tasks();
        let subscription = Subscription::start(&peer, &track).await.unwrap();
        let Some(Command::AddConsumer(consumer)) = commands.recv().await else {
            panic!("the subscription did not register with the forwarder");
        };
        assert_eq!(alive_tasks(), before + 2, "writer and keyframe relay");
        drop(subscription);
        match tokio::time::timeout(Duration::from_secs(1), commands.recv()).await {
            Ok(Some(Command::RemoveConsumer(id))) => assert_eq!(id, consumer.id),
            _ => panic!("a dropped subscription stayed a consumer"),
        }
        drop(consumer); // the forwarder lets go of the queue
        for _ in 0..100 {
            if alive_tasks() == before {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{} tasks outlived the subscription", alive_tasks() - before);
    }
}
