//! HTTP surface: the call UI, signaling WebSocket, WHIP/WHEP, dev tokens and ops endpoints.

mod error;
mod ops;
mod web;
mod whip;
mod ws;

pub use error::ApiError;

use crate::auth::TokenKeys;
use crate::config::Config;
use crate::sfu::Sfu;
use axum::routing::{delete, get, post};
use axum::Router;
use std::sync::Arc;

/// Everything handlers share; read-only after start-up.
#[derive(Clone)]
pub struct AppState {
    pub sfu: Sfu,
    pub keys: TokenKeys,
    pub config: Arc<Config>,
}

/// All routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(web::index))
        .route("/room/{room}", get(web::room))
        .route("/static/{file}", get(web::asset))
        .route("/ws", get(ws::upgrade))
        .route("/whip/{room}", post(whip::publish))
        .route("/whip/{room}/{identity}", delete(whip::unpublish))
        .route("/whep/{room}/{identity}", post(whip::view))
        .route("/whep/{room}/{identity}/{viewer}", delete(whip::unview))
        .route("/api/dev/token", get(web::dev_token))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .with_state(state)
}
