//! Server-side recording of live rooms: one session actor per running recording (it owns the
//! recorder, the forks of the room's tracks and the recording's state), a manager actor that
//! enforces the rules (one per room, concurrency limits) and knows the live sessions, and the
//! delivery step (local spool → object store). Every transition is written to the catalog
//! before it is announced to the room and to webhooks.

mod admission;
mod budget;
pub mod catalog;
pub mod config;
pub mod cost;
mod deliver;
mod fork;
mod manager;
mod notify;
mod recover;
mod rules;
mod running;
pub mod state;
mod uploaded;

pub use manager::{BudgetView, PipelineView, Recordings};
pub use notify::{Notifier, RecordingEvent};
pub use running::Action;
pub use state::{RecordingParams, RecordingState, Source, Status};
pub use uploaded::UploadedFile;

use crate::storage::{Storage, StoreError};
use catalog::{Catalog, CatalogError};
use config::RecordingConfig;
use std::sync::Arc;

/// Why a recording request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RecError {
    #[error("Recording is not enabled")]
    Disabled,
    #[error("Recording not found")]
    NotFound,
    #[error("Room not found: nobody is in room `{0}`")]
    RoomNotFound(String),
    #[error("Recording already in progress")]
    AlreadyInProgress,
    #[error("{0}")]
    Limit(String),
    /// The CPU budget has no room for this recording (`budget::Refused` names the numbers).
    #[error("{0}")]
    InsufficientCapacity(String),
    /// The operation does not fit the recording's status (e.g. pause while paused).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("recording pipeline: {0}")]
    Pipeline(#[from] pipelines::RecorderError),
    #[error("invalid recording: {0}")]
    Spec(#[from] pipelines::SpecError),
    /// The manager actor is gone (the server is shutting down).
    #[error("the recording service has stopped")]
    Stopped,
    #[error("object store: {0}")]
    Store(#[source] Box<StoreError>),
    #[error("cannot {action} {}: {source}", path.display())]
    LocalFile {
        action: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// An encrypted file that cannot be opened: its key is not configured, or it is corrupt.
    #[error("encrypted file: {0}")]
    Crypt(#[from] pipelines::crypt::CryptError),
}

impl From<StoreError> for RecError {
    fn from(e: StoreError) -> Self {
        RecError::Store(Box::new(e))
    }
}

/// What every part of recording shares.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub config: Arc<RecordingConfig>,
    pub catalog: Arc<dyn Catalog>,
    pub storage: Storage,
    pub notifier: Notifier,
}

impl Ctx {
    /// Persists `state` (logging a failure: the recording itself goes on).
    async fn save(&self, state: &RecordingState) {
        if let Err(e) = self.catalog.put(state).await {
            tracing::error!("catalog: cannot save recording {}: {e}", state.recording_id);
        }
    }

    /// Moves `state` to `next`, persists it, then announces `event` (e.g. `started`).
    async fn commit(&self, state: &mut RecordingState, next: Status, event: RecordingEvent) {
        if let Err(from) = state.transition(next) {
            tracing::error!(
                "recording {}: refused transition {from:?} -> {next:?}",
                state.recording_id
            );
            return;
        }
        self.save(state).await;
        self.notifier.emit(event, state).await;
    }
}
