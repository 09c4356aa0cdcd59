//! Encryption at rest through the real server: files on disk are not media, downloads are
//! (Range included), a SIGKILLed encrypted recording is salvaged, recordings made before and
//! after a key rotation both download, `capstan rewrap` retires the old key, and object
//! storage receives the media (its own server-side encryption applies).

mod common;

use common::check::{assert_decodes_cleanly, probe, stream_end};
use common::moto::Moto;
use common::peer::Participant;
use common::recording::{call, id_of, Host};
use common::upload::{make_webm, Uploader};
use common::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// 32 bytes of 1s and of 2s, in standard base64.
const KEY_1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const KEY_2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
const WAIT: Duration = Duration::from_secs(30);
const COMPOSITE: &str = "recording_format=webm&quality=low&mode=composite";

/// Records for `secs` seconds and waits for the recording to complete.
async fn record(host: &Host, query: &str, secs: u64) -> Value {
    let id = id_of(&host.start(query).await.expect(StatusCode::CREATED));
    tokio::time::sleep(Duration::from_secs(secs)).await;
    host.act(&id, "stop").await.expect(StatusCode::OK);
    host.wait_status(&id, "completed", WAIT).await
}

/// Whether ffprobe finds media in the file.
fn parseable(path: &Path) -> bool {
    Command::new("ffprobe")
        .args(["-v", "quiet", "-show_streams"])
        .arg(path)
        .status()
        .unwrap()
        .success()
}

/// GET the download with a Range; status and body.
async fn ranged(server: &TestServer, host: &Host, id: &str, range: &str) -> (StatusCode, Vec<u8>) {
    let response = reqwest::Client::new()
        .get(format!(
            "{}/api/webrtc/recordings/{id}/download",
            server.base
        ))
        .bearer_auth(&host.token)
        .header("Range", range)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.bytes().await.unwrap().to_vec())
}

