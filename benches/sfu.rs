//! Forwarding benchmark (prints figures, asserts nothing): N publishers x M subscribers of
//! 320x240@15 VP8 + Opus on loopback through a release `capstan` process.
//!
//!     cargo bench --bench sfu            # all scenarios, 30 s each
//!     CAPSTAN_BENCH_SECONDS=10 cargo bench --bench sfu

#[path = "../tests/common/mod.rs"]
mod common;

use common::peer::{LatencyProbe, MediaOptions, Participant};
use common::procfs::{cpu_seconds, machine, rss_kib};
use common::TestServer;
use std::sync::Arc;
use std::time::Duration;

const SCENARIOS: &[(usize, usize)] = &[(2, 0), (4, 0), (2, 8), (4, 4)];
const WARM_UP: Duration = Duration::from_secs(5);

fn main() {
    let seconds: u64 = std::env::var("CAPSTAN_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    println!("{}", machine());
    println!("| publishers x subscribers | forwarded streams | server CPU-s per media-s | packets/s forwarded | µs of server CPU per forwarded packet | p50 latency | p99 latency | dropped | server RSS |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for &(publishers, subscribers) in SCENARIOS {
        let row = runtime.block_on(scenario(
            publishers,
            subscribers,
            Duration::from_secs(seconds),
        ));
        println!("{row}");
    }
}

async fn scenario(publishers: usize, subscribers: usize, span: Duration) -> String {
    let server = TestServer::start().await;
    let probe = Arc::new(LatencyProbe::default());
    let options = MediaOptions {
        probe: Some(probe.clone()),
        ..Default::default()
    };
    let mut peers = Vec::new();
    for i in 0..publishers {
        peers.push(
            Participant::join_with(&server, "bench", &format!("p{i}"), true, options.clone()).await,
        );
    }
    for i in 0..subscribers {
        peers.push(
            Participant::join_with(&server, "bench", &format!("s{i}"), false, options.clone())
                .await,
        );
    }
    tokio::time::sleep(WARM_UP).await;
    let pid = server.pid();
    let cpu0 = cpu_seconds(pid);
    let forwarded0 = server.metric("capstan_forwarded_packets_total").await;
    let dropped0 = server.metric("capstan_dropped_packets_total").await;
    probe.latencies.lock().unwrap().clear();
    tokio::time::sleep(span).await;
    let cpu = cpu_seconds(pid) - cpu0;
    let forwarded = server.metric("capstan_forwarded_packets_total").await - forwarded0;
    let dropped = server.metric("capstan_dropped_packets_total").await - dropped0;
    let rss_mib = rss_kib(pid) as f64 / 1024.0;
    let mut latencies = probe.latencies.lock().unwrap().clone();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or("n/a".to_string(), |d| {
                format!("{:.2} ms", d.as_secs_f64() * 1000.0)
            })
    };
    let streams = 2 * publishers * (publishers - 1 + subscribers);
    let row = format!(
        "| {publishers} x {subscribers} | {streams} | {:.3} | {:.0} | {:.1} | {} | {} | {dropped:.0} | {rss_mib:.1} MiB |",
        cpu / span.as_secs_f64(),
        forwarded / span.as_secs_f64(),
        cpu * 1e6 / forwarded,
        pct(0.50),
        pct(0.99),
    );
    for p in peers {
        p.leave().await;
    }
    row
}
