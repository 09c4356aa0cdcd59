//! Crash safety: SIGKILL a recording child process, then `salvage` its `.part` file.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use pipelines::*;

const DIR_VAR: &str = "CAPSTAN_CRASH_DIR";
const MODE_VAR: &str = "CAPSTAN_CRASH_MODE";
/// Set: the child encrypts its file with [`keys`].
const ENCRYPT_VAR: &str = "CAPSTAN_CRASH_ENCRYPT";

fn keys() -> crypt::Keyring {
    crypt::Keyring::new(&[7; crypt::KEY_LEN], &[])
}

/// The plaintext of an encrypted file, written next to nothing else (in `dir`), for the
/// independent tools.
fn decrypted(path: &Path, dir: &Path) -> PathBuf {
    let mut file = crypt::MediaFile::open(path, Some(&keys())).unwrap();
    let plain = file.read_range(0, file.len() as usize).unwrap();
    let name = path.file_name().unwrap().to_string_lossy();
    let out = dir.join(format!("plain-{}", name.trim_end_matches(".part")));
    std::fs::write(&out, plain).unwrap();
    out
}

fn mode_of(name: &str) -> (Mode, Format) {
    let (mode, format) = name.split_once('-').unwrap();
    (mode.parse().unwrap(), format.parse().unwrap())
}

/// The child: records one participant until it is killed. Run only by `kill_and_salvage`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of the crash tests"]
async fn child_records_until_killed() {
    let dir = PathBuf::from(std::env::var(DIR_VAR).unwrap());
    let (mode, format) = mode_of(&std::env::var(MODE_VAR).unwrap());
    let p0 = Participant::new(0, 20.0, true);
    let spec = spec(&dir, mode, format, false);
    let spec = match std::env::var_os(ENCRYPT_VAR) {
        Some(_) => spec.encrypted(keys()),
        None => spec,
    };
    let (rec, _events) = start(spec).await;
    let feeders = p0.join(&rec).await;
    println!("READY");
    wait(feeders).await;
}

/// Runs the child, kills it after `secs` of recording, returns the `.part` file.
fn record_then_kill(dir: &Path, mode: &str, secs: f64, encrypt: bool) -> PathBuf {
    let mut command = Command::new(std::env::current_exe().unwrap());
    if encrypt {
        command.env(ENCRYPT_VAR, "1");
    }
    let mut child = command
        .args([
            "child_records_until_killed",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(DIR_VAR, dir)
        .env(MODE_VAR, mode)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.any(|l| l.unwrap().contains("READY")), "child started");
    let ready = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    println!("killed after {:.2} s", ready.elapsed().as_secs_f64());
    let parts: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".part"))
        .collect();
    assert_eq!(parts.len(), 1, "{parts:?}");
    parts[0].clone()
}

