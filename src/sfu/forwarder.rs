//! One task per published track: reads the publisher's RTP and fans it out to every consumer
//! through that consumer's own bounded queue. A full queue drops (counted) and asks the
//! publisher for a keyframe; the forwarder never waits on a consumer. Each sequence number is
//! forwarded once: a copy of a packet already forwarded (a late retransmission, or an old packet
//! a publisher resends on its RTX stream as a bandwidth probe) is dropped, counted. A consumer
//! starts at a fresh packet and never gets one from before its start. Subscribers get the
//! packet (its payload shared, not copied); recorders get its wire bytes, serialized once per
//! packet for all of them.

use crate::metrics::METRICS;
use bytes::Bytes;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp;
use rtc::shared::marshal::Marshal;
use signaling::protocol::MediaKind;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

/// Minimum spacing of PLIs sent to one publisher track.
const PLI_INTERVAL: Duration = Duration::from_millis(500);
/// How often the loudest audio level of the window is reported to the room.
const LEVEL_REPORT_INTERVAL: Duration = Duration::from_millis(250);
/// Sequence numbers behind the newest that [`SeenWindow`] remembers.
const SEEN_WINDOW: u16 = 1024;

/// A consumer's queue of outgoing packets; drops are counted separately for each kind.
pub enum ConsumerQueue {
    /// A subscriber's writer, which rewrites the header for its connection.
    Subscriber(mpsc::Sender<rtp::Packet>),
    /// A recorder's fork, which takes the packet as it is on the wire.
    Recorder(mpsc::Sender<Bytes>),
}

impl ConsumerQueue {
    fn is_closed(&self) -> bool {
        match self {
            ConsumerQueue::Subscriber(q) => q.is_closed(),
            ConsumerQueue::Recorder(q) => q.is_closed(),
        }
    }
}

pub(super) struct Consumer {
    pub(super) id: u64,
    queue: ConsumerQueue,
    /// Where it started: see [`StreamStart`].
    start: StreamStart,
}

/// Why a packet did not reach a consumer.
enum Missed {
    Full,
    Closed,
}

impl<T> From<mpsc::error::TrySendError<T>> for Missed {
    fn from(e: mpsc::error::TrySendError<T>) -> Self {
        match e {
            mpsc::error::TrySendError::Full(_) => Missed::Full,
            mpsc::error::TrySendError::Closed(_) => Missed::Closed,
        }
    }
}

pub(super) enum Command {
    AddConsumer(Consumer),
    RemoveConsumer(u64),
    RequestKeyframe,
}

/// Cheap, cloneable control handle of a forwarder.
#[derive(Clone)]
pub struct ForwarderHandle {
    commands: mpsc::UnboundedSender<Command>,
}

impl ForwarderHandle {
    /// Adds a consumer; it asks for a keyframe with [`Self::request_keyframe`] once it can
    /// deliver one (a subscriber only after its connection is up).
    pub fn add_consumer(&self, id: u64, queue: ConsumerQueue) {
        let _ = self.commands.send(Command::AddConsumer(Consumer {
            id,
            queue,
            start: StreamStart::default(),
        }));
    }

    pub fn remove_consumer(&self, id: u64) {
        let _ = self.commands.send(Command::RemoveConsumer(id));
    }

    /// Asks the publisher for a keyframe (ignored for audio). Requests within
    /// [`PLI_INTERVAL`] of the last PLI are coalesced into one PLI at the interval's end.
    pub fn request_keyframe(&self) {
        let _ = self.commands.send(Command::RequestKeyframe);
    }
}

/// A handle whose commands the test reads instead of a forwarder task.
#[cfg(test)]
pub(super) fn test_handle() -> (ForwarderHandle, mpsc::UnboundedReceiver<Command>) {
    let (commands, rx) = mpsc::unbounded_channel();
    (ForwarderHandle { commands }, rx)
}

/// Where the loudest RFC 6464 level of each reporting window goes (0 loudest .. 127 silence).
pub type LevelSink = Box<dyn Fn(u8) + Send>;

/// What the forwarder needs to know about its track.
pub struct ForwarderSpec {
    pub kind: MediaKind,
    /// RFC 6464 extension id negotiated with the publisher, and where its levels go.
    pub audio_levels: Option<(u8, LevelSink)>,
}

/// Starts forwarding `track`; the task ends when the track ends.
pub fn spawn(track: Arc<dyn TrackRemote>, spec: ForwarderSpec) -> ForwarderHandle {
    let (commands, rx) = mpsc::unbounded_channel();
    tokio::spawn(Forwarder::new(track, spec).run(rx));
    ForwarderHandle { commands }
}

