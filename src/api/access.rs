//! Who is calling, and what the caller may do: extractors that verify the request's
//! `Authorization: Bearer` token before a handler runs. A missing, forged or expired token, or a
//! token for another room, is refused with the JSON error of [`ApiError`].

use super::error::bearer;
use super::guard::BearerClaims;
use super::{ApiError, AppState};
use crate::auth::{Claims, Role};
use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use signaling::protocol::ErrorCode;

/// Any caller with a valid token.
pub struct Caller(pub Claims);

impl Caller {
    pub(super) fn verify(state: &AppState, headers: &HeaderMap) -> Result<Claims, ApiError> {
        Ok(state.keys.verify(bearer(headers)?)?)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(BearerClaims(claims)) = parts.extensions.get::<BearerClaims>() {
            return Ok(Caller(claims.clone()));
        }
        Caller::verify(state, &parts.headers).map(Caller)
    }
}

/// A caller in the path's room (`{room}`, or `{call}` on the compatibility routes), or an
/// admin.
pub struct RoomMember {
    pub claims: Claims,
    pub room: String,
}

impl FromRequestParts<AppState> for RoomMember {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Caller(claims) = Caller::from_request_parts(parts, state).await?;
        let room = path_room(parts, state).await?;
        member_of(&claims, &room)?;
        Ok(Self { claims, room })
    }
}

/// The host of the path's room, or an admin.
pub struct RoomHost {
    pub claims: Claims,
    pub room: String,
}

impl FromRequestParts<AppState> for RoomHost {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Caller(claims) = Caller::from_request_parts(parts, state).await?;
        let room = path_room(parts, state).await?;
        host_of(&claims, &room)?;
        Ok(Self { claims, room })
    }
}

/// An admin.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Caller(claims) = Caller::from_request_parts(parts, state).await?;
        if claims.role != Role::Admin {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "this needs an admin token",
            ));
        }
        Ok(Admin)
    }
}

/// The room named by the route (`{room}` or `{call}`), percent-decoded.
async fn path_room(parts: &mut Parts, state: &AppState) -> Result<String, ApiError> {
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                e.body_text(),
            )
        })?;
    params
        .iter()
        .find(|(name, _)| matches!(*name, "room" | "call"))
        .map(|(_, value)| value.to_owned())
        .ok_or_else(|| ApiError::not_found("this route names no room"))
}

/// The host of `room`, or an admin; for rooms found through a recording.
pub(super) fn host_of(claims: &Claims, room: &str) -> Result<(), ApiError> {
    if claims.hosts(room) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        ErrorCode::Forbidden,
        "Only the room's host can control its recordings",
    ))
}

/// Anyone in `room`, or an admin.
pub(super) fn member_of(claims: &Claims, room: &str) -> Result<(), ApiError> {
    Ok(claims.enter(room)?)
}
