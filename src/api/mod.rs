//! HTTP surface: the call UI, signaling WebSocket, WHIP/WHEP, dev tokens and ops endpoints.

mod access;
mod compat;
mod error;
mod extract;
mod guard;
mod listener;
mod ops;
mod recordings;
mod serve;
mod web;
mod whip;
mod ws;

pub use error::ApiError;
pub use guard::Guard;
pub use listener::serve;

use crate::auth::TokenKeys;
use crate::config::Config;
use crate::recording::Recordings;
use crate::sfu::Sfu;
use crate::signed_url::DownloadSigner;
use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, post};
use axum::Router;
use std::sync::Arc;

/// Everything handlers share; read-only after start-up.
#[derive(Clone)]
pub struct AppState {
    pub sfu: Sfu,
    pub keys: TokenKeys,
    pub downloads: DownloadSigner,
    pub config: Arc<Config>,
    pub recordings: Recordings,
    pub guard: Arc<Guard>,
}

/// The recording API and its compatibility routes.
fn recording_routes() -> Router<AppState> {
    use recordings as r;
    Router::new()
        .route("/api/webrtc/rooms/{room}/recording/start", post(r::start))
        .route(
            "/api/webrtc/rooms/{room}/recording/{id}/{action}",
            post(r::control),
        )
        .route(
            "/api/webrtc/rooms/{room}/recording/{id}",
            delete(r::cancel_or_delete),
        )
        .route(
            "/api/webrtc/rooms/{room}/recording/{id}/status",
            get(r::status),
        )
        .route("/api/webrtc/rooms/{room}/recordings", get(r::room_list))
        .route("/api/webrtc/recordings", get(r::own_list))
        .route("/api/webrtc/recordings/{id}", delete(r::delete))
        .route("/api/webrtc/recordings/{id}/download", get(r::download))
        .route(
            "/api/webrtc/recordings/{id}/download-url",
            post(r::download_url),
        )
        .route("/api/webrtc/recordings/{id}/upload", post(r::retry_upload))
        .route("/api/webrtc/pipelines", get(r::pipelines))
        .route("/video-calls/{call}/recording/start", post(compat::start))
        .route("/video-calls/{call}/recording/stop", post(compat::stop))
        .route(
            "/video-calls/{call}/recording/{id}",
            get(compat::get).delete(compat::delete),
        )
}

/// All routes. Everything but the ops endpoints is rate-limited and has its body read
/// within the body timeout; CORS, when origins are allowed, wraps it all.
pub fn router(state: AppState) -> Router {
    let limited = Router::new()
        .route("/", get(web::index))
        .route("/room/{room}", get(web::room))
        .route("/static/{file}", get(web::asset))
        .route("/ws", get(ws::upgrade))
        .route("/whip/{room}", post(whip::publish))
        .route("/whip/{room}/{identity}", delete(whip::unpublish))
        .route("/whep/{room}/{identity}", post(whip::view))
        .route("/whep/{room}/{identity}/{viewer}", delete(whip::unview))
        .route("/api/dev/token", get(web::dev_token))
        .merge(recording_routes())
        .layer(from_fn_with_state(state.clone(), guard::read_body))
        .layer(from_fn_with_state(state.clone(), guard::rate_limit));
    let router = Router::new()
        .merge(limited)
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::wrong_method);
    let router = match guard::cors(&state.config.limits) {
        Some(cors) => router.layer(cors).layer(from_fn_with_state(
            state.clone(),
            guard::refuse_foreign_preflight,
        )),
        None => router,
    };
    router.with_state(state)
}
