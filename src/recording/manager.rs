//! The manager actor knows every running recording's session and asks its [`Admission`] core
//! which starts may go ahead (one per room, the server and per-user limits, the CPU budget).
//! It serialises deliveries (one upload per recording at a time). [`Recordings`] is the API's
//! handle.

use super::admission::{Admission, Refusal};
use super::budget::Budget;
use super::catalog::ListFilter;
use super::deliver::deliver;
use super::running::{self, no_longer_running, Action, SessionCmd, SessionTx};
use super::state::{RecordingState, Status, UploadPhase};
use super::{recover, Ctx, RecError, RecordingEvent, RecordingParams};
use crate::metrics::METRICS;
use crate::sfu::room::RoomHandle;
use crate::storage::{remove_local, Storage};
use pipelines::Health;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot};

enum ManagerCmd {
    Start {
        room: String,
        user: String,
        params: RecordingParams,
        /// Tracks published in the room when the start was asked.
        tracks: usize,
        handle: RoomHandle,
        reply: oneshot::Sender<Result<RecordingState, RecError>>,
    },
    Session(String, oneshot::Sender<Option<SessionTx>>),
    /// A running recording now records this many tracks.
    Inputs(String, usize),
    Budget(oneshot::Sender<Budget>),
    Live(oneshot::Sender<Vec<SessionTx>>),
    Ended(String),
    Deliver(Box<RecordingState>),
    Delivered(String),
    /// Asks for the exclusive right to change a finished recording: true when granted, false
    /// when it is live, being delivered, or claimed already.
    Claim(String, oneshot::Sender<bool>),
    Release(String),
}

/// Sessions and deliveries report back through this.
#[derive(Clone)]
pub(super) struct ManagerTx(mpsc::UnboundedSender<ManagerCmd>);

impl ManagerTx {
    /// A handle whose messages nobody reads (session tests).
    #[cfg(test)]
    pub(super) fn detached() -> Self {
        Self(mpsc::unbounded_channel().0)
    }

    pub(super) fn ended(&self, id: &str) {
        let _ = self.0.send(ManagerCmd::Ended(id.into()));
    }

    pub(super) fn inputs(&self, id: &str, tracks: usize) {
        let _ = self.0.send(ManagerCmd::Inputs(id.into(), tracks));
    }

    pub(super) fn deliver(&self, state: RecordingState) {
        let _ = self.0.send(ManagerCmd::Deliver(Box::new(state)));
    }
}

struct Manager {
    ctx: Ctx,
    me: ManagerTx,
    /// The session of every running recording.
    live: HashMap<String, SessionTx>,
    admission: Admission,
    delivering: HashSet<String>,
    /// Finished recordings a request is changing (deleting, uploading again).
    claimed: HashSet<String>,
}

/// The exclusive right to change a finished recording; released when dropped.
struct Claim {
    id: String,
    manager: ManagerTx,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let id = std::mem::take(&mut self.id);
        let _ = self.manager.0.send(ManagerCmd::Release(id));
    }
}

