//! Regression tests for what a probe from outside found: forged identities, path tricks,
//! malformed requests and concurrent transitions each get one precise, consistent answer.

mod common;

use capstan::auth::{Role, TokenKeys, DEV_SECRET};
use capstan::sfu::peer::{codec, Peer};
use common::peer::{
    client_factory, publish_test_media, whep_offer_peer, MediaOptions, Participant,
};
use common::recording::{call, delete, id_of, Host};
use common::{assert_json_error, wait_for, TestServer};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use signaling::protocol::MediaKind;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::{self, Message};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::MediaStreamTrack;

const TRACKS: &str = "recording_format=webm&mode=tracks";

const COMPOSITE: &str = "recording_format=webm&mode=composite&quality=low";

const WAIT: Duration = Duration::from_secs(30);

fn token(room: &str, identity: &str, role: Role) -> String {
    TokenKeys::new(DEV_SECRET).mint(room, identity, identity, role, Duration::from_secs(600))
}

/// A member who publishes nothing (keeps the room open cheaply), once the server counts it.
async fn member(server: &TestServer, room: &str, identity: &str) -> Participant {
    let before = server.metric("capstan_participants").await;
    let member =
        Participant::join_with(server, room, identity, false, MediaOptions::default()).await;
    wait_for(&format!("{identity} to join"), WAIT, || async {
        server.metric("capstan_participants").await > before
    })
    .await;
    member
}

