//! JSON errors: `{"error": code, "message": text}` with a fitting status. Every error type of
//! the layers below is mapped to a status and code here, and only here.

use super::guard::{Limited, TooManyPending};
use crate::auth::AuthError;
use crate::recording::RecError;
use crate::sfu::http_session::StartError;
use crate::sfu::peer::PeerError;
use crate::sfu::room::JoinError;
use crate::signed_url::UrlError;
use crate::upload::UploadError;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use signaling::protocol::ErrorCode;
use std::time::Duration;

/// The body of every error answer (but the compatibility routes').
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorCode,
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    /// Sent as `Retry-After` (whole seconds, rounded up).
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let (status, code) = match e {
            AuthError::WrongRoom { .. } => (StatusCode::FORBIDDEN, ErrorCode::Forbidden),
            AuthError::Expired => (StatusCode::UNAUTHORIZED, ErrorCode::TokenExpired),
            AuthError::Missing | AuthError::Invalid | AuthError::EmptyIdentity => {
                (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized)
            }
            AuthError::InvalidClaim { .. } => (StatusCode::UNAUTHORIZED, ErrorCode::InvalidClaim),
        };
        Self::new(status, code, e.to_string())
    }
}

impl From<UrlError> for ApiError {
    fn from(e: UrlError) -> Self {
        let (status, code) = match e {
            UrlError::Expired => (StatusCode::UNAUTHORIZED, ErrorCode::UrlExpired),
            UrlError::BadSignature => (StatusCode::FORBIDDEN, ErrorCode::InvalidSignature),
            UrlError::TokenInUrl => (StatusCode::UNAUTHORIZED, ErrorCode::TokenInUrl),
        };
        Self::new(status, code, e.to_string())
    }
}

impl From<RecError> for ApiError {
    fn from(e: RecError) -> Self {
        let (status, code) = match &e {
            RecError::Disabled => (StatusCode::FORBIDDEN, ErrorCode::RecordingDisabled),
            RecError::NotFound => (StatusCode::NOT_FOUND, ErrorCode::RecordingNotFound),
            RecError::RoomNotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::RoomNotFound),
            RecError::AlreadyInProgress => (StatusCode::CONFLICT, ErrorCode::RecordingInProgress),
            RecError::Limit(_) => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::TooManyRecordings),
            RecError::InsufficientCapacity(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::InsufficientCapacity,
            ),
            RecError::Conflict(_) => (StatusCode::CONFLICT, ErrorCode::InvalidState),
            RecError::Invalid(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest),
            RecError::Pipeline(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::PipelineError),
            RecError::Spec(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest),
            RecError::Stopped => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::NotReady),
            RecError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::StorageError),
            RecError::LocalFile { .. } => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::IoError),
            RecError::Catalog(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::CatalogError),
            RecError::Crypt(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::EncryptionError,
            ),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        let e = match e {
            UploadError::Recording(e) => return e.into(),
            e => e,
        };
        let (status, code) = match &e {
            UploadError::Invalid(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest),
            UploadError::Forbidden(_) => (StatusCode::FORBIDDEN, ErrorCode::Forbidden),
            UploadError::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::UploadNotFound),
            UploadError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge),
            UploadError::ChunkConflict(_) => (StatusCode::CONFLICT, ErrorCode::ChunkConflict),
            UploadError::Gap { .. } => (StatusCode::CONFLICT, ErrorCode::SequenceGap),
            UploadError::Missing(_) => (StatusCode::CONFLICT, ErrorCode::MissingChunks),
            UploadError::Finished(_) => (StatusCode::CONFLICT, ErrorCode::UploadFinished),
            UploadError::Offset(_) => (StatusCode::CONFLICT, ErrorCode::OffsetMismatch),
            UploadError::Conflict(_) => (StatusCode::CONFLICT, ErrorCode::InvalidState),
            UploadError::TooMany(_) => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::TooManyUploads),
            UploadError::Io { .. } | UploadError::Recording(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::IoError)
            }
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<StartError> for ApiError {
    fn from(e: StartError) -> Self {
        let message = e.to_string();
        match e {
            StartError::Join(JoinError::RoomFull(..)) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::RoomFull,
                message,
            ),
            StartError::Join(JoinError::NoSuchRoom(_)) | StartError::NoSuchPublisher(_) => {
                ApiError::not_found(message)
            }
            StartError::Peer(PeerError::InvalidSdp(_)) => {
                ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidSdp, message)
            }
            StartError::Peer(PeerError::Negotiation(_)) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::NegotiationFailed,
                message,
            ),
            StartError::Peer(PeerError::Create(_)) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::NoMediaPort,
                message,
            ),
        }
    }
}

impl From<Limited> for ApiError {
    fn from(e: Limited) -> Self {
        ApiError {
            retry_after: Some(e.retry_after),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                format!(
                    "too many requests from this {}; retry in {} ms",
                    e.per,
                    e.retry_after.as_millis().max(1)
                ),
            )
        }
    }
}

impl From<TooManyPending> for ApiError {
    fn from(e: TooManyPending) -> Self {
        ApiError {
            retry_after: Some(e.retry_after),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::TooManyPending,
                format!(
                    "this {} already has {} WHIP/WHEP sessions waiting for ICE to connect",
                    e.per, e.max
                ),
            )
        }
    }
}

/// An extractor's refusal: its status, a code that fits it, and axum's explanation.
fn rejection(status: StatusCode, text: String) -> ApiError {
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        s if s.is_server_error() => ErrorCode::Internal,
        _ => ErrorCode::BadRequest,
    };
    ApiError::new(status, code, text)
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        rejection(e.status(), e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        rejection(e.status(), e.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(e: BytesRejection) -> Self {
        rejection(e.status(), e.body_text())
    }
}

impl ApiError {
    /// Logs a server error (5xx); every error answer goes through here.
    pub(super) fn report(&self) {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, code = ?self.code, "{}", self.message);
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.report();
        let body = ErrorBody {
            error: self.code,
            message: self.message,
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(after) = self.retry_after {
            let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.max(1).into());
        }
        response
    }
}

/// Answer for a path no route matches.
pub async fn no_route() -> ApiError {
    ApiError::not_found("no such route")
}

/// Answer for a route that exists, asked with another method.
pub async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "this route does not take this method",
    )
}

/// The bearer token of an `Authorization` header (the scheme is case-insensitive, RFC 9110).
pub fn bearer(headers: &axum::http::HeaderMap) -> Result<&str, AuthError> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthError::Missing)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::Missing)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthError::Missing);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{header::AUTHORIZATION, HeaderMap};

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in ["Bearer t", "bearer t", "BEARER  t ", " bEaReR t"] {
            assert_eq!(bearer(&with(value)), Ok("t"), "{value}");
        }
        for value in ["Basic t", "Bearer", "Bearer  ", "Bearert", "t"] {
            assert_eq!(bearer(&with(value)), Err(AuthError::Missing), "{value}");
        }
        assert_eq!(bearer(&HeaderMap::new()), Err(AuthError::Missing));
    }
}
