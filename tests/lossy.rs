//! Recordings and viewers across lossy links: WHIP publishers send through the impaired-link
//! relay (50 ms round trip) with random or burst loss, the room is recorded, and the files are
//! checked by their decoded content against a publisher on a clean link recorded at the same
//! time. The server NACKs what it misses, the recorder's jitter buffer waits for the
//! retransmissions, and what stays lost is counted.

mod common;

use capstan::auth::Role;
use common::check::{assert_decodes_cleanly, longest_still};
use common::impair::{candidates_via, media_address, without_candidates, ImpairedRelay, Link};
use common::lossy::{
    burst_loss, clean, content, packets_lost, pipeline_of, publish_through, published, random_loss,
    Content,
};
use common::peer::{
    decode_incoming, watch_over_whep, whep_offer_peer, KeyframeRequests, MediaOptions, SeenHandle,
};
use common::recording::{id_of, Host};
use common::{wait_for, TestServer};
use reqwest::StatusCode;
use signaling::protocol::MediaKind;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);
/// How long each scenario is recorded.
const RECORDED: Duration = Duration::from_secs(12);

/// Four publishers at once, each in its own room and behind its own relay: a clean link,
/// 5 % and 10 % random loss, 2 % burst loss, all uplink (towards the server). Each room is
/// recorded in `tracks` mode for the same 12 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracks_recordings_across_uplink_loss_are_as_complete_as_on_a_clean_link() {
    let server = TestServer::start().await;
    // (room, uplink, relay seed): seed 14 makes the burst link drop 2.0 % of the first
    // 1100 packets (the scenario sends about that many); the model's mean is 1.96 %.
    let scenarios = [
        ("clean", clean(), 0u64),
        ("random-5", random_loss(0.05), 10),
        ("random-10", random_loss(0.10), 20),
        ("burst-2", burst_loss(), 14),
    ];
    let mut publishers = Vec::new();
    for (room, uplink, seed) in &scenarios {
        let requests = Arc::new(KeyframeRequests::default());
        let options = MediaOptions {
            keyframe_requests: Some(Arc::clone(&requests)),
            ..Default::default()
        };
        let publisher =
            publish_through(&server, room, "cam", (*uplink, clean()), *seed, options).await;
        publishers.push((publisher, requests));
    }
    published(&server, 2 * scenarios.len()).await;

    let mut recordings = Vec::new();
    for (room, _, _) in &scenarios {
        let host = Host::new(&server, room);
        let id = id_of(&host.start("mode=tracks").await.expect(StatusCode::CREATED));
        recordings.push((host, id));
    }
    let started = Instant::now();
    let requests_at_start: Vec<usize> = publishers.iter().map(|(_, r)| r.count()).collect();
    tokio::time::sleep(RECORDED).await;
    let views =
        futures::future::join_all(recordings.iter().map(|(_, id)| pipeline_of(&server, id))).await;
    let elapsed = started.elapsed();
    let requests: Vec<usize> = publishers
        .iter()
        .zip(&requests_at_start)
        .map(|((_, r), at_start)| r.count() - at_start)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut measured: Vec<Content> = Vec::new();
    for (host, id) in &recordings {
        host.act(id, "stop").await.expect(StatusCode::OK);
        let state = host.status(id).await;
        assert_eq!(state["files"].as_array().unwrap().len(), 1, "{state}");
        measured.push(content(&host.download(id, 0, dir.path()).await));
    }

    let baseline = measured[0].completeness();
    for (i, (room, _, _)) in scenarios.iter().enumerate() {
        let up = publishers[i].0.relay.uplink();
        let lost = packets_lost(&views[i], None);
        let per_minute = requests[i] as f64 * 60.0 / elapsed.as_secs_f64();
        let m = &measured[i];
        println!(
            "{room}: uplink dropped {} of {} packets ({:.1} %); recording: {} of {} frames ({:.1} %), \
             longest freeze {:.0} ms, longest audio gap {:.0} ms, {lost} packets lost after recovery; \
             {} keyframe requests to the publisher ({per_minute:.1} per minute)",
            up.dropped(),
            up.sent,
            100.0 * up.dropped() as f64 / up.sent as f64,
            m.frames,
            m.expected,
            100.0 * m.completeness(),
            1000.0 * m.longest_freeze,
            1000.0 * m.longest_audio_gap,
            requests[i],
        );
        assert!(
            m.completeness() >= 0.99 * baseline,
            "{room}: {m:?}, clean link: {:?}",
            measured[0]
        );
        assert!(m.longest_freeze <= 0.2, "{room}: {m:?}");
        assert!(m.longest_audio_gap <= 0.06, "{room}: {m:?}");
        // Everything lost was recovered: no keyframe was needed after the recording's first.
        assert!(
            requests[i] <= 2,
            "{room}: {} keyframe requests",
            requests[i]
        );
    }
    for (i, (room, _, _)) in scenarios.iter().enumerate().skip(1) {
        assert!(
            publishers[i].0.relay.uplink().dropped() > 0,
            "{room}: the relay dropped nothing"
        );
    }
    server.assert_clean_log();
}

