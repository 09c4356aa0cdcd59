//! Soak benchmark (prints figures, asserts nothing): a release `capstan` process under a
//! bounded mix of normal and careless clients for `CAPSTAN_SOAK_SECONDS` (600 by default).
//! Each cycle opens a room with two publishers and one viewer over the signaling WebSocket,
//! records it (composite WebM, low), lets three WHIP clients post a browser-shaped offer and
//! never start ICE, and one participant vanish without leaving; then it stops the recording
//! and everyone leaves.
//! After a warm-up cycle and at the end (once the abandoned sessions have timed out) it prints the
//! server's RSS, open fds, UDP sockets and live tokio tasks, then the 5xx answers and the
//! recordings that did not complete.
//!
//! ```text
//! cargo bench --bench soak                           # 10 minutes
//! CAPSTAN_SOAK_SECONDS=120 cargo bench --bench soak  # shorter
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use capstan::auth::Role;
use common::peer::{MediaOptions, Participant};
use common::procfs::{machine, open_fds, rss_kib, udp_sockets};
use common::recording::Host;
use common::TestServer;
use reqwest::StatusCode;
use std::time::{Duration, Instant};

/// WHIP clients per cycle that post an offer and never start ICE.
const ABANDONED_PER_CYCLE: usize = 3;
/// How long each cycle's room records.
const RECORD_FOR: Duration = Duration::from_secs(8);
/// After the last cycle: longer than the server's ICE timeout for sessions that never
/// connected, so every abandoned session has been reaped.
const SETTLE: Duration = Duration::from_secs(20);

struct Figures {
    rss_kib: u64,
    fds: usize,
    udp: usize,
    tasks: f64,
}

async fn figures(server: &TestServer) -> Figures {
    let pid = server.pid();
    Figures {
        rss_kib: rss_kib(pid),
        fds: open_fds(pid),
        udp: udp_sockets(pid),
        tasks: server.metric("capstan_tokio_alive_tasks").await,
    }
}

#[derive(Default)]
struct Tally {
    cycles: usize,
    requests: usize,
    server_errors: usize,
    recordings: usize,
    completed: usize,
    not_completed: Vec<String>,
    abandoned: usize,
    vanished: usize,
}

impl Tally {
    fn answer(&mut self, status: StatusCode) {
        self.requests += 1;
        if status.is_server_error() {
            self.server_errors += 1;
        }
    }
}

async fn cycle(server: &TestServer, n: usize, tally: &mut Tally) {
    let room = format!("soak-{n}");
    let publishers = [
        Participant::join(server, &room, "p0").await,
        Participant::join(server, &room, "p1").await,
    ];
    let viewer =
        Participant::join_with(server, &room, "viewer", false, MediaOptions::default()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let host = Host::new(server, &room);
    let started = host
        .start("mode=composite&quality=low&recording_format=webm")
        .await;
    tally.answer(started.status);
    let id = started.body["recording_id"].as_str().map(str::to_string);
    for i in 0..ABANDONED_PER_CYCLE {
        let token = server.token(&room, &format!("abandon-{i}"), Role::Participant);
        let reply = server
            .post_sdp(
                &format!("/whip/{room}"),
                Some(&token),
                "application/sdp",
                include_str!("../fixtures/offer-browser.sdp").into(),
            )
            .await;
        tally.answer(reply.status);
        tally.abandoned += 1;
    }
    Participant::join(server, &room, "careless").await.vanish();
    tally.vanished += 1;
    tokio::time::sleep(RECORD_FOR).await;
    if let Some(id) = id {
        tally.recordings += 1;
        let stopped = host.act(&id, "stop").await;
        tally.answer(stopped.status);
        let last = host.status(&id).await;
        let status = last["status"].as_str().unwrap_or_default().to_string();
        if status == "completed" {
            tally.completed += 1;
        } else {
            tally
                .not_completed
                .push(format!("{id}: {status} {}", last["error"]));
        }
    }
    for p in publishers {
        p.leave().await;
    }
    viewer.leave().await;
    tally.cycles += 1;
}

fn main() {
    let seconds: u64 = std::env::var("CAPSTAN_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let server = TestServer::start().await;
        // One cycle first, so the start figures include what stays loaded once (GStreamer's
        // plugins and codec libraries, the allocator's arenas).
        let mut tally = Tally::default();
        cycle(&server, 0, &mut tally).await;
        tokio::time::sleep(SETTLE).await;
        let before = figures(&server).await;
        let deadline = Instant::now() + Duration::from_secs(seconds);
        // RSS after each cycle: a leak grows it by the same amount every cycle, allocator
        // arenas and caches level off.
        let mut rss_series = Vec::new();
        while Instant::now() < deadline {
            cycle(&server, tally.cycles, &mut tally).await;
            rss_series.push(rss_kib(server.pid()) / 1024);
        }
        tokio::time::sleep(SETTLE).await;
        let after = figures(&server).await;
        println!("{}", machine());
        println!(
            "soak: {seconds} s, {} cycles (the first one warms up); {} WHIP sessions abandoned \
             before ICE, {} participants vanished",
            tally.cycles, tally.abandoned, tally.vanished
        );
        println!("| figure | start | end |");
        println!("|---|---|---|");
        println!(
            "| RSS | {} MiB | {} MiB |",
            before.rss_kib / 1024,
            after.rss_kib / 1024
        );
        println!("| open fds | {} | {} |", before.fds, after.fds);
        println!("| UDP sockets | {} | {} |", before.udp, after.udp);
        println!("| tokio tasks | {} | {} |", before.tasks, after.tasks);
        let quarters: Vec<String> = (1..=4)
            .filter_map(|q| {
                let i = (rss_series.len() * q / 4).checked_sub(1)?;
                Some(format!("cycle {}: {} MiB", i + 2, rss_series[i]))
            })
            .collect();
        println!("RSS after cycles: {}", quarters.join(", "));
        println!(
            "5xx answers: {} of {} API/WHIP requests",
            tally.server_errors, tally.requests
        );
        println!(
            "recordings: {} completed of {}; not completed: {:?}",
            tally.completed, tally.recordings, tally.not_completed
        );
    });
}
