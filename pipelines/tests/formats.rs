//! Every mode x format (and audio-only) with 1 and 3 synthetic participants.

mod common;

use common::*;
use pipelines::*;

const SECS: f64 = 4.0;

/// Records `count` participants for `SECS` and returns the outcome (files checked for decode errors).
async fn record(
    mode: Mode,
    format: Format,
    audio_only: bool,
    count: u32,
) -> (Outcome, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let people: Vec<Participant> = (0..count)
        .map(|i| Participant::new(i, SECS, !audio_only))
        .collect();
    let (rec, events) = start(spec(dir.path(), mode, format, audio_only)).await;
    let events = drain_events(events);
    let mut feeders = Vec::new();
    for p in people {
        feeders.extend(p.join(&rec).await);
    }
    wait(feeders).await;
    let outcome = stop(&rec).await;
    let events = events.await.unwrap();
    assert!(matches!(
        events.last(),
        Some(RecorderEvent::Finished { outcome: Some(_) })
    ));
    for f in &outcome.files {
        assert_decodes_cleanly(&f.path);
    }
    for i in &outcome.inputs {
        assert!(i.packets > 0 && i.dropped() == 0, "{i:?}");
    }
    (outcome, dir)
}

async fn tracks(format: Format, count: u32, audio_only: bool) {
    let (outcome, _dir) = record(Mode::Tracks, format, audio_only, count).await;
    assert_eq!(outcome.files.len(), count as usize, "{outcome:?}");
    for i in 0..count {
        let path = file_of(&outcome, Some(&format!("p{i}")));
        assert!(path
            .to_string_lossy()
            .ends_with(&format!("rec_p{i}.{}", format.extension())));
        let p = probe(path);
        if audio_only {
            p.assert_codecs(&["audio:opus"]);
        } else {
            p.assert_codecs(&["video:vp8", "audio:opus"]);
            let v = p.stream("video").unwrap();
            assert_eq!((v.width, v.height), (320, 240));
        }
        p.assert_duration(SECS);
    }
}

async fn composite(format: Format, count: u32, audio_only: bool) {
    let (outcome, _dir) = record(Mode::Composite, format, audio_only, count).await;
    assert_eq!(outcome.files.len(), 1);
    let path = file_of(&outcome, None);
    assert!(path
        .to_string_lossy()
        .ends_with(&format!("rec.{}", format.extension())));
    let p = probe(path);
    let audio = if format == Format::Mp4 {
        "audio:aac"
    } else {
        "audio:opus"
    };
    let video = if format == Format::Webm {
        "video:vp8"
    } else {
        "video:h264"
    };
    if audio_only {
        p.assert_codecs(&[audio]);
    } else {
        p.assert_codecs(&[video, audio]);
        let v = p.stream("video").unwrap();
        assert_eq!((v.width, v.height), (854, 480));
    }
    p.assert_duration(SECS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracks_webm_1() {
    tracks(Format::Webm, 1, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracks_webm_3() {
    tracks(Format::Webm, 3, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracks_mkv_1() {
    tracks(Format::Mkv, 1, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracks_mkv_3() {
    tracks(Format::Mkv, 3, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracks_audio_only_webm_3() {
    tracks(Format::Webm, 3, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracks_audio_only_mkv_1() {
    tracks(Format::Mkv, 1, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_webm_1() {
    composite(Format::Webm, 1, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_webm_3() {
    composite(Format::Webm, 3, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_mkv_1() {
    composite(Format::Mkv, 1, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_mkv_3() {
    composite(Format::Mkv, 3, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_mp4_1() {
    composite(Format::Mp4, 1, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_mp4_3() {
    composite(Format::Mp4, 3, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_only_webm_1() {
    composite(Format::Webm, 1, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_only_webm_3() {
    composite(Format::Webm, 3, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_only_mkv_1() {
    composite(Format::Mkv, 1, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_only_mkv_3() {
    composite(Format::Mkv, 3, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_only_mp4_1() {
    composite(Format::Mp4, 1, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_only_mp4_3() {
    composite(Format::Mp4, 3, true).await;
}
