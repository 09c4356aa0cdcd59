//! Client-side recording uploads through a real server: the seed route (chunks in JSON), its
//! status route, tus 1.0, and what an upload becomes (a `source: "client"` recording).

mod common;

use common::check::{decode_errors, probe};
use common::upload::{chunk_json, make_webm, Uploader};
use common::TestServer;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn assert_refused(got: (StatusCode, Value), status: StatusCode, code: &str, says: &str) {
    let (got, body) = got;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"], code, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(says), "`{message}` should say `{says}`");
}

/// The downloaded file is the recording: VP8 + Opus, about `seconds` long, decoding cleanly.
fn assert_playable(bytes: &[u8], seconds: f64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("download.webm");
    std::fs::write(&path, bytes).unwrap();
    let p = probe(&path);
    let mut codecs: Vec<&str> = p.streams.iter().map(|s| s.codec.as_str()).collect();
    codecs.sort();
    assert_eq!(codecs, ["opus", "vp8"], "{p:?}");
    let video = p.streams.iter().find(|s| s.kind == "video").unwrap();
    assert_eq!((video.width, video.height), (320, 240));
    assert!(
        (p.duration - seconds).abs() < 0.3,
        "duration {}",
        p.duration
    );
    let errors = decode_errors(&path);
    assert!(errors.is_empty(), "{errors}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_become_a_client_recording() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::read(make_webm(dir.path(), 3)).unwrap();
    let pieces: Vec<&[u8]> = file.chunks(16 * 1024).collect();
    let n = pieces.len() as u64;
    assert!(n >= 5, "{n} chunks");
    let ann = Uploader::new(&server, "upl", "ann");
    let id = new_id();

    let (status, first) = ann.chunk(&id, 0, pieces[0], false).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["message"], "Chunk stored");
    assert_eq!(first["data"]["state"], "receiving");

    // The same bytes again: success, nothing stored; other bytes: a precise 409.
    let (status, again) = ann.chunk(&id, 0, pieces[0], false).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["message"], "Chunk already received");
    assert_eq!(again["data"]["chunksReceived"], 1);
    assert_refused(
        ann.chunk(&id, 0, b"other bytes", false).await,
        StatusCode::CONFLICT,
        "chunk_conflict",
        "sequence 0 was received before with other bytes",
    );

    // A gap: held within 32 sequences of the first missing one, refused beyond.
    let (status, held) = ann.chunk(&id, 2, pieces[2], false).await;
    assert_eq!(status, StatusCode::OK, "{held}");
    assert_eq!(held["data"]["missing"], json!([1]));
    assert_refused(
        ann.chunk(&id, 33, b"x", false).await,
        StatusCode::CONFLICT,
        "sequence_gap",
        "sequence 1 is missing",
    );

    // Final while 1 is missing: refused with the list; the final chunk is kept.
    for s in 3..n - 1 {
        let (status, body) = ann.chunk(&id, s, pieces[s as usize], false).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let last = pieces[(n - 1) as usize];
    assert_refused(
        ann.chunk(&id, n - 1, last, true).await,
        StatusCode::CONFLICT,
        "missing_chunks",
        "sequences 1 are missing",
    );
    let (_, status) = ann.status(&id).await;
    assert_eq!(status["data"]["missing"], json!([1]), "{status}");
    assert_eq!(status["data"]["finalSequence"], n - 1);
    assert_eq!(status["data"]["chunksReceived"], n - 1);

    ann.chunk(&id, 1, pieces[1], false).await;
    let (status, done) = ann.chunk(&id, n - 1, last, true).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["data"]["recording"]["source"], "client");

    let recording = ann.wait_final(&id).await;
    assert_eq!(recording["status"], "completed", "{recording}");
    assert_eq!(recording["source"], "client");
    assert_eq!(recording["user_id"], "ann");
    assert_eq!(recording["format"], "webm");
    let (_, status) = ann.status(&id).await;
    let data = &status["data"];
    assert_eq!(data["chunksReceived"], n, "{data}");
    assert_eq!(data["bytesReceived"], file.len(), "{data}");
    assert_eq!(data["missing"], json!([]), "{data}");
    let seconds = recording["duration_seconds"].as_f64().unwrap();
    assert!((seconds - 3.0).abs() < 0.3, "{recording}");

    // Listed with the room's recordings and downloadable like any recording.
    let list: Value = reqwest::Client::new()
        .get(format!("{}/api/webrtc/rooms/upl/recordings", server.base))
        .bearer_auth(&ann.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = list
        .as_array()
        .expect("a list")
        .iter()
        .find(|r| r["recording_id"] == id.as_str());
    assert_eq!(listed.expect("listed")["source"], "client");
    assert_playable(&ann.download(&id).await, 3.0);

    // A chunk after the end is refused; the final chunk again is still fine.
    assert_refused(
        ann.chunk(&id, n, b"late", false).await,
        StatusCode::CONFLICT,
        "upload_finished",
        "is finished; it takes no more chunks",
    );
    let (status, body) = ann.chunk(&id, n - 1, last, true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server.assert_clean_log();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_chunks_are_refused_precisely() {
    let server = TestServer::start().await;
    let ann = Uploader::new(&server, "upl", "ann");
    let id = new_id();

    let mut bad = chunk_json(&id, "ann", 0, b"x", false);
    bad["chunk"] = "not base64!".into();
    assert_refused(
        ann.post(&bad).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "`chunk` is not valid base64",
    );
    assert_refused(
        ann.post(&json!({"recordingId": id})).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "invalid chunk JSON",
    );
    assert_refused(
        ann.chunk("not-a-uuid", 0, b"x", false).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "is not a UUID",
    );
    assert_refused(
        ann.post(&chunk_json(&id, "bob", 0, b"x", false)).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        "is not the token's identity",
    );

    // Over the 8 MiB default: 413 from the route, in the envelope. A 3 MiB chunk, over the
    // 2 MiB body limit of the other routes, is fine.
    let big = vec![7u8; (8 << 20) + 1024];
    assert_refused(
        ann.chunk(&id, 0, &big, false).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "CAPSTAN_UPLOAD_MAX_CHUNK",
    );
    let (status, body) = ann.chunk(&id, 0, &vec![7u8; 3 << 20], false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["bytesReceived"], 3 << 20);

    // No token; a token of another room; another participant of the room.
    let response = reqwest::Client::new()
        .post(format!("{}/video-calls/chunks/upload", server.base))
        .json(&chunk_json(&id, "ann", 1, b"x", false))
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert_refused(
        (status, response.json().await.unwrap()),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "",
    );
    let elsewhere = Uploader::new(&server, "other", "ann");
    assert_refused(
        elsewhere.chunk(&id, 1, b"x", false).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        "belongs to another room",
    );
    assert_refused(
        elsewhere.status(&id).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        "belongs to another room",
    );
    let bob = Uploader::new(&server, "upl", "bob");
    assert_refused(
        bob.chunk(&id, 1, b"x", false).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        "belongs to another participant",
    );
    assert_refused(
        ann.status(&new_id()).await,
        StatusCode::NOT_FOUND,
        "upload_not_found",
        "not found",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_truncated_uploads_fail_with_the_reason() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::read(make_webm(dir.path(), 1)).unwrap();
    let ann = Uploader::new(&server, "upl", "ann");
    let cases: [(&[u8], &str); 2] = [
        (&[0x5a; 50_000], "not a WebM, Matroska or MP4 file"),
        (&file[..150], "No pads created"),
    ];
    for (bytes, why) in cases {
        let id = new_id();
        let (status, body) = ann.chunk(&id, 0, bytes, true).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let recording = ann.wait_final(&id).await;
        assert_eq!(recording["status"], "failed", "{recording}");
        assert_eq!(recording["source"], "client");
        let error = recording["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("the uploaded file is not playable") && error.contains(why),
            "{error}"
        );
    }
}

/// A tus request to `path` with `Tus-Resumable: 1.0.0` and a bearer token.
fn tus(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: &str,
) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .request(method, format!("{}{path}", server.base))
        .bearer_auth(token)
        .header("Tus-Resumable", "1.0.0")
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

async fn patch(
    server: &TestServer,
    at: &str,
    token: &str,
    offset: usize,
    bytes: &[u8],
) -> reqwest::Response {
    tus(server, reqwest::Method::PATCH, at, token)
        .header("Upload-Offset", offset.to_string())
        .header("Content-Type", "application/offset+octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap()
}

async fn head_offset(server: &TestServer, at: &str, token: &str) -> reqwest::Response {
    tus(server, reqwest::Method::HEAD, at, token)
        .send()
        .await
        .unwrap()
}

/// Sends a PATCH announcing the whole rest but only `bytes`, then drops the connection.
async fn interrupted_patch(
    server: &TestServer,
    at: &str,
    token: &str,
    offset: usize,
    rest: usize,
    bytes: &[u8],
) {
    use tokio::io::AsyncWriteExt;
    let addr = server.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PATCH {at} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Tus-Resumable: 1.0.0\r\nUpload-Offset: {offset}\r\n\
         Content-Type: application/offset+octet-stream\r\nContent-Length: {rest}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_uploads_resume_and_become_recordings() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::read(make_webm(dir.path(), 2)).unwrap();
    let ann = Uploader::new(&server, "upl", "ann");
    let token = ann.token.clone();

    let options = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/api/webrtc/uploads", server.base),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(options.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&options, "tus-version"), "1.0.0");
    assert_eq!(
        header(&options, "tus-extension"),
        "creation,creation-defer-length"
    );
    assert_eq!(header(&options, "tus-max-size"), (4u64 << 30).to_string());

    let wrong = reqwest::Client::new()
        .post(format!("{}/api/webrtc/uploads", server.base))
        .bearer_auth(&token)
        .header("Tus-Resumable", "0.2.2")
        .header("Upload-Length", "10")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(header(&wrong, "tus-version"), "1.0.0");

    // Known length: two PATCHes with an interrupted one and an offset mismatch between.
    let created = tus(
        &server,
        reqwest::Method::POST,
        "/api/webrtc/uploads",
        &token,
    )
    .header("Upload-Length", file.len().to_string())
    .header("Upload-Metadata", "filename bG9jYWwud2VibQ==")
    .send()
    .await
    .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let at = header(&created, "location");
    let id = at.rsplit('/').next().unwrap().to_string();
    assert_eq!(header(&created, "tus-resumable"), "1.0.0");

    let wrong_type = tus(&server, reqwest::Method::PATCH, &at, &token)
        .header("Upload-Offset", "0")
        .header("Content-Type", "application/octet-stream")
        .body(vec![0u8; 4])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let third = file.len() / 3;
    let first = patch(&server, &at, &token, 0, &file[..third]).await;
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&first, "upload-offset"), third.to_string());

    let mismatch = patch(&server, &at, &token, 5, &file[5..10]).await;
    assert_eq!(mismatch.status(), StatusCode::CONFLICT);
    let body: Value = mismatch.json().await.unwrap();
    assert_eq!(body["error"], "offset_mismatch", "{body}");

    // The connection drops after 16 KiB of the rest: those bytes are kept.
    let sent = 16 * 1024;
    interrupted_patch(
        &server,
        &at,
        &token,
        third,
        file.len() - third,
        &file[third..third + sent],
    )
    .await;
    let head = head_offset(&server, &at, &token).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(header(&head, "cache-control"), "no-store");
    assert_eq!(header(&head, "upload-length"), file.len().to_string());
    assert_eq!(
        header(&head, "upload-metadata"),
        "filename bG9jYWwud2VibQ=="
    );
    let offset: usize = header(&head, "upload-offset").parse().unwrap();
    assert_eq!(offset, third + sent);
    let last = patch(&server, &at, &token, offset, &file[offset..]).await;
    assert_eq!(last.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&last, "upload-offset"), file.len().to_string());
    let recording = ann.wait_final(&id).await;
    assert_eq!(recording["status"], "completed", "{recording}");
    assert_eq!(recording["source"], "client");
    assert_playable(&ann.download(&id).await, 2.0);

    // Deferred length: set by the last PATCH.
    let created = tus(
        &server,
        reqwest::Method::POST,
        "/api/webrtc/uploads",
        &token,
    )
    .header("Upload-Defer-Length", "1")
    .send()
    .await
    .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let at = header(&created, "location");
    let id = at.rsplit('/').next().unwrap().to_string();
    let half = file.len() / 2;
    let first = patch(&server, &at, &token, 0, &file[..half]).await;
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    let head = head_offset(&server, &at, &token).await;
    assert_eq!(header(&head, "upload-defer-length"), "1");
    assert_eq!(header(&head, "upload-offset"), half.to_string());
    let last = tus(&server, reqwest::Method::PATCH, &at, &token)
        .header("Upload-Offset", half.to_string())
        .header("Upload-Length", file.len().to_string())
        .header("Content-Type", "application/offset+octet-stream")
        .body(file[half..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(last.status(), StatusCode::NO_CONTENT);
    let recording = ann.wait_final(&id).await;
    assert_eq!(recording["status"], "completed", "{recording}");

    // Someone else's upload is not theirs to resume.
    let bob = server.token("upl", "bob", capstan::auth::Role::Participant);
    let theirs = head_offset(&server, &at, &bob).await;
    assert_eq!(theirs.status(), StatusCode::FORBIDDEN);
    server.assert_clean_log();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_upload_loses_nothing() {
    let mut server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::read(make_webm(dir.path(), 2)).unwrap();
    let pieces: Vec<&[u8]> = file.chunks(8 * 1024).collect();
    let n = pieces.len() as u64;
    let id = new_id();
    let ann = Uploader::new(&server, "upl", "ann");
    for s in 0..n / 2 {
        let (status, body) = ann.chunk(&id, s, pieces[s as usize], false).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let tus_file = &file[..];
    let created = tus(
        &server,
        reqwest::Method::POST,
        "/api/webrtc/uploads",
        &ann.token,
    )
    .header("Upload-Length", tus_file.len().to_string())
    .send()
    .await
    .unwrap();
    let at = header(&created, "location");
    let tus_id = at.rsplit('/').next().unwrap().to_string();
    let half = tus_file.len() / 2;
    assert_eq!(
        patch(&server, &at, &ann.token, 0, &tus_file[..half])
            .await
            .status(),
        StatusCode::NO_CONTENT
    );

    server.restart().await;

    let (_, status) = ann.status(&id).await;
    assert_eq!(status["data"]["chunksReceived"], n / 2, "{status}");
    assert_eq!(status["data"]["state"], "receiving");
    // The last chunk before the restart again: a repeat, not a conflict.
    let (code, again) = ann
        .chunk(&id, n / 2 - 1, pieces[(n / 2 - 1) as usize], false)
        .await;
    assert_eq!(
        (code, again["message"].as_str()),
        (StatusCode::OK, Some("Chunk already received"))
    );
    for s in n / 2..n {
        let (code, body) = ann.chunk(&id, s, pieces[s as usize], s == n - 1).await;
        assert_eq!(code, StatusCode::OK, "{body}");
    }
    let recording = ann.wait_final(&id).await;
    assert_eq!(recording["status"], "completed", "{recording}");
    assert_playable(&ann.download(&id).await, 2.0);

    let head = head_offset(&server, &at, &ann.token).await;
    assert_eq!(header(&head, "upload-offset"), half.to_string());
    let rest = patch(&server, &at, &ann.token, half, &tus_file[half..]).await;
    assert_eq!(rest.status(), StatusCode::NO_CONTENT);
    let recording = ann.wait_final(&tus_id).await;
    assert_eq!(recording["status"], "completed", "{recording}");
    server.assert_clean_log();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_capped_per_user_and_expire() {
    let server = TestServer::start_with(&[
        ("CAPSTAN_UPLOAD_MAX_PER_USER", "2"),
        ("CAPSTAN_UPLOAD_TTL", "2s"),
        ("CAPSTAN_UPLOAD_MAX_SIZE", "100KiB"),
    ])
    .await;
    let ann = Uploader::new(&server, "upl", "ann");
    let (a, b) = (new_id(), new_id());
    assert_eq!(ann.chunk(&a, 0, b"a", false).await.0, StatusCode::OK);
    assert_eq!(
        ann.chunk(&b, 0, &[0u8; 60_000], false).await.0,
        StatusCode::OK
    );
    assert_refused(
        ann.chunk(&new_id(), 0, b"c", false).await,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_uploads",
        "already has 2 unfinished uploads",
    );
    assert_refused(
        ann.chunk(&b, 1, &[0u8; 60_000], false).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "the limit is 102400",
    );
    // Another user of the room has their own cap.
    let bob = Uploader::new(&server, "upl", "bob");
    assert_eq!(bob.chunk(&new_id(), 0, b"b", false).await.0, StatusCode::OK);

    // Untouched for the TTL: removed, files and all.
    common::wait_for("the uploads to expire", Duration::from_secs(10), || async {
        ann.status(&a).await.0 == StatusCode::NOT_FOUND
    })
    .await;
    let uploads = server.data_dir.path().join("uploads");
    let left: Vec<_> = std::fs::read_dir(&uploads)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.iter().all(|name| name != a.as_str()), "{left:?}");
    assert_eq!(ann.chunk(&new_id(), 0, b"c", false).await.0, StatusCode::OK);
}
