//! JSON errors: `{"error": code, "message": text}` with a fitting status. Every error type of
//! the layers below is mapped to a status and code here, and only here.

use crate::auth::AuthError;
use crate::recording::RecError;
use crate::sfu::http_session::StartError;
use crate::sfu::peer::PeerError;
use crate::sfu::room::JoinError;
use crate::signed_url::UrlError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let (status, code) = match e {
            AuthError::WrongRoom { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            AuthError::Expired => (StatusCode::UNAUTHORIZED, "token_expired"),
            AuthError::Missing | AuthError::Invalid(_) | AuthError::EmptyIdentity => {
                (StatusCode::UNAUTHORIZED, "unauthorized")
            }
        };
        Self::new(status, code, e.to_string())
    }
}

impl From<UrlError> for ApiError {
    fn from(e: UrlError) -> Self {
        let (status, code) = match e {
            UrlError::Expired => (StatusCode::UNAUTHORIZED, "url_expired"),
            UrlError::BadSignature => (StatusCode::FORBIDDEN, "invalid_signature"),
            UrlError::TokenInUrl => (StatusCode::UNAUTHORIZED, "token_in_url"),
        };
        Self::new(status, code, e.to_string())
    }
}

impl From<RecError> for ApiError {
    fn from(e: RecError) -> Self {
        let (status, code) = match &e {
            RecError::Disabled => (StatusCode::FORBIDDEN, "recording_disabled"),
            RecError::NotFound => (StatusCode::NOT_FOUND, "recording_not_found"),
            RecError::RoomNotFound(_) => (StatusCode::NOT_FOUND, "room_not_found"),
            RecError::AlreadyInProgress => (StatusCode::CONFLICT, "recording_in_progress"),
            RecError::Limit(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_recordings"),
            RecError::InsufficientCapacity(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "insufficient_capacity")
            }
            RecError::Conflict(_) => (StatusCode::CONFLICT, "invalid_state"),
            RecError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            RecError::Pipeline(_) => (StatusCode::INTERNAL_SERVER_ERROR, "pipeline_error"),
            RecError::Storage(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage_error"),
            RecError::Catalog(_) => (StatusCode::INTERNAL_SERVER_ERROR, "catalog_error"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<StartError> for ApiError {
    fn from(e: StartError) -> Self {
        let message = e.to_string();
        match e {
            StartError::Join(JoinError::RoomFull(..)) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "room_full", message)
            }
            StartError::Join(JoinError::NoSuchRoom(_)) | StartError::NoSuchPublisher(_) => {
                ApiError::not_found(message)
            }
            StartError::Peer(PeerError::InvalidSdp(_)) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_sdp", message)
            }
            StartError::Peer(PeerError::Negotiation(_)) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "negotiation_failed",
                message,
            ),
            StartError::Peer(PeerError::Create(_)) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_media_port", message)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code, "message": self.message });
        (self.status, Json(body)).into_response()
    }
}

/// The bearer token of an `Authorization` header.
pub fn bearer(headers: &axum::http::HeaderMap) -> Result<&str, AuthError> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(AuthError::Missing)
}
