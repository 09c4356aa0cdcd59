//! Real Chromium RTP (fixtures/, captured by scripts/capture-fixtures.mjs through the server,
//! or with examples/whip_capture.rs for the simulcast layers) replayed in real time through
//! tracks and composite recorders.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use pipelines::*;

const VP8_RESIZE: &str = "vp8-keyframes-resize.rtp";
const OPUS_DTX: &str = "opus-dtx.rtp";
/// The simulcast publish's camera; layer `rid` is it scaled down by its factor.
const SIMULCAST_CAMERA: (u32, u32) = (1280, 720);

/// Distinct RTP timestamps: the frames of a video track.
fn frames(track: &RtpTrack) -> usize {
    let mut ts: Vec<&[u8]> = track.packets.iter().map(|p| &p.data[4..8]).collect();
    ts.dedup();
    ts.len()
}

/// Packets without payload, only padding (Chromium's bandwidth probes on the media SSRC).
fn padding_only(track: &RtpTrack) -> u64 {
    let empty = |d: &[u8]| {
        d[0] & 0x20 != 0 && d[0] & 0x1f == 0 && usize::from(d[d.len() - 1]) == d.len() - 12
    };
    track.packets.iter().filter(|p| empty(&p.data)).count() as u64
}

/// `(width, height)` of every decoded video frame (`ffprobe -show_frames`), in order.
fn frame_sizes(path: &Path) -> Vec<(u32, u32)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v", "-show_frames"])
        .args(["-show_entries", "frame=width,height", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (w, h) = l.trim_end_matches(',').split_once(',').unwrap();
            (w.parse().unwrap(), h.parse().unwrap())
        })
        .collect()
}

/// Packets of the first `kind` ("video"/"audio") stream (`ffprobe -count_packets`).
fn packet_count(path: &Path, kind: &str) -> usize {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            &kind[..1],
            "-count_packets",
        ])
        .args(["-show_entries", "stream=nb_read_packets", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Records the given fixtures as participant `p` (video and/or audio) and returns the one file.
async fn record(
    mode: Mode,
    format: Format,
    video: Option<&RtpTrack>,
    audio: Option<&RtpTrack>,
) -> (std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (rec, events) = start(spec(dir.path(), mode, format, video.is_none())).await;
    let events = drain_events(events);
    let mut feeders = Vec::new();
    for (track, kind, id) in [
        (video, TrackKind::Video, "v"),
        (audio, TrackKind::Audio, "a"),
    ] {
        if let Some(track) = track {
            let input = rec.add_input(track_spec(id, "p", kind)).await.unwrap();
            feeders.push(feed(input, track.clone()));
        }
    }
    wait(feeders).await;
    let outcome = stop(&rec).await;
    events.await.unwrap();
    // Every packet is taken, padding-only ones (bandwidth probes) included.
    for i in &outcome.inputs {
        let track = if i.kind == TrackKind::Video {
            video
        } else {
            audio
        };
        assert_eq!(i.dropped(), 0, "{i:?}");
        assert_eq!(i.packets, track.unwrap().packets.len() as u64, "{i:?}");
    }
    assert_eq!(outcome.files.len(), 1, "{outcome:?}");
    let path = outcome.files[0].path.clone();
    assert_decodes_cleanly(&path);
    (path, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracks_webm_keeps_chromium_vp8_frames_across_a_resize() {
    let video = fixture(VP8_RESIZE);
    assert!(
        padding_only(&video) > 0,
        "the capture holds bandwidth probes"
    );
    let (path, _dir) = record(Mode::Tracks, Format::Webm, Some(&video), None).await;
    let p = probe(&path);
    p.assert_codecs(&["video:vp8"]);
    p.assert_duration(video.duration.as_secs_f64());
    let sizes = frame_sizes(&path);
    let expected = frames(&video);
    assert!(
        sizes.len().abs_diff(expected) <= expected / 20,
        "{} frames decoded, the fixture has {expected}",
        sizes.len()
    );
    // 640x360 until Chromium halves it, 320x180 after; nothing else.
    let switch = sizes
        .iter()
        .position(|s| *s == (320, 180))
        .expect("320x180");
    assert!(
        sizes[..switch].iter().all(|s| *s == (640, 360)),
        "{sizes:?}"
    );
    assert!(
        sizes[switch..].iter().all(|s| *s == (320, 180)),
        "{sizes:?}"
    );
    assert!(
        switch > expected / 3 && switch < expected * 2 / 3,
        "{switch}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracks_mkv_passes_opus_dtx_through() {
    let audio = fixture(OPUS_DTX);
    let (path, _dir) = record(Mode::Tracks, Format::Mkv, None, Some(&audio)).await;
    let p = probe(&path);
    p.assert_codecs(&["audio:opus"]);
    p.assert_duration(audio.duration.as_secs_f64());
    // Every packet, no more: the DTX gaps stay gaps.
    assert_eq!(packet_count(&path, "audio"), audio.packets.len());
    let end = stream_end(&path, "audio");
    assert!(
        (end - audio.duration.as_secs_f64()).abs() <= 0.5,
        "audio ends at {end:.3} s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_webm_of_chromium_media_keeps_the_dtx_audio_timeline() {
    let (video, audio) = (fixture(VP8_RESIZE), fixture(OPUS_DTX));
    let (path, _dir) = record(Mode::Composite, Format::Webm, Some(&video), Some(&audio)).await;
    let p = probe(&path);
    p.assert_codecs(&["video:vp8", "audio:opus"]);
    let secs = video.duration.as_secs_f64();
    p.assert_duration(secs);
    for kind in ["video", "audio"] {
        let end = stream_end(&path, kind);
        assert!((end - secs).abs() <= 0.5, "{kind} ends at {end:.3} s");
    }
    // Mixed audio is continuous: 20 ms packets over the whole fixture, DTX gaps filled.
    let packets = packet_count(&path, "audio");
    assert!(
        packets as f64 >= secs / 0.02 * 0.9,
        "{packets} audio packets"
    );
}

/// Replays simulcast layer `rid` (`fixtures/vp8-simulcast-{rid}.rtp`) into a tracks WebM:
/// every frame decodes, at the camera's size divided by `scale`, and the timeline is the
/// capture's.
async fn simulcast_layer(rid: &str, scale: u32) {
    let video = fixture(&format!("vp8-simulcast-{rid}.rtp"));
    let (path, _dir) = record(Mode::Tracks, Format::Webm, Some(&video), None).await;
    let p = probe(&path);
    p.assert_codecs(&["video:vp8"]);
    let secs = video.duration.as_secs_f64();
    p.assert_duration(secs);
    let end = stream_end(&path, "video");
    assert!((end - secs).abs() <= 0.5, "video ends at {end:.3} s");
    let size = (SIMULCAST_CAMERA.0 / scale, SIMULCAST_CAMERA.1 / scale);
    let sizes = frame_sizes(&path);
    assert!(
        sizes.iter().all(|s| *s == size),
        "{size:?} expected: {sizes:?}"
    );
    assert_eq!(sizes.len(), frames(&video), "decoded frames");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracks_webm_of_simulcast_layer_q_is_a_quarter_of_the_camera() {
    simulcast_layer("q", 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracks_webm_of_simulcast_layer_h_is_half_the_camera() {
    simulcast_layer("h", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracks_webm_of_simulcast_layer_f_is_the_full_camera() {
    simulcast_layer("f", 1).await;
}
