//! Every kind of bad input gets a precise error; connections and the server survive as
//! appropriate; joining and leaving repeatedly leaks no tasks, sockets or memory.

mod common;

use capstan::auth::{Claims, Role, TokenKeys, DEV_SECRET};
use common::peer::{client_factory, whep_offer_peer, Participant};
use common::{assert_json_error, wait_for, TestServer};
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use signaling::protocol::{ErrorCode, ServerMessage, MAX_MESSAGE_BYTES};
use std::time::Duration;
use tokio_tungstenite::tungstenite::{self, Message};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(server: &TestServer, token: &str) -> Result<Ws, tungstenite::Error> {
    let url = format!("{}/ws?token={token}", server.ws_base);
    tokio_tungstenite::connect_async(url)
        .await
        .map(|(ws, _)| ws)
}

/// The next server message, skipping nothing; panics after 10 s.
async fn next(ws: &mut Ws) -> Option<ServerMessage> {
    let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("a server message within 10 s");
    match frame {
        Some(Ok(Message::Text(text))) => Some(serde_json::from_str(&text).expect("JSON")),
        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => None,
        Some(Ok(other)) => panic!("unexpected frame {other:?}"),
    }
}

/// Sends `frame` and expects a non-fatal error with `code`.
async fn expect_error(ws: &mut Ws, frame: Message, code: ErrorCode) -> String {
    ws.send(frame).await.expect("send");
    match next(ws).await {
        Some(ServerMessage::Error {
            code: got,
            message,
            fatal,
        }) => {
            assert_eq!(got, code, "{message}");
            assert!(!fatal, "{code:?} must not end the session");
            message
        }
        other => panic!("expected {code:?}, got {other:?}"),
    }
}

fn expired_token(room: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 60;
    TokenKeys::new(DEV_SECRET).sign(&Claims {
        sub: "late".into(),
        name: "late".into(),
        room: room.into(),
        role: Role::Host,
        exp,
    })
}

