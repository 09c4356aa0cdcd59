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
//! for p in &packets {
//!     let _ = video.push_rtp(p); // never blocks; drops are counted
//! }
//! let outcome = recorder.stop(std::time::Duration::from_secs(10)).await?;
//! println!("{:?} {:?}", outcome.files, outcome.duration);
//! # Ok(()) }
//! ```
//!
//! Pipelines are built in two steps: [`plan::plan`] is a pure function from the spec and the
//! current inputs to a [`plan::Plan`]; a thin materializer turns it into elements.
//! Files are written as `<name>.part` and renamed on a clean stop; [`salvage`] turns a `.part`
//! left by a crash into a playable file.

mod build;
mod control;
mod events;
mod input;
pub mod layout;
pub mod plan;
mod recorder;
mod rtp;
mod salvage;
mod spec;
mod stats;

pub use build::BuildError;
pub use events::{EventStream, RecorderEvent, KEYFRAME_INTERVAL};
pub use input::{Dropped, TrackInput};
pub use recorder::{Recorder, RecorderError};
pub use salvage::{salvage, SalvageError};
pub use spec::{
    AudioCodec, Codec, Format, Layout, Mode, Quality, QualitySettings, RecordingRequest,
    RecordingSpec, SpecError, TrackKind, TrackSpec, VideoCodec,
};
pub use stats::{Health, InputStats, Outcome, OutputFile, RecorderState};
