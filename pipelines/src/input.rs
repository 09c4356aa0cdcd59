//! [`TrackInput`]: the non-blocking handle a forwarder pushes RTP packets into.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::plan::APPSRC_MAX_BYTES;
use crate::rtp;
use crate::spec::TrackSpec;
use crate::stats::{InputStats, RecorderState};

const NO_SSRC: u64 = u64::MAX;
const NO_TIME: u64 = u64::MAX;

/// The recorder's clock and state, shared with every input.
#[derive(Debug)]
pub(crate) struct Timeline {
    pipeline: gst::Pipeline,
    clock: gst::Clock,
    state: AtomicU8,
}

impl Timeline {
    pub(crate) fn new(pipeline: gst::Pipeline, clock: gst::Clock) -> Self {
        Timeline {
            pipeline,
            clock,
            state: AtomicU8::new(RecorderState::Paused as u8),
        }
    }

    pub(crate) fn set_state(&self, state: RecorderState) {
        self.state.store(state as u8, Ordering::Release);
    }

    pub(crate) fn state(&self) -> RecorderState {
        match self.state.load(Ordering::Acquire) {
            s if s == RecorderState::Recording as u8 => RecorderState::Recording,
            s if s == RecorderState::Paused as u8 => RecorderState::Paused,
            s if s == RecorderState::Stopping as u8 => RecorderState::Stopping,
            _ => RecorderState::Finished,
        }
    }

    /// Running time of the pipeline now: arrival time on the one clock all inputs share.
    pub(crate) fn now(&self) -> gst::ClockTime {
        let base = self.pipeline.base_time().unwrap_or(gst::ClockTime::ZERO);
        self.clock.time().saturating_sub(base)
    }
}

/// When a packet arrived, on a recorder's pipeline clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Arrival(pub(crate) gst::ClockTime);

/// Counters updated lock-free by `push_rtp`.
#[derive(Debug, Default)]
struct Counters {
    packets: AtomicU64,
    bytes: AtomicU64,
    full: AtomicU64,
    malformed: AtomicU64,
    payload_type: AtomicU64,
    ssrc: AtomicU64,
    inactive: AtomicU64,
    keyframe_requests: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    spec: TrackSpec,
    appsrc: gst_app::AppSrc,
    /// The branch's `rtpjitterbuffer`, whose statistics count what stayed lost.
    jitterbuffer: gst::Element,
    timeline: Arc<Timeline>,
    ssrc: AtomicU64,
    last_packet: AtomicU64,
    last_keyframe_request: AtomicU64,
    closed: AtomicBool,
    counters: Counters,
}

/// Why [`TrackInput::push_rtp`] did not queue a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// The input queue is full (the pipeline is behind); ask for a keyframe later.
    Full,
    /// Not a valid RTP packet.
    Malformed,
    /// Wrong payload type.
    PayloadType,
    /// Wrong SSRC.
    Ssrc,
    /// The recorder is paused, stopping, or this input was removed.
    Inactive,
}

/// Handle for pushing one track's RTP packets into a recorder. Cheap to clone, `Send + Sync`;
/// every method is non-blocking and safe to call from async tasks.
#[derive(Debug, Clone)]
pub struct TrackInput {
    inner: Arc<Inner>,
}

impl TrackInput {
    pub(crate) fn new(
        spec: TrackSpec,
        appsrc: gst_app::AppSrc,
        jitterbuffer: gst::Element,
        timeline: Arc<Timeline>,
    ) -> Self {
        TrackInput {
            inner: Arc::new(Inner {
                spec,
                appsrc,
                jitterbuffer,
                timeline,
                ssrc: AtomicU64::new(NO_SSRC),
                last_packet: AtomicU64::new(NO_TIME),
                last_keyframe_request: AtomicU64::new(NO_TIME),
                closed: AtomicBool::new(false),
                counters: Counters::default(),
            }),
        }
    }

    /// The input's id.
    pub fn id(&self) -> &str {
        &self.inner.spec.id
    }

    /// The spec this input was added with.
    pub fn spec(&self) -> &TrackSpec {
        &self.inner.spec
    }