struct Forwarder {
    track: Arc<dyn TrackRemote>,
    spec: ForwarderSpec,
    consumers: Vec<Consumer>,
    media_ssrc: Option<u32>,
    seen: SeenWindow,
    plis: PliGate,
    level: LevelWindow,
}

impl Forwarder {
    fn new(track: Arc<dyn TrackRemote>, spec: ForwarderSpec) -> Self {
        Self {
            track,
            spec,
            consumers: Vec::new(),
            media_ssrc: None,
            seen: SeenWindow::default(),
            plis: PliGate::default(),
            level: LevelWindow::default(),
        }
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        METRICS.published_tracks.inc();
        loop {
            tokio::select! {
                event = self.track.poll() => match event {
                    Some(TrackRemoteEvent::OnRtpPacket(packet)) => self.forward(packet).await,
                    None => break, // OnEnded may precede queued packets: read to the end
                    Some(_) => {}
                },
                command = commands.recv() => match command {
                    Some(command) => self.handle(command).await,
                    None => break,
                },
                _ = sleep_until(self.plis.due()), if self.plis.due().is_some() => {
                    if self.plis.fire(Instant::now()) {
                        self.send_pli().await;
                    }
                }
            }
        }
        METRICS.published_tracks.dec();
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::AddConsumer(consumer) => self.consumers.push(consumer),
            Command::RemoveConsumer(id) => self.consumers.retain(|c| c.id != id),
            Command::RequestKeyframe => self.request_keyframe().await,
        }
    }

    async fn forward(&mut self, mut packet: rtp::Packet) {
        let admitted = match self
            .seen
            .admit(packet.header.ssrc, packet.header.sequence_number)
        {
            Ok(admitted) => admitted,
            Err(reason) => {
                METRICS.drop_packet(reason);
                return;
            }
        };
        self.media_ssrc = Some(packet.header.ssrc);
        self.observe_level(&packet);
        strip_extensions(&mut packet.header);
        let mut wire = None; // the wire bytes, serialized for the first recorder
        let mut lost_consumer = false;
        let mut need_keyframe = false;
        let (ssrc, seq) = (packet.header.ssrc, packet.header.sequence_number);
        for consumer in &mut self.consumers {
            if !consumer.start.admits(ssrc, seq, admitted) {
                continue;
            }
            let sent = match &consumer.queue {
                ConsumerQueue::Subscriber(q) => q.try_send(packet.clone()).map_err(Missed::from),
                ConsumerQueue::Recorder(q) => {
                    match wire.get_or_insert_with(|| packet.marshal().map(|b| b.freeze())) {
                        Ok(bytes) => q.try_send(bytes.clone()).map_err(Missed::from),
                        Err(e) => {
                            tracing::debug!("cannot serialize RTP for a recorder: {e}");
                            continue;
                        }
                    }
                }
            };
            match sent {
                Ok(()) => {}
                Err(Missed::Full) => {
                    match consumer.queue {
                        ConsumerQueue::Subscriber(_) => {
                            METRICS.drop_packet("subscriber_queue_full")
                        }
                        ConsumerQueue::Recorder(_) => METRICS.recorder_drop("fork_queue_full", 1),
                    }
                    need_keyframe = true;
                }
                Err(Missed::Closed) => lost_consumer = true,
            }
        }
        if lost_consumer {
            self.consumers.retain(|c| !c.queue.is_closed());
        }
        if need_keyframe {
            self.request_keyframe().await;
        }
    }

    fn observe_level(&mut self, packet: &rtp::Packet) {
        let Some((ext_id, sink)) = &self.spec.audio_levels else {
            return;
        };
        let Some(level) = packet
            .header
            .get_extension(*ext_id)
            .and_then(|b| b.first().copied())
        else {
            return;
        };
        if let Some(loudest) = self.level.observe(level & 0x7f, Instant::now()) {
            sink(loudest);
        }
    }

    async fn request_keyframe(&mut self) {
        if self.spec.kind != MediaKind::Video || self.media_ssrc.is_none() {
            return;
        }
        if self.plis.request(Instant::now()) {
            self.send_pli().await;
        }
    }

    async fn send_pli(&mut self) {
        let Some(media_ssrc) = self.media_ssrc else {
            return;
        };
        METRICS.keyframe_requests.inc();
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        };
        let _ = self.track.write_rtcp(vec![Box::new(pli)]).await;
    }
}

/// Sleeps until `due` (forever when `None`; the `select!` guard keeps it from being polled).
async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await,
        None => std::future::pending().await,
    }
}

/// Keyframe requests of one publisher track, coalesced: at most one PLI per
/// [`PLI_INTERVAL`]; requests inside the interval are answered by one PLI when it ends.
#[derive(Default)]
struct PliGate {
    last: Option<Instant>,
    pending: bool,
}

