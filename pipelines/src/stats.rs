//! Counters and results reported by the recorder.

use std::path::PathBuf;
use std::time::Duration;

use crate::spec::TrackKind;

/// Per-input counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputStats {
    /// Input id.
    pub id: String,
    /// Participant.
    pub participant: String,
    /// Audio or video.
    pub kind: TrackKind,
    /// Packets handed to the pipeline.
    pub packets: u64,
    /// Bytes handed to the pipeline.
    pub bytes: u64,
    /// Dropped because the input queue was full.
    pub dropped_full: u64,
    /// Dropped: not a valid RTP packet.
    pub dropped_malformed: u64,
    /// Dropped: wrong payload type.
    pub dropped_payload_type: u64,
    /// Dropped: SSRC differs from the first valid packet's.
    pub dropped_ssrc: u64,
    /// Dropped while paused, stopping or after removal.
    pub dropped_inactive: u64,
    /// Keyframe requests emitted for this input.
    pub keyframe_requests: u64,
    /// Packets that never arrived in time: lost on the way and not recovered by a
    /// retransmission within the jitter buffer's latency. Not part of [`Self::dropped`].
    pub lost: u64,
    /// Time since the last accepted packet (`None`: none yet).
    pub last_packet_age: Option<Duration>,
}

impl InputStats {
    /// All dropped packets.
    pub fn dropped(&self) -> u64 {
        self.dropped_full
            + self.dropped_malformed
            + self.dropped_payload_type
            + self.dropped_ssrc
            + self.dropped_inactive
    }
}

/// A file written by the recorder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// Final path (after `stop`) or the `.part` path (while recording).
    pub path: PathBuf,
    /// Participant of a tracks-mode file; `None` for composite.
    pub participant: Option<String>,
    /// Where the file's time zero lies on the recording timeline (tracks mode: when the
    /// participant's first track was added; composite: zero).
    pub start_offset: Duration,
    /// Size in bytes.
    pub bytes: u64,
}

/// What a finished recording produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Every file, final names.
    pub files: Vec<OutputFile>,
    /// Length of the media the files hold: from the first buffer given to a file's muxer to
    /// the end of its last one, plus the file's start offset, the latest over all files
    /// (paused time excluded). Shorter than the timeline when the pipeline fell behind (a
    /// stop that timed out keeps only what was muxed) or, in tracks mode, the inputs ended
    /// before the stop.
    pub duration: Duration,
    /// Total bytes of all files.
    pub bytes: u64,
    /// Counters of every input that was ever added.
    pub inputs: Vec<InputStats>,
    /// `false` if end-of-stream did not arrive within the stop timeout and the pipeline was
    /// torn down (files are still decodable, possibly without an index).
    pub clean: bool,
}

/// Lifecycle of a recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecorderState {
    /// Recording.
    Recording,
    /// Paused: input is dropped and the timeline does not advance.
    Paused,
    /// Stopping: waiting for end-of-stream.
    Stopping,
    /// Finished, cancelled or failed.
    Finished,
}

/// A cheap snapshot for monitoring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Lifecycle state.
    pub state: RecorderState,
    /// Recording timeline position (paused time excluded).
    pub position: Duration,
    /// Media the files hold so far, as [`Outcome::duration`] measures it (it trails the
    /// position by the inputs' latency, and more when the pipeline falls behind).
    pub media: Duration,
    /// Current inputs.
    pub inputs: Vec<InputStats>,
    /// Files being written.
    pub files: Vec<OutputFile>,
    /// Bytes written so far.
    pub bytes_written: u64,
    /// Errors and warnings seen so far (most recent last, at most 16).
    pub errors: Vec<String>,
}
