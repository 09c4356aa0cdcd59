//! Faults during recording: the server is SIGKILLed mid-recording and restarted (the
//! recording is salvaged and plays, nothing else in the catalog changes), and a recording's
//! disk fills up (that recording fails cleanly, the server and another room's recording go on).

mod common;

use common::check::{assert_decodes_cleanly, probe, stream_end};
use common::peer::{MediaOptions, Participant};
use common::recording::{call, Host};
use common::{wait_for, TestServer};
use reqwest::{Method, StatusCode};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn id_of(v: &serde_json::Value) -> String {
    v["recording_id"]
        .as_str()
        .expect("recording_id")
        .to_string()
}

/// Every recording in the catalog but `except` (admin list).
async fn other_recordings(server: &TestServer, except: &str) -> Vec<serde_json::Value> {
    let admin = server.token("any", "root", capstan::auth::Role::Admin);
    let url = format!("{}/api/webrtc/recordings", server.base);
    let all = call(Method::GET, &url, Some(&admin))
        .await
        .expect(StatusCode::OK);
    let all = all.as_array().expect("a list").clone();
    all.into_iter()
        .filter(|r| r["recording_id"] != except)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_recording_is_salvaged_on_restart() {
    let mut server = TestServer::start().await;
    // A finished recording that must survive untouched.
    let _o = Participant::join_with(&server, "old", "o", false, MediaOptions::default()).await;
    let old = Host::new(&server, "old");
    let old_id = id_of(&old.start("mode=tracks").await.expect(StatusCode::CREATED));
    old.act(&old_id, "stop").await.expect(StatusCode::OK);

    let _a = Participant::join(&server, "r", "a").await;
    let _b = Participant::join(&server, "r", "b").await;
    let host = Host::new(&server, "r");
    let query = "recording_format=webm&quality=low&mode=composite";
    let id = id_of(&host.start(query).await.expect(StatusCode::CREATED));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let before = other_recordings(&server, &id).await;
    server.kill_hard();
    server.restart().await;

    let state = host.status(&id).await;
    assert_eq!(state["status"], "completed", "{state}");
    assert_eq!(state["metadata"]["interrupted"], true);
    // The media held at the last checkpoint: checkpoints come every 5 s of wall time and the
    // media lags it by the jitter buffer and mixer latency (2.5 s), so a kill just before the
    // 10 s checkpoint leaves the one from 5 s (seen: 4.96 s).
    let duration = state["duration_seconds"].as_f64().unwrap();
    assert!(
        (2.0..=11.0).contains(&duration),
        "checkpointed duration {duration}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = host.download(&id, 0, dir.path()).await;
    let p = probe(&file);
    p.assert_codecs(&["video:vp8", "audio:opus"]);
    // The file sink is unbuffered, so only what sat in the pipeline's queues is lost.
    assert!(
        (8.0..=11.0).contains(&p.duration),
        "salvaged {} s of ~10",
        p.duration
    );
    let (video, audio) = (stream_end(&file, "video"), stream_end(&file, "audio"));
    assert!(
        (video - audio).abs() < 0.15,
        "video {video} s, audio {audio} s"
    );
    assert_decodes_cleanly(&file);

    let after = other_recordings(&server, &id).await;
    assert_eq!(before, after, "the rest of the catalog is unchanged");
    assert!(!server.log().contains("panicked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salvaged_tracks_files_keep_their_participant_and_start_offset() {
    let mut server = TestServer::start().await;
    let _a = Participant::join(&server, "t", "a").await;
    let host = Host::new(&server, "t");
    let query = "recording_format=webm&mode=tracks";
    let id = id_of(&host.start(query).await.expect(StatusCode::CREATED));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _b = Participant::join(&server, "t", "b").await;
    // Each file's origin is checkpointed within a second of the file being opened.
    wait_for("both files noted in the catalog", WAIT, || async {
        let state = host.status(&id).await;
        state["metadata"]["files_begun"]
            .as_array()
            .is_some_and(|f| f.len() == 2)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.kill_hard();
    server.restart().await;

    let state = host.status(&id).await;
    assert_eq!(state["status"], "completed", "{state}");
    assert!(state["metadata"].get("files_begun").is_none(), "{state}");
    let files = state["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{state}");
    let dir = tempfile::tempdir().unwrap();
    for (i, f) in files.iter().enumerate() {
        let who = f["participant"].as_str().expect("participant restored");
        let offset = f["start_offset_seconds"].as_f64().unwrap();
        let expected = if who == "b" { 2.5..=8.0 } else { 0.0..=1.0 };
        assert!(expected.contains(&offset), "{who}: starts at {offset} s");
        let file = host.download(&id, i, dir.path()).await;
        probe(&file).assert_codecs(&["video:vp8", "audio:opus"]);
        assert_decodes_cleanly(&file);
    }
    let mut who: Vec<_> = files.iter().map(|f| f["participant"].clone()).collect();
    who.sort_by_key(|v| v.to_string());
    assert_eq!(who, ["a", "b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_with_nothing_to_salvage_fails_the_recording_and_keeps_what_is_unreadable() {
    let mut server = TestServer::start().await;
    // Tracks recordings of rooms whose participant publishes nothing: no file is ever opened.
    let _q = Participant::join_with(&server, "quiet", "q", false, MediaOptions::default()).await;
    let _t = Participant::join_with(&server, "torn", "t", false, MediaOptions::default()).await;
    let quiet = Host::new(&server, "quiet");
    let torn = Host::new(&server, "torn");
    let quiet_id = id_of(&quiet.start("mode=tracks").await.expect(StatusCode::CREATED));
    let torn_id = id_of(&torn.start("mode=tracks").await.expect(StatusCode::CREATED));
    server.kill_hard();
    // A torn file as a crash mid-write can leave it: a WebM header and nothing playable.
    let part = server
        .data_dir
        .path()
        .join(format!("recordings/torn/{torn_id}.webm.part"));
    std::fs::write(&part, b"\x1a\x45\xdf\xa3 torn").unwrap();
    server.restart().await;

    let state = quiet.status(&quiet_id).await;
    assert_eq!(state["status"], "failed", "{state}");
    assert_eq!(state["metadata"]["interrupted"], true);
    let error = state["error"].as_str().unwrap();
    assert!(error.contains("no files were written"), "{error}");

    let state = torn.status(&torn_id).await;
    assert_eq!(state["status"], "failed", "{state}");
    let error = state["error"].as_str().unwrap();
    assert!(error.contains(&format!("{torn_id}.webm.part")), "{error}");
    assert_eq!(
        state["metadata"]["partial_files"][0].as_str(),
        Some(part.to_str().unwrap()),
        "{state}"
    );
    assert!(part.exists(), "the unreadable file is kept for ops");
    let url = format!("{}/api/webrtc/recordings/{torn_id}", server.base);
    let del = call(Method::DELETE, &url, Some(&torn.token)).await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert!(!part.exists(), "deleting the recording removes it");
    assert!(!server.log().contains("panicked"));
}

/// A tmpfs mounted for the test; unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "the full-disk test mounts a tmpfs and needs root (CAP_SYS_ADMIN): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_that_recording_only() {
    let spool = tempfile::tempdir().unwrap();
    let spool_dir = spool.path().display().to_string();
    // Room "full" records onto a 64 KiB filesystem; room "fine" onto the normal disk. A low
    // composite writes about 30 KB/s, less when the CPU is busy: a 256 KiB disk once took
    // over 30 s to fill next to other tests.
    let _disk = Tmpfs::mount(&spool.path().join("full"), "64k");
    let server = TestServer::start_with(&[("RECORDING_OUTPUT_DIR", &spool_dir)]).await;
    let _a = Participant::join(&server, "full", "a").await;
    let _b = Participant::join(&server, "fine", "b").await;
    let full = Host::new(&server, "full");
    let fine = Host::new(&server, "fine");
    let full_id = id_of(
        &full
            .start("mode=composite&quality=low")
            .await
            .expect(StatusCode::CREATED),
    );
    let fine_id = id_of(
        &fine
            .start("mode=composite&quality=low")
            .await
            .expect(StatusCode::CREATED),
    );

    let failed = full.wait_status(&full_id, "failed", 2 * WAIT).await;
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.to_lowercase().contains("space"),
        "error names the cause: {error}"
    );
    assert_eq!(server.metric("capstan_pipeline_errors_total").await, 1.0);

    // The server and the other room's recording carry on.
    let health = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    assert!(health.status().is_success());
    let before = fine.status(&fine_id).await["duration_seconds"]
        .as_f64()
        .unwrap();
    // The media written trails the timeline by up to the mixers' latency (1.5 s) when the
    // machine is busy, so 4 s later at least 2 s more are written.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let running = fine.status(&fine_id).await;
    assert_eq!(running["status"], "recording");
    assert!(
        running["duration_seconds"].as_f64().unwrap() >= before + 2.0,
        "{running}"
    );
    let done = fine.act(&fine_id, "stop").await.expect(StatusCode::OK);
    assert_eq!(done["status"], "completed", "{done}");
    let dir = tempfile::tempdir().unwrap();
    let file = fine.download(&fine_id, 0, dir.path()).await;
    probe(&file).assert_codecs(&["video:vp8", "audio:opus"]);
    assert_decodes_cleanly(&file);

    // The partial file is kept for ops and listed; deleting the recording removes it.
    let partial: Vec<String> = failed["metadata"]["partial_files"]
        .as_array()
        .expect("partial_files listed")
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    assert!(!partial.is_empty(), "{failed}");
    assert!(partial.iter().all(|p| Path::new(p).exists()), "{partial:?}");
    let url = format!("{}/api/webrtc/recordings/{full_id}", server.base);
    let del = call(Method::DELETE, &url, Some(&full.token)).await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert!(
        partial.iter().all(|p| !Path::new(p).exists()),
        "{partial:?}"
    );

    // A new recording in the full room is refused cleanly or fails cleanly, never hangs.
    wait_for("the failed room can be recorded again", WAIT, || async {
        full.start("mode=tracks").await.status != StatusCode::CONFLICT
    })
    .await;
    assert!(!server.log().contains("panicked"));
}

/// Every `.part` file left in `room`'s spool.
fn part_files(server: &TestServer, room: &str) -> Vec<PathBuf> {
    let dir = server.data_dir.path().join("recordings").join(room);
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "part"))
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts the recording is completed with one playable composite of about `secs` and that
/// no `.part` file is left behind.
async fn assert_completed_and_playable(server: &TestServer, host: &Host, id: &str, secs: f64) {
    let state = host.status(id).await;
    assert_eq!(state["status"], "completed", "{state}");
    assert_eq!(state["files"].as_array().map(Vec::len), Some(1), "{state}");
    let dir = tempfile::tempdir().unwrap();
    let file = host.download(id, 0, dir.path()).await;
    let p = probe(&file);
    p.assert_codecs(&["video:vp8", "audio:opus"]);
    // What a kill loses is what the pipeline had not yet muxed: little when it keeps up with
    // real time, more when the machine is loaded (the exact-amount check is the SIGKILL test
    // above, which runs alone).
    assert!(
        (secs / 3.0..=secs + 1.0).contains(&p.duration),
        "{} s of ~{secs}: {state}",
        p.duration
    );
    assert_decodes_cleanly(&file);
    assert_eq!(part_files(server, &host.room), Vec::<PathBuf>::new());
}

/// Waits until the recording has taken video from its participant.
async fn wait_for_video(host: &Host, id: &str) {
    wait_for("the recording to receive video", WAIT, || async {
        host.status(id).await["participants"][0]["video_packets"]
            .as_u64()
            .is_some_and(|n| n > 0)
    })
    .await;
}

/// A SIGKILL while a stop is under way: whether it lands before, during or after the
/// pipeline finishes its files, the restarted server shows a completed, playable recording.
/// (`processing` used to be committed before the files were final, so a kill in between was
/// recovered as a completed recording without files, its `.part` orphaned.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_stopping_is_salvaged() {
    let mut server = TestServer::start().await;
    for (round, delay_ms) in [0u64, 3, 8, 15].into_iter().enumerate() {
        let room = format!("stop{round}");
        let _a = Participant::join(&server, &room, "a").await;
        let host = Host::new(&server, &room);
        let query = "recording_format=webm&quality=low&mode=composite";
        let id = id_of(&host.start(query).await.expect(StatusCode::CREATED));
        wait_for_video(&host, &id).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let url = format!(
            "{}/api/webrtc/rooms/{room}/recording/{id}/stop",
            server.base
        );
        let token = host.token.clone();
        let stop = tokio::spawn(async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .send()
                .await
        });
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        server.kill_hard();
        let _ = stop.await; // answered or cut off: either is fine
        server.restart().await;
        assert_completed_and_playable(&server, &host, &id, 3.0).await;
    }
    assert!(!server.log().contains("panicked"));
}

/// A catalog that says `processing` while the spool still holds the recording's `.part` file
/// (what a crash during a stop left before stops committed `processing` last) is salvaged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processing_recording_with_part_files_is_salvaged() {
    let mut server = TestServer::start().await;
    let _a = Participant::join(&server, "r", "a").await;
    let host = Host::new(&server, "r");
    let query = "recording_format=webm&quality=low&mode=composite";
    let id = id_of(&host.start(query).await.expect(StatusCode::CREATED));
    wait_for_video(&host, &id).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    server.kill_hard();
    assert_eq!(part_files(&server, "r").len(), 1);
    let db = rusqlite::Connection::open(server.data_dir.path().join("catalog.sqlite3")).unwrap();
    let changed = db
        .execute(
            "UPDATE recordings SET status = 'processing', \
             doc = json_set(doc, '$.status', 'processing') WHERE id = ?1",
            [&id],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);
    server.restart().await;
    assert_completed_and_playable(&server, &host, &id, 4.0).await;
    assert_eq!(host.status(&id).await["metadata"]["interrupted"], true);
}
