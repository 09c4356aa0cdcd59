//! End to end: webrtc-rs participants publish GStreamer VP8/Opus into a real server, the host
//! records the room through the API (with a pause and a late joiner), downloads the result and
//! checks it with ffprobe and a clean ffmpeg decode.

mod common;

use common::check::{assert_decodes_cleanly, decode, probe};
use common::peer::{MediaOptions, Participant};
use common::recording::Host;
use common::{wait_for, TestServer};
use reqwest::StatusCode;
use serde_json::Value;
use signaling::protocol::MediaKind;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

async fn receiving(viewer: &Participant, publisher: &str) {
    wait_for(
        &format!("{} to decode {publisher}", viewer.identity),
        WAIT,
        || async { viewer.seen.frames_from(publisher, MediaKind::Video) > 10 },
    )
    .await;
}

/// Records 5 s, pauses 5 s, resumes, lets `c` join, records 10 s more, stops.
/// Returns the final state, the participants (still connected) and the server.
async fn record_with_pause_and_late_joiner(query: &str) -> (Value, TestServer, Vec<Participant>) {
    let server = TestServer::start().await;
    let a = Participant::join(&server, "r", "a").await;
    let b = Participant::join(&server, "r", "b").await;
    receiving(&a, "b").await;
    receiving(&b, "a").await;
    let host = Host::new(&server, "r");
    let started = host.start(query).await.expect(StatusCode::CREATED);
    assert_eq!(started["status"], "recording", "{started}");
    let id = started["recording_id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let paused = host.act(&id, "pause").await.expect(StatusCode::OK);
    assert_eq!(paused["status"], "paused");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let resumed = host.act(&id, "resume").await.expect(StatusCode::OK);
    assert_eq!(resumed["status"], "recording");
    let c = Participant::join(&server, "r", "c").await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let stopped = host.act(&id, "stop").await.expect(StatusCode::OK);
    assert_eq!(stopped["status"], "completed", "{stopped}");
    for p in [&a, &b, &c] {
        wait_for("recording events", WAIT, || async {
            p.seen.with(|s| {
                s.recording_events.last().map(String::as_str) == Some("recording_completed")
            })
        })
        .await;
    }
    let events = a.seen.with(|s| s.recording_events.clone());
    assert_eq!(
        events,
        [
            "recording_started",
            "recording_paused",
            "recording_resumed",
            "recording_stopped",
            "recording_completed"
        ]
    );
    let state = host.status(&id).await;
    assert_eq!(state, stopped, "status matches the stop answer");
    (state, server, vec![a, b, c])
}

fn assert_participants(state: &Value, who: &[&str]) {
    let participants = state["participants"].as_array().unwrap();
    for name in who {
        let p = participants
            .iter()
            .find(|p| p["identity"] == *name)
            .unwrap_or_else(|| panic!("{name} missing from {state}"));
        assert!(p["video_packets"].as_u64().unwrap() > 50, "{name}: {p}");
        assert!(p["audio_packets"].as_u64().unwrap() > 50, "{name}: {p}");
    }
}

async fn check_composite(query: &str, codecs: &[&str], size: (u64, u64)) {
    let (state, server, _peers) = record_with_pause_and_late_joiner(query).await;
    assert_participants(&state, &["a", "b", "c"]);
    let duration = state["duration_seconds"].as_f64().unwrap();
    assert!(
        (duration - 15.0).abs() <= 1.0,
        "duration_seconds {duration}"
    );
    assert_eq!(state["files"].as_array().unwrap().len(), 1, "{state}");
    let dir = tempfile::tempdir().unwrap();
    let host = Host::new(&server, "r");
    let id = state["recording_id"].as_str().unwrap();
    let file = host.download(id, 0, dir.path()).await;
    assert_eq!(
        std::fs::metadata(&file).unwrap().len(),
        state["file_size_bytes"].as_u64().unwrap()
    );
    let p = probe(&file);
    p.assert_codecs(codecs);
    assert!(
        (p.duration - 15.0).abs() <= 1.0,
        "ffprobe duration {}",
        p.duration
    );
    let video = p.stream("video").unwrap();
    assert_eq!((video.width, video.height), size);
    assert_decodes_cleanly(&file);
    server.assert_clean_log();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_webm_with_pause_and_late_joiner() {
    check_composite(
        "recording_format=webm&quality=medium&mode=composite&layout=grid",
        &["video:vp8", "audio:opus"],
        (1280, 720),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_mp4_with_pause_and_late_joiner() {
    check_composite(
        "recording_format=mp4&quality=low&mode=composite&layout=speaker",
        &["video:h264", "audio:aac"],
        (854, 480),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracks_mode_gives_one_file_per_participant() {
    let (state, server, _peers) =
        record_with_pause_and_late_joiner("recording_format=webm&mode=tracks").await;
    assert_participants(&state, &["a", "b", "c"]);
    let files = state["files"].as_array().unwrap();
    assert_eq!(files.len(), 3, "{state}");
    let dir = tempfile::tempdir().unwrap();
    let host = Host::new(&server, "r");
    let id = state["recording_id"].as_str().unwrap();
    for (i, f) in files.iter().enumerate() {
        let who = f["participant"].as_str().unwrap();
        let file = host.download(id, i, dir.path()).await;
        let p = probe(&file);
        p.assert_codecs(&["video:vp8", "audio:opus"]);
        let expected = if who == "c" { 10.0 } else { 15.0 };
        assert!(
            (p.duration - expected).abs() <= 1.0,
            "{who}: duration {} expected {expected}",
            p.duration
        );
        // c joined after the resume, 5 s into the (pause-free) timeline.
        let offset = f["start_offset_seconds"].as_f64().unwrap();
        let expected = if who == "c" { 4.0..=7.0 } else { 0.0..=1.0 };
        assert!(expected.contains(&offset), "{who}: starts at {offset} s");
        let video = p.stream("video").unwrap();
        assert_eq!((video.width, video.height), (320, 240), "{who}");
        assert_decodes_cleanly(&file);
    }
    server.assert_clean_log();
}

/// Mean luma of the left and right tile of a two-person grid: cells of rows 1 and 2 (of the
/// 4x4 grid of cells) in columns 0-1 and 2-3.
fn tile_lumas(cells: &[f64; 16]) -> [f64; 2] {
    let tile = |c: usize| (cells[4 + c] + cells[5 + c] + cells[8 + c] + cells[9 + c]) / 4.0;
    [tile(0), tile(2)]
}

/// A stop finishes the pipeline with its inputs attached: the last 0.5 s of a grid composite
/// still shows both participants' tiles as they were mid-recording (detaching first blanked
/// each tile and re-flowed the grid in the file's last frames).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_composite_shows_every_tile_to_its_last_frame() {
    let server = TestServer::start().await;
    let bars = MediaOptions {
        video_pattern: Some("smpte"),
        ..Default::default()
    };
    let a = Participant::join_with(&server, "r", "a", true, bars.clone()).await;
    let b = Participant::join_with(&server, "r", "b", true, bars).await;
    receiving(&a, "b").await;
    receiving(&b, "a").await;
    let host = Host::new(&server, "r");
    let query = "recording_format=webm&quality=low&mode=composite&layout=grid";
    let started = host.start(query).await.expect(StatusCode::CREATED);
    let id = started["recording_id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let stopped = host.act(&id, "stop").await.expect(StatusCode::OK);
    assert_eq!(stopped["status"], "completed", "{stopped}");
    let dir = tempfile::tempdir().unwrap();
    let file = host.download(&id, 0, dir.path()).await;
    let d = decode(&file);
    let mid: Vec<[f64; 2]> = d
        .cells
        .iter()
        .filter(|(t, _)| (2.0..3.0).contains(t))
        .map(|(_, c)| tile_lumas(c))
        .collect();
    assert!(!mid.is_empty(), "no frames between 2 and 3 s");
    let end = d.cells.last().expect("frames").0;
    let last: Vec<(f64, [f64; 2])> = d
        .cells
        .iter()
        .filter(|(t, _)| *t >= end - 0.5)
        .map(|(t, c)| (*t, tile_lumas(c)))
        .collect();
    assert!(last.len() >= 5, "{} frames in the last 0.5 s", last.len());
    for tile in 0..2 {
        let typical = mid.iter().map(|l| l[tile]).sum::<f64>() / mid.len() as f64;
        assert!(
            typical > 60.0,
            "tile {tile} is dark mid-recording: {typical:.0}"
        );
        for (t, lumas) in &last {
            assert!(
                (lumas[tile] - typical).abs() < 20.0,
                "tile {tile} at {t:.2} s of {end:.2} s: luma {:.0}, mid-recording {typical:.0}",
                lumas[tile]
            );
        }
    }
    server.assert_clean_log();
}
