//! GStreamer recording pipelines: RTP packets in, media files out, in real time.
//!
//! This crate knows RTP and files, not WebRTC or HTTP. The server describes a recording with a
//! validated [`RecordingSpec`], starts a [`Recorder`], adds one [`TrackInput`] per published
//! track and pushes RTP packets into it from its forwarder tasks.
//!
//! ```no_run
//! # async fn demo(packets: Vec<Vec<u8>>) -> Result<(), pipelines::RecorderError> {
//! use pipelines::*;
//! let spec = RecordingSpec::new(RecordingRequest {
//!     mode: Mode::Composite,
//!     format: Format::Webm,
//!     quality: Quality::Low,
//!     layout: Layout::Grid,
//!     audio_only: false,
//!     output_dir: "/var/spool/capstan".into(),
//!     base_name: "rec-42".into(),
//! })?;
//! let (recorder, mut events) = Recorder::start(spec).await?;
//! let video = recorder
//!     .add_input(TrackSpec {
//!         id: "alice-cam".into(),
//!         participant: "alice".into(),
//!         kind: TrackKind::Video,
//!         codec: Codec::Vp8,
//!         clock_rate: 90_000,
//!         payload_type: 96,
//!     })
//!     .await?;
//! tokio::spawn(async move {
//!     while let Some(RecorderEvent::KeyframeNeeded { input }) = events.recv().await {
//!         // send a PLI to the publisher of `input`
//!         let _ = input;
//!     }
//! });
//! for p in packets {
//!     let _ = video.push_rtp(p); // never blocks, does not copy; drops are counted
//! }
//! let outcome = recorder.stop(std::time::Duration::from_secs(10)).await?;
//! println!("{:?} {:?}", outcome.files, outcome.duration);
//! # Ok(()) }
//! ```
//!
//! Pipelines are built in two steps: [`plan::plan`] is a pure function from the spec and the
//! current inputs to a [`plan::Plan`]; a thin materializer turns it into elements.
//!
//! # Behaviour
//! - **Timeline.** Every packet is timestamped with its arrival time on the pipeline clock
//!   (running time), so late joiners line up and audio stays in sync with video. Pausing sets
//!   the pipeline to PAUSED: paused time is cut out, and packets pushed meanwhile are dropped.
//! - **Tracks mode** (`webm`/`mkv`): `rtpjitterbuffer ! depay [! opusparse] ! queue ! mux` per
//!   input, one file per participant (`<base>_<participant>.<ext>`), no decoding. A file's time
//!   zero is when its participant's first track was added ([`OutputFile::start_offset`]). A
//!   track added after that file started writing opens `<base>_<participant>_<n>.<ext>`.
//!   VP8 size changes are written through (the header keeps the first size; decoders follow).
//! - **Composite mode**: one VP8 decode per video input, labelled with the participant's name
//!   (`textoverlay`), into a `compositor` (grid or speaker layout, aspect ratio kept, tile
//!   blanked after 1 s without frames); Opus decoded into an
//!   `audiomixer`. Live black/silence sources keep time with zero inputs. webm: VP8 + Opus;
//!   mkv: H.264 + Opus; mp4: H.264 + AAC. MP4 is fragmented (1 s fragments).
//! - **Keyframes.** Video is dropped until a keyframe; the depayloader's upstream
//!   force-key-unit requests, plus joins and resumes, become [`RecorderEvent::KeyframeNeeded`]
//!   (at most one per input per [`KEYFRAME_INTERVAL`]).
//! - **Crash safety.** Files are written as `<name>.part` and renamed on a clean stop. After a
//!   crash the `.part` plays up to its last second or so; [`salvage`] remuxes it into the final
//!   name with an index and correct duration.
//! - **Bounded memory.** Each input's appsrc holds at most [`plan::APPSRC_MAX_BYTES`] (further
//!   packets are dropped and counted), and every queue is bounded by time.
//! - **Garbage.** Packets that are not RTP v2, have the wrong payload type, or another SSRC than
//!   the input's first valid packet are dropped and counted ([`InputStats`]).
//! - **Threads.** Each recorder has one control thread that owns the pipeline; streaming
//!   threads only send messages to it. [`TrackInput::push_rtp`] runs on the caller's thread and
//!   never blocks.

mod build;
mod control;
pub mod crypt;
mod events;
mod examine;
mod input;
pub mod layout;
pub mod plan;
mod recorder;
mod rtp;
mod salvage;
mod shared;
mod spec;
mod stats;

pub use build::{check_plugins, BuildError};
pub use events::{EventStream, RecorderEvent, KEYFRAME_INTERVAL};
pub use examine::{examine, ExamineError, Examined};
pub use input::{Arrival, Dropped, TrackInput};
pub use recorder::{Recorder, RecorderError};
pub use salvage::{salvage, SalvageError};
pub use spec::{
    AudioCodec, Codec, Format, Layout, Mode, Quality, QualitySettings, RecordingRequest,
    RecordingSpec, SpecError, TrackKind, TrackSpec, VideoCodec,
};
pub use stats::{Health, InputStats, Outcome, OutputFile, RecorderState};