/// A member publishing test media, once both its tracks are published.
async fn publisher(server: &TestServer, room: &str, identity: &str) -> Participant {
    let before = server.metric("capstan_published_tracks").await;
    let publisher = Participant::join(server, room, identity).await;
    wait_for(&format!("{identity}'s tracks"), WAIT, || async {
        server.metric("capstan_published_tracks").await >= before + 2.0
    })
    .await;
    publisher
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_recordings_are_scoped_to_the_tokens_room() {
    let server = TestServer::start().await;
    let _m = member(&server, "a", "m").await;
    let mut boss = Host::new(&server, "a");
    boss.token = token("a", "boss", Role::Host);
    let id = id_of(&boss.start(TRACKS).await.expect(StatusCode::CREATED));
    let list = |t: String| {
        let url = format!("{}/api/webrtc/recordings", server.base);
        async move {
            let listed = call(Method::GET, &url, Some(&t))
                .await
                .expect(StatusCode::OK);
            listed
                .as_array()
                .expect("a list")
                .iter()
                .map(id_of)
                .collect::<Vec<_>>()
        }
    };
    // The same identity in another room is someone else.
    for role in [Role::Participant, Role::Host] {
        assert_eq!(
            list(token("elsewhere", "boss", role)).await,
            Vec::<String>::new()
        );
    }
    assert_eq!(
        list(token("a", "boss", Role::Participant)).await,
        vec![id.as_str()]
    );
    assert_eq!(
        list(token("any", "root", Role::Admin)).await,
        vec![id.as_str()]
    );
    let url = format!("{}/api/webrtc/rooms/a/recording/{id}", server.base);
    call(Method::DELETE, &url, Some(&boss.token))
        .await
        .expect(StatusCode::OK);
}

/// A publisher's offer (VP8 + Opus tracks that send nothing) and its connection.
async fn whip_offer() -> (Peer, String) {
    let (peer, _events) = client_factory().create().await.expect("pc");
    for (kind, id) in [(MediaKind::Video, "video"), (MediaKind::Audio, "audio")] {
        let rtc_kind = match kind {
            MediaKind::Video => RtpCodecKind::Video,
            MediaKind::Audio => RtpCodecKind::Audio,
        };
        let track = TrackLocalStaticRTP::new(MediaStreamTrack::new(
            "s".into(),
            id.into(),
            id.into(),
            rtc_kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(rand::random()),
                    ..Default::default()
                },
                codec: codec(kind),
                ..Default::default()
            }],
        ));
        peer.pc
            .add_track(Arc::new(track) as Arc<dyn TrackLocal>)
            .await
            .expect("add track");
    }
    let offer = peer.offer().await.expect("offer");
    (peer, offer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_and_whep_locations_are_percent_encoded() {
    let server = TestServer::start().await;
    let cases = [
        ("a/b", "a%2Fb"),
        ("../../../evil", "..%2F..%2F..%2Fevil"),
        ("zoë 🎥", "zo%C3%AB%20%F0%9F%8E%A5"),
    ];
    for (identity, encoded) in cases {
        let t = token("loc", identity, Role::Participant);
        let (_peer, offer) = whip_offer().await;
        let reply = server
            .post_sdp("/whip/loc", Some(&t), "application/sdp", offer)
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        let location = reply.location.expect("Location");
        assert_eq!(location, format!("/whip/loc/{encoded}"));
        let url = format!("{}{location}", server.base);
        assert_eq!(delete(&url, &t).await, StatusCode::OK, "{identity}");
    }

    // A WHEP viewer of a publisher whose identity has a slash.
    let t = token("loc", "cam/1", Role::Participant);
    let (publisher, _events) = client_factory().create().await.unwrap();
    let _media = publish_test_media(&publisher, "cam/1", Default::default()).await;
    let offer = publisher.offer().await.unwrap();
    let reply = server
        .post_sdp("/whip/loc", Some(&t), "application/sdp", offer)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    publisher.accept_answer(reply.body).await.unwrap();
    wait_for("both WHIP tracks published", WAIT, || async {
        server.metric("capstan_published_tracks").await >= 2.0
    })
    .await;
    let viewer_token = token("loc", "v", Role::Participant);
    let (viewer, _) = whep_offer_peer().await;
    let reply = server
        .post_sdp(
            "/whep/loc/cam%2F1",
            Some(&viewer_token),
            "application/sdp",
            viewer.offer().await.unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let location = reply.location.expect("Location");
    assert!(
        location.starts_with("/whep/loc/cam%2F1/whep-"),
        "{location}"
    );
    let url = format!("{}{location}", server.base);
    assert_eq!(delete(&url, &viewer_token).await, StatusCode::OK);
    server.assert_clean_log();
}

/// Tokens whose claims are not printable, or too long, or not addressable in a URL.
fn bad_claim_tokens(room: &str) -> Vec<(String, &'static str)> {
    let keys = TokenKeys::new(DEV_SECRET);
    let ttl = Duration::from_secs(600);
    let long_sub = "x".repeat(129);
    let long_name = "n".repeat(257);
    vec![
        (keys.mint(room, "a\nb", "n", Role::Participant, ttl), "sub"),
        (keys.mint(room, "nul\0", "n", Role::Participant, ttl), "sub"),
        (
            keys.mint(room, "\u{202e}evil", "n", Role::Participant, ttl),
            "sub",
        ),
        (
            keys.mint(room, &long_sub, "n", Role::Participant, ttl),
            "sub",
        ),
        (keys.mint(room, "..", "n", Role::Participant, ttl), "sub"),
        (
            keys.mint(room, "ok", "bell\u{7}", Role::Participant, ttl),
            "name",
        ),
        (
            keys.mint(room, "ok", &long_name, Role::Participant, ttl),
            "name",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprintable_or_long_identities_are_refused_and_leave_no_ghost() {
    let server = TestServer::start().await;
    for (t, claim) in bad_claim_tokens("g") {
        let (_peer, offer) = whip_offer().await;
        let reply = server
            .post_sdp("/whip/g", Some(&t), "application/sdp", offer)
            .await;
        let json = reply.json();
        assert_eq!(
            (reply.status, json["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_claim")),
            "{}",
            reply.body
        );
        assert!(json["message"].as_str().unwrap().contains(claim), "{json}");
        let ws = tokio_tungstenite::connect_async(format!("{}/ws?token={t}", server.ws_base)).await;
        match ws {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), 401)
            }
            other => panic!("expected a 401 refusal, got {:?}", other.map(|_| ())),
        }
        let listed = call(
            Method::GET,
            &format!("{}/api/webrtc/recordings", server.base),
            Some(&t),
        )
        .await;
        assert_eq!(listed.status, StatusCode::UNAUTHORIZED, "{}", listed.body);
    }
    assert_eq!(server.metric("capstan_participants").await, 0.0);
    assert_eq!(server.metric("capstan_rooms").await, 0.0);
    // The limits are in characters, and printable Unicode is fine.
    let t = TokenKeys::new(DEV_SECRET).mint(
        "g",
        &"é".repeat(128),
        &"名".repeat(256),
        Role::Participant,
        Duration::from_secs(600),
    );
    let (_peer, offer) = whip_offer().await;
    let reply = server
        .post_sdp("/whip/g", Some(&t), "application/sdp", offer)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    server.assert_clean_log();
}

/// Status, JSON body (`Null` if not JSON) of a request.
async fn raw(request: reqwest::RequestBuilder) -> (StatusCode, serde_json::Value) {
    // A server refusing a large body closes the connection before reading all of it; the
    // client may then see the reset instead of the answer. That is the transport, so retry.
    let mut attempts = 0;
    let response = loop {
        let attempt = request.try_clone().expect("a request with a buffered body");
        match attempt.send().await {
            Ok(response) => break response,
            Err(e) if attempts < 5 => {
                attempts += 1;
                eprintln!("retrying after a transport error: {e}");
            }
            Err(e) => panic!("request failed 6 times: {e}"),
        }
    };
    let status = response.status();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_json() {
    let server = TestServer::start().await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", server.base);
    let host = token("j", "h", Role::Host);
    let cases = [
        (
            client.get(url("/api/webrtc/recordings/x/download?file=first")),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            client
                .get(url("/api/webrtc/recordings/%FF/download"))
                .bearer_auth(&host),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            client
                .post(url("/whip/j"))
                .bearer_auth(&host)
                .header("Content-Type", "application/sdp")
                .body(vec![b'a'; 3 * 1024 * 1024]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            client.get(url("/no/such/route")),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            client.get(url("/whip/j")),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    for (request, status, code) in cases {
        let (got, json) = raw(request).await;
        assert_json_error(got, &json, status, code);
    }
    // The compatibility routes keep their envelope.
    let (got, json) = raw(client
        .post(url(
            "/video-calls/j/recording/start?mode=tracks&mode=composite",
        ))
        .bearer_auth(&host))
    .await;
    assert_json_error(got, &json, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(json["success"], false, "{json}");
}

/// Sends `n` requests at once; the statuses and bodies of their answers.
async fn at_once(
    n: usize,
    method: Method,
    url: &str,
    token: &str,
) -> Vec<(StatusCode, serde_json::Value)> {
    let replies =
        futures::future::join_all((0..n).map(|_| call(method.clone(), url, Some(token)))).await;
    replies.into_iter().map(|r| (r.status, r.body)).collect()
}

/// Asserts that every answer but `won` is a 409 naming the state, or a 404 once the
/// recording is gone (when `gone_ok`).
fn losers(replies: &[(StatusCode, serde_json::Value)], won: StatusCode, gone_ok: bool) {
    for (status, body) in replies.iter().filter(|(s, _)| *s != won) {
        match *status {
            StatusCode::CONFLICT => {
                assert_eq!(body["error"], "invalid_state", "{body}");
                let message = body["message"].as_str().unwrap();
                assert!(
                    ["recording", "processing", "completed", "being deleted"]
                        .iter()
                        .any(|s| message.contains(s)),
                    "{message}"
                );
            }
            StatusCode::NOT_FOUND if gone_ok => {
                assert_eq!(body["error"], "recording_not_found", "{body}")
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
}

/// Asserts exactly one answer `won`, and [`losers`] for the others.
fn one_winner(replies: &[(StatusCode, serde_json::Value)], won: StatusCode, gone_ok: bool) {
    let winners = replies.iter().filter(|(s, _)| *s == won).count();
    assert_eq!(winners, 1, "{replies:?}");
    losers(replies, won, gone_ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_stops_and_deletes_have_exactly_one_winner() {
    let server = TestServer::start().await;
    let _p = publisher(&server, "c", "p").await;
    let host = Host::new(&server, "c");
    let room_url = |id: &str| format!("{}/api/webrtc/rooms/c/recording/{id}", server.base);

    // 20 stops while the first is still finishing the files (a composite takes a while).
    let id = id_of(&host.start(COMPOSITE).await.expect(StatusCode::CREATED));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stops = at_once(
        20,
        Method::POST,
        &format!("{}/stop", room_url(&id)),
        &host.token,
    )
    .await;
    one_winner(&stops, StatusCode::OK, false);

    // 20 deletes of the completed recording.
    host.wait_status(&id, "completed", WAIT).await;
    let deletes = at_once(20, Method::DELETE, &room_url(&id), &host.token).await;
    one_winner(&deletes, StatusCode::NO_CONTENT, true);

    // 10 stops racing 10 deletes: one stop, at most one delete.
    let id = id_of(&host.start(TRACKS).await.expect(StatusCode::CREATED));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stop_url = format!("{}/stop", room_url(&id));
    let delete_url = format!("{}/api/webrtc/recordings/{id}", server.base);
    let (stops, deletes) = tokio::join!(
        at_once(10, Method::POST, &stop_url, &host.token),
        at_once(10, Method::DELETE, &delete_url, &host.token),
    );
    one_winner(&stops, StatusCode::OK, true);
    let deleted = deletes
        .iter()
        .filter(|(s, _)| *s == StatusCode::NO_CONTENT)
        .count();
    assert!(deleted <= 1, "{deletes:?}");
    losers(&deletes, StatusCode::NO_CONTENT, true);
    server.assert_clean_log();
}

/// An offer from a connection with `tracks` audio tracks that send nothing.
async fn audio_offer(tracks: usize) -> String {
    let (peer, _events) = client_factory().create().await.expect("pc");
    for i in 0..tracks {
        let track = TrackLocalStaticRTP::new(MediaStreamTrack::new(
            "s".into(),
            format!("audio{i}"),
            format!("audio{i}"),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(rand::random()),
                    ..Default::default()
                },
                codec: codec(MediaKind::Audio),
                ..Default::default()
            }],
        ));
        peer.pc
            .add_track(Arc::new(track) as Arc<dyn TrackLocal>)
            .await
            .expect("add track");
    }
    peer.offer().await.expect("offer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_must_fit_their_route() {
    let server = TestServer::start().await;
    let t = token("o", "p", Role::Participant);
    let (_peer, offer) = whip_offer().await;
    let (viewer, _) = whep_offer_peer().await;
    let recvonly = viewer.offer().await.unwrap();
    assert!(offer.contains("a=mid:1"), "{offer}");
    let cases = [
        ("/whip/o", audio_offer(17).await, "m-lines"),
        ("/whip/o", offer.replace("a=mid:1", "a=mid:0"), "mid"),
        ("/whip/o", recvonly, "recvonly"),
        (
            "/whep/o/p",
            offer.replace("a=sendrecv", "a=sendonly"),
            "sendonly",
        ),
    ];
    for (path, sdp, what) in cases {
        let reply = server
            .post_sdp(path, Some(&t), "application/sdp", sdp)
            .await;
        let json = reply.json();
        assert_eq!(
            (reply.status, json["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_sdp")),
            "{path} {what}: {}",
            reply.body
        );
        assert!(json["message"].as_str().unwrap().contains(what), "{json}");
    }
    // 16 sections are fine.
    let reply = server
        .post_sdp(
            "/whip/o",
            Some(&t),
            "application/sdp",
            audio_offer(16).await,
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    server.assert_clean_log();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheme_and_content_type_match_case_insensitively_and_token_errors_are_generic() {
    let server = TestServer::start().await;
    let client = reqwest::Client::new();
    let t = token("k", "p", Role::Participant);
    for (scheme, content_type) in [
        ("bearer", "Application/SDP"),
        ("BEARER", "application/SDP; charset=utf-8"),
    ] {
        let (_peer, offer) = whip_offer().await;
        let response = client
            .post(format!("{}/whip/k", server.base))
            .header("Authorization", format!("{scheme} {t}"))
            .header("Content-Type", content_type)
            .body(offer)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "{scheme} {content_type}"
        );
    }
    let (got, json) = raw(client
        .post(format!("{}/whip/k", server.base))
        .bearer_auth(&t)
        .header("Content-Type", "application/sdpx")
        .body("v=0"))
    .await;
    assert_eq!(got, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{json}");

    let forged =
        TokenKeys::new("not-the-secret").mint("k", "x", "x", Role::Host, Duration::from_secs(60));
    let claims = capstan::auth::Claims {
        sub: "x".into(),
        name: "x".into(),
        room: "k".into(),
        role: Role::Host,
        exp: u64::MAX / 2,
    };
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(DEV_SECRET.as_bytes()),
    )
    .unwrap();
    for bad in [forged, hs512, "garbage".to_string()] {
        let (got, json) = raw(client
            .get(format!("{}/api/webrtc/recordings", server.base))
            .bearer_auth(&bad))
        .await;
        assert_eq!(got, StatusCode::UNAUTHORIZED, "{json}");
        assert_eq!(json["message"], "invalid access token", "{json}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_range_gets_the_whole_file() {
    let server = TestServer::start().await;
    let _p = publisher(&server, "g", "p").await;
    let host = Host::new(&server, "g");
    let id = id_of(&host.start(TRACKS).await.expect(StatusCode::CREATED));
    tokio::time::sleep(Duration::from_secs(2)).await;
    host.act(&id, "stop").await.expect(StatusCode::OK);
    let done = host.wait_status(&id, "completed", WAIT).await;
    let size = done["files"][0]["size_bytes"].as_u64().unwrap();
    let url = format!("{}/api/webrtc/recordings/{id}/download", server.base);
    let get = |range: &'static str| {
        let request = reqwest::Client::new()
            .get(&url)
            .bearer_auth(&host.token)
            .header("Range", range);
        async move {
            let response = request.send().await.unwrap();
            (
                response.status(),
                response.bytes().await.unwrap().len() as u64,
            )
        }
    };
    for malformed in ["bytes=abc", "bytes=5-2", "bytes", "lines=1-2", "bytes=--1"] {
        assert_eq!(get(malformed).await, (StatusCode::OK, size), "{malformed}");
    }
    assert_eq!(get("bytes=0-9").await, (StatusCode::PARTIAL_CONTENT, 10));
    assert_eq!(
        get("bytes=999999999-").await.0,
        StatusCode::RANGE_NOT_SATISFIABLE
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracks_recording_without_a_publisher_fails_with_no_media() {
    let server = TestServer::start().await;
    let _m = member(&server, "n", "m").await;
    let host = Host::new(&server, "n");
    let id = id_of(&host.start(TRACKS).await.expect(StatusCode::CREATED));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopped = host.act(&id, "stop").await.expect(StatusCode::OK);
    assert_eq!(stopped["status"], "failed", "{stopped}");
    assert!(
        stopped["error"]
            .as_str()
            .is_some_and(|e| e.contains("no media")),
        "{stopped}"
    );
    assert_eq!(host.status(&id).await["status"], "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_closes_the_socket_with_1009() {
    let server = TestServer::start().await;
    let t = token("w", "p", Role::Participant);
    let address = server.ws_base.trim_start_matches("ws://").to_string();
    let tcp = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let url = format!("{}/ws?token={t}", server.ws_base);
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp)
        .await
        .expect("handshake");
    // The header of a masked text frame announcing 2 MiB, and its first bytes: the server
    // refuses the frame on its header. Sending the whole 2 MiB would race its close: a socket
    // closed with bytes unread answers the rest with a reset, which can discard the close frame.
    let mut frame = vec![0x81, 0x80 | 127];
    frame.extend_from_slice(&(2u64 << 20).to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]);
    frame.extend_from_slice(br#"{"ty"#);
    ws.get_mut().write_all(&frame).await.expect("send");
    let close = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(frame) = ws.next().await {
            match frame {
                Ok(Message::Close(frame)) => return frame,
                Ok(_) => continue,
                Err(e) => panic!("socket ended without a close frame: {e}"),
            }
        }
        panic!("socket ended without a close frame")
    })
    .await
    .expect("a close frame within 10 s");
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1009));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_websocket_clients_are_dropped() {
    let server = TestServer::start_with(&[("CAPSTAN_WS_PING_INTERVAL", "300ms")]).await;
    let url = |who: &str| {
        let t = token("p", who, Role::Participant);
        format!("{}/ws?token={t}", server.ws_base)
    };
    // A live client reads, so its WebSocket library answers the pings.
    let (mut live, _) = tokio_tungstenite::connect_async(url("live")).await.unwrap();
    let reader = tokio::spawn(async move { while let Some(Ok(_)) = live.next().await {} });
    // A dead one never reads again: no pongs, nothing.
    let (_dead, _) = tokio_tungstenite::connect_async(url("dead")).await.unwrap();
    let participants = || async { server.metric("capstan_participants").await };
    wait_for("both to join", WAIT, || async {
        participants().await == 2.0
    })
    .await;
    wait_for(
        "the silent client to be dropped",
        Duration::from_secs(5),
        || async { participants().await == 1.0 },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(participants().await, 1.0, "the live client stays");
    assert!(!reader.is_finished());
    reader.abort();
}
