//! Recording cost benchmark (prints figures; not a test).
//!
//! `cargo run --release -p pipelines --example bench -- [SECS]` runs every configuration in its
//! own child process (so peak RSS is per configuration) with SECS (default 20) seconds of
//! 640x480 VP8 (~1 Mbit/s) + Opus per input, pushed in real time, and prints a Markdown table:
//! CPU-seconds per media-second, peak RSS, share of the machine (CPU-s per media-s / cores) and
//! stop-to-playable time.
//! `... --example bench -- --long 600` records a 2-input composite for 600 s and prints RSS
//! after 1 minute and at the end.

#[allow(dead_code)] // the shared test source; the bench uses part of it
#[path = "../tests/common/source.rs"]
mod source;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use pipelines::*;
use source::*;

/// One benchmark configuration.
#[derive(Debug, Clone)]
struct Config {
    mode: Mode,
    format: Format,
    quality: Quality,
    inputs: u32,
}

impl Config {
    fn arg(&self) -> String {
        format!(
            "{}-{}-{}-{}",
            self.mode, self.format, self.quality, self.inputs
        )
    }

    fn parse(s: &str) -> Config {
        let f: Vec<&str> = s.split('-').collect();
        Config {
            mode: f[0].parse().unwrap(),
            format: f[1].parse().unwrap(),
            quality: f[2].parse().unwrap(),
            inputs: f[3].parse().unwrap(),
        }
    }
}

fn matrix() -> Vec<Config> {
    let mut all: Vec<Config> = [1, 4, 16]
        .into_iter()
        .map(|inputs| Config {
            mode: Mode::Tracks,
            format: Format::Webm,
            quality: Quality::Low,
            inputs,
        })
        .collect();
    for format in [Format::Webm, Format::Mp4] {
        for quality in [Quality::Low, Quality::Medium, Quality::High] {
            for inputs in [1, 2, 4] {
                all.push(Config {
                    mode: Mode::Composite,
                    format,
                    quality,
                    inputs,
                });
            }
        }
    }
    all
}

/// CPU seconds used by this process so far, and its peak RSS in MiB.
fn usage() -> (f64, f64) {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage only writes into the struct we pass.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (
        secs(ru.ru_utime) + secs(ru.ru_stime),
        ru.ru_maxrss as f64 / 1024.0,
    )
}

/// Current RSS in MiB.
fn rss_now() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<f64>()
        .unwrap()
        / 1024.0
}

/// Pushes `track` into `input` in real time, looping it (with continuing sequence numbers and
/// timestamps) until `total` has been sent.
fn feed_looped(input: TrackInput, track: RtpTrack, total: Duration) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let start = Instant::now();
        let n = track.packets.len() as u16;
        let ts_step = (track.duration.as_secs_f64() * f64::from(track.clock_rate)) as u32;
        for round in 0u32.. {
            for p in &track.packets {
                let at = track.duration * round + p.at;
                if at >= total {
                    return;
                }
                std::thread::sleep((start + at).saturating_duration_since(Instant::now()));
                let mut data = p.data.clone();
                let seq = u16::from_be_bytes([data[2], data[3]])
                    .wrapping_add(n.wrapping_mul(round as u16));
                let ts = u32::from_be_bytes([data[4], data[5], data[6], data[7]])
                    .wrapping_add(ts_step.wrapping_mul(round));
                data[2..4].copy_from_slice(&seq.to_be_bytes());
                data[4..8].copy_from_slice(&ts.to_be_bytes());
                let _ = input.push_rtp(data);
            }
        }
    })
}

