//! Lossy-link benchmark (prints figures, asserts nothing): four 320x240@15 VP8 + Opus WHIP
//! publishers, each behind its own impaired-link relay (50 ms round trip; clean, 2 % burst,
//! 5 % and 10 % random uplink loss), recorded at once in `tracks` mode by a release `capstan`.
//! For each: frames recorded versus frames sent, the longest freeze, the longest audio gap,
//! packets lost after recovery and the decoder's complaints.
//!
//! ```text
//! cargo bench --bench lossy                           # 60 s recordings
//! CAPSTAN_BENCH_SECONDS=20 cargo bench --bench lossy  # shorter
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use common::check::decode_errors;
use common::lossy::{
    burst_loss, clean, packets_lost, pipeline_of, publish_through, published, random_loss, Content,
};
use common::peer::MediaOptions;
use common::procfs::machine;
use common::recording::{id_of, Host};
use common::TestServer;
use reqwest::StatusCode;
use std::time::Duration;

fn main() {
    let seconds: u64 = std::env::var("CAPSTAN_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    println!("{}", machine());
    println!("| uplink | packets dropped | frames recorded / sent | longest freeze | longest audio gap | lost after recovery | decode errors |");
    println!("|---|---|---|---|---|---|---|");
    for row in runtime.block_on(run(Duration::from_secs(seconds))) {
        println!("{row}");
    }
}

async fn run(span: Duration) -> Vec<String> {
    let server = TestServer::start().await;
    let scenarios = [
        ("clean", clean()),
        ("2 % burst", burst_loss()),
        ("5 % random", random_loss(0.05)),
        ("10 % random", random_loss(0.10)),
    ];
    let mut publishers = Vec::new();
    for (i, (_, uplink)) in scenarios.iter().enumerate() {
        let room = format!("bench-{i}");
        let link = (*uplink, clean());
        let seed = 100 + i as u64;
        publishers.push(
            publish_through(&server, &room, "cam", link, seed, MediaOptions::default()).await,
        );
    }
    published(&server, 2 * scenarios.len()).await;
    let mut recordings = Vec::new();
    for i in 0..scenarios.len() {
        let host = Host::new(&server, &format!("bench-{i}"));
        let id = id_of(&host.start("mode=tracks").await.expect(StatusCode::CREATED));
        recordings.push((host, id));
    }
    tokio::time::sleep(span).await;
    let mut lost = Vec::new();
    for (_, id) in &recordings {
        lost.push(packets_lost(&pipeline_of(&server, id).await, None));
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rows = Vec::new();
    for (i, (host, id)) in recordings.iter().enumerate() {
        host.act(id, "stop").await.expect(StatusCode::OK);
        let file = host.download(id, 0, dir.path()).await;
        let m = Content::of(&file);
        let up = publishers[i].relay.uplink();
        rows.push(format!(
            "| {} | {} of {} ({:.1} %) | {} / {} ({:.2} %) | {:.0} ms | {:.0} ms | {} | {} |",
            scenarios[i].0,
            up.dropped(),
            up.sent,
            100.0 * up.dropped() as f64 / up.sent.max(1) as f64,
            m.frames,
            m.expected,
            100.0 * m.frames as f64 / m.expected.max(1) as f64,
            1000.0 * m.longest_freeze,
            1000.0 * m.longest_audio_gap,
            lost[i],
            decode_errors(&file).lines().count(),
        ));
    }
    rows
}