impl Manager {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<ManagerCmd>) {
        while let Some(cmd) = rx.recv().await {
            match cmd {
                ManagerCmd::Start {
                    room,
                    user,
                    params,
                    tracks,
                    handle,
                    reply,
                } => self.start(room, user, params, tracks, handle, reply),
                ManagerCmd::Session(id, reply) => {
                    let _ = reply.send(self.live.get(&id).cloned());
                }
                ManagerCmd::Inputs(id, tracks) => self.inputs(&id, tracks),
                ManagerCmd::Budget(reply) => {
                    let _ = reply.send(self.admission.budget().clone());
                }
                ManagerCmd::Live(reply) => {
                    let _ = reply.send(self.live.values().cloned().collect());
                }
                ManagerCmd::Ended(id) => {
                    self.live.remove(&id);
                    self.admission.ended(&id);
                    self.budget_metrics();
                }
                ManagerCmd::Deliver(state) => self.deliver(*state),
                ManagerCmd::Delivered(id) => {
                    self.delivering.remove(&id);
                }
                ManagerCmd::Claim(id, reply) => {
                    let free = !self.live.contains_key(&id) && !self.delivering.contains(&id);
                    let _ = reply.send(free && self.claimed.insert(id));
                }
                ManagerCmd::Release(id) => {
                    self.claimed.remove(&id);
                }
            }
        }
    }

    fn start(
        &mut self,
        room: String,
        user: String,
        params: RecordingParams,
        tracks: usize,
        handle: RoomHandle,
        reply: oneshot::Sender<Result<RecordingState, RecError>>,
    ) {
        let id = uuid::Uuid::new_v4().to_string();
        if let Err(refusal) = self.admission.admit(&id, &room, &user, params, tracks) {
            tracing::info!("recording of room {room} refused: {refusal}");
            let _ = reply.send(Err(refusal.into()));
            return;
        }
        self.budget_metrics();
        let state =
            RecordingState::new(id.clone(), &room, &user, params, self.ctx.storage.backend());
        let request = running::request(&self.ctx, &state);
        let session = running::spawn(
            self.ctx.clone(),
            state,
            request,
            handle,
            self.me.clone(),
            reply,
        );
        self.live.insert(id, session);
    }

    /// A running recording's inputs changed; one that grows past the budget keeps running,
    /// and the overcommit is logged and exported.
    fn inputs(&mut self, id: &str, tracks: usize) {
        if let Some(over) = self.admission.inputs(id, tracks) {
            tracing::warn!(
                "recording {id} now needs {:.2} CPU ({}): the running recordings need {:.2} \
                 of a budget of {:.2} CPU",
                over.cost.cores,
                over.cost,
                over.used,
                over.total
            );
        }
        self.budget_metrics();
    }

    fn budget_metrics(&self) {
        let budget = self.admission.budget();
        METRICS.recording_cpu_budget.set(budget.total());
        METRICS.recording_cpu_budget_used.set(budget.used());
        METRICS.recording_budget_overcommit.set(budget.overcommit());
    }

    fn deliver(&mut self, state: RecordingState) {
        if !self.delivering.insert(state.recording_id.clone()) {
            return;
        }
        let (ctx, me) = (self.ctx.clone(), self.me.clone());
        tokio::spawn(async move {
            let id = state.recording_id.clone();
            deliver(&ctx, state).await;
            let _ = me.0.send(ManagerCmd::Delivered(id));
        });
    }
}

impl From<Refusal> for RecError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::InProgress => RecError::AlreadyInProgress,
            Refusal::ServerLimit(_) | Refusal::UserLimit { .. } => {
                RecError::Limit(refusal.to_string())
            }
            Refusal::Capacity(refused) => RecError::InsufficientCapacity(refused.to_string()),
        }
    }
}

/// One running pipeline, as `GET /api/webrtc/pipelines` shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PipelineView {
    pub recording_id: String,
    pub room_id: String,
    pub status: Status,
    pub state: String,
    pub position_seconds: f64,
    /// CPU cores this recording needs, by its cost (`recording::cost`).
    pub cost_cores: Option<f64>,
    pub bytes_written: u64,
    pub files: Vec<String>,
    pub inputs: Vec<InputView>,
    pub errors: Vec<String>,
}

/// One input of a pipeline.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InputView {
    pub id: String,
    pub participant: String,
    pub kind: String,
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_dropped: u64,
    /// Packets lost upstream and not recovered in time (see `capstan_recorder_lost_packets_total`).
    pub packets_lost: u64,
    pub last_packet_age_ms: Option<u64>,
    pub keyframe_requests: u64,
}

/// The CPU budget as `GET /api/webrtc/pipelines` shows it, in cores.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BudgetView {
    pub total: f64,
    pub used: f64,
    pub free: f64,
}

fn pipeline_view(state: RecordingState, h: Health, budget: &Budget) -> PipelineView {
    PipelineView {
        cost_cores: budget.cost_of(&state.recording_id).map(|c| c.cores),
        recording_id: state.recording_id,
        room_id: state.room_id,
        status: state.status,
        state: format!("{:?}", h.state).to_lowercase(),
        position_seconds: h.position.as_secs_f64(),
        bytes_written: h.bytes_written,
        files: h
            .files
            .iter()
            .map(|f| f.path.display().to_string())
            .collect(),
        inputs: h
            .inputs
            .iter()
            .map(|i| InputView {
                id: i.id.clone(),
                participant: i.participant.clone(),
                kind: format!("{:?}", i.kind).to_lowercase(),
                packets_in: i.packets,
                bytes_in: i.bytes,
                packets_dropped: i.dropped(),
                packets_lost: i.lost,
                last_packet_age_ms: i.last_packet_age.map(|a| a.as_millis() as u64),
                keyframe_requests: i.keyframe_requests,
            })
            .collect(),
        errors: h.errors,
    }
}

