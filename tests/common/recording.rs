//! Recording API client for tests: start/stop/pause/resume, wait for a status, download.

use super::{wait_for, TestServer};
use capstan::auth::Role;
use reqwest::StatusCode;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A host of `room` driving the recording API.
pub struct Host {
    base: String,
    pub room: String,
    pub token: String,
}

/// Status code and JSON body of an API call.
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    /// The body, asserting the status.
    pub fn expect(self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "{}", self.body);
        self.body
    }
}

/// Sends a request with a bearer token and decodes the JSON answer.
pub async fn call(method: reqwest::Method, url: &str, token: Option<&str>) -> Reply {
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply { status, body }
}

/// The `recording_id` of a recording's JSON.
pub fn id_of(v: &Value) -> String {
    v["recording_id"]
        .as_str()
        .expect("recording_id")
        .to_string()
}

/// `DELETE url` with a bearer token; the status.
pub async fn delete(url: &str, token: &str) -> StatusCode {
    reqwest::Client::new()
        .delete(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("DELETE")
        .status()
}

impl Host {
    pub fn new(server: &TestServer, room: &str) -> Self {
        Host {
            base: server.base.clone(),
            room: room.into(),
            token: server.token(room, &format!("host-{room}"), Role::Host),
        }
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/api/webrtc/rooms/{}/recording{path}",
            self.base, self.room
        )
    }

    /// `POST .../recording/start?<query>`.
    pub async fn start(&self, query: &str) -> Reply {
        let url = format!("{}?{query}", self.url("/start"));
        call(reqwest::Method::POST, &url, Some(&self.token)).await
    }

    /// `POST .../recording/{id}/{action}`.
    pub async fn act(&self, id: &str, action: &str) -> Reply {
        call(
            reqwest::Method::POST,
            &self.url(&format!("/{id}/{action}")),
            Some(&self.token),
        )
        .await
    }

    pub async fn status(&self, id: &str) -> Value {
        call(
            reqwest::Method::GET,
            &self.url(&format!("/{id}/status")),
            Some(&self.token),
        )
        .await
        .expect(StatusCode::OK)
    }

    /// Waits until the recording reaches `status`; returns its state.
    pub async fn wait_status(&self, id: &str, status: &str, timeout: Duration) -> Value {
        let what = format!("recording {id} to become {status}");
        wait_for(&what, timeout, || async {
            self.status(id).await["status"] == status
        })
        .await;
        self.status(id).await
    }

    /// Downloads file `index` of recording `id` into `dir`.
    pub async fn download(&self, id: &str, index: usize, dir: &Path) -> PathBuf {
        let url = format!(
            "{}/api/webrtc/recordings/{id}/download?file={index}",
            self.base
        );
        let response = reqwest::Client::new()
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("download");
        assert_eq!(response.status(), StatusCode::OK, "download {id}");
        let bytes = response.bytes().await.expect("download body");
        let path = dir.join(format!("{id}-{index}"));
        std::fs::write(&path, &bytes).expect("write download");
        path
    }

    /// Records the room for `secs` seconds (tracks mode, WebM) with storage `backend` and asks
    /// to stop; returns the stop answer.
    pub async fn record_tracks(&self, backend: &str, secs: u64) -> Value {
        let started = self
            .start("recording_format=webm&mode=tracks")
            .await
            .expect(StatusCode::CREATED);
        assert_eq!(started["storage_backend"], backend, "{started}");
        tokio::time::sleep(Duration::from_secs(secs)).await;
        self.act(&id_of(&started), "stop")
            .await
            .expect(StatusCode::OK)
    }

    /// Waits until recording `id` is still processing on its second upload attempt or later;
    /// returns its state.
    pub async fn wait_upload_retrying(&self, id: &str, timeout: Duration) -> Value {
        wait_for("upload retries reported", timeout, || async {
            let s = self.status(id).await;
            s["status"] == "processing" && s["metadata"]["upload"]["attempt"].as_u64() >= Some(2)
        })
        .await;
        self.status(id).await
    }
}
