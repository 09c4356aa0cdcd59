//! One actor per running recording. It owns the recorder, the forks of the room's tracks and
//! the recording's state; API calls, room changes, recorder events and a 1 s tick are its
//! only inputs. It ends when the pipeline has stopped (delivery continues elsewhere).

use super::deliver::deliver;
use super::fork::Fork;
use super::manager::ManagerTx;
use super::rules::{AutoStop, Limits};
use super::state::{FileEntry, FileOrigin, RecordingState, Status, StopReason};
use super::{Ctx, RecError, RecordingEvent};
use crate::metrics::METRICS;
use crate::sfu::room::{PublishedTrack, RoomEvent, RoomHandle};
use crate::storage::{room_dir, Storage};
use pipelines::crypt::Keyring;
use pipelines::{
    EventStream, Health, InputStats, Mode, Outcome, Recorder, RecorderEvent, RecordingRequest,
    RecordingSpec, TrackKind,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// How long a stop may wait for the pipeline to finish its files.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the live state (duration, sizes, packet counts) is written to the catalog, so a
/// crash loses at most this much of it.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);

/// What the API asks of a running recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Stop,
    Pause,
    Resume,
    Cancel,
}

pub(super) enum SessionCmd {
    Control(Action, oneshot::Sender<Result<RecordingState, RecError>>),
    /// The live state plus the recorder's health.
    Snapshot(oneshot::Sender<(RecordingState, Health)>),
    /// Stop because the server is shutting down.
    Shutdown(oneshot::Sender<()>),
}

pub(super) type SessionTx = mpsc::UnboundedSender<SessionCmd>;
type StartReply = oneshot::Sender<Result<RecordingState, RecError>>;

pub(super) struct Session {
    ctx: Ctx,
    state: RecordingState,
    room: RoomHandle,
    recorder: Arc<Recorder>,
    forks: HashMap<String, Fork>,
    rules: AutoStop,
    last_checkpoint: Instant,
    /// Latest counters per input (inputs that left keep their last counters); the metrics
    /// have counted up to them.
    inputs: HashMap<String, InputStats>,
    manager: ManagerTx,
}

/// Starts a recording of `room`: attaches to it, starts the pipeline, replies to `reply`
/// once it records (or failed), then runs until the pipeline has stopped.
pub(super) fn spawn(
    ctx: Ctx,
    state: RecordingState,
    spec: RecordingRequest,
    room: RoomHandle,
    manager: ManagerTx,
    reply: StartReply,
) -> SessionTx {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(start(ctx, state, spec, room, manager, reply, rx));
    tx
}

async fn start(
    ctx: Ctx,
    mut state: RecordingState,
    request: RecordingRequest,
    room: RoomHandle,
    manager: ManagerTx,
    reply: StartReply,
    commands: mpsc::UnboundedReceiver<SessionCmd>,
) {
    ctx.save(&state).await;
    let id = state.recording_id.clone();
    let (room_tx, room_rx) = mpsc::unbounded_channel();
    // Attach before the pipeline exists: when the room is gone there is nothing to undo. (A
    // recorder started first was dropped, and the file it finished was never catalogued.)
    let started = match room.attach(room_tx).await {
        None => Err(RecError::RoomNotFound(state.room_id.clone())),
        Some(snapshot) => match open(&request, ctx.config.encryption.clone()).await {
            Ok(started) => Ok((started, snapshot)),
            Err(e) => {
                room.detach();
                Err(e)
            }
        },
    };
    let ((recorder, events), snapshot) = match started {
        Ok(s) => s,
        Err(e) => {
            state.error = Some(e.to_string());
            ctx.commit(&mut state, Status::Failed, RecordingEvent::Failed)
                .await;
            manager.ended(&id);
            let _ = reply.send(Err(e));
            return;
        }
    };
    ctx.commit(&mut state, Status::Recording, RecordingEvent::Started)
        .await;
    let _ = reply.send(Ok(state.clone()));
    let rules = AutoStop::new(limits(&ctx), Instant::now());
    let mut session = Session {
        ctx,
        state,
        room,
        recorder: Arc::new(recorder),
        forks: HashMap::new(),
        rules,
        last_checkpoint: Instant::now(),
        inputs: HashMap::new(),
        manager,
    };
    for p in &snapshot.participants {
        session.joined(&p.identity, &p.name);
    }
    for track in &snapshot.tracks {
        session.add_track(track);
    }
    session.speaker(snapshot.active_speaker).await;
    session.run(commands, room_rx, events).await;
}

