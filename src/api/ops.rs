//! Liveness, readiness and metrics.

use super::error::ErrorBody;
use super::{ApiError, AppState};
use crate::metrics::METRICS;
use crate::storage::{Backend, StoreError};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use signaling::protocol::ErrorCode;
use std::path::PathBuf;
use utoipa::ToSchema;

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "ops",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain"))
)]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Why the node is not ready (`503 not_ready` with this message).
#[derive(Debug, thiserror::Error)]
enum NotReady {
    #[error("{what} not writable: {source}")]
    Dir {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("GStreamer not ready: {0}")]
    GStreamer(#[source] pipelines::BuildError),
    #[error("object store unreachable: {0}")]
    Store(#[source] StoreError),
}

impl From<NotReady> for ApiError {
    fn from(e: NotReady) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::NotReady,
            e.to_string(),
        )
    }
}

/// Answer of a ready node.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Ready {
    ready: bool,
    /// `writable`.
    data_dir: &'static str,
    /// `writable`.
    spool: &'static str,
    /// `ok`.
    gstreamer: &'static str,
    storage: Backend,
}

/// Ready when GStreamer initialises, the data directory and the recording spool are writable
/// and the object store (if configured) answers.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "ops",
    responses(
        (status = 200, description = "Ready", body = Ready),
        (status = 503, description = "Not ready, and why", body = ErrorBody),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    let dirs = [
        ("data directory", state.config.data_dir.clone()),
        ("recording spool", state.config.recording.output_dir.clone()),
    ];
    for (what, dir) in dirs {
        writable(dir)
            .await
            .map_err(|source| NotReady::Dir { what, source })?;
    }
    blocking(pipelines::check_plugins)
        .await
        .map_err(NotReady::GStreamer)?;
    let storage = state.recordings.storage();
    storage.check().await.map_err(NotReady::Store)?;
    Ok(Json(Ready {
        ready: true,
        data_dir: "writable",
        spool: "writable",
        gstreamer: "ok",
        storage: storage.backend(),
    }))
}

/// Writes and removes a probe file in `dir`.
async fn writable(dir: PathBuf) -> std::io::Result<()> {
    blocking(move || {
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(".readyz");
        std::fs::write(&path, b"ok")?;
        std::fs::remove_file(&path)
    })
    .await
}

/// Runs `f` on the blocking pool; a panic in it is resumed here.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => value,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"))
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.recordings.update_metrics().await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        METRICS.render(),
    )
}