/// How long a snapshot may take; a session busy stopping answers later than this.
const SNAPSHOT_WAIT: Duration = Duration::from_millis(300);

async fn snapshot(session: &SessionTx) -> Option<(RecordingState, Health)> {
    let (reply, rx) = oneshot::channel();
    session.send(SessionCmd::Snapshot(reply)).ok()?;
    tokio::time::timeout(SNAPSHOT_WAIT, rx).await.ok()?.ok()
}

/// The recording service as the API uses it; cheap to clone.
#[derive(Clone)]
pub struct Recordings {
    pub(super) ctx: Ctx,
    pub(super) tx: ManagerTx,
}

impl Recordings {
    /// Recovers recordings interrupted by a crash, then starts the manager (and retention).
    pub async fn start(
        config: super::config::RecordingConfig,
        catalog: std::sync::Arc<dyn super::catalog::Catalog>,
        storage: Storage,
        notifier: super::Notifier,
    ) -> Self {
        let ctx = Ctx {
            config: std::sync::Arc::new(config),
            catalog,
            storage,
            notifier,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let me = ManagerTx(tx);
        let cfg = &ctx.config;
        let manager = Manager {
            admission: Admission::new(
                cfg.max_concurrent,
                cfg.max_per_user,
                Budget::new(cfg.cpu_budget),
            ),
            ctx: ctx.clone(),
            me: me.clone(),
            live: HashMap::new(),
            delivering: HashSet::new(),
            claimed: HashSet::new(),
        };
        manager.budget_metrics();
        tokio::spawn(manager.run(rx));
        for state in recover::recover(&ctx).await {
            me.deliver(state);
        }
        let recordings = Self { ctx, tx: me };
        if let Some(age) = recordings.ctx.config.retention {
            tokio::spawn(recordings.clone().retention(age));
        }
        recordings
    }

    pub fn enabled(&self) -> bool {
        self.ctx.config.enabled
    }

    pub fn storage(&self) -> &Storage {
        &self.ctx.storage
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> ManagerCmd) -> Option<T> {
        let (reply, rx) = oneshot::channel();
        self.tx.0.send(make(reply)).ok()?;
        rx.await.ok()
    }

    pub async fn start_recording(
        &self,
        room: &str,
        user: &str,
        params: RecordingParams,
        handle: RoomHandle,
    ) -> Result<RecordingState, RecError> {
        let tracks = handle.track_count().await;
        self.ask(|reply| ManagerCmd::Start {
            room: room.into(),
            user: user.into(),
            params,
            tracks,
            handle,
            reply,
        })
        .await
        .unwrap_or(Err(RecError::Stopped))
    }

    /// Stop, pause, resume or cancel a running recording. The session takes one action at a
    /// time: of concurrent stops one wins, and the others learn that it is no longer running.
    pub async fn control(&self, id: &str, action: Action) -> Result<RecordingState, RecError> {
        if let Some(session) = self
            .ask(|r| ManagerCmd::Session(id.into(), r))
            .await
            .flatten()
        {
            let (reply, rx) = oneshot::channel();
            if session.send(SessionCmd::Control(action, reply)).is_ok() {
                if let Ok(result) = rx.await {
                    return result;
                }
            }
        }
        // Not live, or it ended since the manager answered.
        match self.ctx.catalog.get(id).await? {
            Some(s) => Err(no_longer_running(s.status)),
            None => Err(RecError::NotFound),
        }
    }

    /// The exclusive right to change finished recording `id`; a conflict naming its status
    /// while it runs or while another request changes it.
    async fn claim(&self, id: &str) -> Result<Claim, RecError> {
        if self.ask(|r| ManagerCmd::Claim(id.into(), r)).await == Some(true) {
            return Ok(Claim {
                id: id.into(),
                manager: self.tx.clone(),
            });
        }
        let state = self.get(id).await?.ok_or(RecError::NotFound)?;
        Err(RecError::Conflict(if state.status.is_final() {
            format!(
                "Recording is {}; another request is already changing it",
                state.status.as_str()
            )
        } else {
            format!(
                "Recording is {}; stop or cancel it first",
                state.status.as_str()
            )
        }))
    }

    /// The live state of a running recording, or the catalog's.
    pub async fn get(&self, id: &str) -> Result<Option<RecordingState>, RecError> {
        if let Some(session) = self
            .ask(|r| ManagerCmd::Session(id.into(), r))
            .await
            .flatten()
        {
            if let Some((state, _)) = snapshot(&session).await {
                return Ok(Some(state)); // a session busy stopping: the catalog has it
            }
        }
        Ok(self.ctx.catalog.get(id).await?)
    }

    /// Catalog entries matching `filter`, with live states for running ones.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<RecordingState>, RecError> {
        let mut list = self.ctx.catalog.list(filter).await?;
        for (state, _) in self.snapshots().await {
            if let Some(entry) = list
                .iter_mut()
                .find(|s| s.recording_id == state.recording_id)
            {
                *entry = state;
            }
        }
        Ok(list)
    }