fn limits(ctx: &Ctx) -> Limits {
    let cfg = &ctx.config;
    Limits {
        max_duration: cfg.max_duration,
        empty_timeout: cfg.empty_timeout,
        no_media_timeout: cfg.no_media_timeout,
    }
}

/// Creates the room's spool directory and starts the pipeline, encrypting its files with
/// `keys` when there are keys.
async fn open(
    request: &RecordingRequest,
    keys: Option<Keyring>,
) -> Result<(Recorder, EventStream), RecError> {
    tokio::fs::create_dir_all(&request.output_dir)
        .await
        .map_err(|source| RecError::LocalFile {
            action: "create",
            path: request.output_dir.clone(),
            source,
        })?;
    let spec = RecordingSpec::new(request.clone())?;
    let spec = match keys {
        Some(keys) => spec.encrypted(keys),
        None => spec,
    };
    Ok(Recorder::start(spec).await?)
}

/// The pipeline request of a recording.
pub(super) fn request(ctx: &Ctx, state: &RecordingState) -> RecordingRequest {
    RecordingRequest {
        mode: state.mode,
        format: state.format,
        quality: state.quality,
        layout: state.layout,
        audio_only: false,
        output_dir: room_dir(&ctx.config.output_dir, &state.room_id),
        base_name: state.recording_id.clone(),
    }
}

enum Next {
    Continue,
    Done,
}