/// Downloads file 0 and checks it is the recording: VP8/Opus, `min`..`max` s, clean decode.
async fn assert_downloads(host: &Host, id: &str, min: f64, max: f64) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let file = host.download(id, 0, dir.path()).await;
    let p = probe(&file);
    p.assert_codecs(&["video:vp8", "audio:opus"]);
    assert!((min..=max).contains(&p.duration), "duration {p:?}");
    assert_decodes_cleanly(&file);
    std::fs::read(&file).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_on_disk_are_sealed_and_downloads_are_media() {
    let server = TestServer::start_with(&[("CAPSTAN_ENCRYPTION_KEY", KEY_1)]).await;
    let _a = Participant::join(&server, "e", "a").await;
    let host = Host::new(&server, "e");
    let done = record(&host, COMPOSITE, 4).await;
    let id = id_of(&done);
    let on_disk = done["files"][0]["local_path"].as_str().unwrap();
    let sealed = std::fs::read(on_disk).unwrap();
    assert_eq!(&sealed[..8], b"CAPSENC1");
    assert!(
        !parseable(Path::new(on_disk)),
        "the file on disk is not media"
    );

    let media = assert_downloads(&host, &id, 3.0, 6.0).await;
    assert_eq!(
        media.len() as u64,
        done["files"][0]["size_bytes"].as_u64().unwrap()
    );
    assert_eq!(&media[..4], b"\x1a\x45\xdf\xa3", "an EBML header");
    let (status, part) = ranged(&server, &host, &id, "bytes=100-20099").await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part, media[100..20_100]);
    let (status, tail) = ranged(&server, &host, &id, "bytes=-50").await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(tail, media[media.len() - 50..]);
    let end = format!("bytes={}-", media.len());
    assert_eq!(
        ranged(&server, &host, &id, &end).await.0,
        StatusCode::RANGE_NOT_SATISFIABLE
    );
    server.assert_clean_log();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_encrypted_recording_is_salvaged() {
    let mut server = TestServer::start_with(&[("CAPSTAN_ENCRYPTION_KEY", KEY_1)]).await;
    let _a = Participant::join(&server, "k", "a").await;
    let host = Host::new(&server, "k");
    let id = id_of(&host.start(COMPOSITE).await.expect(StatusCode::CREATED));
    tokio::time::sleep(Duration::from_secs(8)).await;
    server.kill_hard();
    // What the killed server left: an encrypted `.part`, whose media this test can read.
    let room = server.data_dir.path().join("recordings/k");
    let part = std::fs::read_dir(&room)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(part.to_string_lossy().ends_with(".webm.part"), "{part:?}");
    assert!(!parseable(&part), "the .part on disk is not media");
    let keys = pipelines::crypt::Keyring::new(&[1; 32], &[]);
    let mut sealed = pipelines::crypt::MediaFile::open(&part, Some(&keys)).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let plain_part = scratch.path().join("part.webm");
    std::fs::write(
        &plain_part,
        sealed.read_range(0, sealed.len() as usize).unwrap(),
    )
    .unwrap();
    let held = stream_end(&plain_part, "video");
    assert!(held >= 2.0, "the .part holds {held} s of video");

    server.restart().await;
    let state = host.wait_status(&id, "completed", WAIT).await;
    assert_eq!(state["metadata"]["interrupted"], true, "{state}");
    let on_disk = state["files"][0]["local_path"].as_str().unwrap();
    assert!(!on_disk.ends_with(".part"), "{state}");
    assert!(
        !parseable(Path::new(on_disk)),
        "the salvaged file is sealed too"
    );
    // Salvage keeps all the media the `.part` held.
    assert_downloads(&host, &id, held - 0.3, held + 0.3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_from_before_and_after_a_rotation_both_download() {
    let mut server = TestServer::start_with(&[("CAPSTAN_ENCRYPTION_KEY", KEY_1)]).await;
    let _a = Participant::join(&server, "r", "a").await;
    let host = Host::new(&server, "r");
    let before = id_of(&record(&host, COMPOSITE, 3).await);

    server
        .restart_with(&[
            ("CAPSTAN_ENCRYPTION_KEY", KEY_2),
            ("CAPSTAN_ENCRYPTION_OLD_KEYS", KEY_1),
        ])
        .await;
    let _b = Participant::join(&server, "r", "b").await;
    let after = id_of(&record(&host, COMPOSITE, 3).await);
    assert_downloads(&host, &before, 2.0, 5.0).await;
    assert_downloads(&host, &after, 2.0, 5.0).await;

    // Without the old key the old recording is refused with the reason, the new one is fine.
    server
        .restart_with(&[("CAPSTAN_ENCRYPTION_OLD_KEYS", "")])
        .await;
    let url = format!("{}/api/webrtc/recordings/{before}/download", server.base);
    let refused = call(Method::GET, &url, Some(&host.token)).await;
    assert_eq!(refused.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        refused.body["error"], "encryption_error",
        "{:?}",
        refused.body
    );
    let message = refused.body["message"].as_str().unwrap();
    assert!(message.contains("not configured"), "{message}");
    assert_downloads(&host, &after, 2.0, 5.0).await;

    // `capstan rewrap` with both keys seals the old file with the new key.
    let rewrap = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["rewrap", "--dev"])
        .env("CAPSTAN_DATA_DIR", server.data_dir.path())
        .env("CAPSTAN_ENCRYPTION_KEY", KEY_2)
        .env("CAPSTAN_ENCRYPTION_OLD_KEYS", KEY_1)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&rewrap.stdout);
    assert!(rewrap.status.success(), "{out} {rewrap:?}");
    assert!(
        out.contains("rewrapped 1, already on the current key 1"),
        "{out}"
    );
    assert_downloads(&host, &before, 2.0, 5.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_storage_receives_the_media() {
    let moto = Moto::start().await;
    moto.create_bucket("sealed").await;
    let server = TestServer::start_with(&[
        ("CAPSTAN_ENCRYPTION_KEY", KEY_1),
        ("RECORDING_STORAGE_PROVIDER", "s3"),
        ("RECORDING_S3_BUCKET", "sealed"),
        ("RECORDING_S3_ACCESS_KEY_ID", "test"),
        ("RECORDING_S3_SECRET_ACCESS_KEY", "test"),
        ("RECORDING_S3_ENDPOINT", &moto.endpoint),
        ("CAPSTAN_S3_SSE", "AES256"),
    ])
    .await;
    let _a = Participant::join(&server, "s", "a").await;
    let host = Host::new(&server, "s");
    let done = record(&host, COMPOSITE, 4).await;
    assert!(done["s3_key"].is_string(), "{done}");
    let media = assert_downloads(&host, &id_of(&done), 3.0, 6.0).await;
    assert_eq!(
        media.len() as u64,
        done["file_size_bytes"].as_u64().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_upload_is_stored_sealed() {
    let server = TestServer::start_with(&[("CAPSTAN_ENCRYPTION_KEY", KEY_1)]).await;
    let dir = tempfile::tempdir().unwrap();
    let webm = std::fs::read(make_webm(dir.path(), 3)).unwrap();
    let pieces: Vec<&[u8]> = webm.chunks(64 * 1024).collect();
    let ann = Uploader::new(&server, "c", "ann");
    let id = uuid::Uuid::new_v4().to_string();
    for (sequence, piece) in pieces.iter().enumerate() {
        let last = sequence + 1 == pieces.len();
        let (status, body) = ann.chunk(&id, sequence as u64, piece, last).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let recording = ann.wait_final(&id).await;
    assert_eq!(recording["status"], "completed", "{recording}");
    let on_disk = recording["files"][0]["local_path"].as_str().unwrap();
    assert!(!parseable(Path::new(on_disk)), "the stored copy is sealed");
    let media = ann.download(&id).await;
    let copy = dir.path().join("copy.webm");
    std::fs::write(&copy, &media).unwrap();
    let p = probe(&copy);
    p.assert_codecs(&["video:vp8", "audio:opus"]);
    assert!((2.5..=3.5).contains(&p.duration), "{p:?}");
    assert_decodes_cleanly(&copy);
}
