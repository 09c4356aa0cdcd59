//! Ops endpoints, the token CLI and the media port range, against a real server process.

mod common;

use capstan::auth::{Role, TokenKeys, DEV_SECRET};
use common::peer::{client_factory, publish_test_media};
use common::TestServer;
use reqwest::StatusCode;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the signaling socket as `identity` and returns it with the first server message.
async fn join_ws(server: &TestServer, room: &str, identity: &str) -> (Ws, serde_json::Value) {
    let token = server.token(room, identity, Role::Participant);
    let url = format!("{}/ws?token={token}", server.ws_base);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text))) =
        futures::StreamExt::next(&mut ws).await
    else {
        panic!("no first message for {identity}");
    };
    (ws, serde_json::from_str(&text).unwrap())
}

/// Publishes test media over WHIP as `identity`; returns the status, the body and what keeps
/// the publisher alive.
async fn whip(server: &TestServer, room: &str, identity: &str) -> (StatusCode, String, impl Sized) {
    let (pc, events) = client_factory().create().await.unwrap();
    let media = publish_test_media(&pc, identity, Default::default()).await;
    let token = server.token(room, identity, Role::Participant);
    let offer = pc.offer().await.unwrap();
    let reply = server
        .post_sdp(
            &format!("/whip/{room}"),
            Some(&token),
            "application/sdp",
            offer,
        )
        .await;
    (reply.status, reply.body, (pc, events, media))
}

/// Field `n` of every `a=candidate` line (4 = address, 5 = port).
fn candidate_fields(sdp: &str, n: usize) -> Vec<&str> {
    sdp.lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .filter_map(|l| l.split_whitespace().nth(n))
        .collect()
}

#[tokio::test]
async fn healthz_readyz_and_metrics() {
    let server = TestServer::start().await;
    let get = |path: &str| reqwest::get(format!("{}{path}", server.base));
    assert_eq!(get("/healthz").await.unwrap().text().await.unwrap(), "ok");
    let ready = get("/readyz").await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    for name in [
        "capstan_rooms",
        "capstan_participants",
        "capstan_published_tracks",
        "capstan_forwarded_packets_total",
        "capstan_forwarded_bytes_total",
        "capstan_keyframe_requests_total",
        "capstan_tokio_alive_tasks",
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {name} ")),
            "{name} missing:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn readyz_fails_when_the_spool_is_not_writable() {
    let server =
        TestServer::start_with(&[("RECORDING_OUTPUT_DIR", "/proc/capstan-cannot-write")]).await;
    let response = reqwest::get(format!("{}/readyz", server.base))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["error"], "not_ready");
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .contains("recording spool"),
        "{json}"
    );
}

#[test]
fn an_unusable_data_dir_stops_start_up_with_a_clear_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["serve", "--dev"])
        .env("CAPSTAN_DATA_DIR", "/proc/capstan-cannot-write")
        .env("CAPSTAN_HTTP_ADDR", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("catalog"), "{stderr}");
}

