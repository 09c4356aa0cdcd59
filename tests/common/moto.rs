//! A real S3-compatible server for tests: moto (`moto[server]`, in memory) on 127.0.0.1, run from
//! the venv that `scripts/install-deps.sh` creates.

use super::emulator::Emulator;

/// A `moto_server` child process on a free loopback port, killed on drop.
pub struct Moto {
    /// `http://127.0.0.1:PORT`, for `RECORDING_S3_ENDPOINT`.
    pub endpoint: String,
    server: Emulator,
}

impl Moto {
    /// Starts moto on a free port and waits until it answers HTTP.
    pub async fn start() -> Self {
        let args = |port: u16| {
            vec![
                "-H".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port.to_string(),
            ]
        };
        let server = Emulator::start("moto-venv/bin/moto_server", args, "/").await;
        Self {
            endpoint: server.url.clone(),
            server,
        }
    }

    /// Creates `bucket` (moto accepts an unsigned path-style PUT).
    pub async fn create_bucket(&self, bucket: &str) {
        let response = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint))
            .send()
            .await
            .expect("PUT bucket to moto");
        assert!(
            response.status().is_success(),
            "moto refused to create bucket {bucket}: {}",
            response.status()
        );
    }

    /// Kills moto and waits for it to exit: the store is down until [`Moto::restart`].
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Stops moto if it runs and starts it again on the same port, empty (buckets and objects
    /// are gone).
    pub async fn restart(&mut self) {
        self.server.restart().await;
    }
}
