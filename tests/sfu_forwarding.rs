//! Browser-free end to end: webrtc-rs participants publishing GStreamer VP8/Opus through a
//! real server, each decoding the others.

mod common;

use common::media::{HEIGHT, WIDTH};
use common::peer::{MediaOptions, Participant};
use common::{wait_for, TestServer};
use signaling::protocol::MediaKind;
use std::time::Duration;

const MEDIA_TIMEOUT: Duration = Duration::from_secs(30);

/// Waits until `viewer` has decoded at least `frames` more video frames and audio buffers
/// from each of `publishers` than it had at the call.
async fn assert_receiving(viewer: &Participant, publishers: &[&str], frames: u64) {
    let start: Vec<_> = publishers
        .iter()
        .map(|p| {
            (
                viewer.seen.frames_from(p, MediaKind::Video),
                viewer.seen.frames_from(p, MediaKind::Audio),
            )
        })
        .collect();
    let what = format!("{} decoding {publishers:?}", viewer.identity);
    wait_for(&what, MEDIA_TIMEOUT, || async {
        publishers.iter().zip(&start).all(|(p, (v0, a0))| {
            viewer.seen.frames_from(p, MediaKind::Video) >= v0 + frames
                && viewer.seen.frames_from(p, MediaKind::Audio) >= a0 + frames
        })
    })
    .await;
    for p in publishers {
        assert_eq!(
            viewer.seen.video_size_from(p),
            Some((WIDTH, HEIGHT)),
            "{} sees {p} at the published size",
            viewer.identity
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_publish_one_leaves_a_late_joiner_receives_all() {
    let server = TestServer::start().await;
    let loud = MediaOptions {
        audio_level: Some(20),
        ..Default::default()
    };
    let a = Participant::join_with(&server, "r", "a", true, loud).await;
    let b = Participant::join(&server, "r", "b").await;
    let c = Participant::join(&server, "r", "c").await;
    assert_receiving(&a, &["b", "c"], 30).await;
    assert_receiving(&b, &["a", "c"], 30).await;
    assert_receiving(&c, &["a", "b"], 30).await;
    for p in [&b, &c] {
        wait_for("a announced as active speaker", MEDIA_TIMEOUT, || async {
            p.seen.with(|s| s.active_speaker.as_deref() == Some("a"))
        })
        .await;
    }

    let offers_before = a.seen.with(|s| s.subscribe_offers);
    c.leave().await;
    for p in [&a, &b] {
        wait_for("c to leave", MEDIA_TIMEOUT, || async {
            p.seen.with(|s| !s.participants.contains_key("c"))
        })
        .await;
    }
    wait_for("a renegotiated without c", MEDIA_TIMEOUT, || async {
        a.seen.with(|s| s.subscribe_offers > offers_before)
    })
    .await;
    let from_c = a.seen.frames_from("c", MediaKind::Video);
    assert_receiving(&a, &["b"], 30).await;
    assert_receiving(&b, &["a"], 30).await;
    assert!(
        a.seen.frames_from("c", MediaKind::Video) <= from_c + 5,
        "c's video stopped after it left"
    );

    let d = Participant::join(&server, "r", "d").await;
    assert_receiving(&d, &["a", "b"], 30).await;
    assert_receiving(&a, &["d"], 30).await;
    assert_receiving(&b, &["d"], 30).await;
    for p in [&a, &b, &d] {
        assert!(
            p.seen.with(|s| s.errors.is_empty()),
            "{} got errors",
            p.identity
        );
    }
    assert!(server.metric("capstan_forwarded_packets_total").await > 1000.0);
    server.assert_clean_log();
}
