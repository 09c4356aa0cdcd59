//! Recording benchmark (prints figures, asserts nothing): rooms x publishers of 320x240@15 VP8
//! and Opus recorded at once through a release `capstan` process, passthrough (tracks) and
//! composite. Prints server CPU per recorded media-second, recorder drops, stop-to-playable
//! time (stop request to `completed`), memory now and at its peak (`VmHWM`; one server per
//! row, so the peak is that row's).
//!
//! ```text
//! cargo bench --bench recording                          # 1-minute recordings
//! CAPSTAN_BENCH_SECONDS=20 cargo bench --bench recording # shorter
//! CAPSTAN_BENCH_LONG=1 cargo bench --bench recording     # one 10-minute composite recording
//! # one 1 x 2 composite per preset (<format>-<quality>, or `tracks`; `:<n>` publishers), 15 s each:
//! CAPSTAN_BENCH_SECONDS=15 CAPSTAN_BENCH_PRESETS=webm-low,mp4-medium,mkv-high cargo bench --bench recording
//! ```
//!
//! The server runs with a CPU budget far above the machine's, so admission refuses nothing
//! that is measured here.

#[path = "../tests/common/mod.rs"]
mod common;

use common::check::probe;
use common::peer::{LatencyProbe, MediaOptions, Participant};
use common::procfs::{cpu_seconds, machine, peak_rss_kib, rss_kib};
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
/// `CAPSTAN_RECORDING_CPU_BUDGET` of the measured server: admit every preset.
const UNLIMITED_BUDGET: &str = "64";

/// `CAPSTAN_BENCH_PRESETS`: one 1 x 2 scenario per `<format>-<quality>` (composite) or `tracks`;
/// `:<n>` after it sets the publishers (e.g. `webm-low:4`).
fn presets(list: &str) -> Vec<(usize, usize, Option<String>)> {
    list.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (p, publishers) = match p.split_once(':') {
                Some((p, n)) => (p, n.parse().expect("CAPSTAN_BENCH_PRESETS: publishers")),
                None => (p, 2),
            };
            let query = match p.split_once('-') {
                Some((format, quality)) => {
                    format!("mode=composite&quality={quality}&recording_format={format}")
                }
                None if p == "tracks" => "mode=tracks".into(),
                None => panic!("CAPSTAN_BENCH_PRESETS: `{p}` is not <format>-<quality> or tracks"),
            };
            (1, publishers, Some(query))
        })
        .collect()
}

fn main() {
    let long = std::env::var("CAPSTAN_BENCH_LONG").is_ok_and(|v| v == "1");
    let seconds: u64 = std::env::var("CAPSTAN_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if long { 600 } else { 60 });
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    println!("{}", machine());
    println!("| rooms x publishers | recording | media length | server CPU-s per media-s | recorder drops | stop → playable (max) | file duration | server RSS | peak RSS |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let owned = |list: &[(usize, usize, Option<&str>)]| {
        list.iter()
            .map(|&(r, p, q)| (r, p, q.map(str::to_string)))
            .collect::<Vec<_>>()
    };
    let scenarios = match std::env::var("CAPSTAN_BENCH_PRESETS") {
        Ok(list) => presets(&list),
        Err(_) if long => owned(&[LONG]),
        Err(_) => owned(SCENARIOS),
    };
    for (rooms, publishers, query) in scenarios {
        let span = Duration::from_secs(seconds);
        let row = runtime.block_on(scenario(rooms, publishers, query.as_deref(), span));
        println!("{row}");
    }
}

async fn scenario(rooms: usize, publishers: usize, query: Option<&str>, span: Duration) -> String {
    let server =
        TestServer::start_with(&[("CAPSTAN_RECORDING_CPU_BUDGET", UNLIMITED_BUDGET)]).await;
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
    let peak_mib = peak_rss_kib(pid) as f64 / 1024.0; // the stops included
    for p in peers {
        p.leave().await;
    }
    let media_seconds = span.as_secs_f64() * ids.len().max(1) as f64;
    format!(
        "| {rooms} x {publishers} | {} | {} s | {:.3} | {drops:.0} | {} | {} | {rss_mib:.1} MiB | {peak_mib:.1} MiB |",
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
