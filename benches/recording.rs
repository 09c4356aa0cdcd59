//! Recording benchmark (prints figures, asserts nothing), through a release `capstan` process.
//!
//! First table: CPU per recorded publisher in tracks mode. N WHIP publishers (320x240@15 VP8
//! and Opus, publish-only, so nothing is forwarded) in one room; the same server is measured
//! first without and then with a tracks recording of the room. Next to it, the floor: a bare
//! `gst-launch-1.0` process with, per publisher, `udpsrc ! rtpjitterbuffer ! depayloader !
//! webmmux ! filesink` for video and audio (`opusparse` after the Opus depayloader, as in
//! Capstan's pipeline), fed the same RTP unencrypted over loopback, and the ratio of Capstan's
//! recording cost to it.
//!
//! Second table: rooms x publishers recorded at once, passthrough (tracks) and composite.
//! Prints server CPU per recorded media-second, recorder drops, stop-to-playable time (stop
//! request to `completed`), memory now and at its peak (`VmHWM`; one server per row, so the
//! peak is that row's).
//!
//! ```text
//! cargo bench --bench recording                          # 10 s per window, then 1-minute recordings
//! CAPSTAN_BENCH_SECONDS=20 cargo bench --bench recording # 20 s for both tables
//! CAPSTAN_BENCH_PUBLISHERS=1,4,16 cargo bench --bench recording # the first table only
//! CAPSTAN_BENCH_LONG=1 cargo bench --bench recording     # one 10-minute composite recording
//! # one 1 x 2 composite per preset (<format>-<quality>, or `tracks`; `:<n>` publishers), 15 s each:
//! CAPSTAN_BENCH_SECONDS=15 CAPSTAN_BENCH_PRESETS=webm-low,mp4-medium,mkv-high cargo bench --bench recording
//! ```
//!
//! The server runs with a CPU budget far above the machine's, so admission refuses nothing
//! that is measured here.

#[path = "../tests/common/mod.rs"]
mod common;

use capstan::auth::Role;
use capstan::sfu::peer::Peer;
use common::check::probe;
use common::media::{rtp_source, Pipeline, AUDIO};
use common::peer::{client_factory, publish_test_media, LatencyProbe, MediaOptions, Participant};
use common::procfs::{cpu_seconds, machine, peak_rss_kib, rss_kib};
use common::recording::Host;
use common::{wait_for, TestServer};
use reqwest::StatusCode;
use rtc::shared::marshal::Marshal;
use signaling::protocol::MediaKind;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Publishers of the per-publisher table (`CAPSTAN_BENCH_PUBLISHERS` overrides).
const PUBLISHER_COUNTS: &[usize] = &[1, 4, 16];
/// Seconds per measured window of the per-publisher table unless `CAPSTAN_BENCH_SECONDS`.
const PER_PUBLISHER_SECONDS: u64 = 10;
/// From the recording's start to its measured window: the pipeline is built and running.
const SETTLE: Duration = Duration::from_secs(2);
const VIDEO_CAPS: &str =
    "application/x-rtp,media=video,clock-rate=90000,encoding-name=VP8,payload=96";