fn http_status(err: tungstenite::Error) -> u16 {
    match err {
        tungstenite::Error::Http(response) => response.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

#[tokio::test]
async fn websocket_rejects_bad_tokens_with_401() {
    let server = TestServer::start().await;
    let forged =
        TokenKeys::new("not-the-secret").mint("r", "x", "x", Role::Host, Duration::from_secs(60));
    let nobody = TokenKeys::new(DEV_SECRET).mint("r", "", "x", Role::Host, Duration::from_secs(60));
    for token in [
        "garbage",
        forged.as_str(),
        expired_token("r").as_str(),
        nobody.as_str(),
    ] {
        let err = connect(&server, token).await.expect_err("refused");
        assert_eq!(http_status(err), 401, "token {token}");
    }
    let response = reqwest::get(format!("{}/ws", server.base)).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn malformed_messages_get_precise_errors_and_the_session_survives() {
    let server = TestServer::start().await;
    let token = server.token("bad", "m", Role::Participant);
    let mut ws = connect(&server, &token).await.expect("connect");
    assert!(matches!(
        next(&mut ws).await,
        Some(ServerMessage::Welcome { .. })
    ));

    expect_error(
        &mut ws,
        Message::Text("{".into()),
        ErrorCode::MalformedMessage,
    )
    .await;
    expect_error(
        &mut ws,
        Message::Text("[1,2]".into()),
        ErrorCode::MalformedMessage,
    )
    .await;
    let msg = expect_error(
        &mut ws,
        Message::Text(r#"{"type":"teleport"}"#.into()),
        ErrorCode::UnknownMessageType,
    )
    .await;
    assert!(msg.contains("teleport"), "{msg}");
    expect_error(
        &mut ws,
        Message::Text(r#"{"type":"publish_offer"}"#.into()),
        ErrorCode::MalformedMessage,
    )
    .await;
    let big = format!(
        r#"{{"type":"publish_offer","sdp":"{}"}}"#,
        "x".repeat(MAX_MESSAGE_BYTES + 1)
    );
    expect_error(
        &mut ws,
        Message::Text(big.into()),
        ErrorCode::MessageTooLarge,
    )
    .await;
    expect_error(
        &mut ws,
        Message::Binary(vec![1, 2, 3].into()),
        ErrorCode::MalformedMessage,
    )
    .await;
    let offer = |sdp: &str| {
        Message::Text(
            serde_json::json!({"type": "publish_offer", "sdp": sdp})
                .to_string()
                .into(),
        )
    };
    expect_error(&mut ws, offer("not sdp at all"), ErrorCode::InvalidSdp).await;

    // A real offer whose video section offers only H264 instead of VP8.
    let (pc, _events) = client_factory().create().await.unwrap();
    let _media = common::peer::publish_test_media(&pc, "m", Default::default()).await;
    let real = pc.offer().await.unwrap();
    let no_vp8 = real.replace("VP8/90000", "H264/90000");
    let msg = expect_error(&mut ws, offer(&no_vp8), ErrorCode::UnsupportedCodecs).await;
    assert!(msg.contains("VP8"), "{msg}");
    let broken = real
        .replace("a=fingerprint:", "a=fingerprint-broken:")
        .replace("a=ice-ufrag:", "a=x:");
    ws.send(offer(&broken)).await.unwrap();
    match next(&mut ws).await {
        Some(ServerMessage::Error {
            code, fatal: false, ..
        }) => {
            assert!(
                matches!(code, ErrorCode::InvalidSdp | ErrorCode::NegotiationFailed),
                "{code:?}"
            )
        }
        other => panic!("expected an SDP error, got {other:?}"),
    }
    expect_error(
        &mut ws,
        Message::Text(
            serde_json::json!({"type": "subscribe_answer", "sdp": "v=0"})
                .to_string()
                .into(),
        ),
        ErrorCode::NegotiationFailed,
    )
    .await;

    // Still alive: a fresh, valid publish offer is answered.
    let (pc, _events) = client_factory().create().await.unwrap();
    let _media = common::peer::publish_test_media(&pc, "m", Default::default()).await;
    ws.send(offer(&pc.offer().await.unwrap())).await.unwrap();
    assert!(matches!(
        next(&mut ws).await,
        Some(ServerMessage::PublishAnswer { .. })
    ));
    assert!(reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap()
        .status()
        .is_success());
    server.assert_clean_log();
}

#[tokio::test]
async fn a_full_room_refuses_the_next_participant() {
    let server = TestServer::start_with(&[("CAPSTAN_MAX_PARTICIPANTS", "2")]).await;
    let mut first = connect(&server, &server.token("full", "a", Role::Participant))
        .await
        .unwrap();
    let mut second = connect(&server, &server.token("full", "b", Role::Participant))
        .await
        .unwrap();
    assert!(matches!(
        next(&mut first).await,
        Some(ServerMessage::Welcome { .. })
    ));
    assert!(matches!(
        next(&mut second).await,
        Some(ServerMessage::Welcome { .. })
    ));
    let mut third = connect(&server, &server.token("full", "c", Role::Participant))
        .await
        .unwrap();
    match next(&mut third).await {
        Some(ServerMessage::Error {
            code,
            fatal,
            message,
        }) => {
            assert_eq!(code, ErrorCode::RoomFull, "{message}");
            assert!(fatal);
        }
        other => panic!("expected room_full, got {other:?}"),
    }
    assert!(
        next(&mut third).await.is_none(),
        "socket closed after the fatal error"
    );
    // Another room is unaffected.
    let mut other = connect(&server, &server.token("elsewhere", "c", Role::Participant))
        .await
        .unwrap();
    assert!(matches!(
        next(&mut other).await,
        Some(ServerMessage::Welcome { .. })
    ));
}

#[tokio::test]
async fn whip_and_whep_refuse_bad_requests_precisely() {
    let server = TestServer::start().await;
    let token = server.token("h", "pub", Role::Participant);
    let (pc, _events) = client_factory().create().await.unwrap();
    let _media = common::peer::publish_test_media(&pc, "pub", Default::default()).await;
    let sdp = pc.offer().await.unwrap();
    let cases: Vec<(Option<String>, &str, String, StatusCode, &str)> = vec![
        (
            None,
            "application/sdp",
            sdp.clone(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Some(expired_token("h")),
            "application/sdp",
            sdp.clone(),
            StatusCode::UNAUTHORIZED,
            "token_expired",
        ),
        (
            Some(server.token("h", "", Role::Participant)),
            "application/sdp",
            sdp.clone(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Some(server.token("other", "pub", Role::Participant)),
            "application/sdp",
            sdp.clone(),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            Some(token.clone()),
            "text/plain",
            sdp.clone(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            Some(token.clone()),
            "application/sdp",
            "hello".into(),
            StatusCode::BAD_REQUEST,
            "invalid_sdp",
        ),
        (
            Some(token.clone()),
            "application/sdp",
            sdp.replace("opus/48000", "PCMU/8000"),
            StatusCode::BAD_REQUEST,
            "unsupported_codecs",
        ),
        (
            Some(token.clone()),
            "application/sdp",
            format!("{sdp}{}", "a=x\r\n".repeat(20_000)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ];
    for (token, ctype, body, status, code) in cases {
        let reply = server
            .post_sdp("/whip/h", token.as_deref(), ctype, body)
            .await;
        let (got, json) = (reply.status, reply.json());
        assert_json_error(got, &json, status, code);
    }
    let (viewer, _) = whep_offer_peer().await;
    let offer = viewer.offer().await.unwrap();
    let reply = server
        .post_sdp(
            "/whep/nowhere/pub",
            Some(&server.token("nowhere", "v", Role::Participant)),
            "application/sdp",
            offer.clone(),
        )
        .await;
    let (status, json) = (reply.status, reply.json());
    assert_eq!(
        (status, json["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found")),
        "{json}"
    );
    assert!(
        json["message"].as_str().unwrap().contains("nowhere"),
        "{json}"
    );
    let response = reqwest::Client::new()
        .delete(format!("{}/whip/h/ghost", server.base))
        .bearer_auth(server.token("h", "ghost", Role::Participant))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    server.assert_clean_log();
}

/// Open file descriptors (sockets included) and resident memory of a process.
fn fds_and_rss_kib(pid: u32) -> (usize, u64) {
    (common::procfs::open_fds(pid), common::procfs::rss_kib(pid))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_joins_and_leaves_leak_nothing() {
    const CYCLES: usize = 50;
    let server = TestServer::start().await;
    let host = Participant::join(&server, "churn", "host").await;
    let cycle = |i: usize| {
        let server = &server;
        let host = &host;
        async move {
            let guest = format!("guest{i}");
            let p = Participant::join(server, "churn", &guest).await;
            wait_for(
                "guest's tracks reach the host",
                Duration::from_secs(20),
                || async {
                    host.seen.with(|s| {
                        s.participants
                            .get(&guest)
                            .is_some_and(|g| g.tracks.len() == 2)
                    })
                },
            )
            .await;
            p.leave().await;
            wait_for("guest gone", Duration::from_secs(20), || async {
                host.seen.with(|s| !s.participants.contains_key(&guest))
            })
            .await;
        }
    };
    cycle(0).await; // warm-up: lazily created pools and caches
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tasks0 = server.metric("capstan_tokio_alive_tasks").await;
    let (fds0, rss0) = fds_and_rss_kib(server.pid());
    for i in 1..=CYCLES {
        cycle(i).await;
    }
    // Closed connections wind down asynchronously: allow a few seconds to settle.
    let mut settled = (0.0, 0, 0);
    for _ in 0..50 {
        let tasks = server.metric("capstan_tokio_alive_tasks").await;
        let (fds, rss) = fds_and_rss_kib(server.pid());
        settled = (tasks, fds, rss);
        if tasks <= tasks0 && fds <= fds0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (tasks, fds, rss) = settled;
    println!("after {CYCLES} cycles: tasks {tasks0} -> {tasks}, fds {fds0} -> {fds}, rss {rss0} KiB -> {rss} KiB");
    assert!(tasks <= tasks0, "tokio tasks leaked: {tasks0} -> {tasks}");
    assert!(fds <= fds0, "file descriptors leaked: {fds0} -> {fds}");
    assert!(
        rss < rss0 + 32 * 1024,
        "memory grew by more than 32 MiB: {rss0} -> {rss} KiB"
    );
    assert_eq!(server.metric("capstan_participants").await, 1.0);
    assert_eq!(server.metric("capstan_published_tracks").await, 2.0);
    server.assert_clean_log();
}