impl Session {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<SessionCmd>,
        mut room: mpsc::UnboundedReceiver<RoomEvent>,
        mut events: EventStream,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut room_open = true;
        loop {
            let next = tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.command(cmd).await,
                    None => {
                        self.stop(StopReason::ManagerGone).await;
                        Next::Done
                    }
                },
                event = room.recv(), if room_open => match event {
                    Some(event) => self.room_event(event).await,
                    None => {
                        room_open = false;
                        self.rules.room_closed(Instant::now());
                        Next::Continue
                    }
                },
                event = events.recv() => self.recorder_event(event).await,
                _ = tick.tick() => self.tick().await,
            };
            if matches!(next, Next::Done) {
                break;
            }
        }
        self.manager.ended(&self.state.recording_id);
        self.refuse_late(commands);
    }

    /// Answers what was asked while the recording ended (e.g. stops queued behind the stop that
    /// won): it is no longer running.
    fn refuse_late(&self, mut commands: mpsc::UnboundedReceiver<SessionCmd>) {
        commands.close();
        while let Ok(cmd) = commands.try_recv() {
            match cmd {
                SessionCmd::Control(_, reply) => {
                    let _ = reply.send(Err(no_longer_running(self.state.status)));
                }
                SessionCmd::Snapshot(reply) => {
                    let _ = reply.send((self.state.clone(), self.recorder.health()));
                }
                SessionCmd::Shutdown(reply) => {
                    let _ = reply.send(());
                }
            }
        }
    }

    async fn command(&mut self, cmd: SessionCmd) -> Next {
        match cmd {
            SessionCmd::Control(action, reply) => {
                let (result, next) = self.control(action).await;
                if matches!(next, Next::Done) {
                    // Before answering: a client that deletes the recording as soon as its stop
                    // returns must find it no longer live. (`ended` is idempotent.)
                    self.manager.ended(&self.state.recording_id);
                }
                let _ = reply.send(result);
                next
            }
            SessionCmd::Snapshot(reply) => {
                let health = self.refresh();
                let _ = reply.send((self.state.clone(), health));
                Next::Continue
            }
            SessionCmd::Shutdown(reply) => {
                self.stop(StopReason::Shutdown).await;
                let _ = reply.send(());
                Next::Done
            }
        }
    }

    async fn control(&mut self, action: Action) -> (Result<RecordingState, RecError>, Next) {
        let status = self.state.status;
        match (action, status) {
            (Action::Pause, Status::Recording) => {
                let r = self.recorder.pause().await;
                self.after(r, Status::Paused, RecordingEvent::Paused).await
            }
            (Action::Resume, Status::Paused) => {
                let r = self.recorder.resume().await;
                self.rules.media(Instant::now());
                self.after(r, Status::Recording, RecordingEvent::Resumed)
                    .await
            }
            (Action::Stop, _) => (Ok(self.stop(StopReason::Requested).await), Next::Done),
            (Action::Cancel, _) => (Ok(self.cancel().await), Next::Done),
            (Action::Pause | Action::Resume, _) => (
                Err(RecError::Conflict(format!(
                    "Cannot {} a recording that is {}",
                    if action == Action::Pause {
                        "pause"
                    } else {
                        "resume"
                    },
                    status.as_str()
                ))),
                Next::Continue,
            ),
        }
    }

    /// Commits `next` when the recorder accepted the change.
    async fn after(
        &mut self,
        result: Result<(), pipelines::RecorderError>,
        next: Status,
        event: RecordingEvent,
    ) -> (Result<RecordingState, RecError>, Next) {
        if let Err(e) = result {
            return (Err(e.into()), Next::Continue);
        }
        self.refresh();
        self.ctx.commit(&mut self.state, next, event).await;
        (Ok(self.state.clone()), Next::Continue)
    }

    async fn room_event(&mut self, event: RoomEvent) -> Next {
        match event {
            RoomEvent::Joined(p) => self.joined(&p.identity, &p.name),
            RoomEvent::Left(identity) => {
                self.rules.left(&identity, Instant::now());
                if let Some(p) = self
                    .state
                    .participants
                    .iter_mut()
                    .find(|p| p.identity == identity)
                {
                    p.left_at = Some(super::state::now());
                }
            }
            RoomEvent::TrackPublished(track) => self.add_track(&track),
            RoomEvent::TrackEnded(track_id) => {
                if let Some(fork) = self.forks.remove(&track_id) {
                    fork.remove();
                    self.manager
                        .inputs(&self.state.recording_id, self.forks.len());
                }
            }
            RoomEvent::ActiveSpeaker(identity) => self.speaker(identity).await,
        }
        Next::Continue
    }

    fn joined(&mut self, identity: &str, name: &str) {
        self.rules.joined(identity);
        self.state.participant(identity, name).left_at = None;
    }

    fn add_track(&mut self, track: &PublishedTrack) {
        let id = track.info.track_id.clone();
        if !self.forks.contains_key(&id) {
            self.forks
                .insert(id, Fork::start(track, Arc::clone(&self.recorder)));
            // The manager recomputes this recording's cost.
            self.manager
                .inputs(&self.state.recording_id, self.forks.len());
        }
    }

    async fn speaker(&mut self, identity: Option<String>) {
        if let Err(e) = self.recorder.set_active_speaker(identity.as_deref()).await {
            tracing::debug!("set active speaker: {e}");
        }
    }

    async fn recorder_event(&mut self, event: Option<RecorderEvent>) -> Next {
        match event {
            Some(RecorderEvent::KeyframeNeeded { input }) => {
                if let Some(fork) = self.forks.get(&input) {
                    fork.forwarder.request_keyframe();
                }
                Next::Continue
            }
            Some(RecorderEvent::Warning { message }) => {
                tracing::warn!("recording {}: {message}", self.state.recording_id);
                Next::Continue
            }
            Some(RecorderEvent::Error { message }) => {
                METRICS.pipeline_errors.inc();
                self.fail(message).await;
                Next::Done
            }
            Some(RecorderEvent::Finished { .. }) | None => {
                self.fail("the recording pipeline ended unexpectedly".into())
                    .await;
                Next::Done
            }
        }
    }

    async fn tick(&mut self) -> Next {
        let health = self.refresh();
        let now = Instant::now();
        if let Some(age) = health.inputs.iter().filter_map(|i| i.last_packet_age).min() {
            self.rules.media(now - age);
        }
        let recording = self.state.status == Status::Recording;
        if let Some(reason) = self.rules.check(health.position, recording, now) {
            tracing::info!(
                "recording {}: auto-stop ({reason:?})",
                self.state.recording_id
            );
            self.state.metadata.auto_stopped = Some(true);
            self.stop(reason).await;
            return Next::Done;
        }
        // A new file is checkpointed at once: a crash salvage needs its participant and offset.
        let began = self.note_files_begun(&health);
        if began || self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            self.last_checkpoint = Instant::now();
            self.ctx.save(&self.state).await;
        }
        Next::Continue
    }

    /// Updates duration, sizes, per-participant counters and drop metrics from the recorder.
    fn refresh(&mut self) -> Health {
        let health = self.recorder.health();
        self.state.duration_seconds = health.media.as_secs_f64();
        self.state.file_size_bytes = health.bytes_written;
        for input in &health.inputs {
            self.count_drops(input);
            self.inputs.insert(input.id.clone(), input.clone());
        }
        self.tally_participants();
        health
    }

    /// Notes the origin of every file the pipeline began; true when one is new.
    fn note_files_begun(&mut self, health: &Health) -> bool {
        let origins = health.files.iter().map(file_entry).map(|entry| FileOrigin {
            file_name: match entry.file_name.strip_suffix(".part") {
                Some(name) => name.to_string(),
                None => entry.file_name,
            },
            participant: entry.participant,
            start_offset_seconds: entry.start_offset_seconds,
        });
        self.state.note_files_begun(origins)
    }

    /// Adds to the metrics what `input` dropped and lost since its last counters.
    fn count_drops(&self, input: &InputStats) {
        let counts = |i: &InputStats| {
            [
                i.dropped_full,
                i.dropped_malformed,
                i.dropped_payload_type,
                i.dropped_ssrc,
                i.dropped_inactive,
                i.lost,
            ]
        };
        let seen = self.inputs.get(&input.id).map(counts).unwrap_or_default();
        let now = counts(input);
        let delta = |i: usize| now[i].saturating_sub(seen[i]);
        for (i, reason) in [
            "pipeline_full",
            "malformed",
            "payload_type",
            "ssrc",
            "inactive",
        ]
        .iter()
        .enumerate()
        {
            METRICS.recorder_drop(reason, delta(i));
        }
        let kind = match input.kind {
            TrackKind::Audio => "audio",
            TrackKind::Video => "video",
        };
        METRICS.recorder_lost(kind, delta(5));
    }

    fn tally_participants(&mut self) {
        let mut counts: HashMap<&str, (u64, u64)> = HashMap::new();
        for input in self.inputs.values() {
            let c = counts.entry(&input.participant).or_default();
            match input.kind {
                TrackKind::Audio => c.0 += input.packets,
                TrackKind::Video => c.1 += input.packets,
            }
        }
        for p in &mut self.state.participants {
            let (audio, video) = counts.get(p.identity.as_str()).copied().unwrap_or_default();
            (p.audio_packets, p.video_packets) = (audio, video);
        }
    }

    fn unhook(&mut self) {
        for (_, fork) in self.forks.drain() {
            fork.remove();
        }
        self.room.detach();
    }

    /// Stops the pipeline, lists its files and delivers them; returns the resulting state.
    ///
    /// The pipeline finishes with every input still attached: removing them first blanked
    /// each tile and re-flowed the grid in the last frames of a composite. `processing` is
    /// committed only once the files are final, so a crash during the stop leaves the
    /// recording live in the catalog and recovery salvages its `.part` files.
    async fn stop(&mut self, reason: StopReason) -> RecordingState {
        self.refresh();
        self.state.metadata.stop_reason = Some(reason);
        let outcome = match self.recorder.stop(STOP_TIMEOUT).await {
            Ok(outcome) => outcome,
            Err(e) => {
                METRICS.pipeline_errors.inc();
                self.fail(e.to_string()).await;
                return self.state.clone();
            }
        };
        self.unhook();
        self.finished(outcome);
        if self.state.mode == Mode::Tracks && self.state.files.is_empty() {
            // Tracks mode writes a file per publisher: with none there is nothing to deliver.
            self.state.error = Some("no media: nobody published during the recording".into());
            self.ctx
                .commit(&mut self.state, Status::Failed, RecordingEvent::Failed)
                .await;
            return self.state.clone();
        }
        self.ctx
            .commit(&mut self.state, Status::Processing, RecordingEvent::Stopped)
            .await;
        let state = self.state.clone();
        match self.ctx.storage {
            Storage::Local => {
                self.state = deliver(&self.ctx, state).await;
                self.state.clone()
            }
            Storage::Object(_) => {
                self.manager.deliver(state.clone());
                state
            }
        }
    }

    fn finished(&mut self, outcome: Outcome) {
        for input in &outcome.inputs {
            self.count_drops(input);
            self.inputs.insert(input.id.clone(), input.clone());
        }
        self.tally_participants();
        self.state.duration_seconds = outcome.duration.as_secs_f64();
        self.state.metadata.clean_stop = Some(outcome.clean);
        let files = outcome.files.iter().map(file_entry).collect();
        self.state.set_files(files);
    }

    async fn cancel(&mut self) -> RecordingState {
        self.unhook();
        if let Err(e) = self.recorder.cancel().await {
            tracing::warn!("cancel {}: {e}", self.state.recording_id);
        }
        self.state.set_files(Vec::new());
        self.ctx
            .commit(
                &mut self.state,
                Status::Cancelled,
                RecordingEvent::Cancelled,
            )
            .await;
        self.state.clone()
    }

    /// Marks the recording failed; partial files are kept (listed in `metadata.partial_files`).
    async fn fail(&mut self, message: String) {
        tracing::warn!("recording {} failed: {message}", self.state.recording_id);
        let partial: Vec<String> = self
            .recorder
            .health()
            .files
            .iter()
            .map(|f| f.path.display().to_string())
            .collect();
        self.unhook();
        self.state.metadata.partial_files = Some(partial);
        self.state.error = Some(format!("recording pipeline failed: {message}"));
        self.ctx
            .commit(&mut self.state, Status::Failed, RecordingEvent::Failed)
            .await;
    }
}