/// One composite recording of four publishers, behind a clean link, 2 % burst, 5 % and
/// 10 % random uplink loss (a 2x2 grid, one tile each): no tile freezes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_composite_of_lossy_publishers_has_no_frozen_tile() {
    let server = TestServer::start().await;
    let uplinks = [
        ("clean", clean(), 40),
        ("burst-2", burst_loss(), 14),
        ("random-5", random_loss(0.05), 50),
        ("random-10", random_loss(0.10), 60),
    ];
    let mut publishers = Vec::new();
    for (n, (identity, uplink, seed)) in uplinks.iter().enumerate() {
        let link = (*uplink, clean());
        let options = MediaOptions::default();
        publishers.push(publish_through(&server, "mix", identity, link, *seed, options).await);
        published(&server, 2 * (n + 1)).await;
    }
    let host = Host::new(&server, "mix");
    let id = id_of(
        &host
            .start("mode=composite&quality=low")
            .await
            .expect(StatusCode::CREATED),
    );
    tokio::time::sleep(RECORDED).await;
    host.act(&id, "stop").await.expect(StatusCode::OK);
    let dir = tempfile::tempdir().unwrap();
    let file = host.download(&id, 0, dir.path()).await;
    assert_decodes_cleanly(&file);
    let still = longest_still(&file, 2, 2);
    for (p, (identity, _, _)) in publishers.iter().zip(&uplinks) {
        let up = p.relay.uplink();
        println!(
            "{identity}: uplink dropped {} of {} packets",
            up.dropped(),
            up.sent
        );
    }
    println!("longest still picture per tile (s, from s): {still:?}");
    assert!(still.iter().all(|(s, _)| *s <= 0.2), "{still:?}");
    server.assert_clean_log();
}

