//! Client recording uploads over HTTP: the seed route `POST /video-calls/chunks/upload`
//! (base64 chunks in JSON, answered in the `{success, data, message}` envelope), its status
//! route, and tus 1.0 (core, creation, creation-defer-length) under `/api/webrtc/uploads`.

use super::access::Caller;
use super::compat::{envelope, failure, Envelope, Failure};
use super::error::ErrorBody;
use super::extract::{Body, Path};
use super::{ApiError, AppState};
use crate::recording::{RecordingState, Status};
use crate::upload::{ChunkRequest, Phase, Protocol, Upload};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::{Deserialize, Serialize};
use signaling::protocol::ErrorCode;
use utoipa::ToSchema;

const TUS_VERSION: &str = "1.0.0";
const TUS_EXTENSIONS: &str = "creation,creation-defer-length";
/// Longest `Upload-Metadata` kept.
const MAX_METADATA: usize = 4096;

/// The JSON of one chunk.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ChunkBody {
    recording_id: String,
    participant_id: String,
    sequence: u64,
    /// Base64 (standard alphabet, padded).
    chunk: String,
    /// The last chunk: the upload is assembled once every sequence up to this one is in.
    #[serde(rename = "final", default)]
    last: bool,
}

/// Where an upload is, as the status route and chunk answers show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum UploadState {
    /// Chunks (or tus bytes) are arriving.
    Receiving,
    /// Handed over: the recording's status (`processing`, `completed`, `failed`).
    #[serde(untagged)]
    Recording(Status),
}

/// The body limit of the seed route: a base64 chunk of `max_chunk` bytes and its JSON.
pub fn chunk_body_limit(max_chunk: u64) -> usize {
    (max_chunk.div_ceil(3) * 4 + 64 * 1024) as usize
}

/// What the chunk and status routes answer about an upload.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadStatus {
    recording_id: Option<String>,
    /// `receiving`, then the recording's status (`processing`, `completed`, `failed`).
    #[schema(value_type = String)]
    state: UploadState,
    /// `chunks` or `tus`; null once only the recording is left.
    #[schema(value_type = Option<String>)]
    protocol: Option<&'static str>,
    chunks_received: Option<usize>,
    bytes_received: Option<u64>,
    /// The sequence of the chunk sent with `final`.
    final_sequence: Option<u64>,
    /// Sequences below the highest received that have not arrived.
    missing: Option<Vec<u64>>,
    /// The recording the upload became.
    recording: Option<RecordingState>,
}

fn status_data(upload: Option<&Upload>, recording: Option<&RecordingState>) -> UploadStatus {
    let state = match (upload, recording) {
        (_, Some(r)) => UploadState::Recording(r.status),
        (Some(u), None) if u.phase == Phase::Finished => UploadState::Recording(Status::Processing),
        _ => UploadState::Receiving,
    };
    let (chunks, last, missing) = match upload.map(|u| &u.protocol) {
        Some(Protocol::Chunks(c)) => (Some(c.count()), c.last(), Some(c.missing())),
        _ => (None, None, None),
    };
    let protocol = upload.map(|u| match u.protocol {
        Protocol::Chunks(_) => "chunks",
        Protocol::Tus { .. } => "tus",
    });
    UploadStatus {
        recording_id: upload
            .map(|u| u.id.clone())
            .or(recording.map(|r| r.recording_id.clone())),
        state,
        protocol,
        chunks_received: chunks,
        bytes_received: upload.map(Upload::bytes),
        final_sequence: last,
        missing,
        recording: recording.cloned(),
    }
}

fn decode(body: &[u8], max_chunk: u64) -> Result<(ChunkBody, Vec<u8>), ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, m);
    let chunk: ChunkBody =
        serde_json::from_slice(body).map_err(|e| bad(format!("invalid chunk JSON: {e}")))?;
    let estimate = chunk.chunk.len() as u64 / 4 * 3;
    if estimate > max_chunk + 2 {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!(
                "the chunk is about {estimate} bytes; the limit is {max_chunk} (CAPSTAN_UPLOAD_MAX_CHUNK)"
            ),
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&chunk.chunk)
        .map_err(|e| bad(format!("`chunk` is not valid base64: {e}")))?;
    Ok((chunk, bytes))
}