impl PliGate {
    /// A consumer asks for a keyframe at `now`: true when a PLI goes out now.
    fn request(&mut self, now: Instant) -> bool {
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < PLI_INTERVAL)
        {
            self.pending = true;
            return false;
        }
        self.last = Some(now);
        self.pending = false;
        true
    }

    /// When the coalesced PLI is due, if one is waiting.
    fn due(&self) -> Option<Instant> {
        self.pending
            .then(|| self.last.map(|t| t + PLI_INTERVAL))
            .flatten()
    }

    /// The interval ended at `now`: true when the waiting PLI goes out.
    fn fire(&mut self, now: Instant) -> bool {
        self.due().is_some_and(|due| now >= due) && self.request(now)
    }
}

/// Where a consumer's stream starts: at the first newest packet after it joined, never at a
/// repair of an older one, and nothing older than that start follows. A retransmission as
/// the first packet, or one of a packet from before the start, would give the recorder's
/// jitter buffer a first packet that arrived late, and it maps the track's RTP time to its
/// clock from the first packet (the start of the track was compressed by up to 200 ms).
#[derive(Clone, Copy, Debug, Default)]
struct StreamStart(Option<(u32, u16)>);

impl StreamStart {
    /// Whether the consumer gets packet `seq` of `ssrc`, [`Admitted`] as `admitted`.
    fn admits(&mut self, ssrc: u32, seq: u16, admitted: Admitted) -> bool {
        match self.0 {
            Some((started, first)) if started == ssrc => {
                let offset = seq.wrapping_sub(first);
                if offset >= 0x8000 {
                    return false; // older than the start
                }
                if offset > 0x4000 {
                    // Far past the start: keep it within half the sequence space behind, so
                    // that "older" stays well defined across the wrap.
                    self.0 = Some((ssrc, seq.wrapping_sub(0x4000)));
                }
                true
            }
            _ if admitted == Admitted::Newest => {
                self.0 = Some((ssrc, seq));
                true
            }
            _ => false,
        }
    }
}

/// How a packet [`SeenWindow::admit`]ted relates to the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Admitted {
    /// Newer than every packet before: the stream moves on.
    Newest,
    /// Fills a gap behind the newest: a retransmission, or a packet that was overtaken.
    Repair,
}

/// The sequence numbers of one stream seen within [`SEEN_WINDOW`] of the newest.
struct SeenWindow {
    ssrc: Option<u32>,
    newest: u16,
    bits: [u64; SEEN_WINDOW as usize / 64],
}

impl Default for SeenWindow {
    fn default() -> Self {
        Self {
            ssrc: None,
            newest: 0,
            bits: [0; SEEN_WINDOW as usize / 64],
        }
    }
}

impl SeenWindow {
    /// Records `seq` of `ssrc`; `Err` with the drop reason when it was seen already
    /// (`duplicate`) or is too far behind the newest to tell (`late`). A new SSRC starts afresh.
    fn admit(&mut self, ssrc: u32, seq: u16) -> Result<Admitted, &'static str> {
        if self.ssrc != Some(ssrc) {
            *self = Self {
                ssrc: Some(ssrc),
                newest: seq,
                ..Self::default()
            };
            self.mark(seq, true);
            return Ok(Admitted::Newest);
        }
        let ahead = seq.wrapping_sub(self.newest);
        if ahead != 0 && ahead < 0x8000 {
            for skipped in 1..ahead.min(SEEN_WINDOW) {
                self.mark(seq.wrapping_sub(skipped), false);
            }
            self.newest = seq;
            self.mark(seq, true);
            return Ok(Admitted::Newest);
        }
        if self.newest.wrapping_sub(seq) >= SEEN_WINDOW {
            return Err("late");
        }
        if self.mark(seq, true) {
            return Err("duplicate");
        }
        Ok(Admitted::Repair)
    }

    /// Sets whether `seq` was seen; returns whether it was before.
    fn mark(&mut self, seq: u16, seen: bool) -> bool {
        let slot = usize::from(seq % SEEN_WINDOW);
        let (word, bit) = (slot / 64, 1u64 << (slot % 64));
        let was = self.bits[word] & bit != 0;
        if seen {
            self.bits[word] |= bit;
        } else {
            self.bits[word] &= !bit;
        }
        was
    }
}

/// Removes every header extension: ids are negotiated per connection, so forwarding them
/// unchanged would mislabel them (and webrtc-rs drops packets with unknown extensions).
fn strip_extensions(header: &mut rtp::header::Header) {
    header.extension = false;
    header.extension_profile = 0;
    header.extensions.clear();
    header.extensions_padding = 0;
}

/// The loudest (lowest dBov) RFC 6464 level seen in the current reporting window.
#[derive(Default)]
struct LevelWindow {
    started: Option<Instant>,
    loudest: Option<u8>,
}

