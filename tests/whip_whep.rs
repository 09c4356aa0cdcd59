//! WHIP publish + WHEP subscribe round trip with real webrtc-rs peers.

mod common;

use capstan::auth::Role;
use common::media::{HEIGHT, WIDTH};
use common::peer::{
    client_factory, decode_incoming, publish_test_media, whep_offer_peer, SeenHandle,
};
use common::recording::delete;
use common::{wait_for, TestServer};
use reqwest::StatusCode;
use signaling::protocol::MediaKind;
use std::time::Duration;

/// POSTs an SDP offer with a bearer token; returns status, Location and body.
async fn post_sdp(
    server: &TestServer,
    path: &str,
    token: &str,
    sdp: String,
) -> (StatusCode, Option<String>, String) {
    let reply = server
        .post_sdp(path, Some(token), "application/sdp", sdp)
        .await;
    (reply.status, reply.location, reply.body)
}

/// `(rtx payload type, apt)` of every `rtx/90000` in `sdp`.
fn rtx_codecs(sdp: &str) -> Vec<(u8, u8)> {
    sdp.lines()
        .filter_map(|l| l.strip_prefix("a=rtpmap:")?.strip_suffix(" rtx/90000"))
        .filter_map(|pt| {
            let fmtp = format!("a=fmtp:{pt} apt=");
            let apt = sdp.lines().find_map(|l| l.strip_prefix(fmtp.as_str()))?;
            Some((pt.parse().ok()?, apt.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_to_a_chromium_offer_negotiates_rtx_for_vp8() {
    let server = TestServer::start().await;
    let token = server.token("rtx", "cam", Role::Participant);
    let offer = include_str!("../fixtures/offer-browser.sdp").to_string();
    let (status, _, answer) = post_sdp(&server, "/whip/rtx", &token, offer).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert!(answer.contains("a=rtpmap:96 VP8/90000"), "{answer}");
    // The offer pairs 97 with VP8 (96) and 99 with VP9 (98); only VP8 is answered.
    assert_eq!(rtx_codecs(&answer), [(97, 96)], "{answer}");
    server.assert_clean_log();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_publisher_reaches_whep_viewer() {
    let server = TestServer::start().await;
    let publish_token = server.token("w", "cam", Role::Participant);
    let (publisher, _events) = client_factory().create().await.unwrap();
    let _media = publish_test_media(&publisher, "cam", Default::default()).await;
    let offer = publisher.offer().await.unwrap();
    let (status, location, answer) = post_sdp(&server, "/whip/w", &publish_token, offer).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(location.as_deref(), Some("/whip/w/cam"));
    assert!(answer.starts_with("v=0"), "an SDP answer: {answer}");
    assert_eq!(rtx_codecs(&answer), [(97, 96)], "{answer}");
    publisher.accept_answer(answer).await.unwrap();

    let view_token = server.token("w", "viewer", Role::Participant);
    let whep_path = "/whep/w/cam";
    // WHEP subscribes to the tracks published at that moment: wait for both to open.
    wait_for(
        "both WHIP tracks published",
        Duration::from_secs(20),
        || async { server.metric("capstan_published_tracks").await >= 2.0 },
    )
    .await;
    let (viewer, events) = whep_offer_peer().await;
    let response = post_sdp(
        &server,
        whep_path,
        &view_token,
        viewer.offer().await.unwrap(),
    )
    .await;
    let (status, viewer_location, answer) = response;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    // The server sends the viewer retransmissions on an RTX stream of its own.
    assert_eq!(rtx_codecs(&answer), [(97, 96)], "{answer}");
    assert!(answer.contains("a=ssrc-group:FID "), "{answer}");
    let viewer_location = viewer_location.expect("Location");
    assert!(
        viewer_location.starts_with("/whep/w/cam/whep-"),
        "{viewer_location}"
    );
    viewer.accept_answer(answer).await.unwrap();

    let seen = SeenHandle::default();
    let _decoding = decode_incoming(events, seen.clone());
    wait_for("WHEP viewer decoding", Duration::from_secs(30), || async {
        seen.frames_from("cam", MediaKind::Video) >= 30
            && seen.frames_from("cam", MediaKind::Audio) >= 30
    })
    .await;
    assert_eq!(seen.video_size_from("cam"), Some((WIDTH, HEIGHT)));

    let viewer_url = format!("{}{viewer_location}", server.base);
    assert_eq!(delete(&viewer_url, &view_token).await, StatusCode::OK);
    assert_eq!(
        delete(&viewer_url, &view_token).await,
        StatusCode::NOT_FOUND
    );
    let whip_url = format!("{}/whip/w/cam", server.base);
    assert_eq!(
        delete(&whip_url, &view_token).await,
        StatusCode::FORBIDDEN,
        "only the publisher"
    );
    assert_eq!(delete(&whip_url, &publish_token).await, StatusCode::OK);
    let (again, _) = whep_offer_peer().await;
    let (status, _, _) = post_sdp(
        &server,
        whep_path,
        &view_token,
        again.offer().await.unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the publisher left");
    server.assert_clean_log();
}
