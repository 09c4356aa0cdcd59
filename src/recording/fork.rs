//! A fork feeds one published track into a recorder: the track's forwarder pushes into the
//! fork's own bounded queue (never waiting on it), and the fork task hands each packet to the
//! recorder's non-blocking `TrackInput`. The input is created with the first packet, whose
//! payload type it takes, and removed when the queue closes (track ended or fork removed).
//! Every packet goes in with the time the fork took it from its queue (its arrival).

use crate::sfu::forwarder::{ConsumerQueue, ForwarderHandle};
use crate::sfu::room::PublishedTrack;
use bytes::Bytes;
use pipelines::{Codec, Recorder, TrackKind, TrackSpec};
use rtc::rtp;
use rtc::shared::marshal::Unmarshal;
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
            .add_consumer(consumer_id, ConsumerQueue::Recorder(queue));
        Fork {
            forwarder: track.forwarder.clone(),
            consumer_id,
        }
    }

    pub fn remove(&self) {
        self.forwarder.remove_consumer(self.consumer_id);
    }
}

/// Reads the forwarder's wire bytes of each packet; the payload type is the first packet's.
async fn feed(mut packets: mpsc::Receiver<Bytes>, mut spec: TrackSpec, rec: Arc<Recorder>) {
    let Some(first) = packets.recv().await else {
        return;
    };
    let arrived = rec.arrival();
    let id = spec.id.clone();
    match rtp::header::Header::unmarshal(&mut first.as_ref()) {
        Ok(header) => spec.payload_type = header.payload_type,
        Err(e) => {
            tracing::warn!("recording input {id}: first packet: {e}");
            return;
        }
    }
    // Building the input takes a while; what arrives meanwhile keeps its arrival time, so the
    // input's first packets do not reach its jitter buffer as one late burst.
    let mut waiting = vec![(arrived, first)];
    let adding = rec.add_input(spec);
    tokio::pin!(adding);
    let mut open = true;
    let added = loop {
        tokio::select! {
            added = &mut adding => break added,
            packet = packets.recv(), if open && waiting.len() < FORK_QUEUE => match packet {
                Some(packet) => waiting.push((rec.arrival(), packet)),
                None => open = false,
            },
        }
    };
    let input = match added {
        Ok(input) => input,
        Err(e) => {
            tracing::warn!("recording input {id}: {e}");
            return;
        }
    };
    // Drops are counted by the input.
    for (arrival, packet) in waiting {
        let _ = input.push_rtp_arrived(packet, arrival);
    }
    while let Some(packet) = packets.recv().await {
        let _ = input.push_rtp_arrived(packet, rec.arrival());
    }
    let _ = rec.remove_input(&id).await;
}