impl LevelWindow {
    /// Records a level (0 = loudest, 127 = silence); returns the window's loudest level when
    /// the window closes.
    fn observe(&mut self, level: u8, now: Instant) -> Option<u8> {
        let started = *self.started.get_or_insert(now);
        self.loudest = Some(self.loudest.map_or(level, |l| l.min(level)));
        if now.duration_since(started) < LEVEL_REPORT_INTERVAL {
            return None;
        }
        self.started = None;
        self.loudest.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_window_reports_loudest_once_per_interval() {
        let mut w = LevelWindow::default();
        let t0 = Instant::now();
        assert_eq!(w.observe(60, t0), None);
        assert_eq!(w.observe(30, t0 + Duration::from_millis(100)), None);
        assert_eq!(w.observe(90, t0 + LEVEL_REPORT_INTERVAL), Some(30));
        assert_eq!(w.observe(127, t0 + LEVEL_REPORT_INTERVAL * 2), None);
    }

    #[test]
    fn pli_gate_sends_one_pli_per_interval_and_coalesces_the_rest() {
        let mut g = PliGate::default();
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        assert!(g.request(t0), "the first request is sent at once");
        assert_eq!(g.due(), None);
        assert!(!g.request(ms(100)));
        assert!(!g.request(ms(300)), "three requests in one interval ...");
        assert_eq!(g.due(), Some(ms(500)), "... become one PLI when it ends");
        assert!(!g.fire(ms(499)));
        assert!(g.fire(ms(500)));
        assert_eq!(g.due(), None, "nothing is waiting any more");
        assert!(!g.fire(ms(1200)));
        assert!(
            g.request(ms(1000)),
            "a request after the interval goes at once"
        );
        assert!(!g.request(ms(1499)));
        assert!(g.fire(ms(1500)));
    }

    #[test]
    fn a_consumer_starts_at_a_newest_packet_and_gets_nothing_older() {
        let mut start = StreamStart::default();
        assert!(
            !start.admits(7, 100, Admitted::Repair),
            "not a repair first"
        );
        assert!(start.admits(7, 103, Admitted::Newest));
        assert!(
            !start.admits(7, 101, Admitted::Repair),
            "older than the start"
        );
        assert!(start.admits(7, 105, Admitted::Newest));
        assert!(
            start.admits(7, 104, Admitted::Repair),
            "a gap after the start"
        );
        for seq in (106..=u16::MAX).chain(0..=3) {
            assert!(
                start.admits(7, seq, Admitted::Newest),
                "{seq}, across the wrap"
            );
        }
        assert!(start.admits(7, 2, Admitted::Repair));
        assert!(
            !start.admits(9, 50, Admitted::Repair),
            "a new SSRC starts anew"
        );
        assert!(start.admits(9, 51, Admitted::Newest));
        assert!(!start.admits(9, 50, Admitted::Repair));
    }

    #[test]
    fn seen_window_admits_each_sequence_number_once() {
        let mut w = SeenWindow::default();
        assert_eq!(w.admit(7, 65_534), Ok(Admitted::Newest));
        assert_eq!(
            w.admit(7, 1),
            Ok(Admitted::Newest),
            "across the wrap, 65535 and 0 missing"
        );
        assert_eq!(w.admit(7, 1), Err("duplicate"));
        assert_eq!(
            w.admit(7, 65_535),
            Ok(Admitted::Repair),
            "a gap filled late"
        );
        assert_eq!(w.admit(7, 0), Ok(Admitted::Repair));
        assert_eq!(w.admit(7, 0), Err("duplicate"));
        assert_eq!(w.admit(7, 65_534), Err("duplicate"));
        assert_eq!(
            w.admit(7, 1 + SEEN_WINDOW),
            Ok(Admitted::Newest),
            "a jump ahead"
        );
        assert_eq!(w.admit(7, 1), Err("late"));
        assert_eq!(
            w.admit(7, 2),
            Ok(Admitted::Repair),
            "skipped over, not seen"
        );
        assert_eq!(
            w.admit(8, 1),
            Ok(Admitted::Newest),
            "another SSRC starts afresh"
        );
        assert_eq!(w.admit(8, 1), Err("duplicate"));
        assert_eq!(w.admit(8, 2 + SEEN_WINDOW), Ok(Admitted::Newest));
        assert_eq!(
            w.admit(8, 3),
            Ok(Admitted::Repair),
            "a jump clears the whole window"
        );
    }

    #[test]
    fn stripping_clears_extensions() {
        let mut h = rtp::header::Header::default();
        h.set_extension(1, bytes::Bytes::from_static(&[0x80]))
            .unwrap();
        assert!(h.extension);
        strip_extensions(&mut h);
        assert!(!h.extension && h.extensions.is_empty());
        assert_eq!(h.get_extension(1), None);
    }
}
