//! Test harness: a real `capstan serve --dev` process on 127.0.0.1, and webrtc-rs test peers
//! that publish GStreamer-generated VP8/Opus and decode what they receive with GStreamer.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod azurite;
#[path = "../../pipelines/tests/common/check.rs"]
pub mod check;
pub mod cutting_proxy;
pub mod emulator;
pub mod fake_gcs;
pub mod impair;
pub mod lossy;
pub mod media;
pub mod moto;
pub mod peer;
pub mod procfs;
pub mod recording;
pub mod stores;
pub mod upload;

use capstan::auth::{Role, TokenKeys, DEV_SECRET};
use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Log lines that mean media was silently lost, the server crashed, or GLib/GStreamer caught
/// a programming error (`GStreamer-CRITICAL **`, `GLib-CRITICAL **`).
pub const FORBIDDEN_LOG_LINES: &[&str] = &[
    "Failed to send RTP",
    "panicked",
    "extension not found",
    "-CRITICAL **",
];

/// A `capstan serve --dev` child process, killed on drop.
pub struct TestServer {
    child: Child,
    port: u16,
    env: Vec<(String, String)>,
    pub base: String,
    pub ws_base: String,
    log: PathBuf,
    pub data_dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts the server with extra environment variables and waits for `/healthz`.
    pub async fn start_with(env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let data_dir = tempfile::tempdir().expect("temp dir");
        let log = data_dir.path().join("server.log");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let child = spawn_server(port, data_dir.path(), &log, &env);
        let server = Self {
            child,
            port,
            env,
            base: format!("http://127.0.0.1:{port}"),
            ws_base: format!("ws://127.0.0.1:{port}"),
            log,
            data_dir,
        };
        server.wait_healthy().await;
        server
    }

    async fn wait_healthy(&self) {
        let url = format!("{}/healthz", self.base);
        let healthy = wait_until(Duration::from_secs(20), || async {
            reqwest::get(&url)
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        assert!(
            healthy,
            "server not healthy after 20 s; its log:\n{}",
            self.log()
        );
    }

    /// SIGKILLs the server (no chance to clean up), as a crash would.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Restarts with `env` added to (or replacing entries of) the environment.
    pub async fn restart_with(&mut self, env: &[(&str, &str)]) {
        for (k, v) in env {
            self.env.retain(|(key, _)| key != k);
            self.env.push((k.to_string(), v.to_string()));
        }
        self.restart().await;
    }

    /// Starts the server again on the same port, data directory and environment.
    pub async fn restart(&mut self) {
        self.kill_hard();
        self.child = spawn_server(self.port, self.data_dir.path(), &self.log, &self.env);
        self.wait_healthy().await;
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill");
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// A token signed with the dev secret, valid for an hour.
    pub fn token(&self, room: &str, identity: &str, role: Role) -> String {
        TokenKeys::new(DEV_SECRET).mint(room, identity, identity, role, Duration::from_secs(3600))
    }

    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// Fails when the server logged a line that means lost media or a crash.
    pub fn assert_clean_log(&self) {
        let log = self.log();
        for bad in FORBIDDEN_LOG_LINES {
            assert!(!log.contains(bad), "server log contains `{bad}`:\n{log}");
        }
    }

    /// POSTs `body` to `path` (WHIP/WHEP) with `content_type` and an optional bearer token.
    pub async fn post_sdp(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: String,
    ) -> SdpReply {
        let mut request = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .header("Content-Type", content_type)
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("POST");
        SdpReply {
            status: response.status(),
            location: response
                .headers()
                .get("location")
                .map(|l| l.to_str().expect("ASCII Location").to_string()),
            body: response.text().await.expect("body"),
        }
    }

    /// Current value of a Prometheus metric (sum over labels).
    pub async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.base))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body");
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// A WHIP/WHEP reply: the SDP answer on success, a JSON error otherwise.
pub struct SdpReply {
    pub status: reqwest::StatusCode,
    pub location: Option<String>,
    pub body: String,
}

impl SdpReply {
    /// The body as JSON (`Null` when it is not JSON, e.g. an SDP answer).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_server(port: u16, data_dir: &Path, log: &Path, env: &[(String, String)]) -> Child {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_capstan"));
    cmd.args(["serve", "--dev"])
        .env("CAPSTAN_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("CAPSTAN_DATA_DIR", data_dir)
        .env("CAPSTAN_RTC_BIND_IPS", "127.0.0.1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log_file);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn capstan")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Polls `check` every 100 ms until it holds; panics with `what` after `timeout`.
/// Asserts a JSON error answer: its status, its `error` code and a non-empty `message`.
pub fn assert_json_error(
    got: reqwest::StatusCode,
    json: &serde_json::Value,
    status: reqwest::StatusCode,
    code: &str,
) {
    assert_eq!(
        (got, json["error"].as_str()),
        (status, Some(code)),
        "{json}"
    );
    assert!(
        json["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{json}"
    );
}

pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    assert!(
        wait_until(timeout, check).await,
        "timed out after {timeout:?} waiting for {what}"
    );
}

/// Polls `check` every 100 ms until it holds (true) or `timeout` has passed (false).
pub async fn wait_until<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}
