//! Prometheus metrics, rendered at `GET /metrics`.

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
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
        let dropped_packets = IntCounterVec::new(
            Opts::new(
                "capstan_dropped_packets_total",
                "RTP packets not forwarded, by reason",
            ),
            &["reason"],
        )
        .expect("valid counter vec");
        registry
            .register(Box::new(dropped_packets.clone()))
            .expect("unique counter vec");
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
            dropped_packets,
            registry,
        }
    }

    /// Counts one dropped packet.
    pub fn drop_packet(&self, reason: &str) {
        self.dropped_packets.with_label_values(&[reason]).inc();
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
