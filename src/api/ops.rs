//! Liveness, readiness and metrics.

use super::{ApiError, AppState};
use crate::metrics::METRICS;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use signaling::protocol::ErrorCode;
use std::path::PathBuf;

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when GStreamer initialises, the data directory and the recording spool are writable
/// and the object store (if configured) answers.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let not_ready =
        |what: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::NotReady, what);
    let dirs = [
        ("data directory", state.config.data_dir.clone()),
        ("recording spool", state.config.recording.output_dir.clone()),
    ];
    for (what, dir) in dirs {
        writable(dir)
            .await
            .map_err(|e| not_ready(format!("{what} not writable: {e}")))?;
    }
    tokio::task::spawn_blocking(gstreamer_ready)
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r)
        .map_err(|e| not_ready(format!("GStreamer not ready: {e}")))?;
    let storage = state.recordings.storage();
    storage
        .check()
        .await
        .map_err(|e| not_ready(format!("object store unreachable: {e}")))?;
    Ok(Json(serde_json::json!({
        "ready": true,
        "data_dir": "writable",
        "spool": "writable",
        "gstreamer": "ok",
        "storage": storage.backend(),
    })))
}

async fn writable(dir: PathBuf) -> Result<(), String> {
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(".readyz");
        std::fs::write(&path, b"ok")?;
        std::fs::remove_file(&path)
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r.map_err(|e| e.to_string()))
}

fn gstreamer_ready() -> Result<(), String> {
    pipelines::check_plugins().map_err(|e| e.to_string())
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.recordings.update_metrics().await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        METRICS.render(),
    )
}
