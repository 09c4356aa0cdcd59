//! Capstan: a WebRTC SFU (webrtc-rs) that records rooms server-side.

pub mod api;
pub mod auth;
pub mod config;
pub mod metrics;
pub mod sfu;

use std::sync::Arc;

/// Binds the HTTP listener and serves until the process is stopped.
pub async fn serve(config: config::Config) -> std::io::Result<()> {
    let peers = sfu::peer::PeerFactory::new(config.rtc.clone());
    let state = api::AppState {
        sfu: sfu::Sfu::start(peers, config.max_participants),
        keys: auth::TokenKeys::new(&config.jwt_secret),
        config: Arc::new(config),
    };
    let listener = tokio::net::TcpListener::bind(state.config.http_addr).await?;
    tracing::info!(
        "capstan listening on http://{}{}",
        listener.local_addr()?,
        if state.config.dev { " (dev mode)" } else { "" }
    );
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
}

/// Resolves on SIGINT or SIGTERM (e.g. `docker stop`), letting in-flight requests finish.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
}
