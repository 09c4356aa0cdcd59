//! Outgoing webhooks for recording lifecycle events.
//!
//! [`Webhooks::send`] serializes an event once and enqueues it for every configured URL. Each URL
//! has its own delivery task that POSTs events one at a time, in order, retrying transient
//! failures with exponential backoff. Nothing on the caller's path waits for the network.

use bytes::Bytes;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use sha2::Sha256;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use uuid::Uuid;

/// Events waiting per URL; when a receiver is this far behind, new events are dropped.
const QUEUE_CAPACITY: usize = 1024;
/// Upper bound of the doubling retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Webhook settings: `CAPSTAN_WEBHOOK_URLS` (comma list), `CAPSTAN_WEBHOOK_SECRET`.
#[derive(Clone)]
pub struct WebhookConfig {
    /// Receivers; each gets every event.
    pub urls: Vec<String>,
    /// HMAC-SHA256 key for the `X-Capstan-Signature` header; unsigned when `None`.
    pub secret: Option<String>,
    /// Tries per event and URL, the first one included (default 5).
    pub max_attempts: u32,
    /// Delay before the first retry; doubles per retry up to 30 s (default 1 s).
    pub backoff: Duration,
    /// Limit for one request, response headers included (default 5 s).
    pub timeout: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            secret: None,
            max_attempts: 5,
            backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
        }
    }
}

impl WebhookConfig {
    /// Receivers from a comma-separated list (blanks ignored) and an optional secret (empty
    /// means none); other fields keep their defaults.
    pub fn new(urls: &str, secret: Option<String>) -> Self {
        Self {
            urls: parse_urls(urls),
            secret: secret.filter(|s| !s.is_empty()),
            ..Self::default()
        }
    }
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("urls", &self.urls)
            .field("secret", &self.secret.as_ref().map(|_| "<hidden>"))
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

/// Splits a comma-separated URL list, ignoring blanks.
fn parse_urls(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(String::from)
        .collect()
}

/// Delivery counts since start, one per (event, URL).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookStats {
    /// Answered with 2xx.
    pub delivered: u64,
    /// Given up: a permanent error or every attempt used.
    pub failed: u64,
    /// Never attempted because the URL's queue was full.
    pub dropped: u64,
}

/// Counters shared by the handle and the delivery tasks.
#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

/// One serialized event, shared by every URL's queue.
struct Delivery {
    event: String,
    id: Uuid,
    body: Bytes,
    signature: Option<String>,
}

impl Delivery {
    /// Builds the JSON envelope and signs it when a secret is set.
    fn new(event: &str, data: serde_json::Value, secret: Option<&str>) -> Self {
        let id = Uuid::new_v4();
        let envelope = serde_json::json!({
            "event": event,
            "delivery_id": id,
            "timestamp": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            "data": data,
        });
        let body = Bytes::from(envelope.to_string());
        let signature = secret.map(|secret| signature(secret, &body));
        Self {
            event: event.to_owned(),
            id,
            body,
            signature,
        }
    }
}

/// The sending side of one URL's delivery task.
struct Queue {
    url: String,
    tx: mpsc::Sender<Arc<Delivery>>,
}

/// Handle for sending webhook events; cheap to clone. Delivery tasks end once every clone is
/// dropped and their queues are drained.
#[derive(Clone)]
pub struct Webhooks {
    queues: Arc<[Queue]>,
    secret: Option<Arc<str>>,
    counters: Arc<Counters>,
}

impl Webhooks {
    /// Spawns one delivery task per URL; must be called inside a Tokio runtime when `cfg.urls`
    /// is not empty.
    pub fn new(cfg: WebhookConfig) -> Self {
        let counters = Arc::new(Counters::default());
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client with the built-in TLS roots");
        let queues = cfg
            .urls
            .iter()
            .map(|url| Worker::spawn(url, client.clone(), &cfg, counters.clone()))
            .collect();
        Self {
            queues,
            secret: cfg.secret.map(Arc::from),
            counters,
        }
    }

    /// Never blocks and never fails: enqueues `{"event", "delivery_id", "timestamp", "data"}`
    /// for every URL, dropping it (with a warning) where the queue is full.
    pub fn send(&self, event: &str, data: serde_json::Value) {
        if self.queues.is_empty() {
            return;
        }
        let delivery = Arc::new(Delivery::new(event, data, self.secret.as_deref()));
        for queue in self.queues.iter() {
            if queue.tx.try_send(delivery.clone()).is_err() {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(url = %queue.url, event, "webhook queue full, event dropped");
            }
        }
    }

