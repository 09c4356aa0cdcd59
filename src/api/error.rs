//! JSON errors: `{"error": code, "message": text}` with a fitting status.

use crate::auth::AuthError;
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
