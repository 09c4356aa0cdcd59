//! Hostile and careless clients: slow requests time out, connections and pending WHIP/WHEP
//! sessions are capped per client, rate limits answer 429, abandoned sessions end early and
//! quietly, CORS only for the allowed origins, security headers on the UI.

mod common;

use capstan::auth::Role;
use common::peer::{client_factory, publish_test_media, whep_offer_peer, Participant};
use common::{wait_for, wait_until, TestServer};
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// Generous bound on anything a test waits for, far above the small timeouts it configures.
const SLACK: Duration = Duration::from_secs(20);

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.base.trim_start_matches("http://"))
        .await
        .expect("TCP connect")
}

/// Reads until the server closes the connection (or resets it); returns what it sent, or
/// `None` when it kept the connection open for [`SLACK`].
async fn read_until_closed(stream: &mut TcpStream) -> Option<String> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(SLACK, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&received).into_owned())
}

#[tokio::test]
async fn slow_headers_and_idle_keep_alive_are_closed_after_the_header_timeout() {
    let server = TestServer::start_with(&[("CAPSTAN_HTTP_HEADER_TIMEOUT", "1s")]).await;
    let mut partial = connect(&server).await;
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow:")
        .await
        .unwrap();
    assert_eq!(
        read_until_closed(&mut partial).await.as_deref(),
        Some(""),
        "a partial request is closed without an answer"
    );

    let mut idle = connect(&server).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answered = read_until_closed(&mut idle)
        .await
        .expect("an idle keep-alive connection is closed");
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
}

/// Sends the head of a WHIP POST announcing `length` bytes, then `sent` bytes of body, and
/// returns the answer once the server closes the connection.
async fn whip_with_missing_body(server: &TestServer, length: u64, sent: usize) -> String {
    let token = server.token("slow", "pub", Role::Participant);
    let mut stream = connect(server).await;
    let head = format!(
        "POST /whip/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/sdp\r\nContent-Length: {length}\r\n\r\n{}",
        "v".repeat(sent)
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    read_until_closed(&mut stream)
        .await
        .expect("an answer and a close")
}

#[tokio::test]
async fn a_body_that_does_not_arrive_gets_a_json_error() {
    let server = TestServer::start_with(&[("CAPSTAN_HTTP_BODY_TIMEOUT", "1s")]).await;
    let answer = whip_with_missing_body(&server, 1000, 10).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""error":"request_timeout""#), "{answer}");
    // The issue's 100 MB announcement is refused at once, without waiting for it.
    let answer = whip_with_missing_body(&server, 104_857_600, 0).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains(r#""error":"payload_too_large""#),
        "{answer}"
    );
    assert_eq!(server.metric("capstan_refused_total").await, 1.0);
}

/// A new connection that got an answer to `GET /healthz` (kept open), or `None`.
async fn healthz_on_new_connection(server: &TestServer) -> Option<TcpStream> {
    let mut stream = connect(server).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .ok()?;
    let mut buf = [0u8; 12];
    stream.read_exact(&mut buf).await.ok()?;
    (&buf == b"HTTP/1.1 200").then_some(stream)
}

#[tokio::test]
async fn connections_over_the_per_ip_cap_are_closed() {
    let server = TestServer::start_with(&[("CAPSTAN_MAX_CONNECTIONS_PER_IP", "4")]).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        // Retried: the health check's connections may not have been seen closing yet.
        let mut answered = None;
        let deadline = tokio::time::Instant::now() + SLACK;
        while answered.is_none() && tokio::time::Instant::now() < deadline {
            answered = healthz_on_new_connection(&server).await;
            if answered.is_none() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        held.push(answered.expect("a connection under the cap is served"));
    }
    let mut refused = connect(&server).await;
    let _ = refused
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    assert_eq!(
        read_until_closed(&mut refused).await.as_deref(),
        Some(""),
        "the fifth connection is closed unanswered"
    );
    drop(held);
    wait_for("the places freed", SLACK, || async {
        reqwest::get(format!("{}/healthz", server.base))
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    let refused = server.metric("capstan_refused_total").await;
    assert!(refused >= 1.0, "{refused}");
}

#[tokio::test]
async fn requests_over_the_rate_limits_get_429_with_retry_after() {
    let server = TestServer::start_with(&[
        // Slow enough that nothing is earned back during the test.
        ("CAPSTAN_RATE_LIMIT_IP", "0.01/s,20"),
        ("CAPSTAN_RATE_LIMIT_TOKEN", "0.01/s,3"),
    ])
    .await;
    let client = reqwest::Client::new();
    let list = |token: String| {
        client
            .get(format!("{}/api/webrtc/rooms/r/recordings", server.base))
            .bearer_auth(token)
            .send()
    };
    let alice = server.token("r", "alice", Role::Host);
    for _ in 0..3 {
        assert_eq!(list(alice.clone()).await.unwrap().status(), StatusCode::OK);
    }
    let limited = list(alice.clone()).await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=100).contains(&retry), "{retry}");
    let json: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(json["error"], "rate_limited", "{json}");
    assert!(
        json["message"].as_str().unwrap().contains("token"),
        "{json}"
    );
    let bob = server.token("r", "bob", Role::Host);
    assert_eq!(
        list(bob).await.unwrap().status(),
        StatusCode::OK,
        "per token"
    );

    // The client IP's own budget: 20, of which 5 are spent.
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let status = client
            .get(format!("{}/", server.base))
            .send()
            .await
            .unwrap()
            .status();
        statuses.push(status);
    }
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(ok, 15, "{statuses:?}");
    assert_eq!(statuses[19], StatusCode::TOO_MANY_REQUESTS);
    let health = client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        health.status(),
        StatusCode::OK,
        "ops endpoints are not limited"
    );
}

