//! Inputs joining, leaving, stalling, changing resolution; pause/resume; zero inputs; layouts.

mod common;

use std::time::Duration;

use common::*;
use pipelines::*;

async fn sleep_s(secs: f64) {
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
}

/// p0 sends 6 s; p1 joins at 2 s and leaves at 4 s.
async fn join_and_leave(mode: Mode, format: Format) -> (Outcome, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let p0 = Participant::new(0, 6.0, true);
    let p1 = Participant::new(1, 4.0, true);
    let (rec, _events) = start(spec(dir.path(), mode, format, false)).await;
    let mut feeders = p0.join(&rec).await;
    sleep_s(2.0).await;
    feeders.extend(p1.join(&rec).await);
    sleep_s(2.0).await;
    rec.remove_input("p1-v").await.unwrap();
    rec.remove_input("p1-a").await.unwrap();
    let h = rec.health();
    assert_eq!(h.inputs.len(), 2, "{h:?}");
    assert!(matches!(
        rec.remove_input("p1-v").await,
        Err(RecorderError::UnknownInput(_))
    ));
    wait(feeders).await;
    let outcome = stop(&rec).await;
    for f in &outcome.files {
        assert_decodes_cleanly(&f.path);
    }
    let p1 = outcome.inputs.iter().find(|i| i.id == "p1-v").unwrap();
    assert!(p1.packets > 0 && p1.dropped_inactive > 0, "{p1:?}");
    (outcome, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_join_and_leave_composite_webm() {
    let (outcome, _dir) = join_and_leave(Mode::Composite, Format::Webm).await;
    let path = file_of(&outcome, None);
    probe(path).assert_duration(6.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_join_and_leave_tracks_mkv() {
    let (outcome, _dir) = join_and_leave(Mode::Tracks, Format::Mkv).await;
    probe(file_of(&outcome, Some("p0"))).assert_duration(6.0);
    let late = outcome
        .files
        .iter()
        .find(|f| f.participant.as_deref() == Some("p1"))
        .unwrap();
    let offset = late.start_offset.as_secs_f64();
    assert!((offset - 2.0).abs() < 0.3, "{late:?}");
    let p = probe(&late.path);
    p.assert_codecs(&["video:vp8", "audio:opus"]);
    p.assert_duration(2.0);
}

/// 8 s of media, paused from 2.5 s to 5.5 s: the file holds 5 s.
async fn pause_resume(mode: Mode, format: Format) {
    let dir = tempfile::tempdir().unwrap();
    let p0 = Participant::new(0, 8.0, true);
    let (rec, mut events) = start(spec(dir.path(), mode, format, false)).await;
    let feeders = p0.join(&rec).await;
    sleep_s(2.5).await;
    rec.pause().await.unwrap();
    assert_eq!(rec.health().state, RecorderState::Paused);
    assert!(matches!(
        rec.pause().await,
        Err(RecorderError::State(RecorderState::Paused))
    ));
    sleep_s(3.0).await;
    rec.resume().await.unwrap();
    wait(feeders).await;
    let outcome = stop(&rec).await;
    assert!(
        (outcome.duration.as_secs_f64() - 5.0).abs() < 0.3,
        "{outcome:?}"
    );
    let path = &outcome.files[0].path;
    assert_decodes_cleanly(path);
    probe(path).assert_duration(5.0);
    let mut keyframe_events = 0;
    while let Some(e) = events.recv().await {
        keyframe_events += usize::from(matches!(e, RecorderEvent::KeyframeNeeded { .. }));
    }
    assert!(
        keyframe_events >= 2,
        "keyframe asked at start and on resume"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_tracks_webm() {
    pause_resume(Mode::Tracks, Format::Webm).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_composite_mp4() {
    pause_resume(Mode::Composite, Format::Mp4).await;
}

/// 3 s at 640x480 then 3 s at 320x240 on one RTP stream.
async fn resolution_change(mode: Mode) -> (Outcome, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let video = vp8(640, 480, 3.0, "smpte")
        .with_ssrc(5)
        .then(vp8(320, 240, 3.0, "ball"));
    let audio = opus(6.0, 440).with_ssrc(6);
    let (rec, _events) = start(spec(dir.path(), mode, Format::Webm, false)).await;
    let (v, a) = add_av(&rec, "p0", "").await;
    wait(vec![feed(v, video), feed(a, audio)]).await;
    let outcome = stop(&rec).await;
    let path = &outcome.files[0].path;
    assert_decodes_cleanly(path);
    probe(path).assert_duration(6.0);
    let d = decode(path);
    let last = d.frames.last().unwrap().0;
    assert!(last > 5.5, "frames decode past the change: last at {last}");
    (outcome, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolution_change_tracks_webm() {
    let (outcome, _dir) = resolution_change(Mode::Tracks).await;
    let v = probe(&outcome.files[0].path);
    assert_eq!(
        v.stream("video").unwrap().width,
        640,
        "header keeps the first size"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolution_change_composite_webm() {
    let (outcome, _dir) = resolution_change(Mode::Composite).await;
    let v = probe(&outcome.files[0].path);
    assert_eq!(v.stream("video").unwrap().width, 854);
}

/// Video stalls from 2 s to 7 s (audio continues): the tile goes black, the mix keeps time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_input_blanks_its_tile_composite_webm() {
    let dir = tempfile::tempdir().unwrap();
    let video = vp8(320, 240, 4.0, "white")
        .with_ssrc(7)
        .stalled(2.0, Duration::from_secs(5));
    let audio = opus(9.0, 440).with_ssrc(8);
    let (rec, _events) = start(spec(dir.path(), Mode::Composite, Format::Webm, false)).await;
    let (v, a) = add_av(&rec, "p0", "").await;
    let feeders = vec![feed(v, video), feed(a, audio)];
    sleep_s(5.0).await;
    let stale = rec
        .health()
        .inputs
        .iter()
        .find(|i| i.id == "v")
        .unwrap()
        .last_packet_age;
    assert!(stale.unwrap() > Duration::from_secs(2), "{stale:?}");
    wait(feeders).await;
    let outcome = stop(&rec).await;
    let path = &outcome.files[0].path;
    assert_decodes_cleanly(path);
    probe(path).assert_duration(9.0);
    let d = decode(path);
    let (before, during, after) = (d.luma_at(1.5), d.luma_at(5.0), d.luma_at(8.5));
    println!("tile luma before/during/after stall: {before:.0} {during:.0} {after:.0}");
    assert!(
        before > 100.0 && after > 100.0,
        "white tile shown: {before} {after}"
    );
    assert!(during < 40.0, "stalled tile blanked: {during}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_input_tracks_webm() {
    let dir = tempfile::tempdir().unwrap();
    let video = vp8(320, 240, 4.0, "smpte")
        .with_ssrc(7)
        .stalled(2.0, Duration::from_secs(5));
    let audio = opus(9.0, 440).with_ssrc(8);
    let (rec, _events) = start(spec(dir.path(), Mode::Tracks, Format::Webm, false)).await;
    let (v, a) = add_av(&rec, "p0", "").await;
    wait(vec![feed(v, video), feed(a, audio)]).await;
    let outcome = stop(&rec).await;
    assert_decodes_cleanly(&outcome.files[0].path);
    probe(&outcome.files[0].path).assert_duration(9.0);
}

/// No inputs at all: 3 s of black and silence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_inputs_composite_keeps_time() {
    let dir = tempfile::tempdir().unwrap();
    let (rec, _events) = start(spec(dir.path(), Mode::Composite, Format::Webm, false)).await;
    sleep_s(3.0).await;
    let outcome = stop(&rec).await;
    let p = probe(&outcome.files[0].path);
    p.assert_codecs(&["video:vp8", "audio:opus"]);
    p.assert_duration(3.0);
    assert_decodes_cleanly(&outcome.files[0].path);
}

/// Video that starts mid-GOP: dropped until a keyframe, which is requested.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_starts_on_a_keyframe_and_asks_for_one() {
    let dir = tempfile::tempdir().unwrap();
    let video = vp8(320, 240, 4.0, "smpte").with_ssrc(9).without(0.0, 0.4);
    let (rec, mut events) = start(spec(dir.path(), Mode::Tracks, Format::Webm, true)).await;
    assert!(matches!(
        rec.add_input(track_spec("v", "p0", TrackKind::Video)).await,
        Err(RecorderError::NotRecorded(_))
    ));
    drop(rec);
    drop(events.recv().await);
    let (rec, events) = start(spec(dir.path(), Mode::Tracks, Format::Webm, false)).await;
    let events = drain_events(events);
    let v = rec
        .add_input(track_spec("v", "p0", TrackKind::Video))
        .await
        .unwrap();
    sleep_s(0.6).await;
    wait(vec![feed(v, video)]).await;
    let outcome = stop(&rec).await;
    let asked = events
        .await
        .unwrap()
        .iter()
        .filter(|e| matches!(e, RecorderEvent::KeyframeNeeded { input } if input == "v"))
        .count();
    assert!(asked >= 2, "on join and from the depayloader: {asked}");
    assert!(outcome.inputs[0].keyframe_requests >= 2);
    let path = &outcome.files[0].path;
    assert_decodes_cleanly(path);
    let p = probe(path);
    p.assert_codecs(&["video:vp8"]);
    assert!(p.duration > 2.5 && p.duration < 4.3, "{p:?}");
}

/// Speaker layout: the active speaker's tile is large on top, the others in a strip below.
/// p0 sends white, p1 and p2 black; the large tile follows the speaker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speaker_layout_follows_the_active_speaker() {
    let dir = tempfile::tempdir().unwrap();
    let req = RecordingRequest {
        mode: Mode::Composite,
        format: Format::Webm,
        quality: Quality::Low,
        layout: Layout::Speaker,
        audio_only: false,
        output_dir: dir.path().into(),
        base_name: "rec".into(),
    };
    let videos = ["white", "black", "black"].map(|p| vp8(320, 240, 4.5, p));
    let (rec, _events) = start(RecordingSpec::new(req).unwrap()).await;
    let mut feeders = Vec::new();
    for (i, video) in videos.into_iter().enumerate() {
        let id = format!("p{i}");
        let input = rec
            .add_input(track_spec(&id, &id, TrackKind::Video))
            .await
            .unwrap();
        feeders.push(feed(input, video.with_ssrc(50 + i as u32)));
    }
    sleep_s(1.5).await;
    rec.set_active_speaker(Some("p2")).await.unwrap();
    sleep_s(1.5).await;
    rec.set_active_speaker(None).await.unwrap();
    wait(feeders).await;
    let outcome = stop(&rec).await;
    let path = &outcome.files[0].path;
    assert_decodes_cleanly(path);
    probe(path).assert_duration(4.5);
    let d = decode(path);
    let main = [1.0, 2.5, 4.0].map(|t| d.cell_at(t, 1, 1));
    let strip = [1.0, 2.5, 4.0].map(|t| d.cell_at(t, 3, 1));
    println!("main-area luma {main:?}, strip luma {strip:?}");
    assert!(main[0] > 200.0 && main[2] > 200.0, "p0 large: {main:?}");
    assert!(main[1] < 40.0, "p2 (black) large: {main:?}");
    assert!(
        strip[1] > strip[0] + 40.0,
        "p0 moved to the strip: {strip:?}"
    );
}

/// Cancel deletes everything; later calls report the recorder finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_deletes_files() {
    let dir = tempfile::tempdir().unwrap();
    let p0 = Participant::new(0, 2.0, true);
    let (rec, events) = start(spec(dir.path(), Mode::Tracks, Format::Webm, false)).await;
    let events = drain_events(events);
    let feeders = p0.join(&rec).await;
    wait(feeders).await;
    let h = rec.health();
    assert_eq!(h.state, RecorderState::Recording);
    assert!(h.bytes_written > 0 && h.files.len() == 1, "{h:?}");
    rec.cancel().await.unwrap();
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "files removed"
    );
    assert!(matches!(
        events.await.unwrap().last(),
        Some(RecorderEvent::Finished { outcome: None })
    ));
    assert!(matches!(
        rec.stop(stop_timeout()).await,
        Err(RecorderError::Finished)
    ));
}

/// Tracks mode: a track that joins after its participant's file started writing goes to a
/// new file (`<base>_<participant>_1`), since muxers take no streams after their header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn track_after_file_started_opens_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let audio = opus(4.0, 440).with_ssrc(31);
    let video = vp8(320, 240, 2.0, "smpte").with_ssrc(32);
    let (rec, _events) = start(spec(dir.path(), Mode::Tracks, Format::Webm, false)).await;
    let a = rec
        .add_input(track_spec("a", "p0", TrackKind::Audio))
        .await
        .unwrap();
    let mut feeders = vec![feed(a, audio)];
    sleep_s(2.0).await;
    let v = rec
        .add_input(track_spec("v", "p0", TrackKind::Video))
        .await
        .unwrap();
    feeders.push(feed(v, video));
    wait(feeders).await;
    let outcome = stop(&rec).await;
    let mut names: Vec<String> = outcome
        .files
        .iter()
        .map(|f| f.path.file_name().unwrap().to_string_lossy().into())
        .collect();
    names.sort();
    assert_eq!(names, ["rec_p0.webm", "rec_p0_1.webm"]);
    let first = probe(&dir.path().join("rec_p0.webm"));
    first.assert_codecs(&["audio:opus"]);
    first.assert_duration(4.0);
    let second = probe(&dir.path().join("rec_p0_1.webm"));
    second.assert_codecs(&["video:vp8"]);
    second.assert_duration(2.0);
    for f in &outcome.files {
        assert_decodes_cleanly(&f.path);
    }
}

/// Removing inputs right before stop, and stopping while paused, both finish cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_pause_then_stop_composite_webm() {
    let dir = tempfile::tempdir().unwrap();
    let people = [
        Participant::new(0, 3.0, true),
        Participant::new(1, 3.0, true),
    ];
    let (rec, _events) = start(spec(dir.path(), Mode::Composite, Format::Webm, false)).await;
    let mut feeders = Vec::new();
    for p in people {
        feeders.extend(p.join(&rec).await);
    }
    wait(feeders).await;
    rec.pause().await.unwrap();
    sleep_s(1.0).await;
    rec.remove_input("p1-v").await.unwrap();
    rec.remove_input("p1-a").await.unwrap();
    // `stop` requires a clean outcome: the end-of-stream got through the paused mixers and
    // drained inputs before the stop timeout (how long that takes is for benchmarks).
    let outcome = stop(&rec).await;
    assert_decodes_cleanly(&outcome.files[0].path);
    probe(&outcome.files[0].path).assert_duration(3.0);
}

/// Grid content: one white 4:3 input fills the canvas height; when a second joins, both
/// shrink to half-width tiles; when it leaves, the first fills the canvas again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grid_reflows_when_inputs_join_and_leave() {
    let dir = tempfile::tempdir().unwrap();
    let (v0, a0) = (
        vp8(320, 240, 6.0, "white").with_ssrc(41),
        opus(6.0, 300).with_ssrc(42),
    );
    let v1 = vp8(320, 240, 2.0, "white").with_ssrc(43);
    let (rec, _events) = start(spec(dir.path(), Mode::Composite, Format::Webm, false)).await;
    let (i0, a) = add_av(&rec, "p0", "0").await;
    let mut feeders = vec![feed(i0, v0), feed(a, a0)];
    sleep_s(2.0).await;
    let i1 = rec
        .add_input(track_spec("v1", "p1", TrackKind::Video))
        .await
        .unwrap();
    feeders.push(feed(i1, v1));
    sleep_s(2.0).await;
    rec.remove_input("v1").await.unwrap();
    wait(feeders).await;
    let outcome = stop(&rec).await;
    let path = &outcome.files[0].path;
    assert_decodes_cleanly(path);
    let d = decode(path);
    // Cell (0,1): top of the centre-left column. Cell (1,3): right column, second row.
    let top = [1.0, 3.0, 5.0].map(|t| d.cell_at(t, 0, 1));
    let right = [1.0, 3.0, 5.0].map(|t| d.cell_at(t, 1, 3));
    println!("top-centre luma {top:?}, right luma {right:?}");
    assert!(
        top[0] > 200.0 && top[2] > 200.0,
        "one tile fills the height: {top:?}"
    );
    assert!(top[1] < top[0] - 60.0, "two tiles are letterboxed: {top:?}");
    assert!(
        right[1] > right[0] + 60.0,
        "the second tile covers the right: {right:?}"
    );
    assert!(
        right[2] < right[1] - 60.0,
        "and is gone after it left: {right:?}"
    );
}

/// p0 sends 3 s and goes quiet without leaving; the stop comes 3 s later. The outcome's
/// duration is what the file holds, not the 6 s timeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_is_the_media_written_when_inputs_stop_early() {
    let dir = tempfile::tempdir().unwrap();
    let p0 = Participant::new(0, 3.0, true);
    let (rec, _events) = start(spec(dir.path(), Mode::Tracks, Format::Webm, false)).await;
    let feeders = p0.join(&rec).await;
    wait(feeders).await;
    sleep_s(3.0).await;
    let health = rec.health();
    let live = health.media.as_secs_f64();
    assert!((live - 3.0).abs() <= 0.5, "media {live:.3} s while running");
    // The timeline ran on for the 3 s of silence (its origin is the pipeline's start, a few
    // ms after `start` returns, so it is compared with the media held, not with 6 s).
    assert!(
        health.position >= health.media + Duration::from_millis(2_500),
        "{health:?}"
    );
    let outcome = stop(&rec).await;
    let file = probe(file_of(&outcome, Some("p0")));
    file.assert_duration(3.0);
    let duration = outcome.duration.as_secs_f64();
    assert!(
        (duration - file.duration).abs() <= 0.5,
        "outcome {duration:.3} s, file {:.3} s",
        file.duration
    );
}
