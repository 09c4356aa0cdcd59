//! Capstan: a WebRTC SFU (webrtc-rs) that records rooms server-side.

pub mod api;
pub mod auth;
pub mod config;
pub mod encryption;
pub mod limits;
pub mod metrics;
pub mod recording;
pub mod setting;
pub mod sfu;
pub mod signed_url;
pub mod storage;
pub mod upload;
pub mod webhooks;

use std::sync::Arc;

/// Opens the catalog, recovers interrupted recordings, binds the HTTP listener and serves
/// until the process is stopped; running recordings are then stopped and finalised.
pub async fn serve(config: config::Config) -> std::io::Result<()> {
    let peers = sfu::peer::PeerFactory::new(config.rtc.clone());
    let sfu = sfu::Sfu::start(peers, config.max_participants);
    let catalog = recording::catalog::SqliteCatalog::open(&config.data_dir.join("catalog.sqlite3"))
        .map_err(std::io::Error::other)?;
    let storage =
        storage::Storage::new(&config.recording.storage).map_err(std::io::Error::other)?;
    let webhooks = webhooks::Webhooks::new(config.recording.webhooks.clone());
    let recordings = recording::Recordings::start(
        config.recording.clone(),
        Arc::new(catalog),
        storage,
        recording::Notifier::new(sfu.clone(), webhooks),
    )
    .await;
    let uploads = upload::Uploads::start(
        upload::UploadConfig {
            dir: config.data_dir.join("uploads"),
            max_chunk: config.limits.upload_max_chunk,
            max_size: config.limits.upload_max_size,
            max_per_user: config.limits.upload_max_per_user,
            ttl: config.limits.upload_ttl,
        },
        recordings.clone(),
    )
    .await?;
    let state = api::AppState {
        uploads,
        guard: Arc::new(api::Guard::new(&config)),
        sfu,
        keys: auth::TokenKeys::new(&config.jwt_secret),
        downloads: signed_url::DownloadSigner::new(&config.jwt_secret, config.download_url_ttl),
        config: Arc::new(config),
        recordings: recordings.clone(),
    };
    let listener = tokio::net::TcpListener::bind(state.config.http_addr).await?;
    tracing::info!(
        "capstan listening on http://{}{}",
        listener.local_addr()?,
        if state.config.dev { " (dev mode)" } else { "" }
    );
    let limits = state.config.limits.clone();
    api::serve(listener, api::router(state), &limits, shutdown_signal()).await;
    recordings.shutdown().await;
    Ok(())
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
