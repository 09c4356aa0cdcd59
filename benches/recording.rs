//! Recording benchmark (prints figures, asserts nothing): rooms x publishers of 320x240@15 VP8
//! and Opus recorded at once through a release `capstan` process, passthrough (tracks) and
//! composite. Prints server CPU per recorded media-second, recorder drops, stop-to-playable
//! time (stop request to `completed`) and memory.
//!
//! ```text
//! cargo bench --bench recording                          # 1-minute recordings
//! CAPSTAN_BENCH_SECONDS=20 cargo bench --bench recording # shorter
//! CAPSTAN_BENCH_LONG=1 cargo bench --bench recording     # one 10-minute composite recording
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use common::check::probe;
use common::peer::{LatencyProbe, MediaOptions, Participant};
use common::procfs::{cpu_seconds, machine, rss_kib};
use common::recording::Host;
use common::TestServer;
use reqwest::StatusCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// (rooms, publishers per room, start query; `None`: forwarding only, the baseline).
const SCENARIOS: &[(usize, usize, Option<&str>)] = &[
    (2, 2, None),
    (1, 2, Some("mode=tracks")),
    (2, 2, Some("mode=tracks")),
    (
        1,
        2,
        Some("mode=composite&quality=low&recording_format=webm"),
    ),
    (
        2,
        2,
        Some("mode=composite&quality=low&recording_format=webm"),
    ),
    (
        1,
        2,
        Some("mode=composite&quality=low&recording_format=mp4"),
    ),
];
const LONG: (usize, usize, Option<&str>) = (
    1,
    2,
    Some("mode=composite&quality=low&recording_format=webm"),
);
const WARM_UP: Duration = Duration::from_secs(5);

fn main() {
    let long = std::env::var("CAPSTAN_BENCH_LONG").is_ok_and(|v| v == "1");
    let seconds: u64 = std::env::var("CAPSTAN_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if long { 600 } else { 60 });
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    println!("{}", machine());
    println!("| rooms x publishers | recording | media length | server CPU-s per media-s | recorder drops | stop → playable (max) | file duration | server RSS |");
    println!("|---|---|---|---|---|---|---|---|");
    let scenarios: &[_] = if long { &[LONG] } else { SCENARIOS };
    for &(rooms, publishers, query) in scenarios {
        let span = Duration::from_secs(seconds);
        let row = runtime.block_on(scenario(rooms, publishers, query, span));
        println!("{row}");
    }
}

async fn scenario(rooms: usize, publishers: usize, query: Option<&str>, span: Duration) -> String {
    let server = TestServer::start().await;
    let options = MediaOptions {
        probe: Some(Arc::new(LatencyProbe::default())), // count, do not decode
        ..Default::default()
    };
    let mut peers = Vec::new();
    let hosts: Vec<Host> = (0..rooms)
        .map(|r| Host::new(&server, &format!("room{r}")))
        .collect();
    for host in &hosts {
        for p in 0..publishers {
            let who = format!("p{p}");
            peers.push(
                Participant::join_with(&server, &host.room, &who, true, options.clone()).await,
            );
        }
    }
    tokio::time::sleep(WARM_UP).await;
    let mut ids = Vec::new();
    if let Some(query) = query {
        for host in &hosts {
            let state = host.start(query).await.expect(StatusCode::CREATED);
            ids.push(state["recording_id"].as_str().unwrap().to_string());
        }
    }
    let pid = server.pid();
    let cpu0 = cpu_seconds(pid);
    let drops0 = server
        .metric("capstan_recorder_dropped_packets_total")
        .await;
    tokio::time::sleep(span).await;
    let cpu = cpu_seconds(pid) - cpu0;
    let drops = server
        .metric("capstan_recorder_dropped_packets_total")
        .await
        - drops0;
    let rss_mib = rss_kib(pid) as f64 / 1024.0;
    let mut stop_max = Duration::ZERO;
    let mut file_duration = None;
    for (host, id) in hosts.iter().zip(&ids) {
        let asked = Instant::now();
        let state = host.act(id, "stop").await.expect(StatusCode::OK);
        let state = if state["status"] == "completed" {
            state
        } else {
            host.wait_status(id, "completed", Duration::from_secs(600))
                .await
        };
        stop_max = stop_max.max(asked.elapsed());
        let path = state["local_path"].as_str().unwrap_or_default().to_string();
        file_duration.get_or_insert_with(|| probe(std::path::Path::new(&path)).duration);
    }
    for p in peers {
        p.leave().await;
    }
    let media_seconds = span.as_secs_f64() * ids.len().max(1) as f64;
    format!(
        "| {rooms} x {publishers} | {} | {} s | {:.3} | {drops:.0} | {} | {} | {rss_mib:.1} MiB |",
        query.unwrap_or("none (forwarding only)"),
        span.as_secs(),
        cpu / media_seconds,
        if ids.is_empty() {
            "n/a".into()
        } else {
            format!("{:.0} ms", stop_max.as_secs_f64() * 1000.0)
        },
        file_duration.map_or("n/a".into(), |d| format!("{d:.1} s")),
    )
}
