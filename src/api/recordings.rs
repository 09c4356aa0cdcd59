//! The recording API: start/stop/pause/resume/cancel, status, lists, download, delete, upload
//! retry and the pipelines view for ops.

use super::access::{host_of, member_of, Admin, Caller, RoomHost, RoomMember};
use super::error::{bearer, ErrorBody};
use super::extract::{Path, Query};
use super::serve::serve_file;
use super::{ApiError, AppState};
use crate::auth::{unix_now, Claims, Role};
use crate::recording::catalog::ListFilter;
use crate::recording::state::FileEntry;
use crate::recording::{
    BudgetView, PipelineView, RecError, RecordingParams, RecordingState, Status,
};
use crate::signed_url::{Signature, UrlError};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use signaling::protocol::ErrorCode;
use std::time::{Duration, UNIX_EPOCH};
use utoipa::{IntoParams, ToSchema};

pub use crate::recording::Action;

/// How long a presigned download URL is valid.
const PRESIGN_TTL: Duration = Duration::from_secs(15 * 60);

/// Query of `POST .../recording/start`.
#[derive(Debug, Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StartQuery {
    /// Default `webm`.
    #[param(value_type = Option<pipelines::Format>)]
    recording_format: Option<String>,
    /// Default `medium`.
    #[param(value_type = Option<pipelines::Quality>)]
    quality: Option<String>,
    /// Default `composite`; `tracks` is not available with `mp4`.
    #[param(value_type = Option<pipelines::Mode>)]
    mode: Option<String>,
    /// Default `grid`.
    #[param(value_type = Option<pipelines::Layout>)]
    layout: Option<String>,
}

impl StartQuery {
    /// Validated parameters; defaults: webm, medium, composite, grid.
    pub fn params(&self) -> Result<RecordingParams, ApiError> {
        fn field<T: std::str::FromStr>(v: &Option<String>, default: &str) -> Result<T, ApiError>
        where
            T::Err: std::fmt::Display,
        {
            v.as_deref()
                .unwrap_or(default)
                .parse()
                .map_err(|e: T::Err| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        ErrorCode::InvalidRequest,
                        e.to_string(),
                    )
                })
        }
        let params = RecordingParams {
            format: field(&self.recording_format, "webm")?,
            quality: field(&self.quality, "medium")?,
            mode: field(&self.mode, "composite")?,
            layout: field(&self.layout, "grid")?,
        };
        if params.mode == pipelines::Mode::Tracks && params.format == pipelines::Format::Mp4 {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidRequest,
                pipelines::SpecError::TracksModeMp4.to_string(),
            ));
        }
        Ok(params)
    }
}

/// Starts recording `room` for `claims`; shared with the compatibility routes. Checks in this
/// order: host, parameters, recording enabled, room exists.
pub async fn start_for(
    state: &AppState,
    host: &RoomHost,
    query: &StartQuery,
) -> Result<RecordingState, ApiError> {
    let room = host.room.as_str();
    let params = query.params()?;
    if !state.recordings.enabled() {
        return Err(RecError::Disabled.into());
    }
    let handle = state
        .sfu
        .find(room)
        .await
        .ok_or_else(|| RecError::RoomNotFound(room.into()))?;
    Ok(state
        .recordings
        .start_recording(room, &host.claims.sub, params, handle)
        .await?)
}

#[utoipa::path(
    post,
    path = "/api/webrtc/rooms/{room}/recording/start",
    tag = "recordings",
    params(("room" = String, Path, description = "Room name"), StartQuery),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Started", body = RecordingState),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Not allowed for this token", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "Conflicts with the recording's state", body = ErrorBody),
        (status = 429, description = "Too many recordings or requests", body = ErrorBody),
        (status = 503, description = "Recording cannot run now", body = ErrorBody),
    )
)]
/// Starts recording the room (host or admin).
pub async fn start(
    State(state): State<AppState>,
    host: RoomHost,
    Query(query): Query<StartQuery>,
) -> Result<(StatusCode, Json<RecordingState>), ApiError> {
    let recording = start_for(&state, &host, &query).await?;
    Ok((StatusCode::CREATED, Json(recording)))
}

/// The recording `id` of `room`, as the caller may see it.
pub(super) async fn recording_in_room(
    state: &AppState,
    room: &str,
    id: &str,
) -> Result<RecordingState, ApiError> {
    match state.recordings.get(id).await? {
        Some(r) if r.room_id == room => Ok(r),
        _ => Err(RecError::NotFound.into()),
    }
}

