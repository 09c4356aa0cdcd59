//! Prometheus metrics, rendered at `GET /metrics`.

use prometheus::{
    Encoder, Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::LazyLock;

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    pub rooms: IntGauge,
    pub participants: IntGauge,
    pub published_tracks: IntGauge,
    pub forwarded_packets: IntCounter,
    pub forwarded_bytes: IntCounter,
    /// Packets not delivered, by reason (`subscriber_queue_full`, `write_failed`, ...).
    pub dropped_packets: IntCounterVec,
    pub keyframe_requests: IntCounter,
    pub tokio_alive_tasks: IntGauge,
    /// Recordings in the catalog by status (refreshed at every scrape).
    pub recordings: IntGaugeVec,
    /// Packets meant for a recorder and dropped, by reason (`fork_queue_full`, `pipeline_full`,
    /// `malformed`, `payload_type`, `ssrc`, `inactive`).
    pub recorder_dropped: IntCounterVec,
    /// Packets a recorder never got in time (lost upstream and not recovered by a
    /// retransmission within its jitter buffer's latency), by media kind.
    pub recorder_lost: IntCounterVec,
    pub pipeline_errors: IntCounter,
    pub upload_bytes: IntCounter,
    pub upload_failures: IntCounter,
    /// CPU budget of recordings, in cores (`CAPSTAN_RECORDING_CPU_BUDGET`).
    pub recording_cpu_budget: Gauge,
    /// Cores the running recordings need, by their cost.
    pub recording_cpu_budget_used: Gauge,
    /// Cores needed beyond the budget (running composites whose inputs grew); 0 normally.
    pub recording_budget_overcommit: Gauge,
    /// Webhook deliveries by result (`delivered`, `failed`, `dropped`), refreshed at scrape.
    pub webhooks: IntGaugeVec,
    /// Connections, requests and messages refused by a limit (`connections_per_ip`,
    /// `rate_per_ip`, `rate_per_token`, `pending_per_ip`, `pending_per_token`, `body_timeout`).
    pub refused: IntCounterVec,
}

/// The process-wide metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid gauge");
            registry
                .register(Box::new(g.clone()))
                .expect("unique gauge");
            g
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid counter");
            registry
                .register(Box::new(c.clone()))
                .expect("unique counter");
            c
        };
        let float = |name: &str, help: &str| {
            let g = Gauge::new(name, help).expect("valid gauge");
            registry
                .register(Box::new(g.clone()))
                .expect("unique gauge");
            g
        };
        let counters = |name: &str, help: &str, label: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid vec");
            registry.register(Box::new(c.clone())).expect("unique vec");
            c
        };
        let dropped_packets = counters(
            "capstan_dropped_packets_total",
            "RTP packets not forwarded, by reason",
            "reason",
        );
        let recorder_dropped = counters(
            "capstan_recorder_dropped_packets_total",
            "RTP packets meant for a recording and dropped, by reason",
            "reason",
        );
        let recorder_lost = counters(
            "capstan_recorder_lost_packets_total",
            "RTP packets a recording never received in time, lost and not retransmitted",
            "kind",
        );
        let refused = counters(
            "capstan_refused_total",
            "Connections, requests and messages refused by a limit",
            "limit",
        );
        let recordings = IntGaugeVec::new(
            Opts::new("capstan_recordings", "Recordings in the catalog by status"),
            &["status"],
        )
        .expect("valid gauge vec");
        let webhooks = IntGaugeVec::new(
            Opts::new("capstan_webhook_deliveries", "Webhook deliveries by result"),
            &["result"],
        )
        .expect("valid gauge vec");
        for vec in [&recordings, &webhooks] {
            registry
                .register(Box::new(vec.clone()))
                .expect("unique gauge vec");
        }
        Self {
            rooms: gauge("capstan_rooms", "Rooms with at least one participant"),
            participants: gauge("capstan_participants", "Connected participants"),
            published_tracks: gauge("capstan_published_tracks", "Tracks being published"),
            forwarded_packets: counter(
                "capstan_forwarded_packets_total",
                "RTP packets written to subscribers",
            ),
            forwarded_bytes: counter(
                "capstan_forwarded_bytes_total",
                "RTP payload bytes written to subscribers",
            ),
            keyframe_requests: counter(
                "capstan_keyframe_requests_total",
                "PLIs sent to publishers",
            ),
            tokio_alive_tasks: gauge("capstan_tokio_alive_tasks", "Live tokio tasks"),
            pipeline_errors: counter(
                "capstan_pipeline_errors_total",
                "Recording pipelines that failed",
            ),
            upload_bytes: counter(
                "capstan_upload_bytes_total",
                "Recording bytes uploaded to object storage",
            ),
            upload_failures: counter(
                "capstan_upload_failures_total",
                "Recording uploads that failed after every retry",
            ),
            recording_cpu_budget: float(
                "capstan_recording_cpu_budget_cores",
                "CPU budget of recordings, in cores",
            ),
            recording_cpu_budget_used: float(
                "capstan_recording_cpu_budget_used_cores",
                "Cores the running recordings need",
            ),
            recording_budget_overcommit: float(
                "capstan_recording_budget_overcommit_cores",
                "Cores the running recordings need beyond the budget",
            ),
            dropped_packets,
            recorder_dropped,
            recorder_lost,
            refused,
            recordings,
            webhooks,
            registry,
        }
    }

    /// Counts one dropped packet.
    pub fn drop_packet(&self, reason: &str) {
        self.dropped_packets.with_label_values(&[reason]).inc();
    }

    /// Counts `n` packets a recorder dropped.
    pub fn recorder_drop(&self, reason: &str, n: u64) {
        if n > 0 {
            self.recorder_dropped.with_label_values(&[reason]).inc_by(n);
        }
    }

    /// Counts `n` packets a recorder never received, of media `kind`.
    pub fn recorder_lost(&self, kind: &str, n: u64) {
        if n > 0 {
            self.recorder_lost.with_label_values(&[kind]).inc_by(n);
        }
    }

    /// Counts one connection, request or message refused by `limit`.
    pub fn refuse(&self, limit: &str) {
        self.refused.with_label_values(&[limit]).inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.tokio_alive_tasks.set(
            tokio::runtime::Handle::try_current()
                .map(|h| h.metrics().num_alive_tasks() as i64)
                .unwrap_or(0),
        );
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("prometheus text is UTF-8")
    }
}
