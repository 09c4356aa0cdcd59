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

use capstan::auth::Role;
use common::check::decoded_frame_times;
use common::impair::{GilbertElliott, LinkConfig};
use common::lossy::{clean, publish_through, random_loss, FPS};
use common::peer::MediaOptions;
use common::procfs::machine;
use common::recording::{call, id_of, Host};
use common::TestServer;
use reqwest::StatusCode;
use std::process::Command;
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
    let burst = LinkConfig {
        burst: Some(GilbertElliott {
            p_good_to_bad: 0.005,
            p_bad_to_good: 0.25,
            loss_in_bad: 1.0,
        }),
        ..clean()
    };
    let scenarios = [
        ("clean", clean()),
        ("2 % burst", burst),
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
    common::wait_for("every track published", Duration::from_secs(30), || async {
        server.metric("capstan_published_tracks").await >= 2.0 * scenarios.len() as f64
    })
    .await;
    let mut recordings = Vec::new();
    for i in 0..scenarios.len() {
        let host = Host::new(&server, &format!("bench-{i}"));
        let id = id_of(&host.start("mode=tracks").await.expect(StatusCode::CREATED));
        recordings.push((host, id));
    }
    tokio::time::sleep(span).await;
    let admin = server.token("any", "bench", Role::Admin);
    let view = call(
        reqwest::Method::GET,
        &format!("{}/api/webrtc/pipelines", server.base),
        Some(&admin),
    )
    .await
    .expect(StatusCode::OK);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rows = Vec::new();
    for (i, (host, id)) in recordings.iter().enumerate() {
        let lost: u64 = view["pipelines"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["recording_id"] == id.as_str())
            .flat_map(|p| p["inputs"].as_array().cloned().unwrap_or_default())
            .filter_map(|input| input["packets_lost"].as_u64())
            .sum();
        host.act(id, "stop").await.expect(StatusCode::OK);
        let file = host.download(id, 0, dir.path()).await;
        let video = decoded_frame_times(&file, "video");
        let audio = decoded_frame_times(&file, "audio");
        let sent = video
            .last()
            .zip(video.first())
            .map_or(0, |(l, f)| ((l.0 - f.0) * FPS).round() as usize + 1);
        let freeze = video
            .windows(2)
            .map(|w| w[1].0 - w[0].0)
            .fold(0.0, f64::max);
        let gap = audio
            .windows(2)
            .map(|w| w[1].0 - (w[0].0 + w[0].1))
            .fold(0.0, f64::max);
        let up = publishers[i].relay.uplink();
        rows.push(format!(
            "| {} | {} of {} ({:.1} %) | {} / {} ({:.2} %) | {:.0} ms | {:.0} ms | {lost} | {} |",
            scenarios[i].0,
            up.dropped(),
            up.sent,
            100.0 * up.dropped() as f64 / up.sent.max(1) as f64,
            video.len(),
            sent,
            100.0 * video.len() as f64 / sent.max(1) as f64,
            1000.0 * freeze,
            1000.0 * gap,
            decode_errors(&file),
        ));
    }
    rows
}

/// Lines `ffmpeg -v error` prints while decoding `file`.
fn decode_errors(file: &std::path::Path) -> usize {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(file)
        .args(["-enc_time_base:v", "-1", "-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    String::from_utf8_lossy(&out.stderr).lines().count()
}