    async fn snapshots(&self) -> Vec<(RecordingState, Health)> {
        let sessions = self.ask(ManagerCmd::Live).await.unwrap_or_default();
        let mut out = Vec::new();
        for session in sessions {
            out.extend(snapshot(&session).await);
        }
        out
    }

    /// Every running pipeline with its health and cost, and the CPU budget.
    pub async fn pipelines(&self) -> (Vec<PipelineView>, BudgetView) {
        let budget = self
            .ask(ManagerCmd::Budget)
            .await
            .unwrap_or_else(|| Budget::new(self.ctx.config.cpu_budget));
        let views = self
            .snapshots()
            .await
            .into_iter()
            .map(|(s, h)| pipeline_view(s, h, &budget))
            .collect();
        let view = BudgetView {
            total: budget.total(),
            used: budget.used(),
            free: budget.free(),
        };
        (views, view)
    }

    /// Deletes a finished recording: its files (partial ones too), objects and catalog entry.
    /// Of concurrent deletes one wins; the others get a conflict, or not found once it is gone.
    pub async fn delete(&self, id: &str) -> Result<(), RecError> {
        let _claim = self.claim(id).await?;
        let state = self.get(id).await?.ok_or(RecError::NotFound)?;
        if !state.status.is_final() {
            return Err(RecError::Conflict(format!(
                "Recording is {}; stop or cancel it first",
                state.status.as_str()
            )));
        }
        self.remove_files(&state).await?;
        if !self.ctx.catalog.delete(id).await? {
            return Err(RecError::NotFound);
        }
        Ok(())
    }

    /// Removes the recording's files, their objects, and the partial files a failed pipeline
    /// left behind (`metadata.partial_files`).
    async fn remove_files(&self, state: &RecordingState) -> Result<(), RecError> {
        let local = state.files.iter().filter_map(|f| f.local_path.as_ref());
        for path in state.metadata.partial_files.iter().flatten().chain(local) {
            remove_local(Path::new(path))
                .await
                .map_err(|source| RecError::LocalFile {
                    action: "delete",
                    path: path.into(),
                    source,
                })?;
        }
        for file in &state.files {
            if let (Some(key), Some(store)) = (&file.s3_key, self.ctx.storage.object_store()) {
                store.delete(key).await?;
            }
        }
        Ok(())
    }

    /// Retries the upload of a recording whose upload failed (its local files were kept).
    pub async fn retry_upload(&self, id: &str) -> Result<RecordingState, RecError> {
        let _claim = self.claim(id).await?;
        let mut state = self.ctx.catalog.get(id).await?.ok_or(RecError::NotFound)?;
        let upload_failed = state
            .metadata
            .upload
            .as_ref()
            .is_some_and(|u| u.state == UploadPhase::Failed);
        if state.status != Status::Failed || !upload_failed {
            return Err(RecError::Conflict(format!(
                "Only a recording whose upload failed can be uploaded again (this one is {})",
                state.status.as_str()
            )));
        }
        if self.ctx.storage.object_store().is_none() {
            return Err(RecError::Conflict(
                "Object storage is not configured".into(),
            ));
        }
        state.error = None;
        self.ctx
            .commit(&mut state, Status::Processing, RecordingEvent::Processing)
            .await;
        self.tx.deliver(state.clone());
        Ok(state)
    }

    /// Stops every running recording (server shutdown), each within the stop timeout.
    pub async fn shutdown(&self) {
        let sessions = self.ask(ManagerCmd::Live).await.unwrap_or_default();
        let waits: Vec<_> = sessions
            .into_iter()
            .filter_map(|s| {
                let (reply, rx) = oneshot::channel();
                s.send(SessionCmd::Shutdown(reply)).ok().map(|_| rx)
            })
            .collect();
        for rx in waits {
            let _ = rx.await;
        }
    }