#[test]
fn token_cli_mints_verifiable_tokens() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args([
            "token",
            "--dev",
            "--room",
            "demo",
            "--identity",
            "alice",
            "--name",
            "Alice",
            "--host",
            "--ttl",
            "2h",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let claims = TokenKeys::new(DEV_SECRET)
        .verify_for_room(token.trim(), "demo")
        .unwrap();
    assert_eq!(
        (claims.sub.as_str(), claims.name.as_str(), claims.role),
        ("alice", "Alice", Role::Host)
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["token", "--room", "demo", "--identity", "alice"])
        .env_remove("CAPSTAN_JWT_SECRET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "no secret, no token");
    assert!(String::from_utf8_lossy(&out.stderr).contains("CAPSTAN_JWT_SECRET"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_uses_the_configured_port_range_and_refuses_when_exhausted() {
    const LOW: u16 = 51_200;
    const HIGH: u16 = 51_202;
    let server = TestServer::start_with(&[("CAPSTAN_RTC_UDP_PORTS", "51200-51202")]).await;
    let mut keep = Vec::new();
    for i in 0..4 {
        let (status, body, publisher) = whip(&server, "ports", &format!("cam{i}")).await;
        if i < 3 {
            assert_eq!(status, StatusCode::CREATED, "{body}");
            let ports: Vec<u16> = candidate_fields(&body, 5)
                .iter()
                .filter_map(|p| p.parse().ok())
                .collect();
            assert!(!ports.is_empty(), "answer has candidates: {body}");
            assert!(
                ports.iter().all(|p| (LOW..=HIGH).contains(p)),
                "ports {ports:?} outside {LOW}-{HIGH}"
            );
            keep.push(publisher);
        } else {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
            assert!(body.contains("no_media_port"), "{body}");
        }
    }
    server.assert_clean_log();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_cleanly_with_participants_connected() {
    let mut server = TestServer::start().await;
    let _a = common::peer::Participant::join(&server, "bye", "a").await;
    let _b = common::peer::Participant::join(&server, "bye", "b").await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let status = server.terminate(std::time::Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?}\n{}",
        server.log()
    );
}

#[tokio::test]
async fn ice_servers_reach_clients_and_the_public_ip_is_announced() {
    let server = TestServer::start_with(&[
        (
            "CAPSTAN_ICE_SERVERS",
            "stun:stun.example.org:3478, turn:turn.example.org",
        ),
        ("CAPSTAN_PUBLIC_IP", "203.0.113.7"),
    ])
    .await;
    let (_ws, welcome) = join_ws(&server, "nat", "a").await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(
        welcome["ice_servers"][0]["urls"],
        serde_json::json!(["stun:stun.example.org:3478", "turn:turn.example.org"])
    );

    // The answer announces the public address (1:1 NAT) instead of the bound one. The client
    // never applies it, so nothing is sent to that address.
    let (status, answer, _publisher) = whip(&server, "nat", "b").await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let hosts = candidate_fields(&answer, 4);
    assert!(!hosts.is_empty(), "{answer}");
    assert!(hosts.iter().all(|h| *h == "203.0.113.7"), "{hosts:?}");
}

#[tokio::test]
async fn a_participant_without_a_media_port_is_told_why() {
    let server = TestServer::start_with(&[("CAPSTAN_RTC_UDP_PORTS", "51210-51210")]).await;
    let (_a, first) = join_ws(&server, "tiny", "a").await; // holds the only port
    assert_eq!(first["type"], "welcome");
    let (_b, refused) = join_ws(&server, "tiny", "b").await;
    assert_eq!(
        (&refused["type"], &refused["code"], &refused["fatal"]),
        (
            &serde_json::json!("error"),
            &serde_json::json!("internal"),
            &serde_json::json!(true)
        )
    );
    let message = refused["message"].as_str().unwrap();
    assert!(message.contains("port range exhausted"), "{message}");
}

/// The call UI's test hooks are not served to users: only a server started with
/// `--ui-test-hooks` marks its pages so that app.js exposes `window.capstan`.
#[tokio::test]
async fn ui_test_hooks_are_served_only_when_asked_for() {
    async fn body(server: &TestServer, path: &str) -> String {
        let url = format!("{}{path}", server.base);
        reqwest::get(url).await.unwrap().text().await.unwrap()
    }
    for (env, marked) in [
        (vec![], false),
        (vec![("CAPSTAN_UI_TEST_HOOKS", "true")], true),
    ] {
        let server = TestServer::start_with(&env).await;
        for path in ["/", "/room/r"] {
            let page = body(&server, path).await;
            assert!(page.contains("<html"), "{path}: {page}");
            assert_eq!(
                page.contains("data-test-hooks"),
                marked,
                "{path} with {env:?}"
            );
        }
        let app = body(&server, "/static/app.js").await;
        assert!(
            app.contains("hasAttribute('data-test-hooks')) window.capstan"),
            "app.js installs its hooks only on marked pages"
        );
    }
}