/// Runs `action` on recording `id` of the host's room; shared with compat.
pub async fn control_for(
    state: &AppState,
    host: &RoomHost,
    id: &str,
    action: Action,
) -> Result<RecordingState, ApiError> {
    recording_in_room(state, &host.room, id).await?;
    Ok(state.recordings.control(id, action).await?)
}

#[utoipa::path(
    post,
    path = "/api/webrtc/rooms/{room}/recording/{id}/{action}",
    tag = "recordings",
    params(("room" = String, Path, description = "Room name"), ("id" = String, Path, description = "Recording id"), ("action" = String, Path, description = "`stop`, `pause` or `resume`")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The recording after the action", body = RecordingState),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Not allowed for this token", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "Conflicts with the recording's state", body = ErrorBody),
        (status = 500, description = "Server error", body = ErrorBody),
        (status = 503, description = "Recording cannot run now", body = ErrorBody),
    )
)]
/// Stops, pauses or resumes a recording of the room (host or admin).
pub async fn control(
    State(state): State<AppState>,
    host: RoomHost,
    Path((_, id, verb)): Path<(String, String, String)>,
) -> Result<Json<RecordingState>, ApiError> {
    let action = match verb.as_str() {
        "stop" => Action::Stop,
        "pause" => Action::Pause,
        "resume" => Action::Resume,
        _ => return Err(ApiError::not_found(format!("no such action `{verb}`"))),
    };
    Ok(Json(control_for(&state, &host, &id, action).await?))
}

/// Cancels a running recording, deletes a finished one (host or admin).
#[utoipa::path(
    delete,
    path = "/api/webrtc/rooms/{room}/recording/{id}",
    tag = "recordings",
    params(("room" = String, Path, description = "Room name"), ("id" = String, Path, description = "Recording id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Cancelled; the recording", body = RecordingState),
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Not allowed for this token", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "Conflicts with the recording's state", body = ErrorBody),
        (status = 500, description = "Server error", body = ErrorBody),
        (status = 503, description = "Recording cannot run now", body = ErrorBody),
    )
)]
pub async fn cancel_or_delete(
    State(state): State<AppState>,
    host: RoomHost,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let recording = recording_in_room(&state, &host.room, &id).await?;
    if recording.status.is_final() {
        state.recordings.delete(&id).await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(Json(state.recordings.control(&id, Action::Cancel).await?).into_response())
}

#[utoipa::path(
    get,
    path = "/api/webrtc/rooms/{room}/recording/{id}/status",
    tag = "recordings",
    params(("room" = String, Path, description = "Room name"), ("id" = String, Path, description = "Recording id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The recording", body = RecordingState),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Not allowed for this token", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 500, description = "Server error", body = ErrorBody),
        (status = 503, description = "Recording cannot run now", body = ErrorBody),
    )
)]
/// A recording of the room (members of the room).
pub async fn status(
    State(state): State<AppState>,
    member: RoomMember,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<RecordingState>, ApiError> {
    Ok(Json(recording_in_room(&state, &member.room, &id).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only recordings in this status.
    #[param(value_type = Option<Status>)]
    status: Option<String>,
}

fn status_filter(q: &ListQuery) -> Result<Option<Status>, ApiError> {
    q.status
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            Status::parse(s).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidRequest,
                    format!("unknown status `{s}`"),
                )
            })
        })
        .transpose()
}

#[utoipa::path(
    get,
    path = "/api/webrtc/rooms/{room}/recordings",
    tag = "recordings",
    params(("room" = String, Path, description = "Room name"), ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The room's recordings, newest first", body = Vec<RecordingState>),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Not allowed for this token", body = ErrorBody),
        (status = 500, description = "Server error", body = ErrorBody),
        (status = 503, description = "Recording cannot run now", body = ErrorBody),
    )
)]
/// The room's recordings (members of the room).
pub async fn room_list(
    State(state): State<AppState>,
    member: RoomMember,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<RecordingState>>, ApiError> {
    let filter = ListFilter {
        room: Some(member.room),
        status: status_filter(&q)?,
        ..Default::default()
    };
    Ok(Json(state.recordings.list(&filter).await?))
}

/// The caller's own recordings (admin: everyone's).
#[utoipa::path(
    get,
    path = "/api/webrtc/recordings",
    tag = "recordings",
    params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The recordings, newest first", body = Vec<RecordingState>),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 500, description = "Server error", body = ErrorBody),
        (status = 503, description = "Recording cannot run now", body = ErrorBody),
    )
)]
pub async fn own_list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
    Caller(claims): Caller,
) -> Result<Json<Vec<RecordingState>>, ApiError> {
    let filter = own_filter(&claims, status_filter(&q)?);
    Ok(Json(state.recordings.list(&filter).await?))
}

