//! Client upload benchmark (prints figures, asserts nothing): a `capstan` process on loopback
//! takes 1 MiB chunks through the seed route (`POST /video-calls/chunks/upload`, base64 in
//! JSON) one after another, as a single client sends them, then `final`; it prints chunks/s,
//! MiB/s of media, and the time from `final` to a completed (checked, remuxed, delivered)
//! recording. The upload is a real WebM of `CAPSTAN_BENCH_SECONDS` (60 by default) of VP8
//! (640x480 noise, about 8 Mbit/s) + Opus, cut into 1 MiB chunks.
//!
//! ```text
//! cargo bench --bench client_uploads
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use common::procfs::machine;
use common::upload::{chunk_json, webm_of, TestVideo, Uploader};
use common::TestServer;
use std::time::Instant;

const CHUNK: usize = 1 << 20;
const ROUNDS: usize = 3;

fn main() {
    let seconds: u32 = std::env::var("CAPSTAN_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    println!("{}", machine());
    let dir = tempfile::tempdir().expect("temp dir");
    // 640x480 noise: hard to compress, so the file is large.
    let noise = TestVideo {
        pattern: "snow",
        width: 640,
        height: 480,
        bitrate: 2_000_000,
    };
    let file = std::fs::read(webm_of(dir.path(), seconds, &noise)).expect("media");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    println!(
        "{seconds} s of VP8 (640x480 noise) + Opus WebM, {:.1} MiB, in 1 MiB chunks:",
        file.len() as f64 / CHUNK as f64
    );
    println!("| round | chunks | chunks/s | MiB/s | final → completed |");
    println!("|---|---|---|---|---|");
    runtime.block_on(async {
        let server = TestServer::start_with(&[
            ("CAPSTAN_RATE_LIMIT_TOKEN", "off"),
            ("CAPSTAN_RATE_LIMIT_IP", "off"),
        ])
        .await;
        let ann = Uploader::new(&server, "bench", "ann");
        for round in 1..=ROUNDS {
            let id = uuid::Uuid::new_v4().to_string();
            let pieces: Vec<&[u8]> = file.chunks(CHUNK).collect();
            let bodies: Vec<_> = pieces
                .iter()
                .enumerate()
                .map(|(s, bytes)| chunk_json(&id, "ann", s as u64, bytes, false))
                .collect();
            let started = Instant::now();
            for body in &bodies {
                let (status, answer) = ann.post(body).await;
                assert!(status.is_success(), "{answer}");
            }
            let elapsed = started.elapsed().as_secs_f64();
            let last = chunk_json(&id, "ann", pieces.len() as u64, b"", true);
            let finals = Instant::now();
            let (status, answer) = ann.post(&last).await;
            assert!(status.is_success(), "{answer}");
            let recording = ann.wait_final(&id).await;
            let to_completed = finals.elapsed();
            assert_eq!(recording["status"], "completed", "{recording}");
            println!(
                "| {round} | {} | {:.1} | {:.1} | {} ms |",
                pieces.len(),
                pieces.len() as f64 / elapsed,
                file.len() as f64 / CHUNK as f64 / elapsed,
                to_completed.as_millis()
            );
        }
    });
}