    /// Delivered, failed and dropped counts so far.
    pub fn stats(&self) -> WebhookStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        WebhookStats {
            delivered: read(&self.counters.delivered),
            failed: read(&self.counters.failed),
            dropped: read(&self.counters.dropped),
        }
    }
}

/// Signature header value: `"sha256="` + lowercase hex HMAC-SHA256(secret, raw body).
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Result of one POST.
enum Outcome {
    Delivered,
    /// Worth another try (network error, timeout, 5xx, 429); the reason is logged.
    Retry(String),
    /// Another try would fail the same way (other statuses, invalid URL).
    Permanent(String),
}

/// Posts one URL's events in order.
struct Worker {
    url: String,
    client: reqwest::Client,
    max_attempts: u32,
    backoff: Duration,
    counters: Arc<Counters>,
}

impl Worker {
    /// Starts the task for `url` and returns its queue.
    fn spawn(
        url: &str,
        client: reqwest::Client,
        cfg: &WebhookConfig,
        counters: Arc<Counters>,
    ) -> Queue {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let worker = Self {
            url: url.to_owned(),
            client,
            max_attempts: cfg.max_attempts,
            backoff: cfg.backoff,
            counters,
        };
        tokio::spawn(worker.run(rx));
        Queue {
            url: url.to_owned(),
            tx,
        }
    }

    /// Delivers queued events one at a time until every sender is gone.
    async fn run(self, mut rx: mpsc::Receiver<Arc<Delivery>>) {
        while let Some(delivery) = rx.recv().await {
            self.deliver(&delivery).await;
        }
    }

    /// Tries `delivery` until it succeeds, fails permanently or runs out of attempts.
    async fn deliver(&self, delivery: &Delivery) {
        let mut delay = self.backoff;
        let mut attempts = 0;
        let reason = loop {
            attempts += 1;
            match self.attempt(delivery).await {
                Outcome::Delivered => {
                    self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Outcome::Retry(reason) if attempts < self.max_attempts => {
                    tracing::debug!(url = %self.url, event = %delivery.event, attempts, %reason, "webhook retry");
                }
                Outcome::Retry(reason) | Outcome::Permanent(reason) => break reason,
            }
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2).min(MAX_BACKOFF);
        };
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            url = %self.url,
            event = %delivery.event,
            delivery_id = %delivery.id,
            attempts,
            last = %reason,
            "webhook delivery failed"
        );
    }

    /// One POST of `delivery`.
    async fn attempt(&self, delivery: &Delivery) -> Outcome {
        let mut request = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Capstan-Event", &delivery.event)
            .header("X-Capstan-Delivery", delivery.id.to_string())
            .body(delivery.body.clone());
        if let Some(signature) = &delivery.signature {
            request = request.header("X-Capstan-Signature", signature);
        }
        match request.send().await {
            Ok(response) => classify(response.status()),
            Err(e) if e.is_builder() => Outcome::Permanent(error_chain(&e)),
            Err(e) => Outcome::Retry(error_chain(&e)),
        }
    }
}

/// 2xx succeeds; 5xx and 429 are transient; anything else (4xx, unfollowed 3xx) is permanent.
fn classify(status: StatusCode) -> Outcome {
    if status.is_success() {
        Outcome::Delivered
    } else if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        Outcome::Retry(format!("HTTP {status}"))
    } else {
        Outcome::Permanent(format!("HTTP {status}"))
    }
}