/// Stores one base64 chunk of a client recording; the first creates the upload.
#[utoipa::path(
    post,
    path = "/video-calls/chunks/upload",
    tag = "uploads",
    request_body = ChunkBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Stored, already stored, or the upload finished", body = Envelope<UploadStatus>),
        (status = 400, description = "Invalid JSON or base64", body = Failure),
        (status = 401, description = "No valid bearer token", body = Failure),
        (status = 403, description = "Another room's or participant's upload", body = Failure),
        (status = 409, description = "Conflicting bytes, a gap too far ahead, missing chunks at `final`, or finished", body = Failure),
        (status = 413, description = "Chunk or upload too large", body = Failure),
        (status = 429, description = "Too many unfinished uploads", body = Failure),
        (status = 500, description = "Server error", body = Failure),
        (status = 503, description = "Recording cannot run now", body = Failure),
    )
)]
pub async fn chunk(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    body: Result<Body, ApiError>,
) -> Response {
    let result = async {
        let Caller(claims) = caller?;
        let Body(body) = body?;
        let (chunk, bytes) = decode(&body, state.uploads.config().max_chunk)?;
        let request = ChunkRequest {
            recording_id: chunk.recording_id,
            participant_id: chunk.participant_id,
            sequence: chunk.sequence,
            bytes: bytes.into(),
            last: chunk.last,
        };
        Ok::<_, ApiError>(state.uploads.chunk(&claims, request).await?)
    };
    match result.await {
        Ok(answer) => {
            let message = match (&answer.recording, answer.stored) {
                (Some(_), _) => "Upload finished; the recording is being checked",
                (None, true) => "Chunk stored",
                (None, false) => "Chunk already received",
            };
            let data = status_data(Some(&answer.upload), answer.recording.as_ref());
            envelope(StatusCode::OK, data, message)
        }
        Err(e) => failure(e),
    }
}

/// Where a client upload is: chunks, bytes, missing sequences, and the recording it became.
#[utoipa::path(
    get,
    path = "/video-calls/recording/{id}/status",
    tag = "uploads",
    params(("id" = String, Path, description = "The upload's recording id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The upload", body = Envelope<UploadStatus>),
        (status = 401, description = "No valid bearer token", body = Failure),
        (status = 403, description = "Another room's upload", body = Failure),
        (status = 404, description = "No such upload", body = Failure),
        (status = 500, description = "Server error", body = Failure),
    )
)]
pub async fn status(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    path: Result<Path<String>, ApiError>,
) -> Response {
    let result = async {
        let Caller(claims) = caller?;
        let Path(id) = path?;
        Ok::<_, ApiError>(state.uploads.status(&claims, &id).await?)
    };
    match result.await {
        Ok((upload, recording)) => envelope(
            StatusCode::OK,
            status_data(upload.as_ref(), recording.as_ref()),
            "Upload found",
        ),
        Err(e) => failure(e),
    }
}

fn tus_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
    response
}

/// The 412 answer to a request that does not say `Tus-Resumable: 1.0.0`.
fn wrong_tus_version(headers: &HeaderMap) -> Option<Response> {
    if headers
        .get("tus-resumable")
        .is_some_and(|v| v == TUS_VERSION)
    {
        return None;
    }
    let error = ApiError::new(
        StatusCode::PRECONDITION_FAILED,
        ErrorCode::UnsupportedTusVersion,
        format!("this server speaks tus {TUS_VERSION}: send Tus-Resumable: {TUS_VERSION}"),
    );
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    Some(tus_headers(response))
}

/// A numeric header; `None` when absent.
fn number(headers: &HeaderMap, name: &str) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidRequest,
                format!("{name} is not a non-negative integer"),
            )
        })
}

fn tus_error(e: impl Into<ApiError>) -> Response {
    tus_headers(e.into().into_response())
}

fn offset_headers(mut response: Response, upload: &Upload) -> Response {
    let headers = response.headers_mut();
    if let Protocol::Tus { progress, metadata } = &upload.protocol {
        headers.insert("upload-offset", progress.offset.into());
        match progress.length {
            Some(length) => headers.insert("upload-length", length.into()),
            None => headers.insert("upload-defer-length", HeaderValue::from_static("1")),
        };
        if let Some(m) = metadata
            .as_deref()
            .and_then(|m| HeaderValue::from_str(m).ok())
        {
            headers.insert("upload-metadata", m);
        }
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    tus_headers(response)
}

/// tus: what the server supports (`Tus-Version`, `Tus-Extension`, `Tus-Max-Size`).
#[utoipa::path(
    options,
    path = "/api/webrtc/uploads",
    tag = "uploads",
    responses((status = 204, description = "The tus headers")),
)]
pub async fn tus_options(State(state): State<AppState>) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    headers.insert("tus-extension", HeaderValue::from_static(TUS_EXTENSIONS));
    headers.insert("tus-max-size", state.uploads.config().max_size.into());
    tus_headers(response)
}