/// The refusal of a control asked of a recording that has ended.
pub(super) fn no_longer_running(status: Status) -> RecError {
    RecError::Conflict(format!(
        "Recording is {}; it is no longer running",
        status.as_str()
    ))
}

pub(super) fn file_entry(f: &pipelines::OutputFile) -> FileEntry {
    FileEntry {
        file_name: f
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        local_path: Some(f.path.display().to_string()),
        s3_key: None,
        participant: f.participant.clone(),
        size_bytes: f.bytes,
        start_offset_seconds: f.start_offset.as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::catalog::SqliteCatalog;
    use crate::recording::config::RecordingArgs;
    use crate::recording::state::RecordingParams;
    use crate::recording::Notifier;
    use crate::sfu::peer::PeerFactory;
    use crate::sfu::Sfu;
    use crate::webhooks::Webhooks;
    use pipelines::{Format, Layout, Mode, Quality};

    #[tokio::test]
    async fn a_room_gone_before_attach_starts_no_pipeline() {
        let data = tempfile::tempdir().unwrap();
        let config = RecordingArgs::default().resolve(data.path()).unwrap();
        let webhooks = Webhooks::new(config.webhooks.clone());
        let ctx = Ctx {
            catalog: Arc::new(SqliteCatalog::open(&data.path().join("c.sqlite3")).unwrap()),
            config: Arc::new(config),
            storage: Storage::Local,
            notifier: Notifier::new(
                Sfu::start(PeerFactory::new(Default::default()), 4),
                webhooks,
            ),
        };
        let params = RecordingParams {
            format: Format::Webm,
            quality: Quality::Low,
            mode: Mode::Composite,
            layout: Layout::Grid,
        };
        let state = RecordingState::new(
            "rec1".into(),
            "gone",
            "host",
            params,
            crate::storage::Backend::Local,
        );
        let request = request(&ctx, &state);
        let (reply, answer) = oneshot::channel();
        spawn(
            ctx.clone(),
            state,
            request,
            RoomHandle::closed(),
            ManagerTx::detached(),
            reply,
        );
        let answer = answer.await.unwrap();
        assert!(
            matches!(answer, Err(RecError::RoomNotFound(_))),
            "{answer:?}"
        );
        let spool = room_dir(&ctx.config.output_dir, "gone");
        let files: Vec<_> = std::fs::read_dir(&spool)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(files.is_empty(), "a pipeline wrote {files:?}");
        let saved = ctx.catalog.get("rec1").await.unwrap().unwrap();
        assert_eq!(saved.status, Status::Failed);
    }
}
