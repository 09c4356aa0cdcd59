//! Liveness, readiness and metrics.

use super::{ApiError, AppState};
use crate::metrics::METRICS;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the data directory is writable.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let dir = state.config.data_dir.clone();
    let probe = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(".readyz");
        std::fs::write(&path, b"ok")?;
        std::fs::remove_file(&path)
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r.map_err(|e| e.to_string()));
    match probe {
        Ok(()) => Ok(Json(
            serde_json::json!({ "ready": true, "data_dir": "writable" }),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("data directory not writable: {e}"),
        )),
    }
}

pub async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        METRICS.render(),
    )
}