    /// Counts recordings by status and webhook deliveries into the metrics.
    pub async fn update_metrics(&self) {
        let hooks = self.ctx.notifier.webhooks().stats();
        for (result, n) in [
            ("delivered", hooks.delivered),
            ("failed", hooks.failed),
            ("dropped", hooks.dropped),
        ] {
            METRICS.webhooks.with_label_values(&[result]).set(n as i64);
        }
        if let Ok(counts) = self.ctx.catalog.count_by_status().await {
            for status in Status::ALL {
                let n = counts
                    .iter()
                    .find(|(s, _)| *s == status)
                    .map_or(0, |(_, n)| *n);
                METRICS
                    .recordings
                    .with_label_values(&[status.as_str()])
                    .set(n as i64);
            }
        }
    }

    /// Deletes finished recordings older than `age`, hourly.
    async fn retention(self, age: Duration) {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        loop {
            every.tick().await;
            let Ok(all) = self.ctx.catalog.list(&ListFilter::default()).await else {
                continue;
            };
            let cutoff = SystemTime::now() - age;
            for state in all.iter().filter(|s| s.status.is_final()) {
                let created = super::state::parse_time(&state.created_at);
                if created.is_some_and(|t| t < cutoff) {
                    match self.delete(&state.recording_id).await {
                        Ok(()) => tracing::info!("retention: deleted {}", state.recording_id),
                        Err(e) => tracing::warn!("retention: {}: {e}", state.recording_id),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::catalog::SqliteCatalog;
    use crate::recording::config::RecordingArgs;
    use crate::recording::Notifier;
    use crate::sfu::peer::PeerFactory;
    use crate::sfu::room::JoinRequest;
    use crate::sfu::Sfu;
    use crate::webhooks::Webhooks;
    use futures::future::join_all;
    use pipelines::{Format, Layout, Mode, Quality};
    use signaling::protocol::ParticipantInfo;
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn of_concurrent_stops_and_deletes_exactly_one_wins() {
        let data = tempfile::tempdir().unwrap();
        let config = RecordingArgs::default().resolve(data.path()).unwrap();
        let webhooks = Webhooks::new(config.webhooks.clone());
        let sfu = Sfu::start(PeerFactory::new(Default::default()), 4);
        let catalog = Arc::new(SqliteCatalog::open(&data.path().join("c.sqlite3")).unwrap());
        let notifier = Notifier::new(sfu.clone(), webhooks);
        let recordings = Recordings::start(config, catalog, Storage::Local, notifier).await;
        let (session, _cmds) = mpsc::unbounded_channel();
        let info = ParticipantInfo {
            identity: "m".into(),
            name: "m".into(),
            role: "participant".into(),
            tracks: vec![],
        };
        let request = JoinRequest {
            info,
            session,
            session_id: 1,
            visible: true,
        };
        let joined = sfu.join("r", true, request).await.unwrap();
        let params = RecordingParams {
            format: Format::Webm,
            quality: Quality::Low,
            mode: Mode::Composite,
            layout: Layout::Grid,
        };
        let started = recordings
            .start_recording("r", "host", params, joined.room)
            .await
            .unwrap();
        let id = started.recording_id.as_str();
        tokio::time::sleep(Duration::from_millis(500)).await;

        // All 20 reach the session; the first stops it, the others wait behind it.
        let stops = join_all((0..20).map(|_| recordings.control(id, Action::Stop))).await;
        assert_eq!(stops.iter().filter(|r| r.is_ok()).count(), 1, "{stops:?}");
        for refused in stops.iter().filter_map(|r| r.as_ref().err()) {
            assert!(
                matches!(refused, RecError::Conflict(m) if m.contains("completed")),
                "{refused:?}"
            );
        }

        let deletes = join_all((0..20).map(|_| recordings.delete(id))).await;
        assert_eq!(
            deletes.iter().filter(|r| r.is_ok()).count(),
            1,
            "{deletes:?}"
        );
        for refused in deletes.iter().filter_map(|r| r.as_ref().err()) {
            assert!(
                matches!(refused, RecError::Conflict(_) | RecError::NotFound),
                "{refused:?}"
            );
        }
        assert!(recordings.get(id).await.unwrap().is_none());
    }
}
