//! Ops endpoints, the token CLI and the media port range, against a real server process.

mod common;

use capstan::auth::{Role, TokenKeys, DEV_SECRET};
use common::peer::{client_factory, publish_test_media};
use common::TestServer;
use reqwest::StatusCode;

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
async fn readyz_fails_when_the_data_dir_is_not_writable() {
    let server =
        TestServer::start_with(&[("CAPSTAN_DATA_DIR", "/proc/capstan-cannot-write")]).await;
    let response = reqwest::get(format!("{}/readyz", server.base))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["error"], "not_ready");
    assert!(
        json["message"].as_str().unwrap().contains("data directory"),
        "{json}"
    );
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
        let identity = format!("cam{i}");
        let (pc, _events) = client_factory().create().await.unwrap();
        let media = publish_test_media(&pc, &identity, Default::default()).await;
        let response = reqwest::Client::new()
            .post(format!("{}/whip/ports", server.base))
            .bearer_auth(server.token("ports", &identity, Role::Participant))
            .header("Content-Type", "application/sdp")
            .body(pc.offer().await.unwrap())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        if i < 3 {
            assert_eq!(status, StatusCode::CREATED, "{body}");
            let ports: Vec<u16> = body
                .lines()
                .filter(|l| l.starts_with("a=candidate:"))
                .filter_map(|l| l.split_whitespace().nth(5)?.parse().ok())
                .collect();
            assert!(!ports.is_empty(), "answer has candidates: {body}");
            assert!(
                ports.iter().all(|p| (LOW..=HIGH).contains(p)),
                "ports {ports:?} outside {LOW}-{HIGH}"
            );
            keep.push((pc, media));
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
    let token = server.token("nat", "a", Role::Participant);
    let url = format!("{}/ws?token={token}", server.ws_base);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text))) =
        futures::StreamExt::next(&mut ws).await
    else {
        panic!("no welcome");
    };
    let welcome: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(
        welcome["ice_servers"][0]["urls"],
        serde_json::json!(["stun:stun.example.org:3478", "turn:turn.example.org"])
    );

    // The answer announces the public address (1:1 NAT) instead of the bound one. The client
    // never applies it, so nothing is sent to that address.
    let (pc, _events) = client_factory().create().await.unwrap();
    let _media = publish_test_media(&pc, "b", Default::default()).await;
    let answer = reqwest::Client::new()
        .post(format!("{}/whip/nat", server.base))
        .bearer_auth(server.token("nat", "b", Role::Participant))
        .header("Content-Type", "application/sdp")
        .body(pc.offer().await.unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let hosts: Vec<&str> = answer
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .filter_map(|l| l.split_whitespace().nth(4))
        .collect();
    assert!(!hosts.is_empty(), "{answer}");
    assert!(hosts.iter().all(|h| *h == "203.0.113.7"), "{hosts:?}");
}

#[tokio::test]
async fn a_participant_without_a_media_port_is_told_why() {
    let server = TestServer::start_with(&[("CAPSTAN_RTC_UDP_PORTS", "51210-51210")]).await;
    let mut welcomed = Vec::new();
    let mut sockets = Vec::new(); // keep `a` connected (and its port leased) while `b` joins
    for identity in ["a", "b"] {
        let token = server.token("tiny", identity, Role::Participant);
        let url = format!("{}/ws?token={token}", server.ws_base);
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text))) =
            futures::StreamExt::next(&mut ws).await
        else {
            panic!("no first message for {identity}");
        };
        let msg: serde_json::Value = serde_json::from_str(&text).unwrap();
        welcomed.push((
            msg["type"].clone(),
            msg["code"].clone(),
            msg["fatal"].clone(),
            msg["message"].clone(),
        ));
        sockets.push(ws);
    }
    assert_eq!(welcomed[0].0, "welcome");
    assert_eq!(
        (&welcomed[1].0, &welcomed[1].1, &welcomed[1].2),
        (
            &serde_json::json!("error"),
            &serde_json::json!("internal"),
            &serde_json::json!(true)
        )
    );
    assert!(
        welcomed[1]
            .3
            .as_str()
            .unwrap()
            .contains("port range exhausted"),
        "{:?}",
        welcomed[1]
    );
}