    /// Queues one RTP packet that arrives now. Never blocks: invalid packets and packets
    /// that do not fit the bounded queue are dropped and counted. The first valid packet
    /// fixes the SSRC. The packet's memory becomes the buffer's, without a copy.
    pub fn push_rtp<P: AsRef<[u8]> + Send + 'static>(&self, packet: P) -> Result<(), Dropped> {
        self.push_rtp_arrived(packet, Arrival(self.inner.timeline.now()))
    }

    /// Queues one RTP packet that arrived at `arrival` (from [`crate::Recorder::arrival`]),
    /// for a packet that waited before it could be pushed: the jitter buffer maps RTP time
    /// to the pipeline clock from arrival times, and a burst of packets stamped late would
    /// compress the track's start. Otherwise as [`Self::push_rtp`].
    pub fn push_rtp_arrived<P: AsRef<[u8]> + Send + 'static>(
        &self,
        packet: P,
        arrival: Arrival,
    ) -> Result<(), Dropped> {
        let result = self.try_push(packet, arrival.0);
        if let Err(reason) = result {
            self.counter(reason).fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn try_push<P: AsRef<[u8]> + Send + 'static>(
        &self,
        packet: P,
        now: gst::ClockTime,
    ) -> Result<(), Dropped> {
        let inner = &self.inner;
        if inner.closed.load(Ordering::Acquire)
            || inner.timeline.state() != RecorderState::Recording
        {
            return Err(Dropped::Inactive);
        }
        let header = rtp::parse(packet.as_ref()).map_err(|_| Dropped::Malformed)?;
        if header.payload_type != inner.spec.payload_type {
            return Err(Dropped::PayloadType);
        }
        let ssrc = u64::from(header.ssrc);
        match inner
            .ssrc
            .compare_exchange(NO_SSRC, ssrc, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {}
            Err(locked) if locked == ssrc => {}
            Err(_) => return Err(Dropped::Ssrc),
        }
        if inner.appsrc.current_level_bytes() >= APPSRC_MAX_BYTES {
            return Err(Dropped::Full);
        }
        let len = packet.as_ref().len() as u64;
        let mut buffer = gst::Buffer::from_slice(packet);
        {
            let b = buffer.get_mut().expect("new buffer is writable");
            b.set_pts(now);
            b.set_dts(now);
        }
        inner
            .appsrc
            .push_buffer(buffer)
            .map_err(|_| Dropped::Inactive)?;
        inner.last_packet.store(now.nseconds(), Ordering::Relaxed);
        inner.counters.packets.fetch_add(1, Ordering::Relaxed);
        inner.counters.bytes.fetch_add(len, Ordering::Relaxed);
        Ok(())
    }

    fn counter(&self, reason: Dropped) -> &AtomicU64 {
        let c = &self.inner.counters;
        match reason {
            Dropped::Full => &c.full,
            Dropped::Malformed => &c.malformed,
            Dropped::PayloadType => &c.payload_type,
            Dropped::Ssrc => &c.ssrc,
            Dropped::Inactive => &c.inactive,
        }
    }

    /// A snapshot of this input's counters.
    pub fn stats(&self) -> InputStats {
        let c = &self.inner.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let last = load(&self.inner.last_packet);
        let now = self.inner.timeline.now().nseconds();
        InputStats {
            id: self.inner.spec.id.clone(),
            participant: self.inner.spec.participant.clone(),
            kind: self.inner.spec.kind,
            packets: load(&c.packets),
            bytes: load(&c.bytes),
            dropped_full: load(&c.full),
            dropped_malformed: load(&c.malformed),
            dropped_payload_type: load(&c.payload_type),
            dropped_ssrc: load(&c.ssrc),
            dropped_inactive: load(&c.inactive),
            keyframe_requests: load(&c.keyframe_requests),
            lost: self.lost(),
            last_packet_age: (last != NO_TIME)
                .then(|| Duration::from_nanos(now.saturating_sub(last))),
        }
    }

    /// Packets the jitter buffer gave up on: missing when their deadline passed, neither
    /// received nor retransmitted within its latency.
    fn lost(&self) -> u64 {
        let stats = self.inner.jitterbuffer.property::<gst::Structure>("stats");
        stats.get::<u64>("num-lost").unwrap_or(0)
    }

    /// Rate limiter for keyframe requests: true (and counted) if one may be sent now.
    pub(crate) fn keyframe_request_due(&self) -> bool {
        let now = self.inner.timeline.clock.time().nseconds();
        let last = self.inner.last_keyframe_request.load(Ordering::Relaxed);
        let interval = crate::events::KEYFRAME_INTERVAL.as_nanos() as u64;
        if last != NO_TIME && now.saturating_sub(last) < interval {
            return false;
        }
        self.inner
            .last_keyframe_request
            .store(now, Ordering::Relaxed);
        self.inner
            .counters
            .keyframe_requests
            .fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Stops accepting packets and sends end-of-stream into the branch.
    pub(crate) fn close(&self) {
        if !self.inner.closed.swap(true, Ordering::AcqRel) {
            let _ = self.inner.appsrc.end_of_stream();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shareable<T: Send + Sync + Clone + 'static>() {}
    fn sendable<T: Send + Sync + 'static>() {}

    #[test]
    fn handles_can_move_to_forwarder_tasks() {
        shareable::<TrackInput>();
        sendable::<crate::Recorder>();
        sendable::<crate::EventStream>();
    }
}
