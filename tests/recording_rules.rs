//! Recording rules over HTTP against a real server: who may record, one per room, limits,
//! the CPU budget, auto-stop, lists, delete, cancel, compatibility routes, pipelines view and
//! metrics.

mod common;

use axum::body::Bytes;
use axum::http::HeaderMap;
use capstan::auth::{Role, TokenKeys, DEV_SECRET};
use common::peer::{MediaOptions, Participant};
use common::recording::{call, id_of, Host};
use common::{wait_for, TestServer};
use reqwest::{Method, StatusCode};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const TRACKS: &str = "recording_format=webm&mode=tracks";

/// A member who publishes nothing (keeps the room open cheaply).
async fn member(server: &TestServer, room: &str, identity: &str) -> Participant {
    Participant::join_with(server, room, identity, false, MediaOptions::default()).await
}

fn token(room: &str, identity: &str, role: Role, ttl: Duration) -> String {
    TokenKeys::new(DEV_SECRET).mint(room, identity, identity, role, ttl)
}

fn expired_host_token() -> String {
    let now = unix_now();
    TokenKeys::new(DEV_SECRET).sign(&capstan::auth::Claims {
        sub: "h".into(),
        name: "h".into(),
        room: "r".into(),
        role: Role::Host,
        exp: now - 60,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_may_record_and_what_they_are_told() {
    let server = TestServer::start().await;
    // A publisher, so that the tracks recording below has a file to complete.
    let _m = Participant::join(&server, "r", "m").await;
    wait_for("the member's tracks", WAIT, || async {
        server.metric("capstan_published_tracks").await >= 2.0
    })
    .await;
    let host = Host::new(&server, "r");
    let start = |t: String| {
        let url = format!(
            "{}/api/webrtc/rooms/r/recording/start?{TRACKS}",
            server.base
        );
        async move { call(Method::POST, &url, Some(&t)).await }
    };

    let participant = start(token("r", "p", Role::Participant, Duration::from_secs(60))).await;
    assert_eq!(participant.status, StatusCode::FORBIDDEN);
    assert_eq!(participant.body["error"], "forbidden");
    assert_eq!(
        participant.body["message"],
        "Only the room's host can control its recordings"
    );
    let other_host = start(token("elsewhere", "h", Role::Host, Duration::from_secs(60))).await;
    assert_eq!(other_host.status, StatusCode::FORBIDDEN);
    let expired = start(expired_host_token()).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED, "{}", expired.body);
    assert_eq!(expired.body["error"], "token_expired");
    let anonymous = call(
        Method::POST,
        &format!("{}/api/webrtc/rooms/r/recording/start", server.base),
        None,
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    let bad = host.start("recording_format=avi").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    let bad = host.start("recording_format=mp4&mode=tracks").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    let nobody = Host::new(&server, "empty-room").start(TRACKS).await;
    assert_eq!(nobody.status, StatusCode::NOT_FOUND);
    assert_eq!(nobody.body["error"], "room_not_found");

    let first = host.start(TRACKS).await.expect(StatusCode::CREATED);
    let id = id_of(&first);
    for field in [
        "room_id",
        "user_id",
        "quality_settings",
        "storage_backend",
        "started_at",
        "files",
    ] {
        assert!(first.get(field).is_some(), "{field} in {first}");
    }
    let second = host.start(TRACKS).await;
    assert_eq!(second.status, StatusCode::CONFLICT);
    assert_eq!(second.body["message"], "Recording already in progress");

    let missing = host.act("no-such-id", "stop").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.body["message"], "Recording not found");
    let other_room = Host::new(&server, "x").act(&id, "stop").await;
    assert_eq!(other_room.status, StatusCode::NOT_FOUND, "not in that room");
    let resume = host.act(&id, "resume").await;
    assert_eq!(
        resume.status,
        StatusCode::CONFLICT,
        "resume while recording"
    );
    tokio::time::sleep(Duration::from_secs(1)).await; // media reaches the file
    host.act(&id, "pause").await.expect(StatusCode::OK);
    assert_eq!(host.act(&id, "pause").await.status, StatusCode::CONFLICT);

    // Anyone in the room may read; only the host may stop.
    let p = token("r", "p", Role::Participant, Duration::from_secs(60));
    let status_url = format!("{}/api/webrtc/rooms/r/recording/{id}/status", server.base);
    assert_eq!(
        call(Method::GET, &status_url, Some(&p))
            .await
            .expect(StatusCode::OK)["status"],
        "paused"
    );
    let stop_url = format!("{}/api/webrtc/rooms/r/recording/{id}/stop", server.base);
    let denied = call(Method::POST, &stop_url, Some(&p)).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(
        denied.body["message"],
        "Only the room's host can control its recordings"
    );

    let done = host.act(&id, "stop").await.expect(StatusCode::OK);
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        host.act(&id, "stop").await.status,
        StatusCode::CONFLICT,
        "stop twice"
    );
    server.assert_clean_log();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_answer_429_and_disabled_recording_is_refused() {
    let server = TestServer::start_with(&[
        ("CAPSTAN_MAX_RECORDINGS", "2"),
        ("CAPSTAN_MAX_RECORDINGS_PER_USER", "1"),
    ])
    .await;
    let mut members = Vec::new();
    for room in ["r1", "r2", "r3"] {
        members.push(member(&server, room, "m").await);
    }
    let start = |room: &str, who: &str| {
        let url = format!(
            "{}/api/webrtc/rooms/{room}/recording/start?{TRACKS}",
            server.base
        );
        let t = token(room, who, Role::Host, Duration::from_secs(60));
        async move { call(Method::POST, &url, Some(&t)).await }
    };
    start("r1", "boss").await.expect(StatusCode::CREATED);
    let per_user = start("r2", "boss").await;
    assert_eq!(
        per_user.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        per_user.body
    );
    start("r2", "other").await.expect(StatusCode::CREATED);
    let global = start("r3", "third").await;
    assert_eq!(
        global.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        global.body
    );
    assert!(global.body["message"].as_str().unwrap().contains("limit 2"));

    let off = TestServer::start_with(&[("CAPSTAN_RECORDING_ENABLED", "false")]).await;
    let _m = member(&off, "r", "m").await;
    let refused = Host::new(&off, "r").start(TRACKS).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.body["message"], "Recording is not enabled");
}

/// The free cores a refusal names: `...; <free> of <total> is free`.
fn free_in(message: &str) -> f64 {
    let (_, tail) = message.rsplit_once("; ").expect("free part");
    tail.split(' ').next().unwrap().parse().expect("free cores")
}

/// The message of a start refused with 503 `insufficient_capacity`.
fn refused_for_capacity(reply: &common::recording::Reply) -> &str {
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.body
    );
    assert_eq!(reply.body["error"], "insufficient_capacity");
    reply.body["message"].as_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cpu_budget_admits_what_fits_and_refuses_the_rest_with_503() {
    let server = TestServer::start_with(&[("CAPSTAN_RECORDING_CPU_BUDGET", "0.1")]).await;
    let _a = Participant::join(&server, "t", "a").await;
    let _m = member(&server, "c", "m").await;
    assert_eq!(
        server.metric("capstan_recording_cpu_budget_cores").await,
        0.1
    );
    assert_eq!(
        server
            .metric("capstan_recording_cpu_budget_used_cores")
            .await,
        0.0
    );

    // Passthrough is cheap: it fits.
    let tracks = Host::new(&server, "t");
    let id = id_of(&tracks.start(TRACKS).await.expect(StatusCode::CREATED));
    let used = server
        .metric("capstan_recording_cpu_budget_used_cores")
        .await;
    assert!(used > 0.0 && used < 0.05, "tracks recording costs {used}");

    // A 720p composite does not: 503 naming its cost and what is left.
    let refused = Host::new(&server, "c")
        .start("mode=composite&quality=medium&recording_format=webm")
        .await;
    let message = refused_for_capacity(&refused);
    assert!(
        message.starts_with("this recording needs 0.")
            && message.contains(" CPU (composite webm medium, 0 tracks); ")
            && message.ends_with(" of 0.10 is free"),
        "{message}"
    );
    let free = free_in(message);
    assert!((0.05..=0.1).contains(&free), "{message}");

    // The pipelines view (admin) shows the budget and each pipeline's cost.
    let admin = token("any", "root", Role::Admin, Duration::from_secs(60));
    let url = format!("{}/api/webrtc/pipelines", server.base);
    let view = call(Method::GET, &url, Some(&admin))
        .await
        .expect(StatusCode::OK);
    let budget = &view["budget"];
    assert_eq!(budget["total"], 0.1, "{view}");
    let (used, free) = (
        budget["used"].as_f64().unwrap(),
        budget["free"].as_f64().unwrap(),
    );
    assert!(used > 0.0 && (used + free - 0.1).abs() < 1e-9, "{view}");
    let p = &view["pipelines"][0];
    assert_eq!(p["recording_id"], id.as_str());
    assert_eq!(p["cost_cores"].as_f64(), Some(used), "{view}");

    // Once stopped, its cost is released.
    tracks.act(&id, "stop").await.expect(StatusCode::OK);
    wait_for("the budget to be free again", WAIT, || async {
        server
            .metric("capstan_recording_cpu_budget_used_cores")
            .await
            == 0.0
    })
    .await;

    // 3840x2160@60 needs more than the default budget (0.8 x the cores) of this machine.
    let ultra = capstan::recording::cost::cost(
        pipelines::Mode::Composite,
        pipelines::Format::Webm,
        pipelines::Quality::Ultra,
        0,
    );
    let cores = std::thread::available_parallelism().unwrap().get() as f64;
    if ultra.cores > 0.8 * cores {
        let default = TestServer::start().await;
        let _m = member(&default, "u", "m").await;
        let refused = Host::new(&default, "u")
            .start("mode=composite&quality=ultra&recording_format=webm")
            .await;
        assert!(
            refused_for_capacity(&refused).contains("(composite webm ultra, 0 tracks)"),
            "{}",
            refused.body
        );
    } else {
        eprintln!(
            "{cores} cores: an ultra composite ({:.2}) fits here",
            ultra.cores
        );
    }
    server.assert_clean_log();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_composite_that_grows_past_the_budget_keeps_recording() {
    // Room for an empty low composite, not for one with a publisher's two tracks.
    let empty = capstan::recording::cost::cost(
        pipelines::Mode::Composite,
        pipelines::Format::Mp4,
        pipelines::Quality::Low,
        0,
    );
    let budget = format!("{:.3}", empty.cores + 0.005);
    let server = TestServer::start_with(&[("CAPSTAN_RECORDING_CPU_BUDGET", &budget)]).await;
    let _m = member(&server, "g", "m").await;
    let host = Host::new(&server, "g");
    let id = id_of(
        &host
            .start("mode=composite&quality=low&recording_format=mp4")
            .await
            .expect(StatusCode::CREATED),
    );
    assert_eq!(
        server
            .metric("capstan_recording_budget_overcommit_cores")
            .await,
        0.0
    );
    let _a = Participant::join(&server, "g", "a").await;
    wait_for("the budget to be overcommitted", WAIT, || async {
        server
            .metric("capstan_recording_budget_overcommit_cores")
            .await
            > 0.0
    })
    .await;
    assert_eq!(host.status(&id).await["status"], "recording");
    let stopped = host.act(&id, "stop").await.expect(StatusCode::OK);
    assert_eq!(stopped["status"], "completed", "{stopped}");
    wait_for("the overcommit to clear", WAIT, || async {
        server
            .metric("capstan_recording_budget_overcommit_cores")
            .await
            == 0.0
    })
    .await;
    assert!(
        server.log().contains("now needs"),
        "overcommit warning logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_stop_reasons_land_in_metadata() {
    let server = TestServer::start_with(&[
        ("CAPSTAN_RECORDING_EMPTY_TIMEOUT", "2s"),
        ("CAPSTAN_RECORDING_NO_MEDIA_TIMEOUT", "3s"),
        ("CAPSTAN_RECORDING_MAX_DURATION", "4s"),
    ])
    .await;
    // Nobody publishes: no media.
    let _quiet = member(&server, "quiet", "q").await;
    let quiet = Host::new(&server, "quiet");
    let q = id_of(&quiet.start(TRACKS).await.expect(StatusCode::CREATED));
    // Publishing for longer than the maximum duration.
    let _talker = Participant::join(&server, "long", "t").await;
    let long = Host::new(&server, "long");
    let l = id_of(&long.start(TRACKS).await.expect(StatusCode::CREATED));
    // Everyone leaves.
    let leaver = member(&server, "gone", "g").await;
    let gone = Host::new(&server, "gone");
    let g = id_of(&gone.start(TRACKS).await.expect(StatusCode::CREATED));
    leaver.leave().await;

    // A tracks recording nobody published to has no file: it fails with "no media".
    for (host, id, reason, status) in [
        (&quiet, &q, "no_media", "failed"),
        (&long, &l, "max_duration", "completed"),
        (&gone, &g, "room_empty", "failed"),
    ] {
        let state = host.wait_status(id, status, WAIT).await;
        assert_eq!(state["metadata"]["stop_reason"], reason, "{state}");
        assert_eq!(state["metadata"]["auto_stopped"], true);
        if status == "failed" {
            assert!(
                state["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("no media")),
                "{state}"
            );
        }
    }
    // The rule fires on the recording timeline (4 s, looked at once a second); the duration is
    // the media the file holds, which ends up to a frame or a packet before the timeline.
    let long_state = long.status(&l).await;
    let d = long_state["duration_seconds"].as_f64().unwrap();
    assert!((3.8..6.0).contains(&d), "max duration 4 s, got {d}");
    server.assert_clean_log();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_cancel_delete_pipelines_metrics_and_compat_routes() {
    let server = TestServer::start().await;
    let _a = Participant::join(&server, "r", "a").await;
    let host = Host::new(&server, "r");
    let admin = token("any", "root", Role::Admin, Duration::from_secs(60));
    let api = |path: &str| format!("{}{path}", server.base);

    // A cancelled recording leaves no files.
    let c = id_of(&host.start(TRACKS).await.expect(StatusCode::CREATED));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let url = api(&format!("/api/webrtc/rooms/r/recording/{c}"));
    let cancelled = call(Method::DELETE, &url, Some(&host.token))
        .await
        .expect(StatusCode::OK);
    assert_eq!(cancelled["status"], "cancelled");

    // The pipelines view (admin only) shows the running recording and its inputs.
    let id = id_of(&host.start(TRACKS).await.expect(StatusCode::CREATED));
    let pipelines_url = api("/api/webrtc/pipelines");
    assert_eq!(
        call(Method::GET, &pipelines_url, Some(&host.token))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    wait_for("pipeline inputs", WAIT, || async {
        let view = call(Method::GET, &pipelines_url, Some(&admin))
            .await
            .expect(StatusCode::OK);
        let p = &view["pipelines"][0];
        p["recording_id"] == id.as_str()
            && p["inputs"].as_array().is_some_and(|i| {
                i.len() == 2 && i.iter().all(|i| i["packets_in"].as_u64() > Some(20))
            })
            && p["bytes_written"].as_u64() > Some(0)
    })
    .await;
    let stopped = host.act(&id, "stop").await.expect(StatusCode::OK);
    let file = stopped["local_path"].as_str().unwrap().to_string();
    assert!(std::path::Path::new(&file).exists());

    // Lists: room (members), own (host's), admin (all), filtered by status.
    let room_list = call(
        Method::GET,
        &api("/api/webrtc/rooms/r/recordings"),
        Some(&host.token),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(room_list.as_array().unwrap().len(), 2);
    let own = call(
        Method::GET,
        &api("/api/webrtc/recordings?status=completed"),
        Some(&host.token),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(own.as_array().unwrap().len(), 1);
    assert_eq!(own[0]["recording_id"], id.as_str());
    let stranger = token("r", "stranger", Role::Host, Duration::from_secs(60));
    let none = call(Method::GET, &api("/api/webrtc/recordings"), Some(&stranger))
        .await
        .expect(StatusCode::OK);
    assert!(none.as_array().unwrap().is_empty());
    let all = call(
        Method::GET,
        &api("/api/webrtc/recordings?status=cancelled"),
        Some(&admin),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(all.as_array().unwrap().len(), 1);
    let bad = call(
        Method::GET,
        &api("/api/webrtc/recordings?status=exploded"),
        Some(&admin),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // Range download.
    let ranged = reqwest::Client::new()
        .get(api(&format!("/api/webrtc/recordings/{id}/download")))
        .bearer_auth(&host.token)
        .header("Range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(ranged.bytes().await.unwrap().len(), 100);

    assert_eq!(
        server
            .metric("capstan_recordings{status=\"completed\"}")
            .await,
        1.0
    );
    assert_eq!(
        server
            .metric("capstan_recordings{status=\"cancelled\"}")
            .await,
        1.0
    );
    assert_eq!(server.metric("capstan_pipeline_errors_total").await, 0.0);

    // Delete a finished recording: file and entry go.
    let del = call(
        Method::DELETE,
        &api(&format!("/api/webrtc/recordings/{id}")),
        Some(&host.token),
    )
    .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert!(!std::path::Path::new(&file).exists());
    assert_eq!(
        call(
            Method::GET,
            &api(&format!("/api/webrtc/rooms/r/recording/{id}/status")),
            Some(&host.token)
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );

    // Compatibility routes answer in their envelope.
    let started = call(
        Method::POST,
        &api("/video-calls/r/recording/start?mode=tracks"),
        Some(&host.token),
    )
    .await
    .expect(StatusCode::CREATED);
    assert_eq!(started["success"], true);
    let rid = started["data"]["recordingId"].as_str().unwrap().to_string();
    assert_eq!(started["data"]["roomId"], "r");
    assert_eq!(started["data"]["status"], "recording");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stopped = call(
        Method::POST,
        &api("/video-calls/r/recording/stop"),
        Some(&host.token),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(stopped["data"]["status"], "completed");
    let got = call(
        Method::GET,
        &api(&format!("/video-calls/r/recording/{rid}")),
        Some(&host.token),
    )
    .await
    .expect(StatusCode::OK);
    let d = &got["data"];
    assert_eq!(d["id"], rid.as_str());
    assert!(d["duration"].as_u64().unwrap() >= 1500, "{d}");
    assert!(d["size"].as_u64().unwrap() > 0 && d["outputPath"].is_string());
    assert_eq!(d["participants"][0]["id"], "a");
    assert!(d["participants"][0]["videoChunks"].as_u64().unwrap() > 0);
    let missing = call(
        Method::GET,
        &api("/video-calls/r/recording/nope"),
        Some(&host.token),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.body["success"], false);
    assert_eq!(missing.body["message"], "Recording not found");
    let deleted = call(
        Method::DELETE,
        &api(&format!("/video-calls/r/recording/{rid}")),
        Some(&host.token),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(deleted["success"], true);
    server.assert_clean_log();
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// GET `url` with an optional bearer token and Range; status and body bytes.
async fn get(url: &str, token: Option<&str>, range: Option<&str>) -> (StatusCode, Bytes) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(range) = range {
        request = request.header("Range", range);
    }
    let response = request.send().await.expect("GET");
    (response.status(), response.bytes().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_download_urls_replace_tokens_in_urls() {
    let server = TestServer::start_with(&[("CAPSTAN_DOWNLOAD_URL_TTL", "3s")]).await;
    let _a = Participant::join(&server, "r", "a").await;
    let _b = Participant::join(&server, "r", "b").await;
    let host = Host::new(&server, "r");
    let guest = token("r", "g", Role::Participant, Duration::from_secs(600));
    let api = |path: &str| format!("{}{path}", server.base);
    let mint = |id: &str, query: &str, token: Option<String>| {
        let url = api(&format!("/api/webrtc/recordings/{id}/download-url{query}"));
        async move { call(Method::POST, &url, token.as_deref()).await }
    };

    // Two tracks recordings (one file per publisher); nothing to sign while one runs.
    let mut recordings = Vec::new();
    for _ in 0..2 {
        let id = id_of(&host.start(TRACKS).await.expect(StatusCode::CREATED));
        let early = mint(&id, "", Some(guest.clone())).await;
        assert_eq!(early.status, StatusCode::CONFLICT, "{}", early.body);
        assert_eq!(early.body["error"], "not_ready");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let done = host.act(&id, "stop").await.expect(StatusCode::OK);
        assert_eq!(done["files"].as_array().map(Vec::len), Some(2), "{done}");
        recordings.push(done);
    }
    let id = id_of(&recordings[0]);
    let other = id_of(&recordings[1]);
    let file = recordings[0]["files"][1]["local_path"].as_str().unwrap();
    let bytes = std::fs::read(file).expect("recorded file");

    // Minting takes a token that may download the file.
    let anonymous = mint(&id, "?file=1", None).await;
    assert_eq!(
        anonymous.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        anonymous.body
    );
    let stranger = token("elsewhere", "s", Role::Host, Duration::from_secs(60));
    let stranger = mint(&id, "?file=1", Some(stranger)).await;
    assert_eq!(stranger.status, StatusCode::FORBIDDEN, "{}", stranger.body);
    let no_file = mint(&id, "?file=2", Some(guest.clone())).await;
    assert_eq!(no_file.status, StatusCode::NOT_FOUND, "{}", no_file.body);
    let missing = mint("no-such-id", "", Some(guest.clone())).await;
    assert_eq!(missing.body["error"], "recording_not_found");

    let minted = mint(&id, "?file=1", Some(guest.clone()))
        .await
        .expect(StatusCode::OK);
    let url = minted["url"].as_str().unwrap().to_string();
    let prefix = format!("/api/webrtc/recordings/{id}/download?file=1&expires=");
    assert!(url.starts_with(&prefix) && url.contains("&sig="), "{url}");
    assert!(!url.contains("token"), "{url}");
    let expires: u64 = url[prefix.len()..]
        .split('&')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let expires_at = humantime::parse_rfc3339(minted["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        expires_at.duration_since(std::time::UNIX_EPOCH).unwrap(),
        Duration::from_secs(expires),
        "{minted}"
    );
    assert!(
        (1..=3).contains(&(expires - unix_now())),
        "3 s TTL: {minted}"
    );

    // The signed URL alone downloads exactly that file, Range included.
    let (status, body) = get(&api(&url), None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == bytes, "downloaded bytes differ from the file");
    let (status, body) = get(&api(&url), None, Some("bytes=0-99")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert!(body == bytes[..100], "ranged bytes differ from the file");

    // Bound to its recording, file and expiry, and to its signature.
    let sig_at = url.find("&sig=").unwrap() + "&sig=".len();
    let flipped = if url.ends_with('0') { '1' } else { '0' };
    let tampered = [
        format!("{}{flipped}", &url[..url.len() - 1]),
        url.replace("file=1", "file=0"),
        url.replace(&id, &other),
        url.replace(
            &format!("expires={expires}"),
            &format!("expires={}", expires + 3600),
        ),
        url[..sig_at - "&sig=".len()].to_string(),
        format!("{}{}", &url[..sig_at], "zz"),
    ];
    for bad in tampered {
        let refused = call(Method::GET, &api(&bad), None).await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{bad}: {}",
            refused.body
        );
        assert_eq!(refused.body["error"], "invalid_signature", "{bad}");
    }

    // Access tokens in URLs are refused, even valid ones and even beside a signature.
    for query in [
        format!("token={guest}"),
        format!("{}&token={guest}", &url[url.find('?').unwrap() + 1..]),
    ] {
        let refused = call(
            Method::GET,
            &api(&format!("/api/webrtc/recordings/{id}/download?{query}")),
            None,
        )
        .await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
        assert_eq!(refused.body["error"], "token_in_url");
        assert!(refused.body["message"]
            .as_str()
            .unwrap()
            .contains("signed URL"));
    }
    let bare = call(
        Method::GET,
        &api(&format!("/api/webrtc/recordings/{id}/download")),
        None,
    )
    .await;
    assert_eq!(bare.status, StatusCode::UNAUTHORIZED, "{}", bare.body);

    // The Authorization header still works on its own.
    let header_url = api(&format!("/api/webrtc/recordings/{id}/download?file=1"));
    let (status, body) = get(&header_url, Some(&guest), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == bytes, "downloaded bytes differ from the file");

    // Past its expiry the URL is refused, and says why.
    let wait = Duration::from_secs(expires).saturating_sub(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap(),
    );
    tokio::time::sleep(wait + Duration::from_millis(100)).await;
    let expired = call(Method::GET, &api(&url), None).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED, "{}", expired.body);
    assert_eq!(expired.body["error"], "url_expired");
    server.assert_clean_log();
}

/// A webhook receiver on loopback that records every request's headers and body.
#[expect(clippy::disallowed_methods, reason = "a test receiver, not the API")]
async fn webhook_receiver() -> (String, Arc<Mutex<Vec<(HeaderMap, Bytes)>>>) {
    let seen: Arc<Mutex<Vec<(HeaderMap, Bytes)>>> = Arc::default();
    let store = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let store = store.clone();
            async move {
                store.lock().unwrap().push((headers, body));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_and_retention_deletes_old_recordings() {
    let (url, seen) = webhook_receiver().await;
    let mut server = TestServer::start_with(&[
        ("CAPSTAN_WEBHOOK_URLS", &url),
        ("CAPSTAN_WEBHOOK_SECRET", "s3cret"),
    ])
    .await;
    let _a = Participant::join(&server, "r", "a").await;
    let host = Host::new(&server, "r");
    let id = id_of(&host.start(TRACKS).await.expect(StatusCode::CREATED));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let done = host.act(&id, "stop").await.expect(StatusCode::OK);
    wait_for("three webhook deliveries", WAIT, || async {
        seen.lock().unwrap().len() >= 3
    })
    .await;
    let events: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(headers, body)| {
            let signature = headers["x-capstan-signature"].to_str().unwrap();
            assert_eq!(signature, capstan::webhooks::signature("s3cret", body));
            let json: serde_json::Value = serde_json::from_slice(body).unwrap();
            assert_eq!(json["data"]["recording_id"], id.as_str());
            assert_eq!(headers["x-capstan-event"].to_str().unwrap(), json["event"]);
            json["event"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        events,
        [
            "recording_started",
            "recording_stopped",
            "recording_completed"
        ]
    );

    // Retention of 0 days: the next start-up deletes the finished recording and its file.
    let file = done["local_path"].as_str().unwrap().to_string();
    assert!(std::path::Path::new(&file).exists());
    server
        .restart_with(&[("CAPSTAN_RETENTION_DAYS", "0")])
        .await;
    wait_for("retention to delete the recording", WAIT, || async {
        let url = format!("{}/api/webrtc/rooms/r/recording/{id}/status", server.base);
        call(Method::GET, &url, Some(&host.token)).await.status == StatusCode::NOT_FOUND
    })
    .await;
    assert!(!std::path::Path::new(&file).exists());
}
