//! Compatibility routes for existing clients: `/video-calls/{callId}/recording/...`, answering
//! `{"success", "data", "message"}`. A call id is a room name.

use super::access::{RoomHost, RoomMember};
use super::extract::{Path, Query};
use super::recordings::{control_for, recording_in_room, start_for, Action, StartQuery};
use super::{ApiError, AppState};
use crate::recording::catalog::ListFilter;
use crate::recording::{RecError, RecordingState, Status};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

fn envelope(status: StatusCode, data: Value, message: &str) -> Response {
    let body = json!({ "success": true, "data": data, "message": message });
    (status, Json(body)).into_response()
}

/// Errors in the envelope too: `{"success": false, "data": null, "message", "error"}`.
fn failure(e: ApiError) -> Response {
    e.report();
    let body = json!({ "success": false, "data": null, "message": e.message, "error": e.code });
    (e.status, Json(body)).into_response()
}

fn summary(r: &RecordingState) -> Value {
    json!({
        "recordingId": r.recording_id,
        "roomId": r.room_id,
        "startedAt": r.started_at,
        "status": r.status,
    })
}

fn detail(r: &RecordingState) -> Value {
    json!({
        "id": r.recording_id,
        "recordingId": r.recording_id,
        "roomId": r.room_id,
        "status": r.status,
        "startedAt": r.started_at,
        "stoppedAt": r.stopped_at,
        "duration": (r.duration_seconds * 1000.0).round() as u64,
        "outputPath": r.local_path.clone().or_else(|| r.s3_key.clone()),
        "size": r.file_size_bytes,
        "participants": r.participants.iter().map(|p| json!({
            "id": p.identity,
            "audioChunks": p.audio_packets,
            "videoChunks": p.video_packets,
        })).collect::<Vec<_>>(),
    })
}

pub async fn start(
    State(state): State<AppState>,
    host: Result<RoomHost, ApiError>,
    query: Result<Query<StartQuery>, ApiError>,
) -> Response {
    let result = async { start_for(&state, &host?, &query?.0).await };
    match result.await {
        Ok(r) => envelope(StatusCode::CREATED, summary(&r), "Recording started"),
        Err(e) => failure(e),
    }
}

/// Stops the call's running recording.
pub async fn stop(State(state): State<AppState>, host: Result<RoomHost, ApiError>) -> Response {
    let result = async {
        let host = host?;
        let filter = ListFilter {
            room: Some(host.room.clone()),
            ..Default::default()
        };
        let running = state
            .recordings
            .list(&filter)
            .await?
            .into_iter()
            .find(|r| matches!(r.status, Status::Recording | Status::Paused))
            .ok_or(RecError::NotFound)?;
        control_for(&state, &host, &running.recording_id, Action::Stop).await
    };
    match result.await {
        Ok(r) => envelope(StatusCode::OK, summary(&r), "Recording stopped"),
        Err(e) => failure(e),
    }
}

pub async fn get(
    State(state): State<AppState>,
    member: Result<RoomMember, ApiError>,
    path: Result<Path<(String, String)>, ApiError>,
) -> Response {
    let result = async {
        let Path((_, id)) = path?;
        recording_in_room(&state, &member?.room, &id).await
    };
    match result.await {
        Ok(r) => envelope(StatusCode::OK, detail(&r), "Recording found"),
        Err(e) => failure(e),
    }
}

/// Cancels a running recording or deletes a finished one.
pub async fn delete(
    State(state): State<AppState>,
    host: Result<RoomHost, ApiError>,
    path: Result<Path<(String, String)>, ApiError>,
) -> Response {
    let result = async {
        let host = host?;
        let Path((_, id)) = path?;
        let recording = recording_in_room(&state, &host.room, &id).await?;
        if recording.status.is_final() {
            state.recordings.delete(&id).await?;
            return Ok(recording);
        }
        control_for(&state, &host, &id, Action::Cancel).await
    };
    match result.await {
        Ok(r) => envelope(StatusCode::OK, summary(&r), "Recording deleted"),
        Err(e) => failure(e),
    }
}
