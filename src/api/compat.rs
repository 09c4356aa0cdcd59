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
use serde::Serialize;
use signaling::protocol::ErrorCode;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa::ToSchema;

/// A success answer: `{"success": true, "data", "message"}`.
#[derive(Serialize, ToSchema)]
pub struct Envelope<T> {
    /// Always true here.
    success: bool,
    data: T,
    message: String,
}

pub(super) fn envelope<T: Serialize>(status: StatusCode, data: T, message: &str) -> Response {
    let body = Envelope {
        success: true,
        data,
        message: message.into(),
    };
    (status, Json(body)).into_response()
}

/// An error answer: `{"success": false, "data": null, "message", "error"}`.
#[derive(Serialize, ToSchema)]
pub struct Failure {
    /// Always false here.
    success: bool,
    /// Always null here.
    #[schema(schema_with = null)]
    data: Option<()>,
    message: String,
    error: ErrorCode,
}

/// The schema of JSON `null`.
fn null() -> Object {
    ObjectBuilder::new().schema_type(Type::Null).build()
}

pub(super) fn failure(e: ApiError) -> Response {
    e.report();
    let body = Failure {
        success: false,
        data: None,
        message: e.message,
        error: e.code,
    };
    (e.status, Json(body)).into_response()
}

/// A recording, briefly.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    recording_id: String,
    room_id: String,
    started_at: Option<String>,
    status: Status,
}

fn summary(r: &RecordingState) -> Summary {
    Summary {
        recording_id: r.recording_id.clone(),
        room_id: r.room_id.clone(),
        started_at: r.started_at.clone(),
        status: r.status,
    }
}

/// A participant of a recording, with the packets recorded from them.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DetailParticipant {
    id: String,
    audio_chunks: u64,
    video_chunks: u64,
}

/// A recording in full.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Detail {
    id: String,
    recording_id: String,
    room_id: String,
    status: Status,
    started_at: Option<String>,
    stopped_at: Option<String>,
    /// Milliseconds.
    duration: u64,
    /// The local path, else the object key.
    output_path: Option<String>,
    /// Bytes.
    size: u64,
    participants: Vec<DetailParticipant>,
}

fn detail(r: &RecordingState) -> Detail {
    Detail {
        id: r.recording_id.clone(),
        recording_id: r.recording_id.clone(),
        room_id: r.room_id.clone(),
        status: r.status,
        started_at: r.started_at.clone(),
        stopped_at: r.stopped_at.clone(),
        duration: (r.duration_seconds * 1000.0).round() as u64,
        output_path: r.local_path.clone().or_else(|| r.s3_key.clone()),
        size: r.file_size_bytes,
        participants: r
            .participants
            .iter()
            .map(|p| DetailParticipant {
                id: p.identity.clone(),
                audio_chunks: p.audio_packets,
                video_chunks: p.video_packets,
            })
            .collect(),
    }
}

/// Starts recording the call (host or admin).
#[utoipa::path(
    post,
    path = "/video-calls/{call}/recording/start",
    tag = "compat",
    params(("call" = String, Path, description = "Call id (a room name)"), StartQuery),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Started", body = Envelope<Summary>),
        (status = 400, description = "Invalid request", body = Failure),
        (status = 401, description = "No valid bearer token", body = Failure),
        (status = 403, description = "Not allowed for this token", body = Failure),
        (status = 404, description = "Not found", body = Failure),
        (status = 409, description = "Conflicts with the recording's state", body = Failure),
        (status = 429, description = "Too many recordings", body = Failure),
        (status = 503, description = "Recording cannot run now", body = Failure),
    )
)]
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

/// Stops the call's running recording (host or admin).
#[utoipa::path(
    post,
    path = "/video-calls/{call}/recording/stop",
    tag = "compat",
    params(("call" = String, Path, description = "Call id (a room name)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Stopped", body = Envelope<Summary>),
        (status = 401, description = "No valid bearer token", body = Failure),
        (status = 403, description = "Not allowed for this token", body = Failure),
        (status = 404, description = "Not found", body = Failure),
        (status = 409, description = "Conflicts with the recording's state", body = Failure),
        (status = 500, description = "Server error", body = Failure),
        (status = 503, description = "Recording cannot run now", body = Failure),
    )
)]
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

/// A recording of the call (members of the call).
#[utoipa::path(
    get,
    path = "/video-calls/{call}/recording/{id}",
    tag = "compat",
    params(("call" = String, Path, description = "Call id (a room name)"), ("id" = String, Path, description = "Recording id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The recording", body = Envelope<Detail>),
        (status = 400, description = "Invalid request", body = Failure),
        (status = 401, description = "No valid bearer token", body = Failure),
        (status = 403, description = "Not allowed for this token", body = Failure),
        (status = 404, description = "Not found", body = Failure),
        (status = 500, description = "Server error", body = Failure),
        (status = 503, description = "Recording cannot run now", body = Failure),
    )
)]
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

/// Cancels a running recording or deletes a finished one (host or admin).
#[utoipa::path(
    delete,
    path = "/video-calls/{call}/recording/{id}",
    tag = "compat",
    params(("call" = String, Path, description = "Call id (a room name)"), ("id" = String, Path, description = "Recording id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Cancelled or deleted; the recording", body = Envelope<Summary>),
        (status = 400, description = "Invalid request", body = Failure),
        (status = 401, description = "No valid bearer token", body = Failure),
        (status = 403, description = "Not allowed for this token", body = Failure),
        (status = 404, description = "Not found", body = Failure),
        (status = 409, description = "Conflicts with the recording's state", body = Failure),
        (status = 500, description = "Server error", body = Failure),
        (status = 503, description = "Recording cannot run now", body = Failure),
    )
)]
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