/// What "my recordings" may show: identities are unique only within a room, so a token sees
/// the recordings its identity started in its own room; an admin sees all.
fn own_filter(claims: &Claims, status: Option<Status>) -> ListFilter {
    if claims.role == Role::Admin {
        return ListFilter {
            status,
            ..Default::default()
        };
    }
    ListFilter {
        room: Some(claims.room.clone()),
        user: Some(claims.sub.clone()),
        status,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FileQuery {
    /// Which file (tracks mode has one per participant); default the first.
    file: Option<usize>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// Which file; default the first.
    file: Option<usize>,
    /// Expiry (Unix seconds) of a signed URL from `POST .../download-url`.
    expires: Option<u64>,
    /// Signature of a signed URL from `POST .../download-url`.
    sig: Option<String>,
    /// Refused: access tokens do not belong in URLs.
    token: Option<String>,
}

/// Recording `id`, if the caller may read its room.
async fn readable(state: &AppState, claims: &Claims, id: &str) -> Result<RecordingState, ApiError> {
    let recording = state.recordings.get(id).await?.ok_or(RecError::NotFound)?;
    member_of(claims, &recording.room_id)?;
    Ok(recording)
}

/// File `index` of `recording`, once the recording has files to download.
fn downloadable_file(recording: &RecordingState, index: usize) -> Result<&FileEntry, ApiError> {
    let downloadable = recording.status == Status::Completed
        || (recording.status == Status::Failed && !recording.files.is_empty());
    if !downloadable {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::NotReady,
            format!(
                "Recording is {}; nothing to download yet",
                recording.status.as_str()
            ),
        ));
    }
    recording.files.get(index).ok_or_else(|| {
        ApiError::not_found(format!(
            "Recording has {} files; no file {index}",
            recording.files.len()
        ))
    })
}

/// Answer of `POST .../download-url`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DownloadUrl {
    /// Relative to the server: `/api/webrtc/recordings/{id}/download?file=N&expires=..&sig=..`.
    url: String,
    /// RFC 3339; the URL is refused from this second on.
    expires_at: String,
}

/// A short-lived signed URL for whoever may download the file with their token.
#[utoipa::path(
    post,
    path = "/api/webrtc/recordings/{id}/download-url",
    tag = "recordings",
    params(("id" = String, Path, description = "Recording id"), FileQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The signed URL", body = DownloadUrl),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Not allowed for this token", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "Conflicts with the recording's state", body = ErrorBody),
        (status = 500, description = "Server error", body = ErrorBody),
        (status = 503, description = "Recording cannot run now", body = ErrorBody),
    )
)]
pub async fn download_url(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<FileQuery>,
    Caller(claims): Caller,
) -> Result<Json<DownloadUrl>, ApiError> {
    let recording = readable(&state, &claims, &id).await?;
    let index = q.file.unwrap_or(0);
    downloadable_file(&recording, index)?;
    let id = &recording.recording_id;
    let Signature { expires, sig } = state.downloads.sign(id, index, unix_now().as_secs());
    let expires_at = UNIX_EPOCH + Duration::from_secs(expires);
    Ok(Json(DownloadUrl {
        url: format!(
            "/api/webrtc/recordings/{id}/download?file={index}&expires={expires}&sig={sig}"
        ),
        expires_at: humantime::format_rfc3339_seconds(expires_at).to_string(),
    }))
}

