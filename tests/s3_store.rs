//! The S3 object store against a real S3-compatible server (moto on 127.0.0.1): single and
//! multipart uploads checked byte for byte, presigned GETs, delete, the store going down and
//! coming back, a multipart upload cut mid-part (aborted), readiness checks and server-side
//! encryption.

mod common;

use capstan::storage::s3::{S3Config, S3Store};
use capstan::storage::{LocalMedia, StoreError, UploadProgress, UploadReport};
use common::cutting_proxy::CuttingProxy;
use common::moto::Moto;
use rand::{RngCore, SeedableRng};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

const BUCKET: &str = "recordings";
const MIB: usize = 1024 * 1024;

/// The default configuration for `BUCKET` on `moto` (which accepts any credentials).
fn config(moto: &Moto) -> S3Config {
    S3Config {
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        endpoint: Some(moto.endpoint.clone()),
        prefix: "recordings/".into(),
        ..S3Config::new(BUCKET)
    }
}

/// A store for `BUCKET` on `moto`, with the defaults unless `tune` changes them.
fn store(moto: &Moto, tune: impl FnOnce(&mut S3Config)) -> S3Store {
    let mut cfg = config(moto);
    tune(&mut cfg);
    S3Store::new(cfg).expect("valid S3 config")
}

/// Moto with `BUCKET` created.
async fn moto_with_bucket() -> Moto {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    moto
}

/// Writes `len` seeded random bytes (so misplaced parts would show) and returns them.
fn write_file(dir: &Path, name: &str, len: usize) -> (PathBuf, Vec<u8>) {
    let mut bytes = vec![0; len];
    rand::rngs::StdRng::seed_from_u64(len as u64).fill_bytes(&mut bytes);
    let path = dir.join(name);
    std::fs::write(&path, &bytes).expect("write test file");
    (path, bytes)
}

/// Uploads and returns the report's outcome with every progress event.
async fn upload(
    store: &S3Store,
    path: &Path,
    key: &str,
) -> (Result<UploadReport, StoreError>, Vec<UploadProgress>) {
    let events = Mutex::new(Vec::new());
    let result = store
        .upload(LocalMedia::new(path, None), key, |p| {
            events.lock().unwrap().push(p)
        })
        .await;
    (result, events.into_inner().unwrap())
}

/// GETs `key` through a presigned URL; returns the response.
async fn presigned_get(store: &S3Store, key: &str) -> reqwest::Response {
    let url = store
        .presigned_get(key, Duration::from_secs(60))
        .await
        .expect("presign");
    assert!(url.contains("X-Amz-Signature="), "not presigned: {url}");
    let response = reqwest::get(&url).await.expect("GET presigned URL");
    assert!(
        response.status().is_success(),
        "GET {url}: {}",
        response.status()
    );
    response
}

#[tokio::test]
async fn small_file_is_put_and_readable_through_a_presigned_url() {
    let moto = moto_with_bucket().await;
    let store = store(&moto, |_| {});
    let dir = tempfile::tempdir().unwrap();
    let (path, bytes) = write_file(dir.path(), "small.webm", 300_000);
    let key = store.key_for("small.webm");
    assert_eq!(key, "recordings/small.webm");

    let (report, events) = upload(&store, &path, &key).await;
    let report = report.expect("upload");
    assert_eq!((report.bytes, report.attempts), (300_000, 1));
    let uploaded: Vec<_> = events.iter().map(|e| e.uploaded).collect();
    assert_eq!(uploaded, [0, 300_000], "one request, no parts");
    assert!(!report.etag.unwrap().contains('-'), "not a multipart ETag");

    assert_eq!(store.object_size(&key).await.unwrap(), Some(300_000));
    let body = presigned_get(&store, &key).await.bytes().await.unwrap();
    assert!(body == bytes, "downloaded bytes differ from the file");
    assert!(path.exists(), "the local file is the caller's to delete");
}

#[tokio::test]
async fn large_file_goes_up_in_parallel_parts() {
    let moto = moto_with_bucket().await;
    let store = store(&moto, |cfg| {
        cfg.part_size = 5 * MIB as u64;
        cfg.multipart_threshold = 16 * MIB as u64;
        cfg.parallel_parts = 2;
    });
    let dir = tempfile::tempdir().unwrap();
    let (path, bytes) = write_file(dir.path(), "large.mkv", 20 * MIB);
    let key = store.key_for("large.mkv");

    let (report, events) = upload(&store, &path, &key).await;
    let report = report.expect("upload");
    // The store's ETag for a multipart object is "<md5 of part md5s>-<part count>".
    let etag = report.etag.expect("ETag");
    assert!(etag.ends_with("-4"), "expected a 4-part ETag, got {etag}");
    let uploaded: Vec<_> = events.iter().map(|e| e.uploaded / MIB as u64).collect();
    assert_eq!(uploaded, [0, 5, 10, 15, 20], "progress once per 5 MiB part");

    assert_eq!(
        store.object_size(&key).await.unwrap(),
        Some(20 * MIB as u64)
    );
    let body = presigned_get(&store, &key).await.bytes().await.unwrap();
    assert!(body == bytes, "downloaded bytes differ from the file");
}