/// Records `config.inputs` participants fed for `secs` (the long run prints RSS after 60 s).
/// Returns the outcome and the stop-to-playable time in seconds.
async fn record(config: &Config, dir: &Path, secs: f64, long: bool) -> (Outcome, f64) {
    let video = vp8(640, 480, 10.0, "ball");
    let audio = opus(10.0, 440);
    let req = RecordingRequest {
        mode: config.mode,
        format: config.format,
        quality: config.quality,
        layout: Layout::Grid,
        audio_only: false,
        output_dir: dir.into(),
        base_name: "bench".into(),
    };
    let total = Duration::from_secs_f64(secs);
    let (rec, mut events) = Recorder::start(RecordingSpec::new(req).unwrap())
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            if matches!(
                e,
                RecorderEvent::Warning { .. } | RecorderEvent::Error { .. }
            ) {
                eprintln!("{e:?}");
            }
        }
    });
    let mut feeders = Vec::new();
    for i in 0..config.inputs {
        let name = format!("p{i}");
        let v = rec
            .add_input(track_spec(&format!("{name}-v"), &name, TrackKind::Video))
            .await
            .unwrap();
        let a = rec
            .add_input(track_spec(&format!("{name}-a"), &name, TrackKind::Audio))
            .await
            .unwrap();
        feeders.push(feed_looped(v, video.clone().with_ssrc(100 + i), total));
        feeders.push(feed_looped(a, audio.clone().with_ssrc(200 + i), total));
    }
    if long {
        tokio::time::sleep(Duration::from_secs(60)).await;
        println!("RSS after 1 min: {:.1} MiB", rss_now());
    }
    tokio::task::spawn_blocking(move || feeders.into_iter().for_each(|f| f.join().unwrap()))
        .await
        .unwrap();
    let stop_at = Instant::now();
    let outcome = rec.stop(Duration::from_secs(60)).await.unwrap();
    (outcome, stop_at.elapsed().as_secs_f64())
}

/// Child process: one configuration; prints one `RESULT` line.
async fn run_one(config: &Config, secs: f64) {
    let dir = tempfile::tempdir().unwrap();
    let (cpu0, _) = usage();
    let (outcome, stop_s) = record(config, dir.path(), secs, false).await;
    let (cpu1, peak) = usage();
    let media = outcome.duration.as_secs_f64();
    println!(
        "RESULT {} {:.4} {:.1} {:.2} {:.2} {}",
        config.arg(),
        (cpu1 - cpu0) / media,
        peak,
        stop_s,
        media,
        outcome.bytes
    );
}

fn nproc() -> f64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as f64)
        .unwrap_or(1.0)
}

/// Parent: runs each configuration in a child and prints the table.
fn run_matrix(secs: f64) {
    let exe = std::env::current_exe().unwrap();
    println!("| mode | format | quality | inputs | CPU-s per media-s | share of {} cores (real-time factor) | peak RSS MiB | stop-to-playable s |", nproc());
    println!("|---|---|---|---|---|---|---|---|");
    for config in matrix() {
        let out = Command::new(&exe)
            .args(["--one", &config.arg(), &secs.to_string()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let Some(line) = text.lines().find(|l| l.starts_with("RESULT")) else {
            println!(
                "| {} | failed: {} |",
                config.arg(),
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            continue;
        };
        let f: Vec<&str> = line.split_whitespace().collect();
        let cpu: f64 = f[2].parse().unwrap();
        let inputs = match config.mode {
            Mode::Tracks => format!("{} (x VP8+Opus)", config.inputs),
            Mode::Composite => config.inputs.to_string(),
        };
        let quality = match config.mode {
            Mode::Tracks => "passthrough".to_string(),
            Mode::Composite => config.quality.to_string(),
        };
        println!(
            "| {} | {} | {} | {} | {:.3} | {:.2} | {} | {} |",
            config.mode,
            config.format,
            quality,
            inputs,
            cpu,
            cpu / nproc(),
            f[3],
            f[4]
        );
    }
}

async fn run_long(secs: f64) {
    let config = Config::parse("composite-webm-low-2");
    let dir = tempfile::tempdir().unwrap();
    let (outcome, _) = record(&config, dir.path(), secs, true).await;
    println!(
        "RSS after {:.0} min: {:.1} MiB (peak {:.1} MiB), {} bytes written",
        secs / 60.0,
        rss_now(),
        usage().1,
        outcome.bytes
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--one") => run_one(&Config::parse(&args[1]), args[2].parse().unwrap()).await,
        Some("--long") => run_long(args[1].parse().unwrap()).await,
        secs => run_matrix(secs.and_then(|s| s.parse().ok()).unwrap_or(20.0)),
    }
}