#[tokio::test]
async fn websocket_messages_over_the_rate_limit_are_dropped_with_an_error() {
    let server = TestServer::start_with(&[("CAPSTAN_RATE_LIMIT_TOKEN", "0.01/s,5")]).await;
    let token = server.token("ws", "chatty", Role::Participant);
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{}/ws?token={token}", server.ws_base))
            .await
            .expect("connect");
    // The upgrade request spent one of the 5; malformed messages are answered one by one.
    for _ in 0..10 {
        ws.send(Message::Text("{".into())).await.unwrap();
    }
    let mut codes = Vec::new();
    while codes.len() < 10 {
        let frame = tokio::time::timeout(SLACK, ws.next())
            .await
            .expect("a reply");
        let Some(Ok(Message::Text(text))) = frame else {
            panic!("unexpected {frame:?}");
        };
        let msg: serde_json::Value = serde_json::from_str(&text).unwrap();
        if msg["type"] == "error" {
            assert_eq!(msg["fatal"], false, "{msg}");
            codes.push(msg["code"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(
        codes,
        [vec!["malformed_message"; 4], vec!["rate_limited"; 6]].concat()
    );
}

/// A WHIP offer from a peer that is closed at once: its sessions never connect.
async fn abandoned_whip_offer() -> String {
    let (pc, _events) = client_factory().create().await.unwrap();
    let _media = publish_test_media(&pc, "gone", Default::default()).await;
    let offer = pc.offer().await.unwrap();
    pc.close().await;
    offer
}

/// A WHEP offer from a peer that is closed at once.
async fn abandoned_whep_offer() -> String {
    let (pc, _events) = whep_offer_peer().await;
    let offer = pc.offer().await.unwrap();
    pc.close().await;
    offer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_sessions_are_capped_per_token_and_per_ip_until_ice_gives_up() {
    let server = TestServer::start_with(&[
        ("CAPSTAN_MAX_PENDING_PER_TOKEN", "2"),
        ("CAPSTAN_MAX_PENDING_PER_IP", "3"),
        ("CAPSTAN_ICE_CONNECT_TIMEOUT", "2s"),
    ])
    .await;
    let _host = Participant::join(&server, "p", "host").await;
    wait_for("the host's tracks", SLACK, || async {
        server.metric("capstan_published_tracks").await >= 2.0
    })
    .await;
    let offer = abandoned_whep_offer().await;
    let watch = |identity: &str| {
        let token = server.token("p", identity, Role::Participant);
        let offer = offer.clone();
        let server = &server;
        async move {
            let reply = server
                .post_sdp("/whep/p/host", Some(&token), "application/sdp", offer)
                .await;
            (
                reply.status,
                reply.json()["error"].as_str().map(str::to_string),
                reply.body,
            )
        }
    };
    for _ in 0..2 {
        let (status, _, body) = watch("v").await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, code, body) = watch("v").await;
    assert_eq!(
        (status, code.as_deref()),
        (StatusCode::TOO_MANY_REQUESTS, Some("too_many_pending"))
    );
    assert!(body.contains("token"), "{body}");
    let (status, _, body) = watch("w").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, code, body) = watch("w").await;
    assert_eq!(
        (status, code.as_deref()),
        (StatusCode::TOO_MANY_REQUESTS, Some("too_many_pending"))
    );
    assert!(body.contains("client IP"), "{body}");
    // The abandoned sessions end after the connect timeout and give their places back.
    let freed = wait_until(SLACK, || async {
        watch("v").await.0 == StatusCode::CREATED
    })
    .await;
    assert!(freed, "the pending places were not given back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_abandoned_whip_sessions_end_quietly_and_release_their_sockets() {
    const SESSIONS: usize = 50;
    let server = TestServer::start_with(&[
        ("CAPSTAN_MAX_PENDING_PER_IP", "64"),
        ("CAPSTAN_ICE_CONNECT_TIMEOUT", "3s"),
    ])
    .await;
    let offer = abandoned_whip_offer().await;
    // Warm-up: lazily created pools and caches.
    let token = server.token("a", "warm", Role::Participant);
    let reply = server
        .post_sdp("/whip/a", Some(&token), "application/sdp", offer.clone())
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    wait_for("the warm-up session to end", SLACK, || async {
        server.metric("capstan_participants").await == 0.0
    })
    .await;
    let fds0 = common::procfs::open_fds(server.pid());
    let lines0 = server.log().lines().count();
    for i in 0..SESSIONS {
        let room = format!("a{i}");
        let token = server.token(&room, "p", Role::Participant);
        let reply = server
            .post_sdp(
                &format!("/whip/{room}"),
                Some(&token),
                "application/sdp",
                offer.clone(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }
    let during = common::procfs::open_fds(server.pid());
    wait_for("the abandoned sessions to end", SLACK, || async {
        server.metric("capstan_participants").await == 0.0
            && common::procfs::open_fds(server.pid()) <= fds0
    })
    .await;
    let fds = common::procfs::open_fds(server.pid());
    let log = server.log();
    let lines: Vec<&str> = log.lines().skip(lines0).collect();
    println!(
        "{SESSIONS} abandoned WHIP sessions: fds {fds0} -> {during} -> {fds}, {} log lines",
        lines.len()
    );
    assert!(
        lines.len() <= SESSIONS,
        "{} log lines for {SESSIONS} sessions:\n{}",
        lines.len(),
        lines.join("\n")
    );
    server.assert_clean_log();
}

async fn preflight(server: &TestServer, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{}/whip/c", server.base))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn cors_only_for_allowed_origins() {
    const APP: &str = "https://app.example";
    let server =
        TestServer::start_with(&[("CAPSTAN_ALLOWED_ORIGINS", "https://app.example/")]).await;
    let allowed = preflight(&server, APP).await;
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(header(&allowed, "access-control-allow-origin"), Some(APP));
    let headers = header(&allowed, "access-control-allow-headers")
        .unwrap()
        .to_lowercase();
    assert!(
        headers.contains("authorization") && headers.contains("content-type"),
        "{headers}"
    );
    assert!(header(&allowed, "access-control-allow-methods")
        .unwrap()
        .contains("POST"));

    let (pc, _events) = client_factory().create().await.unwrap();
    let _media = publish_test_media(&pc, "cam", Default::default()).await;
    let offer = pc.offer().await.unwrap();
    let post = |origin: &'static str| {
        reqwest::Client::new()
            .post(format!("{}/whip/c", server.base))
            .header("Origin", origin)
            .header("Content-Type", "application/sdp")
            .bearer_auth(server.token("c", "cam", Role::Participant))
            .body(offer.clone())
            .send()
    };
    let created = post(APP).await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(header(&created, "access-control-allow-origin"), Some(APP));
    let exposed = header(&created, "access-control-expose-headers")
        .unwrap()
        .to_lowercase();
    assert!(exposed.contains("location"), "{exposed}");

    // A tus PATCH from the allowed origin may send and read the tus headers.
    let tus = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/api/webrtc/uploads/x", server.base),
        )
        .header("Origin", APP)
        .header("Access-Control-Request-Method", "PATCH")
        .header(
            "Access-Control-Request-Headers",
            "authorization,content-type,tus-resumable,upload-offset",
        )
        .send()
        .await
        .unwrap();
    assert!(tus.status().is_success(), "{}", tus.status());
    assert!(header(&tus, "access-control-allow-methods")
        .unwrap()
        .contains("PATCH"));
    let headers = header(&tus, "access-control-allow-headers").unwrap();
    assert!(headers.contains("upload-offset"), "{headers}");

    let foreign = preflight(&server, "https://evil.example").await;
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    assert_eq!(header(&foreign, "access-control-allow-origin"), None);
    assert_eq!(header(&foreign, "access-control-allow-methods"), None);
    let foreign = post("https://evil.example").await.unwrap();
    assert_eq!(header(&foreign, "access-control-allow-origin"), None);
    pc.close().await;

    let same_origin_only = TestServer::start().await;
    let refused = preflight(&same_origin_only, APP).await;
    assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&refused, "access-control-allow-origin"), None);
}

#[tokio::test]
async fn ui_pages_and_assets_carry_security_headers() {
    let server = TestServer::start().await;
    for path in ["/", "/room/x", "/static/app.js", "/static/style.css"] {
        let response = reqwest::get(format!("{}{path}", server.base))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let csp = header(&response, "content-security-policy").expect("CSP");
        assert!(csp.contains("script-src 'self';"), "{path}: {csp}");
        assert!(csp.ends_with("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(header(&response, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(&response, "referrer-policy"), Some("no-referrer"));
    }
    let framed =
        TestServer::start_with(&[("CAPSTAN_FRAME_ANCESTORS", "'self' https://portal.example")])
            .await;
    let response = reqwest::get(format!("{}/", framed.base)).await.unwrap();
    let csp = header(&response, "content-security-policy").unwrap();
    assert!(
        csp.ends_with("frame-ancestors 'self' https://portal.example"),
        "{csp}"
    );
}
