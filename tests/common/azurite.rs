//! A real Azure Blob server for tests: Azurite (in memory, no telemetry) on 127.0.0.1, from the
//! npm prefix that `scripts/install-deps.sh` fills.

use super::emulator::Emulator;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Azurite's single account and its published development key.
pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// The REST API version of the container request.
const API_VERSION: &str = "2021-08-06";

/// An `azurite-blob` child process on a free loopback port, killed on drop.
pub struct Azurite {
    /// `http://127.0.0.1:PORT/devstoreaccount1`, for `RECORDING_AZURE_ENDPOINT`.
    pub endpoint: String,
    server: Emulator,
}

impl Azurite {
    /// Starts Azurite's blob service on a free port and waits until it answers.
    pub async fn start() -> Self {
        let args = |port: u16| {
            [
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &port.to_string(),
                "--inMemoryPersistence",
                "--disableTelemetry",
                "--silent",
            ]
            .map(String::from)
            .into()
        };
        let server = Emulator::start("azurite/node_modules/.bin/azurite-blob", args, "/").await;
        Self {
            endpoint: format!("{}/{ACCOUNT}", server.url),
            server,
        }
    }

    /// Creates `container` (a Shared Key signed `Create Container`).
    pub async fn create_container(&self, container: &str) {
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        let to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{API_VERSION}\n\
             /{ACCOUNT}/{ACCOUNT}/{container}\nrestype:container"
        );
        let key = base64::engine::general_purpose::STANDARD
            .decode(KEY)
            .unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(to_sign.as_bytes());
        let signature =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let response = reqwest::Client::new()
            .put(format!("{}/{container}?restype=container", self.endpoint))
            .header("x-ms-date", date)
            .header("x-ms-version", API_VERSION)
            .header("Authorization", format!("SharedKey {ACCOUNT}:{signature}"))
            .header("Content-Length", "0")
            .send()
            .await
            .expect("create container on Azurite");
        assert!(
            response.status().is_success(),
            "Azurite refused to create container {container}: {}",
            response.status()
        );
    }

    /// Kills Azurite: the store is down until [`Azurite::restart`].
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Starts Azurite again on the same port, empty.
    pub async fn restart(&mut self) {
        self.server.restart().await;
    }
}
