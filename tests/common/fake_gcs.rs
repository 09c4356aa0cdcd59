//! A real GCS API server for tests: fake-gcs-server (in memory) on 127.0.0.1, from the venv that
//! `scripts/install-deps.sh` creates, and a service-account key made for it.

use super::emulator::Emulator;
use std::sync::OnceLock;

/// A `fake-gcs-server` child process on a free loopback port, killed on drop.
pub struct FakeGcs {
    /// `http://127.0.0.1:PORT`, for `RECORDING_GCS_ENDPOINT`.
    pub endpoint: String,
    server: Emulator,
}

impl FakeGcs {
    /// Starts fake-gcs-server on a free port and waits until it answers.
    pub async fn start() -> Self {
        let args = |port: u16| {
            let host = format!("127.0.0.1:{port}");
            [
                "-backend",
                "memory",
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-port",
                &port.to_string(),
                "-public-host",
                &host,
                "-external-url",
                &format!("http://{host}"),
                "-log-level",
                "error",
            ]
            .map(String::from)
            .into()
        };
        let server =
            Emulator::start("fake-gcs-venv/bin/fake-gcs-server", args, "/storage/v1/b").await;
        Self {
            endpoint: server.url.clone(),
            server,
        }
    }

    /// Creates `bucket` (the emulator takes unauthenticated requests).
    pub async fn create_bucket(&self, bucket: &str) {
        let response = reqwest::Client::new()
            .post(format!("{}/storage/v1/b", self.endpoint))
            .json(&serde_json::json!({ "name": bucket }))
            .send()
            .await
            .expect("create bucket on fake-gcs-server");
        assert!(
            response.status().is_success(),
            "fake-gcs-server refused to create bucket {bucket}: {}",
            response.status()
        );
    }

    /// Kills the server: the store is down until [`FakeGcs::restart`].
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Starts the server again on the same port, empty.
    pub async fn restart(&mut self) {
        self.server.restart().await;
    }
}

/// A service-account key (JSON) with a fresh RSA key, made once per test binary: the store
/// signs its tokens and download URLs with it (the emulator checks neither).
pub fn service_account_key() -> &'static str {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(|| {
        let pem = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .output()
            .expect("run openssl genpkey");
        assert!(pem.status.success(), "openssl genpkey: {pem:?}");
        serde_json::json!({
            "type": "service_account",
            "private_key": String::from_utf8(pem.stdout).expect("PEM is text"),
            "private_key_id": "test-key",
            "client_email": "recorder@capstan-test.iam.gserviceaccount.com",
        })
        .to_string()
    })
}
