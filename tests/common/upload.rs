//! Client upload helpers: a real WebM made with GStreamer, the seed route, the status route.

use super::TestServer;
use base64::Engine;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The picture of a [`webm_of`]: a `videotestsrc` pattern, its size, and the VP8 bitrate.
pub struct TestVideo {
    pub pattern: &'static str,
    pub width: u32,
    pub height: u32,
    pub bitrate: u32,
}

/// Writes a WebM (VP8 320x240 at 30 fps + Opus) of `seconds` into `dir`, as a browser's
/// MediaRecorder would upload it (live, no index written at the end).
pub fn make_webm(dir: &Path, seconds: u32) -> PathBuf {
    let small = TestVideo {
        pattern: "smpte",
        width: 320,
        height: 240,
        bitrate: 256_000,
    };
    webm_of(dir, seconds, &small)
}

/// Writes `local.webm` in `dir`: `seconds` of `video` at 30 fps and Opus, live (streamable,
/// no index), as MediaRecorder writes it.
pub fn webm_of(dir: &Path, seconds: u32, video: &TestVideo) -> PathBuf {
    let path = dir.join("local.webm");
    let status = Command::new("gst-launch-1.0")
        .args([
            "-q",
            "webmmux",
            "name=m",
            "streamable=true",
            "!",
            "filesink",
        ])
        .arg(format!("location={}", path.display()))
        .args([
            "videotestsrc",
            &format!("pattern={}", video.pattern),
            &format!("num-buffers={}", seconds * 30),
            "!",
        ])
        .arg(format!(
            "video/x-raw,width={},height={},framerate=30/1",
            video.width, video.height
        ))
        .args(["!", "vp8enc", "deadline=1"])
        .arg(format!("target-bitrate={}", video.bitrate))
        .args(["!", "m."])
        .args([
            "audiotestsrc",
            &format!("num-buffers={}", seconds * 50),
            "samplesperbuffer=960",
            "!",
        ])
        .args([
            "audio/x-raw,rate=48000,channels=1",
            "!",
            "opusenc",
            "!",
            "m.",
        ])
        .status()
        .expect("gst-launch-1.0 runs");
    assert!(status.success(), "gst-launch-1.0 failed");
    path
}

/// One chunk request's JSON.
pub fn chunk_json(id: &str, who: &str, sequence: u64, bytes: &[u8], last: bool) -> Value {
    json!({
        "recordingId": id,
        "participantId": who,
        "sequence": sequence,
        "chunk": base64::engine::general_purpose::STANDARD.encode(bytes),
        "final": last,
    })
}

/// The seed route's client for one participant.
pub struct Uploader {
    pub base: String,
    pub token: String,
    pub who: String,
    client: reqwest::Client,
}

impl Uploader {
    pub fn new(server: &TestServer, room: &str, who: &str) -> Self {
        Self {
            base: server.base.clone(),
            token: server.token(room, who, capstan::auth::Role::Participant),
            who: who.into(),
            client: reqwest::Client::new(),
        }
    }

    /// Posts raw JSON; status and envelope.
    pub async fn post(&self, body: &Value) -> (reqwest::StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}/video-calls/chunks/upload", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .expect("chunk request");
        let status = response.status();
        (status, response.json().await.expect("envelope"))
    }

    pub async fn chunk(
        &self,
        id: &str,
        sequence: u64,
        bytes: &[u8],
        last: bool,
    ) -> (reqwest::StatusCode, Value) {
        self.post(&chunk_json(id, &self.who, sequence, bytes, last))
            .await
    }

    /// `GET /video-calls/recording/{id}/status`.
    pub async fn status(&self, id: &str) -> (reqwest::StatusCode, Value) {
        let response = self
            .client
            .get(format!("{}/video-calls/recording/{id}/status", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("status request");
        let status = response.status();
        (status, response.json().await.expect("envelope"))
    }

    /// Waits until the upload's recording is final (completed, failed); its state.
    pub async fn wait_final(&self, id: &str) -> Value {
        let what = format!("recording {id} to finish");
        super::wait_for(&what, std::time::Duration::from_secs(30), || async {
            let (_, body) = self.status(id).await;
            matches!(body["data"]["state"].as_str(), Some("completed" | "failed"))
        })
        .await;
        self.status(id).await.1["data"]["recording"].clone()
    }

    /// Downloads the recording's file.
    pub async fn download(&self, id: &str) -> Vec<u8> {
        let response = self
            .client
            .get(format!("{}/api/webrtc/recordings/{id}/download", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("download");
        assert_eq!(response.status(), reqwest::StatusCode::OK, "download {id}");
        response.bytes().await.expect("download body").to_vec()
    }
}