/// Keyframe economy behind 5 % uplink loss: a recording start and three viewers arriving
/// together cost the publisher at most one keyframe request per 500 ms, and once they have
/// their keyframe, the losses (all recovered by retransmission) cost none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lossy_publisher_gets_at_most_one_keyframe_request_per_500_ms() {
    let server = TestServer::start().await;
    let requests = Arc::new(KeyframeRequests::default());
    let options = MediaOptions {
        keyframe_requests: Some(Arc::clone(&requests)),
        ..Default::default()
    };
    let publisher = publish_through(
        &server,
        "pli",
        "cam",
        (random_loss(0.05), clean()),
        60,
        options,
    )
    .await;
    published(&server, 2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = requests.count();

    let joined = Instant::now();
    let host = Host::new(&server, "pli");
    let id = id_of(&host.start("mode=tracks").await.expect(StatusCode::CREATED));
    let mut viewers = Vec::new();
    for n in 0..3 {
        viewers.push(watch_over_whep(&server, "pli", "cam", &format!("viewer-{n}")).await);
    }
    for viewer in &viewers {
        wait_for("every viewer decoding", WAIT, || async {
            viewer.seen.frames_from("cam", MediaKind::Video) > 0
        })
        .await;
    }
    let settled = requests.count();
    let window = Duration::from_secs(20);
    tokio::time::sleep(window).await;
    host.act(&id, "stop").await.expect(StatusCode::OK);

    let times = requests.times();
    let after_join: Vec<f64> = times[before..]
        .iter()
        .map(|t| t.duration_since(joined).as_secs_f64())
        .collect();
    let up = publisher.relay.uplink();
    let steady = times.len() - settled;
    println!(
        "uplink dropped {} of {} packets; {} keyframe requests before the joins; after: {after_join:.3?} s; \
         {steady} in the {} s after every viewer decoded ({:.1} per minute)",
        up.dropped(),
        up.sent,
        before,
        window.as_secs(),
        steady as f64 * 60.0 / window.as_secs_f64()
    );
    assert!(up.dropped() > 0);
    // At most one per 500 ms (a few ms of scheduling jitter allowed on the receiving side).
    for pair in after_join.windows(2) {
        assert!(pair[1] - pair[0] >= 0.45, "{after_join:?}");
    }
    assert!((1..=4).contains(&after_join.len()), "{after_join:?}");
    assert!(
        steady <= 1,
        "{steady} keyframe requests once every viewer decoded"
    );
    server.assert_clean_log();
}

/// A WHEP viewer behind 5 % downlink loss decodes as many frames as one on a clean link: the
/// server answers its NACKs from the packets it recently sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_behind_downlink_loss_decodes_every_frame() {
    let server = TestServer::start().await;
    let publisher = publish_through(
        &server,
        "down",
        "cam",
        (clean(), clean()),
        1,
        MediaOptions::default(),
    )
    .await;
    published(&server, 2).await;
    let mut viewers = Vec::new();
    for (seed, downlink) in [(2, clean()), (3, random_loss(0.05))] {
        let token = server.token("down", &format!("viewer-{seed}"), Role::Participant);
        let (viewer, events) = whep_offer_peer().await;
        let offer = without_candidates(&viewer.offer().await.unwrap());
        let reply = server
            .post_sdp("/whep/down/cam", Some(&token), "application/sdp", offer)
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        let relay = ImpairedRelay::start(
            media_address(&reply.body),
            Link::new(clean(), seed),
            Link::new(downlink, seed + 100),
        )
        .await;
        viewer
            .accept_answer(candidates_via(&reply.body, relay.addr))
            .await
            .unwrap();
        let seen = SeenHandle::default();
        let decoding = decode_incoming(events, seen.clone());
        viewers.push((viewer, relay, seen, decoding));
    }
    let frames = |i: usize| viewers[i].2.frames_from("cam", MediaKind::Video);
    wait_for("both viewers decoding", WAIT, || async {
        frames(0) >= 30 && frames(1) >= 30
    })
    .await;
    let before = [frames(0), frames(1)];
    tokio::time::sleep(Duration::from_secs(15)).await;
    // Counted once both have decoded everything: the lossy viewer's jitter buffer may be
    // holding up to 500 ms of frames for a retransmission at any instant.
    drop(publisher);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let decoded = [frames(0) - before[0], frames(1) - before[1]];
    let down = viewers[1].1.downlink();
    println!(
        "downlink dropped {} of {} packets ({:.1} %); clean viewer decoded {} frames, lossy viewer {}",
        down.dropped(),
        down.sent,
        100.0 * down.dropped() as f64 / down.sent as f64,
        decoded[0],
        decoded[1]
    );
    assert!(down.dropped() > 0, "{down:?}");
    assert!(
        decoded[1] as f64 >= 0.99 * decoded[0] as f64,
        "lossy viewer decoded {} frames, clean viewer {}",
        decoded[1],
        decoded[0]
    );
    server.assert_clean_log();
}
