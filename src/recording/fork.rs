//! A fork feeds one published track into a recorder: the track's forwarder pushes into the
//! fork's own bounded queue (never waiting on it), and the fork task hands each packet to the
//! recorder's non-blocking `TrackInput`. The input is created with the first packet, whose
//! payload type it takes, and removed when the queue closes (track ended or fork removed).

use crate::sfu::forwarder::{ConsumerKind, ForwarderHandle};
use crate::sfu::room::PublishedTrack;
use pipelines::{Codec, Recorder, TrackKind, TrackSpec};
use rtc::rtp;
use rtc::shared::marshal::Marshal;
use signaling::protocol::MediaKind;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Packets a fork may hold before the forwarder drops for it (about 1 s of video).
const FORK_QUEUE: usize = 512;

/// A running fork; removing it closes its queue, which ends the input.
pub struct Fork {
    pub forwarder: ForwarderHandle,
    consumer_id: u64,
}

impl Fork {
    /// Starts feeding `track` into `recorder`.
    pub fn start(track: &PublishedTrack, recorder: Arc<Recorder>) -> Fork {
        let (queue, packets) = mpsc::channel(FORK_QUEUE);
        let consumer_id = crate::sfu::next_id();
        let (kind, codec) = match track.info.kind {
            MediaKind::Video => (TrackKind::Video, Codec::Vp8),
            MediaKind::Audio => (TrackKind::Audio, Codec::Opus),
        };
        let spec = TrackSpec {
            id: track.info.track_id.clone(),
            participant: track.publisher.clone(),
            kind,
            codec,
            clock_rate: codec.clock_rate(),
            payload_type: 0, // taken from the first packet
        };
        tokio::spawn(feed(packets, spec, recorder));
        track
            .forwarder
            .add_consumer(consumer_id, queue, ConsumerKind::Recorder);
        Fork {
            forwarder: track.forwarder.clone(),
            consumer_id,
        }
    }

    pub fn remove(&self) {
        self.forwarder.remove_consumer(self.consumer_id);
    }
}

async fn feed(mut packets: mpsc::Receiver<rtp::Packet>, mut spec: TrackSpec, rec: Arc<Recorder>) {
    let Some(first) = packets.recv().await else {
        return;
    };
    spec.payload_type = first.header.payload_type;
    let id = spec.id.clone();
    let input = match rec.add_input(spec).await {
        Ok(input) => input,
        Err(e) => {
            tracing::warn!("recording input {id}: {e}");
            return;
        }
    };
    let mut next = Some(first);
    while let Some(packet) = next {
        match packet.marshal() {
            Ok(bytes) => {
                let _ = input.push_rtp(&bytes); // drops are counted by the input
            }
            Err(e) => tracing::debug!("recording input {id}: cannot marshal RTP: {e}"),
        }
        next = packets.recv().await;
    }
    let _ = rec.remove_input(&id).await;
}
