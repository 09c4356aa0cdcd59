//! The call UI and development tokens.

use super::error::ErrorBody;
use super::extract::{Path, Query};
use super::{ApiError, AppState};
use crate::auth::Role;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use signaling::protocol::ErrorCode;
use signaling::web::{self, Asset};
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

/// Lifetime of `/api/dev/token` tokens.
const DEV_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// Headers of every page and asset: a CSP that allows only the server's own scripts, styles,
/// images and connections (the UI has no inline script or style; `style.setProperty` is
/// not inline style), no framing except by `CAPSTAN_FRAME_ANCESTORS`, no MIME sniffing, no
/// referrer (room names are in URLs).
fn security_headers(state: &AppState) -> [(header::HeaderName, String); 3] {
    let csp = format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors {}",
        state.config.limits.frame_ancestors
    );
    [
        (header::CONTENT_SECURITY_POLICY, csp),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".into()),
        (header::REFERRER_POLICY, "no-referrer".into()),
    ]
}

fn serve(state: &AppState, asset: &Asset) -> Response {
    (
        security_headers(state),
        [(header::CONTENT_TYPE, asset.content_type)],
        asset.body,
    )
        .into_response()
}

/// A page of the call UI; with `--ui-test-hooks` its `<html>` carries `data-test-hooks`,
/// and only then does app.js expose `window.capstan`.
pub(super) fn page(state: &AppState, html: &'static str) -> Response {
    let body = if state.config.ui_test_hooks {
        html.replacen("<html", "<html data-test-hooks", 1)
    } else {
        html.to_string()
    };
    (
        security_headers(state),
        [(header::CONTENT_TYPE, web::HTML)],
        body,
    )
        .into_response()
}

/// The lobby page.
#[utoipa::path(
    get,
    path = "/",
    tag = "web",
    responses((status = 200, description = "The page", body = String, content_type = "text/html"))
)]
pub async fn index(State(state): State<AppState>) -> Response {
    page(&state, web::index())
}

/// The call page of a room.
#[utoipa::path(
    get,
    path = "/room/{room}",
    tag = "web",
    params(("room" = String, Path, description = "Room name")),
    responses((status = 200, description = "The page", body = String, content_type = "text/html"))
)]
pub async fn room(State(state): State<AppState>, Path(_room): Path<String>) -> Response {
    page(&state, web::room())
}

/// A script or style sheet of the pages.
#[utoipa::path(
    get,
    path = "/static/{file}",
    tag = "web",
    params(("file" = String, Path, description = "File name")),
    responses(
        (status = 200, description = "The file", content(
            (String = "text/javascript"), (String = "text/css"),
        )),
        (status = 404, description = "No such file", body = ErrorBody),
    )
)]
pub async fn asset(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    web::static_asset(&file)
        .map(|asset| serve(&state, asset))
        .ok_or_else(|| ApiError::not_found(format!("no such file: {file}")))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DevTokenQuery {
    room: String,
    identity: String,
    /// Display name; default the identity.
    name: Option<String>,
    /// `1` or `true`: a host token.
    host: Option<String>,
}

/// A development token.
#[derive(serde::Serialize, ToSchema)]
pub struct DevToken {
    /// The JWT, valid for a day.
    token: String,
    room: String,
    identity: String,
    name: String,
    /// `host` or `participant`.
    role: &'static str,
}

/// A token for anyone, only with `--dev`.
#[utoipa::path(
    get,
    path = "/api/dev/token",
    tag = "dev",
    params(DevTokenQuery),
    responses(
        (status = 200, description = "The token", body = DevToken),
        (status = 400, description = "Missing or empty room or identity", body = ErrorBody),
        (status = 404, description = "Not in `--dev` mode", body = ErrorBody),
    )
)]
pub async fn dev_token(
    State(state): State<AppState>,
    Query(q): Query<DevTokenQuery>,
) -> Result<Json<DevToken>, ApiError> {
    if !state.config.dev {
        return Err(ApiError::not_found("dev tokens exist only in --dev mode"));
    }
    if q.room.is_empty() || q.identity.is_empty() {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "room and identity must not be empty",
        ));
    }
    let host = matches!(q.host.as_deref(), Some("1" | "true"));
    let role = if host { Role::Host } else { Role::Participant };
    let name = q.name.unwrap_or_else(|| q.identity.clone());
    let token = state
        .keys
        .mint(&q.room, &q.identity, &name, role, DEV_TOKEN_TTL);
    Ok(Json(DevToken {
        token,
        room: q.room,
        identity: q.identity,
        name,
        role: role.as_str(),
    }))
}