/// An error and its causes on one line (reqwest's own message omits e.g. "connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::State;
    use axum::http::HeaderMap;
    use axum::routing::post;
    use axum::Router;
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::time::Instant;
    use tokio::time::timeout;

    /// Bound on every wait in these tests.
    const WAIT: Duration = Duration::from_secs(3);

    /// How the receiver answers one request.
    #[derive(Clone, Copy)]
    enum Reply {
        Status(u16),
        /// Holds the request past the client's timeout, then answers 200.
        Hang,
    }

    /// A request as the receiver saw it.
    struct Received {
        headers: HeaderMap,
        body: Bytes,
        at: Instant,
    }

    impl Received {
        fn header(&self, name: &str) -> &str {
            self.headers[name].to_str().unwrap()
        }

        fn json(&self) -> serde_json::Value {
            serde_json::from_slice(&self.body).unwrap()
        }
    }

    #[derive(Clone)]
    struct ReceiverState {
        script: Arc<Mutex<VecDeque<Reply>>>,
        seen: mpsc::UnboundedSender<Received>,
    }

    /// A real HTTP server on 127.0.0.1 answering with `script`, then 200.
    struct Receiver {
        url: String,
        seen: mpsc::UnboundedReceiver<Received>,
    }

    impl Receiver {
        #[expect(clippy::disallowed_methods, reason = "a test receiver, not the API")]
        async fn start(script: &[Reply]) -> Self {
            let (tx, seen) = mpsc::unbounded_channel();
            let state = ReceiverState {
                script: Arc::new(Mutex::new(script.iter().copied().collect())),
                seen: tx,
            };
            let app = Router::new().route("/hook", post(record)).with_state(state);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/hook", listener.local_addr().unwrap());
            tokio::spawn(async move { axum::serve(listener, app).await });
            Self { url, seen }
        }

        /// The next request, failing the test after [`WAIT`].
        async fn next(&mut self) -> Received {
            timeout(WAIT, self.seen.recv()).await.unwrap().unwrap()
        }

        /// Asserts that nothing else arrived.
        fn assert_idle(&mut self) {
            assert!(self.seen.try_recv().is_err(), "unexpected extra request");
        }
    }

    async fn record(
        State(state): State<ReceiverState>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let at = Instant::now();
        state.seen.send(Received { headers, body, at }).unwrap();
        let reply = state.script.lock().unwrap().pop_front();
        match reply.unwrap_or(Reply::Status(200)) {
            Reply::Status(status) => StatusCode::from_u16(status).unwrap(),
            Reply::Hang => {
                tokio::time::sleep(Duration::from_secs(2)).await;
                StatusCode::OK
            }
        }
    }

    fn config(urls: &[&str]) -> WebhookConfig {
        WebhookConfig {
            urls: urls.iter().map(|url| url.to_string()).collect(),
            backoff: Duration::from_millis(50),
            timeout: Duration::from_millis(500),
            ..WebhookConfig::default()
        }
    }

    /// Waits (bounded) until `done` holds for the stats.
    async fn stats_when(hooks: &Webhooks, done: impl Fn(WebhookStats) -> bool) -> WebhookStats {
        let poll = async {
            while !done(hooks.stats()) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        timeout(WAIT, poll).await.expect("stats condition in time");
        hooks.stats()
    }

    #[tokio::test]
    async fn posts_signed_json_envelope() {
        let mut receiver = Receiver::start(&[]).await;
        let cfg = WebhookConfig {
            secret: Some("s3cret".into()),
            ..config(&[&receiver.url])
        };
        let hooks = Webhooks::new(cfg);
        hooks.send("recording.started", serde_json::json!({"room": "r1"}));
        let got = receiver.next().await;

        let body = got.json();
        assert_eq!(body["event"], "recording.started");
        assert_eq!(body["data"], serde_json::json!({"room": "r1"}));
        let id = body["delivery_id"].as_str().unwrap();
        assert!(Uuid::parse_str(id).is_ok());
        let timestamp = body["timestamp"].as_str().unwrap();
        assert!(humantime::parse_rfc3339(timestamp).is_ok(), "{timestamp}");
        assert_eq!(got.header("content-type"), "application/json");
        assert_eq!(got.header("x-capstan-event"), "recording.started");
        assert_eq!(got.header("x-capstan-delivery"), id);

        let hex_mac = got.header("x-capstan-signature").strip_prefix("sha256=");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(&got.body);
        mac.verify_slice(&hex::decode(hex_mac.unwrap()).unwrap())
            .expect("signature over the raw body");
        assert_eq!(stats_when(&hooks, |s| s.delivered == 1).await.failed, 0);
    }

    #[tokio::test]
    async fn unsigned_without_secret() {
        let mut receiver = Receiver::start(&[]).await;
        let hooks = Webhooks::new(config(&[&receiver.url]));
        hooks.send("recording.stopped", serde_json::Value::Null);
        assert!(receiver
            .next()
            .await
            .headers
            .get("x-capstan-signature")
            .is_none());
    }

    #[tokio::test]
    async fn retries_server_errors_with_doubling_backoff() {
        let script = [Reply::Status(500), Reply::Status(500)];
        let mut receiver = Receiver::start(&script).await;
        let hooks = Webhooks::new(config(&[&receiver.url]));
        hooks.send("recording.ready", serde_json::json!({}));

        let tries = [
            receiver.next().await,
            receiver.next().await,
            receiver.next().await,
        ];
        let stats = stats_when(&hooks, |s| s.delivered == 1).await;
        assert_eq!(
            stats,
            WebhookStats {
                delivered: 1,
                failed: 0,
                dropped: 0
            }
        );
        let ids: Vec<_> = tries
            .iter()
            .map(|r| r.header("x-capstan-delivery"))
            .collect();
        assert!(
            ids.iter().all(|id| *id == ids[0]),
            "one delivery id across retries"
        );
        assert!(tries[1].at - tries[0].at >= Duration::from_millis(50));
        assert!(tries[2].at - tries[1].at >= Duration::from_millis(100));
        receiver.assert_idle();
    }

    #[tokio::test]
    async fn client_error_is_not_retried() {
        let mut receiver = Receiver::start(&[Reply::Status(400)]).await;
        let hooks = Webhooks::new(config(&[&receiver.url]));
        hooks.send("a", serde_json::json!(1));
        hooks.send("b", serde_json::json!(2));

        assert_eq!(receiver.next().await.header("x-capstan-event"), "a");
        assert_eq!(receiver.next().await.header("x-capstan-event"), "b");
        let stats = stats_when(&hooks, |s| s.delivered + s.failed == 2).await;
        assert_eq!(
            stats,
            WebhookStats {
                delivered: 1,
                failed: 1,
                dropped: 0
            }
        );
        receiver.assert_idle();
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts() {
        let script = [Reply::Status(429), Reply::Status(503), Reply::Status(500)];
        let mut receiver = Receiver::start(&script).await;
        let cfg = WebhookConfig {
            max_attempts: 3,
            ..config(&[&receiver.url])
        };
        let hooks = Webhooks::new(cfg);
        hooks.send("recording.failed", serde_json::json!({}));

        let stats = stats_when(&hooks, |s| s.failed == 1).await;
        assert_eq!(stats.delivered, 0);
        for _ in 0..3 {
            receiver.next().await;
        }
        receiver.assert_idle();
    }

    #[tokio::test]
    async fn retries_timeouts_and_refused_connections() {
        let mut receiver = Receiver::start(&[Reply::Hang]).await;
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed_url = format!("http://{}/hook", closed.local_addr().unwrap());
        drop(closed);
        let cfg = WebhookConfig {
            max_attempts: 2,
            timeout: Duration::from_millis(200),
            ..config(&[&receiver.url, &closed_url])
        };
        let hooks = Webhooks::new(cfg);
        hooks.send("recording.started", serde_json::json!({}));

        let stats = stats_when(&hooks, |s| s.delivered + s.failed == 2).await;
        assert_eq!(
            stats,
            WebhookStats {
                delivered: 1,
                failed: 1,
                dropped: 0
            }
        );
        receiver.next().await;
        receiver.next().await;
    }

    #[tokio::test]
    async fn keeps_order_per_url() {
        let mut receiver = Receiver::start(&[Reply::Status(503)]).await;
        let hooks = Webhooks::new(config(&[&receiver.url]));
        for event in ["one", "two", "three"] {
            hooks.send(event, serde_json::json!({}));
        }
        let mut events = Vec::new();
        for _ in 0..4 {
            events.push(receiver.next().await.header("x-capstan-event").to_owned());
        }
        assert_eq!(events, ["one", "one", "two", "three"]);
    }

    #[tokio::test]
    async fn every_url_gets_the_same_delivery() {
        let mut first = Receiver::start(&[]).await;
        let mut second = Receiver::start(&[]).await;
        let hooks = Webhooks::new(config(&[&first.url, &second.url]));
        hooks.send("recording.ready", serde_json::json!({"id": 7}));
        assert_eq!(first.next().await.body, second.next().await.body);
        assert_eq!(stats_when(&hooks, |s| s.delivered == 2).await.failed, 0);
    }

    #[tokio::test]
    async fn full_queue_drops_and_counts() {
        let hooks = Webhooks::new(config(&["http://127.0.0.1:9/never-polled"]));
        // The single-threaded test runtime cannot run the delivery task before the next await.
        for _ in 0..QUEUE_CAPACITY + 2 {
            hooks.send("recording.progress", serde_json::json!({}));
        }
        assert_eq!(hooks.stats().dropped, 2);
    }

    #[test]
    fn send_without_urls_is_a_no_op() {
        let hooks = Webhooks::new(WebhookConfig::default());
        hooks.send("recording.started", serde_json::json!({}));
        assert_eq!(hooks.stats(), WebhookStats::default());
    }

    #[test]
    fn signature_matches_known_vector() {
        assert_eq!(
            signature("key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn url_list_is_trimmed() {
        assert_eq!(
            parse_urls(" http://a/x , ,http://b/y,"),
            ["http://a/x", "http://b/y"]
        );
        assert!(parse_urls("").is_empty());
    }
}
