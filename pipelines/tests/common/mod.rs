//! Shared test helpers: synthetic RTP sources (`source`), media checks (`check`) and
//! recorder conveniences.
#![allow(dead_code)] // each test binary uses a different subset

pub mod check;
pub mod source;

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

pub use check::*;
use pipelines::*;
pub use source::*;

pub fn spec(dir: &Path, mode: Mode, format: Format, audio_only: bool) -> RecordingSpec {
    RecordingSpec::new(RecordingRequest {
        mode,
        format,
        quality: Quality::Low,
        layout: Layout::Grid,
        audio_only,
        output_dir: dir.to_path_buf(),
        base_name: "rec".into(),
    })
    .unwrap()
}

/// A participant's generated media, ready to feed.
pub struct Participant {
    pub name: String,
    pub video: Option<RtpTrack>,
    pub audio: RtpTrack,
}

impl Participant {
    pub fn new(index: u32, secs: f64, with_video: bool) -> Self {
        let patterns = ["smpte", "ball", "snow", "pinwheel"];
        Participant {
            name: format!("p{index}"),
            video: with_video.then(|| {
                vp8(320, 240, secs, patterns[index as usize % 4]).with_ssrc(0x1000 + index)
            }),
            audio: opus(secs, 300 + 200 * index).with_ssrc(0x2000 + index),
        }
    }

    /// Adds this participant's inputs and starts feeding them in real time.
    pub async fn join(self, rec: &Recorder) -> Vec<JoinHandle<()>> {
        let mut feeders = Vec::new();
        if let Some(video) = self.video {
            let input = rec
                .add_input(track_spec(
                    &format!("{}-v", self.name),
                    &self.name,
                    TrackKind::Video,
                ))
                .await
                .unwrap();
            feeders.push(feed(input, video));
        }
        let input = rec
            .add_input(track_spec(
                &format!("{}-a", self.name),
                &self.name,
                TrackKind::Audio,
            ))
            .await
            .unwrap();
        feeders.push(feed(input, self.audio));
        feeders
    }
}

/// Waits for feeder threads without blocking the runtime.
pub async fn wait(feeders: Vec<JoinHandle<()>>) {
    tokio::task::spawn_blocking(move || feeders.into_iter().for_each(|f| f.join().unwrap()))
        .await
        .unwrap();
}

pub fn stop_timeout() -> Duration {
    Duration::from_secs(15)
}

/// Stops the recorder and returns the outcome, checking all files have final names.
pub async fn stop(rec: &Recorder) -> Outcome {
    let outcome = rec.stop(stop_timeout()).await.unwrap();
    assert!(outcome.clean, "{outcome:?}");
    for f in &outcome.files {
        assert!(!f.path.to_string_lossy().ends_with(".part"), "{f:?}");
        assert!(f.path.exists() && f.bytes > 0, "{f:?}");
    }
    outcome
}

pub fn file_of<'a>(outcome: &'a Outcome, participant: Option<&str>) -> &'a PathBuf {
    &outcome
        .files
        .iter()
        .find(|f| f.participant.as_deref() == participant)
        .unwrap_or_else(|| panic!("no file for {participant:?}: {outcome:?}"))
        .path
}

/// Starts a recorder for `spec` (panics on error).
/// Adds inputs `v{suffix}` (video) and `a{suffix}` (audio) of `participant`.
pub async fn add_av(rec: &Recorder, participant: &str, suffix: &str) -> (TrackInput, TrackInput) {
    let v = rec
        .add_input(track_spec(
            &format!("v{suffix}"),
            participant,
            TrackKind::Video,
        ))
        .await
        .unwrap();
    let a = rec
        .add_input(track_spec(
            &format!("a{suffix}"),
            participant,
            TrackKind::Audio,
        ))
        .await
        .unwrap();
    (v, a)
}

pub async fn start(spec: RecordingSpec) -> (Recorder, EventStream) {
    init();
    Recorder::start(spec).await.expect("recorder starts")
}

/// Collects every event until `Finished` in the background.
pub fn drain_events(mut events: EventStream) -> tokio::task::JoinHandle<Vec<RecorderEvent>> {
    tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some(e) = events.recv().await {
            let last = matches!(e, RecorderEvent::Finished { .. });
            all.push(e);
            if last {
                break;
            }
        }
        all
    })
}