const AUDIO_CAPS: &str =
    "application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=111";

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
    let seconds_set: Option<u64> = std::env::var("CAPSTAN_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok());
    let seconds = seconds_set.unwrap_or(if long { 600 } else { 60 });
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    println!("{}", machine());
    let presets_set = std::env::var("CAPSTAN_BENCH_PRESETS").is_ok();
    let counts = std::env::var("CAPSTAN_BENCH_PUBLISHERS").ok();
    if !long && !presets_set {
        let span = Duration::from_secs(seconds_set.unwrap_or(PER_PUBLISHER_SECONDS));
        let counts: Vec<usize> = counts.as_deref().map_or(PUBLISHER_COUNTS.to_vec(), |list| {
            list.split(',')
                .map(|n| n.trim().parse().expect("CAPSTAN_BENCH_PUBLISHERS: numbers"))
                .collect()
        });
        println!(
            "Tracks mode, one room, {} s per window; CPU in % of one core per publisher:",
            span.as_secs()
        );
        println!("| publishers | server, not recording | server, recording | recording's cost | GStreamer floor | cost / floor | recorder drops |");
        println!("|---|---|---|---|---|---|---|");
        for n in counts.iter().copied() {
            println!("{}", runtime.block_on(per_publisher(n, span)));
        }
        if std::env::var("CAPSTAN_BENCH_PUBLISHERS").is_ok() {
            return;
        }
        println!();
    }
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

/// One row of the per-publisher table: `n` WHIP publishers, the server's CPU without and with
/// a tracks recording of their room, then the GStreamer floor for the same `n`.
async fn per_publisher(n: usize, span: Duration) -> String {
    let server = TestServer::start_with(&[
        ("CAPSTAN_RECORDING_CPU_BUDGET", UNLIMITED_BUDGET),
        ("CAPSTAN_MAX_PENDING_PER_IP", "64"),
        ("CAPSTAN_RATE_LIMIT_IP", "off"),
    ])
    .await;
    let host = Host::new(&server, "room");
    let mut publishers = Vec::new();
    for i in 0..n {
        publishers.push(whip_publish(&server, &host.room, &format!("p{i}")).await);
    }
    wait_for("every track published", Duration::from_secs(60), || async {
        server.metric("capstan_published_tracks").await >= (2 * n) as f64
    })
    .await;
    tokio::time::sleep(WARM_UP).await;
    let pid = server.pid();
    let idle = cpu_during(pid, span).await;
    let state = host.start("mode=tracks").await.expect(StatusCode::CREATED);
    let id = state["recording_id"].as_str().unwrap().to_string();
    tokio::time::sleep(SETTLE).await;
    let drops0 = server
        .metric("capstan_recorder_dropped_packets_total")
        .await;
    let recording = cpu_during(pid, span).await;
    let drops = server
        .metric("capstan_recorder_dropped_packets_total")
        .await
        - drops0;
    let state = host.act(&id, "stop").await.expect(StatusCode::OK);
    if state["status"] != "completed" {
        host.wait_status(&id, "completed", Duration::from_secs(60))
            .await;
    }
    for (peer, _media) in publishers {
        peer.close().await;
    }
    drop(server);
    let floor = gstreamer_floor(n, span).await;
    let per = |cpu: f64| 100.0 * cpu / span.as_secs_f64() / n as f64;
    let cost = per(recording - idle);
    format!(
        "| {n} | {:.2} % | {:.2} % | {cost:.2} % | {:.2} % | {:.1} | {drops:.0} |",
        per(idle),
        per(recording),
        per(floor),
        cost / per(floor),
    )
}

/// CPU seconds `pid` uses in the next `span`.
async fn cpu_during(pid: u32, span: Duration) -> f64 {
    let before = cpu_seconds(pid);
    tokio::time::sleep(span).await;
    cpu_seconds(pid) - before
}

/// A publish-only WHIP participant sending test media.
async fn whip_publish(
    server: &TestServer,
    room: &str,
    identity: &str,
) -> (Peer, Vec<(Pipeline, JoinHandle<()>)>) {
    let token = server.token(room, identity, Role::Participant);
    let (peer, _events) = client_factory().create().await.expect("publish pc");
    let media = publish_test_media(&peer, identity, MediaOptions::default()).await;
    let offer = peer.offer().await.expect("offer");
    let reply = server
        .post_sdp(
            &format!("/whip/{room}"),
            Some(&token),
            "application/sdp",
            offer,
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    peer.accept_answer(reply.body).await.expect("answer");
    (peer, media)
}

/// CPU seconds a bare `gst-launch-1.0` uses in `span` recording `n` publishers' RTP, one WebM
/// file each, fed from the same sources as the publishers, unencrypted over loopback.
async fn gstreamer_floor(n: usize, span: Duration) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut description = String::new();
    let mut feeds = Vec::new();
    for i in 0..n {
        let file = dir.path().join(format!("p{i}.webm"));
        description.push_str(&format!(
            "webmmux name=m{i} ! filesink location={} ",
            file.display()
        ));
        for (kind, caps, depay) in [
            (MediaKind::Video, VIDEO_CAPS, "rtpvp8depay"),
            (MediaKind::Audio, AUDIO_CAPS, "rtpopusdepay ! opusparse"),
        ] {
            let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
                .await
                .expect("udp");
            let port = free_udp_port();
            description.push_str(&format!(
                "udpsrc port={port} caps={caps} ! rtpjitterbuffer latency=200 ! {depay} ! m{i}. "
            ));
            feeds.push(feed_udp(kind, socket, port));
        }
    }
    let mut child = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(description.split_whitespace()) // one token per argument, as in a shell
        .stdout(Stdio::null())
        .spawn()
        .expect("gst-launch-1.0");
    tokio::time::sleep(WARM_UP).await;
    let cpu = cpu_during(child.id(), span).await;
    let _ = child.kill();
    let _ = child.wait();
    for (_source, sending) in feeds {
        sending.abort();
    }
    cpu
}

/// Sends live RTP of `kind` from `socket` to `port` on loopback until dropped.
fn feed_udp(
    kind: MediaKind,
    socket: tokio::net::UdpSocket,
    port: u16,
) -> (Pipeline, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel(512);
    let source = rtp_source(kind, "ball", AUDIO, tx);
    let ssrc = rand::random::<u32>();
    let sending = tokio::spawn(async move {
        while let Some(mut packet) = rx.recv().await {
            packet.header.ssrc = ssrc;
            if let Ok(bytes) = packet.marshal() {
                let _ = socket.send_to(&bytes, ("127.0.0.1", port)).await;
            }
        }
    });
    (source, sending)
}

/// A UDP port free now (`udpsrc` binds it a moment later).
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free UDP port")
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
