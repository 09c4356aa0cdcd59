//! A/V sync and audio timeline integrity: white flashes and beeps at the same instants.

mod common;

use common::*;
use pipelines::*;

const SECS: f64 = 6.0;

/// Records one participant sending flashes + beeps (audio optionally with DTX-like gaps in the
/// silence between beeps) and returns the decoded output of its file.
async fn record_marks(mode: Mode, format: Format, gaps: &[(f64, f64)]) -> Decoded {
    record_these_marks(mode, format, &markers(SECS), gaps).await
}

async fn record_these_marks(
    mode: Mode,
    format: Format,
    marks: &[f64],
    gaps: &[(f64, f64)],
) -> Decoded {
    let dir = tempfile::tempdir().unwrap();
    let video = flashes(SECS, marks).with_ssrc(11);
    let mut audio = beeps(SECS, marks).with_ssrc(12);
    for (from, to) in gaps {
        audio = audio.without(*from, *to);
    }
    let (rec, _events) = start(spec(dir.path(), mode, format, false)).await;
    let (v, a) = add_av(&rec, "p0", "").await;
    wait(vec![feed(v, video), feed(a, audio)]).await;
    let outcome = stop(&rec).await;
    let path = file_of(&outcome, outcome.files[0].participant.as_deref()).clone();
    assert_decodes_cleanly(&path);
    probe(&path).assert_duration(SECS);
    decode(&path)
}

/// Prints and checks the offset between each flash and its beep (the mean and every pair);
/// returns the mean.
fn assert_in_sync(label: &str, d: &Decoded) -> f64 {
    assert_marks_in_sync(label, d, markers(SECS).len())
}

fn assert_marks_in_sync(label: &str, d: &Decoded, expected: usize) -> f64 {
    let flashes = d.flashes();
    assert_eq!(
        flashes.len(),
        expected,
        "{label}: flashes {flashes:?} in {} frames {:?}",
        d.frames.len(),
        d.frames
    );
    assert_eq!(d.beeps.len(), expected, "{label}: beeps {:?}", d.beeps);
    let offsets: Vec<f64> = flashes.iter().zip(&d.beeps).map(|(f, b)| b - f).collect();
    let mean = offsets.iter().sum::<f64>() / offsets.len() as f64;
    println!(
        "A/V offset {label}: mean {:+.1} ms, each {:?} ms",
        mean * 1e3,
        offsets
            .iter()
            .map(|o| (o * 1e3).round())
            .collect::<Vec<_>>()
    );
    assert!(mean.abs() <= 0.040, "{label}: mean A/V offset {mean:.3} s");
    for (flash, offset) in flashes.iter().zip(&offsets) {
        assert!(
            offset.abs() <= 0.045,
            "{label}: the pair at {flash:.2} s is {:+.0} ms apart",
            offset * 1e3
        );
    }
    mean
}

/// Beeps one second apart in the input must stay one second apart in the output.
fn assert_beeps_evenly_spaced(label: &str, d: &Decoded) {
    assert_eq!(d.beeps.len(), markers(SECS).len(), "{label}: {:?}", d.beeps);
    for pair in d.beeps.windows(2) {
        let gap = pair[1] - pair[0];
        assert!((gap - 1.0).abs() <= 0.025, "{label}: beeps {:?}", d.beeps);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn av_sync_composite_webm() {
    let d = record_marks(Mode::Composite, Format::Webm, &[]).await;
    assert_in_sync("composite webm", &d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn av_sync_composite_mp4() {
    let d = record_marks(Mode::Composite, Format::Mp4, &[]).await;
    assert_in_sync("composite mp4", &d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn av_sync_tracks_webm() {
    let d = record_marks(Mode::Tracks, Format::Webm, &[]).await;
    assert_in_sync("tracks webm", &d);
}

const DTX_GAPS: [(f64, f64); 3] = [(1.3, 1.9), (2.2, 2.95), (3.4, 3.9)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtx_gaps_keep_the_timeline_tracks_webm() {
    let d = record_marks(Mode::Tracks, Format::Webm, &DTX_GAPS).await;
    assert_beeps_evenly_spaced("tracks webm with gaps", &d);
    assert_in_sync("tracks webm with gaps", &d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtx_gaps_keep_the_timeline_composite_mp4() {
    let d = record_marks(Mode::Composite, Format::Mp4, &DTX_GAPS).await;
    assert_beeps_evenly_spaced("composite mp4 with gaps", &d);
    assert_in_sync("composite mp4 with gaps", &d);
}

/// A participant sending flashes + beeps joins a running composite 1.5 s late next to a dark,
/// silent one: its marks appear 1.5 s later on the room timeline, still in sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn av_sync_late_joiner_composite_webm() {
    let dir = tempfile::tempdir().unwrap();
    let marks = markers(SECS);
    let (late_v, late_a) = (
        flashes(SECS, &marks).with_ssrc(13),
        beeps(SECS, &marks).with_ssrc(14),
    );
    let total = SECS + 1.5;
    let (dark_v, dark_a) = (
        vp8(320, 240, total, "black").with_ssrc(15),
        beeps(total, &[]).with_ssrc(16),
    );
    let (rec, _events) = start(spec(dir.path(), Mode::Composite, Format::Webm, false)).await;
    let (v0, a0) = add_av(&rec, "p0", "0").await;
    let mut feeders = vec![feed(v0, dark_v), feed(a0, dark_a)];
    tokio::time::sleep(std::time::Duration::from_secs_f64(1.5)).await;
    let (v1, a1) = add_av(&rec, "p1", "1").await;
    feeders.extend([feed(v1, late_v), feed(a1, late_a)]);
    wait(feeders).await;
    let outcome = stop(&rec).await;
    let path = &outcome.files[0].path;
    assert_decodes_cleanly(path);
    probe(path).assert_duration(total);
    let d = decode(path);
    assert_in_sync("late joiner composite webm", &d);
    let first = d.flashes()[0];
    assert!(
        (first - 2.5).abs() < 0.15,
        "first flash at {first}, expected 1.5 s + 1 s"
    );
}

/// The first second of a composite is in sync like the rest: marks from 0.3 s on, three
/// recordings per format, every pair within 45 ms. The runs' means may differ only by where
/// the output frame grid falls against the input (at most one frame, 1/24 s at `low`): with
/// the mixers started at zero they also moved with how the mixers happened to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn av_sync_from_the_first_frames_composite() {
    let marks = [0.3, 0.7, 1.2, 2.0, 3.0, 4.0];
    for format in [Format::Webm, Format::Mp4] {
        let mut means = Vec::new();
        for run in 0..3 {
            let d = record_these_marks(Mode::Composite, format, &marks, &[]).await;
            let label = format!("composite {format:?} from the start, run {run}");
            let first = d.flashes().first().copied();
            assert!(
                first.is_some_and(|t| (t - 0.3).abs() < 0.1),
                "{label}: first flash at {first:?}"
            );
            means.push(assert_marks_in_sync(&label, &d, marks.len()));
        }
        let spread = means.iter().cloned().fold(f64::MIN, f64::max)
            - means.iter().cloned().fold(f64::MAX, f64::min);
        assert!(
            spread <= 1.0 / 24.0,
            "{format:?}: mean offsets {means:?} differ by {:.0} ms",
            spread * 1e3
        );
    }
}