/// Serves the file with Range support, or redirects to a presigned URL of the object store. Authorized by
/// the `Authorization` header or by a signed URL (`expires` and `sig`) for exactly this
/// recording and file.
#[utoipa::path(
    get,
    path = "/api/webrtc/recordings/{id}/download",
    tag = "recordings",
    params(("id" = String, Path, description = "Recording id"), DownloadQuery),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The file", content(
            (String = "video/webm"), (String = "video/x-matroska"), (String = "video/mp4"),
        )),
        (status = 206, description = "Part of the file (a `Range` request)", content(
            (String = "video/webm"), (String = "video/x-matroska"), (String = "video/mp4"),
        )),
        (status = 307, description = "Redirect to a presigned object store URL"),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Not allowed for this token", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "Conflicts with the recording's state", body = ErrorBody),
        (status = 416, description = "Range not satisfiable", body = ErrorBody),
        (status = 500, description = "Server error", body = ErrorBody),
        (status = 503, description = "Recording cannot run now", body = ErrorBody),
    )
)]
pub async fn download(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<DownloadQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if q.token.is_some() {
        return Err(UrlError::TokenInUrl.into());
    }
    let index = q.file.unwrap_or(0);
    let signed = q.expires.is_some() || q.sig.is_some();
    let recording = if signed && bearer(&headers).is_err() {
        let (Some(expires), Some(sig)) = (q.expires, q.sig.as_deref()) else {
            return Err(UrlError::BadSignature.into());
        };
        let now = unix_now().as_secs();
        state.downloads.verify(&id, index, expires, sig, now)?;
        state.recordings.get(&id).await?.ok_or(RecError::NotFound)?
    } else {
        readable(&state, &Caller::verify(&state, &headers)?, &id).await?
    };
    let file = downloadable_file(&recording, index)?;
    if let Some(path) = &file.local_path {
        let keys = state.config.recording.encryption.as_ref();
        return serve_file(std::path::Path::new(path), &file.file_name, &headers, keys).await;
    }
    match (&file.s3_key, state.recordings.storage().object_store()) {
        (Some(key), Some(store)) => {
            let url = store
                .presigned_get(key, PRESIGN_TTL)
                .await
                .map_err(RecError::from)?;
            Ok(Redirect::temporary(&url).into_response())
        }
        _ => Err(ApiError::not_found("Recording file is not available")),
    }
}

/// Deletes a finished recording (host of its room or admin).
#[utoipa::path(
    delete,
    path = "/api/webrtc/recordings/{id}",
    tag = "recordings",
    params(("id" = String, Path, description = "Recording id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Not allowed for this token", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "Conflicts with the recording's state", body = ErrorBody),
        (status = 500, description = "Server error", body = ErrorBody),
        (status = 503, description = "Recording cannot run now", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Caller(claims): Caller,
) -> Result<StatusCode, ApiError> {
    let recording = state.recordings.get(&id).await?.ok_or(RecError::NotFound)?;
    host_of(&claims, &recording.room_id)?;
    state.recordings.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Retries a failed upload (host of its room or admin).
#[utoipa::path(
    post,
    path = "/api/webrtc/recordings/{id}/upload",
    tag = "recordings",
    params(("id" = String, Path, description = "Recording id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The recording, processing again", body = RecordingState),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Not allowed for this token", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "Conflicts with the recording's state", body = ErrorBody),
        (status = 500, description = "Server error", body = ErrorBody),
        (status = 503, description = "Recording cannot run now", body = ErrorBody),
    )
)]
pub async fn retry_upload(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Caller(claims): Caller,
) -> Result<Json<RecordingState>, ApiError> {
    let recording = state.recordings.get(&id).await?.ok_or(RecError::NotFound)?;
    host_of(&claims, &recording.room_id)?;
    Ok(Json(state.recordings.retry_upload(&id).await?))
}

/// The running pipelines and the CPU budget.
#[derive(Debug, Serialize, ToSchema)]
pub struct Pipelines {
    pipelines: Vec<PipelineView>,
    budget: BudgetView,
}

/// The running pipelines and the CPU budget (admin).
#[utoipa::path(
    get,
    path = "/api/webrtc/pipelines",
    tag = "recordings",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Pipelines and budget", body = Pipelines),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Not allowed for this token", body = ErrorBody),
    )
)]
pub async fn pipelines(State(state): State<AppState>, _: Admin) -> Json<Pipelines> {
    let (pipelines, budget) = state.recordings.pipelines().await;
    Json(Pipelines { pipelines, budget })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(room: &str, sub: &str, role: Role) -> Claims {
        Claims {
            sub: sub.into(),
            name: sub.into(),
            room: room.into(),
            role,
            exp: 0,
        }
    }

    #[test]
    fn own_recordings_are_the_identitys_in_the_tokens_room() {
        let f = own_filter(&claims("elsewhere", "boss", Role::Host), None);
        assert_eq!(
            (f.room.as_deref(), f.user.as_deref()),
            (Some("elsewhere"), Some("boss"))
        );
        let f = own_filter(
            &claims("r", "p", Role::Participant),
            Some(Status::Completed),
        );
        assert_eq!(
            (f.room.as_deref(), f.user.as_deref(), f.status),
            (Some("r"), Some("p"), Some(Status::Completed))
        );
        let f = own_filter(&claims("r", "root", Role::Admin), None);
        assert_eq!((f.room, f.user), (None, None));
    }
}
