//! The GCS and Azure Blob stores against real emulators on 127.0.0.1 (fake-gcs-server and
//! Azurite): single-chunk and multi-part uploads checked byte for byte through signed URLs,
//! progress, empty files, delete, the store going down and coming back, and readiness checks.
//! Every scenario runs once per provider.

mod common;

use capstan::storage::{LocalMedia, ObjectStore, Retry, StoreError, UploadProgress, UploadReport};
use common::stores::{Emulator, Provider, Tune, MIB};
use rand::{RngCore, SeedableRng};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Writes `len` seeded random bytes (so misplaced parts would show) and returns them.
fn write_file(dir: &Path, name: &str, len: u64) -> (PathBuf, Vec<u8>) {
    let mut bytes = vec![0; len as usize];
    rand::rngs::StdRng::seed_from_u64(len).fill_bytes(&mut bytes);
    let path = dir.join(name);
    std::fs::write(&path, &bytes).expect("write test file");
    (path, bytes)
}

/// Uploads and returns the outcome with every progress event.
async fn upload(
    store: &ObjectStore,
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

/// GETs `key` through a signed URL; returns the body.
async fn signed_get(store: &ObjectStore, key: &str) -> Vec<u8> {
    let url = store
        .presigned_get(key, Duration::from_secs(60))
        .await
        .expect("sign a URL");
    let signature = match store {
        ObjectStore::Gcs(_) => "X-Goog-Signature=",
        _ => "sig=",
    };
    assert!(url.contains(signature), "not signed: {url}");
    let response = reqwest::get(&url).await.expect("GET signed URL");
    assert!(
        response.status().is_success(),
        "GET {url}: {}",
        response.status()
    );
    response.bytes().await.unwrap().to_vec()
}

/// One `#[tokio::test]` per provider for each scenario.
macro_rules! per_provider {
    ($($scenario:ident),+ $(,)?) => {
        mod gcs {
            $(#[tokio::test]
            async fn $scenario() {
                super::$scenario(super::Provider::Gcs).await
            })+
        }
        mod azure {
            $(#[tokio::test]
            async fn $scenario() {
                super::$scenario(super::Provider::Azure).await
            })+
        }
    };
}

per_provider!(
    small_file_is_one_part_and_readable_through_a_signed_url,
    large_file_goes_up_in_parts,
    empty_file_uploads,
    delete_removes_the_object,
    store_down_fails_after_the_attempts_then_recovers,
    check_reports_whether_the_bucket_is_reachable,
);

async fn small_file_is_one_part_and_readable_through_a_signed_url(provider: Provider) {
    let emulator = Emulator::start(provider).await;
    let store = emulator.store(Tune::default());
    let dir = tempfile::tempdir().unwrap();
    let (path, bytes) = write_file(dir.path(), "small.webm", 300_000);
    let key = store.key_for("room/small.webm");
    assert_eq!(key, "recordings/room/small.webm");

    let (report, events) = upload(&store, &path, &key).await;
    let report = report.expect("upload");
    assert_eq!((report.bytes, report.attempts), (300_000, 1));
    let uploaded: Vec<_> = events.iter().map(|e| e.uploaded).collect();
    assert_eq!(uploaded, [0, 300_000], "one part");
    assert!(report.etag.is_some(), "the object's ETag");

    assert_eq!(store.object_size(&key).await.unwrap(), Some(300_000));
    assert!(signed_get(&store, &key).await == bytes, "bytes differ");
    assert!(path.exists(), "the local file is the caller's to delete");
}

async fn large_file_goes_up_in_parts(provider: Provider) {
    let emulator = Emulator::start(provider).await;
    let store = emulator.store(Tune {
        part_size: 5 * MIB,
        ..Tune::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let (path, bytes) = write_file(dir.path(), "large.mkv", 20 * MIB + 1000);
    let key = store.key_for("large.mkv");

    let (report, events) = upload(&store, &path, &key).await;
    report.expect("upload");
    let uploaded: Vec<_> = events.iter().map(|e| e.uploaded).collect();
    let total = 20 * MIB + 1000;
    // Start, then the running total as each of the 5 parts is accepted (in any order).
    assert_eq!(uploaded.len(), 6, "{uploaded:?}");
    assert!(uploaded.windows(2).all(|w| w[0] < w[1]), "{uploaded:?}");
    assert_eq!(uploaded.last(), Some(&total));
    assert_eq!(store.object_size(&key).await.unwrap(), Some(total));
    assert!(signed_get(&store, &key).await == bytes, "bytes differ");
}

async fn empty_file_uploads(provider: Provider) {
    let emulator = Emulator::start(provider).await;
    let store = emulator.store(Tune::default());
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_file(dir.path(), "empty.webm", 0);
    let key = store.key_for("empty.webm");
    let report = upload(&store, &path, &key).await.0.expect("upload");
    assert_eq!(report.bytes, 0);
    assert_eq!(store.object_size(&key).await.unwrap(), Some(0));
}

async fn delete_removes_the_object(provider: Provider) {
    let emulator = Emulator::start(provider).await;
    let store = emulator.store(Tune::default());
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_file(dir.path(), "gone.webm", 1000);
    let key = store.key_for("gone.webm");
    upload(&store, &path, &key).await.0.expect("upload");
    assert_eq!(store.object_size(&key).await.unwrap(), Some(1000));

    store.delete(&key).await.expect("delete");
    assert_eq!(store.object_size(&key).await.unwrap(), None);
    store
        .delete(&key)
        .await
        .expect("deleting a missing object is fine");
    assert!(path.exists(), "delete touches only the object");
}

async fn store_down_fails_after_the_attempts_then_recovers(provider: Provider) {
    let mut emulator = Emulator::start(provider).await;
    let store = emulator.store(Tune {
        retry: Retry {
            max_attempts: 3,
            backoff: Duration::from_millis(200),
        },
        ..Tune::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_file(dir.path(), "later.webm", 50_000);
    let key = store.key_for("later.webm");
    emulator.stop();

    let (result, events) = upload(&store, &path, &key).await;
    let error = result.expect_err("upload to a stopped store");
    assert!(
        matches!(error, StoreError::Upload { attempts: 3, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&emulator.location(&key)), "{message}");
    assert!(message.contains("3 attempt"), "{message}");
    let attempts: Vec<_> = events.iter().map(|e| e.attempt).collect();
    assert_eq!(
        attempts,
        [1, 1, 2, 2, 3, 3],
        "start and failure of each attempt"
    );
    assert!(events.last().unwrap().last_error.is_some(), "{events:?}");
    assert!(
        events[2].last_error.is_some(),
        "a retry reports the previous error"
    );
    assert!(path.exists(), "the local file survives a failed upload");

    emulator.restart().await;
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

async fn check_reports_whether_the_bucket_is_reachable(provider: Provider) {
    let mut emulator = Emulator::start(provider).await;
    let up = emulator.store(Tune::default());
    let missing = emulator.store(Tune {
        bucket: "no-such-bucket",
        ..Tune::default()
    });
    up.check().await.expect("bucket reachable");
    let error = missing.check().await.expect_err("missing bucket");
    assert!(error.to_string().contains("no-such-bucket"), "{error}");

    emulator.stop();
    let error = up.check().await.expect_err("store down");
    let store_name = provider.store_name();
    assert!(error.to_string().starts_with(store_name), "{error}");

    emulator.restart().await;
    up.check().await.expect("reachable again after a restart");
}