/// tus: creates an upload with `Upload-Length` or `Upload-Defer-Length: 1`.
#[utoipa::path(
    post,
    path = "/api/webrtc/uploads",
    tag = "uploads",
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created; `Location` is the upload's URL"),
        (status = 400, description = "Invalid tus headers", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 412, description = "Not `Tus-Resumable: 1.0.0`", body = ErrorBody),
        (status = 413, description = "Longer than `Tus-Max-Size`", body = ErrorBody),
        (status = 429, description = "Too many unfinished uploads", body = ErrorBody),
        (status = 500, description = "Server error", body = ErrorBody),
    )
)]
pub async fn tus_create(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = wrong_tus_version(&headers) {
        return refused;
    }
    let result = async {
        let Caller(claims) = caller?;
        let bad = |m: &str| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, m);
        let length = number(&headers, "upload-length")?;
        let deferred = headers.get("upload-defer-length").map(|v| v == "1");
        let length = match (length, deferred) {
            (Some(l), None) => Some(l),
            (None, Some(true)) => None,
            (Some(_), Some(_)) => {
                return Err(bad("send Upload-Length or Upload-Defer-Length, not both"))
            }
            (None, Some(false)) => return Err(bad("Upload-Defer-Length must be 1")),
            (None, None) => return Err(bad("send Upload-Length or Upload-Defer-Length: 1")),
        };
        let metadata = match headers.get("upload-metadata") {
            Some(v) if v.len() > MAX_METADATA => {
                return Err(bad("Upload-Metadata is longer than 4096 bytes"))
            }
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| bad("Upload-Metadata is not ASCII"))?
                    .to_string(),
            ),
            None => None,
        };
        Ok(state.uploads.tus_create(&claims, length, metadata).await?)
    };
    match result.await {
        Ok((upload, _)) => {
            let mut response = StatusCode::CREATED.into_response();
            let location = format!("/api/webrtc/uploads/{}", upload.id);
            if let Ok(location) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            offset_headers(response, &upload)
        }
        Err(e) => tus_error(e),
    }
}

/// tus: where to resume (`Upload-Offset`).
#[utoipa::path(
    head,
    path = "/api/webrtc/uploads/{id}",
    tag = "uploads",
    params(("id" = String, Path, description = "The upload's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The offset and length in headers"),
        (status = 401, description = "No valid bearer token"),
        (status = 403, description = "Another room's upload"),
        (status = 404, description = "No such upload"),
        (status = 412, description = "Not `Tus-Resumable: 1.0.0`"),
    )
)]
pub async fn tus_head(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    path: Result<Path<String>, ApiError>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = wrong_tus_version(&headers) {
        return refused;
    }
    let result = async {
        let Caller(claims) = caller?;
        let Path(id) = path?;
        Ok::<_, ApiError>(state.uploads.tus_get(&claims, &id).await?)
    };
    match result.await {
        Ok(upload) => offset_headers(StatusCode::OK.into_response(), &upload),
        Err(e) => tus_error(e),
    }
}

/// tus: appends the body (`application/offset+octet-stream`) at `Upload-Offset`, streamed
/// to disk; the upload becomes a recording when its length is reached.
#[utoipa::path(
    patch,
    path = "/api/webrtc/uploads/{id}",
    tag = "uploads",
    params(("id" = String, Path, description = "The upload's id")),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream"),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Appended; `Upload-Offset` is the new offset"),
        (status = 400, description = "Invalid tus headers", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Another room's upload", body = ErrorBody),
        (status = 404, description = "No such upload", body = ErrorBody),
        (status = 409, description = "`Upload-Offset` is not the upload's offset, or it is finished", body = ErrorBody),
        (status = 412, description = "Not `Tus-Resumable: 1.0.0`", body = ErrorBody),
        (status = 413, description = "Past the upload's length or the size limit", body = ErrorBody),
        (status = 415, description = "Not `application/offset+octet-stream`", body = ErrorBody),
        (status = 500, description = "Server error", body = ErrorBody),
    )
)]
pub async fn tus_patch(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    path: Result<Path<String>, ApiError>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    if let Some(refused) = wrong_tus_version(&headers) {
        return refused;
    }
    let result = async {
        let Caller(claims) = caller?;
        let Path(id) = path?;
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if content_type != Some("application/offset+octet-stream") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "a PATCH body is Content-Type: application/offset+octet-stream",
            ));
        }
        let offset = number(&headers, "upload-offset")?.ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidRequest,
                "Upload-Offset is required",
            )
        })?;
        let length = number(&headers, "upload-length")?;
        let frames = body.into_data_stream();
        let timeout = state.config.limits.body_timeout;
        Ok(state
            .uploads
            .tus_patch(&claims, &id, offset, length, frames, timeout)
            .await?)
    };
    match result.await {
        Ok((upload, _)) => offset_headers(StatusCode::NO_CONTENT.into_response(), &upload),
        Err(e) => tus_error(e),
    }
}
