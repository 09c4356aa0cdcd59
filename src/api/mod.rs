//! HTTP surface: the call UI, signaling WebSocket, WHIP/WHEP, dev tokens and ops endpoints.

mod access;
mod compat;
mod doc;
mod error;
mod extract;
mod guard;
mod listener;
mod ops;
mod recordings;
mod serve;
mod uploads;
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
use crate::upload::Uploads;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::Router;
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Everything handlers share; read-only after start-up.
#[derive(Clone)]
pub struct AppState {
    pub sfu: Sfu,
    pub keys: TokenKeys,
    pub downloads: DownloadSigner,
    pub config: Arc<Config>,
    pub recordings: Recordings,
    pub uploads: Uploads,
    pub guard: Arc<Guard>,
}

/// The routes that are rate-limited and have their bodies read within the body timeout.
///
/// Every route is added with `.routes(routes!(handler))`: the path and method come from the
/// handler's `#[utoipa::path]`, so the router and the OpenAPI document are one list. Handlers
/// of one path go in one `routes!` (`routes!(get_it, delete_it)`).
fn limited_routes() -> OpenApiRouter<AppState> {
    use recordings as r;
    OpenApiRouter::new()
        .routes(routes!(web::index))
        .routes(routes!(web::room))
        .routes(routes!(web::asset))
        .routes(routes!(ws::upgrade))
        .routes(routes!(whip::publish))
        .routes(routes!(whip::unpublish))
        .routes(routes!(whip::view))
        .routes(routes!(whip::unview))
        .routes(routes!(web::dev_token))
        .routes(routes!(doc::openapi_json))
        .routes(routes!(doc::page))
        .routes(routes!(r::start))
        .routes(routes!(r::control))
        .routes(routes!(r::cancel_or_delete))
        .routes(routes!(r::status))
        .routes(routes!(r::room_list))
        .routes(routes!(r::own_list))
        .routes(routes!(r::delete))
        .routes(routes!(r::download))
        .routes(routes!(r::download_url))
        .routes(routes!(r::retry_upload))
        .routes(routes!(r::pipelines))
        .routes(routes!(compat::start))
        .routes(routes!(compat::stop))
        .routes(routes!(compat::get, compat::delete))
}

/// The ops endpoints: neither rate-limited nor body-timed, for probes and scrapers.
fn ops_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
}

/// The OpenAPI document of every route of [`router`].
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut limited = limited_routes()
        .merge(chunk_routes())
        .merge(streamed_routes())
        .into_openapi();
    doc::add_guard_responses(&mut limited);
    let mut openapi = doc::ApiDoc::openapi();
    openapi.merge(limited);
    openapi.merge(ops_routes().into_openapi());
    openapi
}

/// The seed route of client uploads: rate-limited, its body read with a limit that fits its
/// chunk size instead of the 2 MiB of the other routes.
fn chunk_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(uploads::chunk))
}

/// tus uploads and the upload status: rate-limited; a tus `PATCH` body is streamed to disk by
/// its handler (each frame within the body timeout), so these skip the body guard.
fn streamed_routes() -> OpenApiRouter<AppState> {
    use uploads as u;
    OpenApiRouter::new()
        .routes(routes!(u::tus_options, u::tus_create))
        .routes(routes!(u::tus_head, u::tus_patch))
        .routes(routes!(u::status))
}

/// All routes. Everything but the ops endpoints is rate-limited and has its body read
/// within the body timeout; CORS, when origins are allowed, wraps it all.
pub fn router(state: AppState) -> Router {
    let chunks = Router::from(chunk_routes())
        .layer(DefaultBodyLimit::disable())
        .layer(from_fn_with_state(state.clone(), guard::read_chunk_body));
    let limited = Router::from(limited_routes())
        .layer(from_fn_with_state(state.clone(), guard::read_body))
        .merge(chunks)
        .merge(Router::from(streamed_routes()))
        .layer(from_fn_with_state(state.clone(), guard::rate_limit));
    let router = Router::new()
        .merge(limited)
        .merge(Router::from(ops_routes()))
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
