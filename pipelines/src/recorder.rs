//! [`Recorder`]: the async handle the server uses. All GStreamer work runs on one dedicated
//! control thread per recorder; methods send it a command and await the reply.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::build::BuildError;
use crate::control::{self, Command, Msg};
use crate::events::EventStream;
use crate::input::{Arrival, TrackInput};
use crate::shared::{lock, Shared};
use crate::spec::{RecordingSpec, SpecError, TrackSpec};
use crate::stats::{Health, Outcome, RecorderState};

/// Why a recorder operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecorderError {
    /// The track spec is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// GStreamer could not build the pipeline (e.g. a plugin is missing).
    #[error(transparent)]
    Build(#[from] BuildError),
    /// GStreamer failed to initialise or change state.
    #[error("gstreamer: {0}")]
    Gstreamer(String),
    /// The output directory is not writable.
    #[error("output directory: {0}")]
    Io(String),
    /// An input with this id is already present.
    #[error("input {0:?} already exists")]
    DuplicateInput(String),
    /// No input with this id.
    #[error("no input {0:?}")]
    UnknownInput(String),
    /// The recording does not take this kind of track (video in an audio-only recording).
    #[error("input {0:?} is not recorded by this spec (video in an audio-only recording)")]
    NotRecorded(String),
    /// The operation is not allowed in the current state (e.g. pause while paused).
    #[error("not allowed while {0:?}")]
    State(RecorderState),
    /// The pipeline failed; files are left as `.part` (see [`crate::salvage`]).
    #[error("pipeline error: {0}")]
    Pipeline(String),
    /// The recorder has already finished.
    #[error("recorder has finished")]
    Finished,
}

/// A running recording: RTP in through [`TrackInput`]s, files out.
///
/// Every async method only sends a command to the recorder's own control thread and awaits
/// its reply, so it is safe on any tokio runtime (it never blocks a worker thread).
/// Dropping a `Recorder` without [`stop`](Recorder::stop) or [`cancel`](Recorder::cancel)
/// stops it in the background (5 s timeout) and keeps its files.
#[derive(Debug)]
pub struct Recorder {
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
}

impl Recorder {
    /// Builds the pipeline, starts it and returns the handle plus its event stream.
    /// Composite recordings start producing black video and silence at once.
    pub async fn start(spec: RecordingSpec) -> Result<(Recorder, EventStream), RecorderError> {
        let (reply_tx, reply_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("capstan-recorder".into())
            .spawn(move || control::run(spec, reply_tx))
            .map_err(|e| RecorderError::Gstreamer(format!("spawn control thread: {e}")))?;
        let (tx, shared, events) = reply_rx.await.map_err(|_| RecorderError::Finished)??;
        Ok((Recorder { tx, shared }, events))
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(control::Reply<T>) -> Command,
    ) -> Result<T, RecorderError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Cmd(make(reply)))
            .map_err(|_| RecorderError::Finished)?;
        rx.await.map_err(|_| RecorderError::Finished)?
    }

    /// Now on this recorder's clock: a packet's arrival, for [`TrackInput::push_rtp_arrived`].
    pub fn arrival(&self) -> Arrival {
        Arrival(self.shared.timeline.now())
    }

    /// Adds an input. Video inputs trigger a [`crate::RecorderEvent::KeyframeNeeded`] at once.
    /// Tracks mode: the input joins its participant's file, or opens a new file
    /// (`<base>_<participant>_<n>`) if that file already started writing.
    pub async fn add_input(&self, spec: TrackSpec) -> Result<TrackInput, RecorderError> {
        spec.validate()?;
        self.call(|r| Command::Add(spec, r)).await
    }

    /// Ends an input: drains its branch and removes it (composite: the tile disappears and the
    /// grid re-flows; tracks: the participant's file is finished when its last track leaves).
    pub async fn remove_input(&self, id: &str) -> Result<(), RecorderError> {
        let id = id.to_string();
        self.call(|r| Command::Remove(id, r)).await
    }

    /// Pauses: input packets are dropped and the paused time is cut from the timeline.
    pub async fn pause(&self) -> Result<(), RecorderError> {
        self.call(Command::Pause).await
    }

    /// Resumes after [`pause`](Recorder::pause) and asks every video input for a keyframe.
    pub async fn resume(&self) -> Result<(), RecorderError> {
        self.call(Command::Resume).await
    }

    /// Sets the participant shown large in the speaker layout (no effect on grid/tracks).
    pub async fn set_active_speaker(&self, participant: Option<&str>) -> Result<(), RecorderError> {
        let p = participant.map(str::to_string);
        self.call(|r| Command::Speaker(p, r)).await
    }

    /// Sends end-of-stream into every input, waits up to `timeout` for the files to be
    /// finished, renames `*.part` to their final names and reports what was written.
    /// After the timeout the pipeline is torn down anyway (`Outcome::clean == false`).
    pub async fn stop(&self, timeout: Duration) -> Result<Outcome, RecorderError> {
        self.call(|r| Command::Stop(timeout, Some(r))).await
    }

    /// Stops at once and deletes every file this recorder wrote.
    pub async fn cancel(&self) -> Result<(), RecorderError> {
        self.call(Command::Cancel).await
    }

    /// A snapshot of state, counters and file sizes. Non-blocking (short mutexes, `stat` calls).
    pub fn health(&self) -> Health {
        let inputs = lock(&self.shared.inputs);
        let mut files = lock(&self.shared.files).clone();
        for f in &mut files {
            f.bytes = std::fs::metadata(&f.path)
                .map(|m| m.len())
                .unwrap_or(f.bytes);
        }
        Health {
            state: self.shared.timeline.state(),
            position: Duration::from_nanos(self.shared.position().nseconds()),
            media: self.shared.media(),
            inputs: inputs.iter().map(TrackInput::stats).collect(),
            bytes_written: files.iter().map(|f| f.bytes).sum(),
            files,
            errors: lock(&self.shared.errors).clone(),
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self
            .tx
            .send(Msg::Cmd(Command::Stop(Duration::from_secs(5), None)));
    }
}
