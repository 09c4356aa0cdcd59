//! A real S3-compatible server for tests: moto (`moto[server]`, in memory) on 127.0.0.1, run from
//! the venv that `scripts/install-deps.sh` creates at
//! `${CAPSTAN_TOOLS_DIR:-$HOME/.cache/capstan}/moto-venv`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long moto may take to answer after it is spawned (about 1 s on a quiet machine).
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A `moto_server` child process on a free loopback port, killed on drop.
pub struct Moto {
    /// `http://127.0.0.1:PORT`, for `RECORDING_S3_ENDPOINT`.
    pub endpoint: String,
    port: u16,
    child: Option<Child>,
}

impl Moto {
    /// Starts moto on a free port and waits until it answers HTTP.
    pub async fn start() -> Self {
        let port = super::free_port();
        let mut moto = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            child: None,
        };
        moto.spawn().await;
        moto
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
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops moto if it runs and starts it again on the same port, empty (moto keeps everything
    /// in memory, so buckets and objects are gone).
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    async fn spawn(&mut self) {
        let binary = moto_server();
        assert!(
            binary.exists(),
            "{} is missing: run scripts/install-deps.sh, which installs moto[server] into a venv \
             under ${{CAPSTAN_TOOLS_DIR:-$HOME/.cache/capstan}}",
            binary.display()
        );
        let mut child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        let url = self.endpoint.clone();
        super::wait_for("moto_server to answer", START_TIMEOUT, || {
            let exited = child.try_wait().expect("try_wait on moto_server");
            assert!(exited.is_none(), "moto_server exited at start: {exited:?}");
            let url = url.clone();
            async move { reqwest::get(url).await.is_ok() }
        })
        .await;
        self.child = Some(child);
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `moto_server` in the venv that `scripts/install-deps.sh` creates.
fn moto_server() -> PathBuf {
    let tools = std::env::var_os("CAPSTAN_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/capstan")
        });
    tools.join("moto-venv/bin/moto_server")
}