async fn kill_and_salvage(mode: &str, codecs: &[&str], encrypt: bool) {
    let dir = tempfile::tempdir().unwrap();
    let plain_dir = tempfile::tempdir().unwrap();
    let secs = 5.0;
    let part = {
        let dir = dir.path().to_path_buf();
        let mode = mode.to_string();
        tokio::task::spawn_blocking(move || record_then_kill(&dir, &mode, secs, encrypt))
            .await
            .unwrap()
    };
    let raw = if encrypt {
        assert!(
            !Command::new("ffprobe")
                .args(["-v", "quiet"])
                .arg(&part)
                .status()
                .unwrap()
                .success(),
            "the encrypted .part is not parseable media"
        );
        decode(&decrypted(&part, plain_dir.path()))
    } else {
        decode(&part)
    };
    let last = raw.frames.last().map(|f| f.0).unwrap_or(0.0);
    println!("{mode}: .part decodes to {last:.2} s of video");
    assert!(
        last >= secs - 2.0,
        "the .part is decodable up to its last second or two: {last}"
    );
    let keyring = encrypt.then(keys);
    let fixed = tokio::task::spawn_blocking(move || salvage(&part, keyring.as_ref()))
        .await
        .unwrap()
        .unwrap();
    assert!(!fixed.to_string_lossy().ends_with(".part"));
    assert!(
        std::fs::read_dir(dir.path()).unwrap().count() == 1,
        "the .part is replaced"
    );
    assert_eq!(crypt::is_encrypted(&fixed).unwrap(), encrypt);
    let fixed = if encrypt {
        decrypted(&fixed, plain_dir.path())
    } else {
        fixed
    };
    assert_decodes_cleanly(&fixed);
    let p = probe(&fixed);
    p.assert_codecs(codecs);
    assert!(
        p.duration >= secs - 2.0 && p.duration <= secs + 0.5,
        "duration {p:?}"
    );
    let (video, audio) = (stream_end(&fixed, "video"), stream_end(&fixed, "audio"));
    assert!(
        (video - audio).abs() < 0.15,
        "salvage cuts the streams where the shorter ends: video {video:.3} s, audio {audio:.3} s"
    );
    let decoded = decode(&fixed).frames.last().unwrap().0;
    assert!(
        (p.duration - decoded).abs() < 0.5,
        "duration matches content: {decoded} vs {p:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_then_salvage_tracks_webm() {
    kill_and_salvage("tracks-webm", &["video:vp8", "audio:opus"], false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_then_salvage_encrypted_tracks_webm() {
    kill_and_salvage("tracks-webm", &["video:vp8", "audio:opus"], true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_then_salvage_composite_mkv() {
    kill_and_salvage("composite-mkv", &["video:h264", "audio:opus"], false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_then_salvage_composite_mp4() {
    kill_and_salvage("composite-mp4", &["video:h264", "audio:aac"], false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_then_salvage_encrypted_composite_mp4() {
    kill_and_salvage("composite-mp4", &["video:h264", "audio:aac"], true).await;
}

/// A camera turned on 6 s into a track: its video sits in the file after 6 s of audio. The
/// remuxer needs both streams' first buffers, so salvage must buffer the audio in between
/// (with a 1 s queue per stream it used to block until its 10-minute timeout).
#[test]
fn salvage_handles_a_stream_that_starts_late() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("late.webm");
    let made = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=d=12",
            "-itsoffset",
            "6",
        ])
        .args(["-f", "lavfi", "-i", "testsrc=d=6:s=320x240:r=15"])
        .args([
            "-map", "0", "-map", "1", "-c:a", "libopus", "-c:v", "libvpx",
        ])
        .args(["-deadline", "realtime", "-b:v", "300k"])
        .arg(&whole)
        .status()
        .unwrap();
    assert!(made.success());
    // A crash cuts the file short (and leaves no index).
    let bytes = std::fs::read(&whole).unwrap();
    let part = dir.path().join("x_late.webm.part");
    std::fs::write(&part, &bytes[..bytes.len() * 9 / 10]).unwrap();

    let fixed = salvage(&part, None).unwrap();
    assert_decodes_cleanly(&fixed);
    let p = probe(&fixed);
    p.assert_codecs(&["video:vp8", "audio:opus"]);
    let video = stream_start(&fixed, "video");
    assert!(
        (video - 6.0).abs() < 0.1,
        "video starts at {video} s, not 6"
    );
    assert!((10.0..=12.1).contains(&p.duration), "duration {p:?}");
}

#[test]
fn salvage_rejects_garbage_and_keeps_the_part() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("x.webm.part");
    std::fs::write(&part, b"not a matroska file at all").unwrap();
    assert!(matches!(
        salvage(&part, None),
        Err(SalvageError::Gstreamer(_))
    ));
    assert!(part.exists());
    // An EBML header and nothing after it: the demuxer finds no stream, so no EOS follows
    // its error (salvage used to wait for one until its 10-minute timeout).
    std::fs::write(&part, b"\x1a\x45\xdf\xa3 torn").unwrap();
    assert!(matches!(
        salvage(&part, None),
        Err(SalvageError::Gstreamer(_))
    ));
    assert!(part.exists());
    let wrong = dir.path().join("x.webm");
    assert!(matches!(
        salvage(&wrong, None),
        Err(SalvageError::NotAPartFile(_))
    ));
}