/// Every part upload is cut mid-body by a proxy in front of moto (the SDK's own retry too):
/// the failed multipart upload is aborted, so the store keeps no parts and no object.
#[tokio::test]
async fn a_multipart_upload_cut_mid_part_is_aborted() {
    let moto = moto_with_bucket().await;
    let upstream = moto.endpoint.trim_start_matches("http://");
    let proxy = CuttingProxy::start(upstream, MIB).await;
    let mut cfg = config(&moto);
    cfg.endpoint = Some(proxy.endpoint.clone());
    cfg.part_size = 5 * MIB as u64;
    cfg.multipart_threshold = 8 * MIB as u64;
    cfg.max_attempts = 1;
    let proxied = S3Store::new(cfg).expect("valid S3 config");
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_file(dir.path(), "cut.mkv", 12 * MIB);
    let key = proxied.key_for("cut.mkv");

    let (result, _) = upload(&proxied, &path, &key).await;
    let error = result.expect_err("every part is cut").to_string();
    assert!(error.contains("UploadPart"), "{error}");
    assert!(path.exists(), "the local file survives");
    // Asked of moto directly: no upload left in progress, no object.
    let uploads = reqwest::get(format!("{}/{BUCKET}?uploads", moto.endpoint))
        .await
        .expect("ListMultipartUploads")
        .text()
        .await
        .unwrap();
    assert!(
        uploads.contains("<ListMultipartUploadsResult") && !uploads.contains("<Upload>"),
        "an upload is left in progress: {uploads}"
    );
    let direct = store(&moto, |_| {});
    assert_eq!(direct.object_size(&key).await.unwrap(), None, "no object");
}

#[tokio::test]
async fn delete_removes_the_object() {
    let moto = moto_with_bucket().await;
    let store = store(&moto, |_| {});
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_file(dir.path(), "gone.webm", 1000);
    let key = store.key_for("gone.webm");
    upload(&store, &path, &key).await.0.expect("upload");
    assert_eq!(store.object_size(&key).await.unwrap(), Some(1000));

    store.delete(&key).await.expect("delete");
    assert_eq!(store.object_size(&key).await.unwrap(), None);
    assert!(path.exists(), "delete touches only the object");
}

#[tokio::test]
async fn store_down_fails_after_the_attempts_then_recovers() {
    let mut moto = moto_with_bucket().await;
    let store = store(&moto, |cfg| {
        cfg.max_attempts = 3;
        cfg.backoff = Duration::from_millis(200);
    });
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_file(dir.path(), "later.webm", 50_000);
    let key = store.key_for("later.webm");
    moto.stop();

    let (result, events) = upload(&store, &path, &key).await;
    let error = result.expect_err("upload to a stopped store");
    assert!(
        matches!(error, StoreError::Upload { attempts: 3, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("s3://recordings/recordings/later.webm"),
        "{message}"
    );
    assert!(message.contains("3 attempt"), "{message}");
    let attempts: Vec<_> = events.iter().map(|e| e.attempt).collect();
    assert_eq!(
        attempts,
        [1, 1, 2, 2, 3, 3],
        "start and failure of each attempt"
    );
    let last = events.last().unwrap();
    assert!(
        last.last_error
            .as_deref()
            .is_some_and(|e| e.contains("PutObject")),
        "{last:?}"
    );
    assert!(
        events[2].last_error.is_some(),
        "a retry reports the previous error"
    );
    assert!(path.exists(), "the local file survives a failed upload");

    moto.restart().await;
    moto.create_bucket(BUCKET).await;
    let task = tokio::spawn({
        let (store, path, key) = (store.clone(), path.clone(), key.clone());
        async move {
            store
                .upload(LocalMedia::new(&path, None), &key, |_| {})
                .await
        }
    });
    let report = task.await.unwrap().expect("upload once the store is back");
    assert_eq!(report.bytes, 50_000);
    assert_eq!(store.object_size(&key).await.unwrap(), Some(50_000));
}

#[tokio::test]
async fn check_reports_whether_the_bucket_is_reachable() {
    let mut moto = moto_with_bucket().await;
    let missing = store(&moto, |cfg| cfg.bucket = "no-such-bucket".into());
    let up = store(&moto, |_| {});
    up.check().await.expect("bucket reachable");
    let error = missing.check().await.expect_err("missing bucket");
    assert!(error.to_string().contains("s3://no-such-bucket"), "{error}");

    moto.stop();
    let error = up.check().await.expect_err("store down");
    assert!(error.to_string().contains("HeadBucket"), "{error}");
}

#[tokio::test]
async fn server_side_encryption_is_requested_for_single_and_multipart_uploads() {
    let moto = moto_with_bucket().await;
    let store = store(&moto, |cfg| {
        cfg.sse = Some("AES256".into());
        cfg.part_size = 5 * MIB as u64;
        cfg.multipart_threshold = 5 * MIB as u64;
    });
    let dir = tempfile::tempdir().unwrap();
    for (name, len) in [("small.webm", 4096), ("parts.webm", 6 * MIB)] {
        let (path, _) = write_file(dir.path(), name, len);
        let key = store.key_for(name);
        let report = upload(&store, &path, &key)
            .await
            .0
            .expect("upload with SSE");
        assert_eq!(
            report.etag.unwrap().contains('-'),
            len > 4096,
            "{name}: multipart?"
        );

        let response = presigned_get(&store, &key).await;
        let sse = response.headers().get("x-amz-server-side-encryption");
        assert_eq!(sse.and_then(|v| v.to_str().ok()), Some("AES256"), "{name}");
    }
}
