//! Recordings delivered to a real S3-compatible server (moto, on loopback): the object has the
//! right size, download redirects to a working presigned URL, delete removes the object; with
//! the store down the upload is retried, the local file kept and the status tells, and the
//! upload succeeds once the store is back (by itself, or through `POST .../upload`).

mod common;

use capstan::storage::s3::{S3Config, S3Store};
use common::check::{assert_decodes_cleanly, probe};
use common::moto::Moto;
use common::peer::Participant;
use common::recording::{call, id_of, Host};
use common::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const BUCKET: &str = "recordings";
const WAIT: Duration = Duration::from_secs(60);

async fn s3_server(moto: &Moto, attempts: &str) -> TestServer {
    TestServer::start_with(&[
        ("RECORDING_STORAGE_PROVIDER", "s3"),
        ("RECORDING_S3_BUCKET", BUCKET),
        ("RECORDING_S3_REGION", "us-east-1"),
        ("RECORDING_S3_ACCESS_KEY_ID", "test"),
        ("RECORDING_S3_SECRET_ACCESS_KEY", "test"),
        ("RECORDING_S3_ENDPOINT", &moto.endpoint),
        ("CAPSTAN_UPLOAD_ATTEMPTS", attempts),
        ("CAPSTAN_UPLOAD_BACKOFF", "500ms"),
    ])
    .await
}

/// Size of an object as the store reports it (HeadObject through the real S3 client).
async fn object_size(moto: &Moto, key: &str) -> Option<u64> {
    let store = S3Store::new(S3Config {
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        endpoint: Some(moto.endpoint.clone()),
        ..S3Config::new(BUCKET)
    })
    .unwrap();
    store.object_size(key).await.expect("HeadObject")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_download_delete_and_readyz() {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let server = s3_server(&moto, "5").await;
    let ready = reqwest::get(format!("{}/readyz", server.base))
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let _a = Participant::join(&server, "r", "a").await;
    let host = Host::new(&server, "r");
    let id = id_of(&host.record_tracks("s3", 4).await);
    let done = host.wait_status(&id, "completed", WAIT).await;
    let key = done["s3_key"].as_str().expect("s3_key").to_string();
    assert!(done["local_path"].is_null(), "spool copy removed: {done}");
    assert_eq!(done["metadata"]["upload"]["state"], "completed");
    let size = done["file_size_bytes"].as_u64().unwrap();
    assert_eq!(object_size(&moto, &key).await, Some(size));
    assert!(server.metric("capstan_upload_bytes_total").await >= size as f64);

    // Download: a redirect to a presigned URL that serves the object.
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = format!("{}/api/webrtc/recordings/{id}/download", server.base);
    let redirect = no_redirect
        .get(&url)
        .bearer_auth(&host.token)
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), StatusCode::TEMPORARY_REDIRECT);
    let dir = tempfile::tempdir().unwrap();
    let file = host.download(&id, 0, dir.path()).await;
    assert_eq!(std::fs::metadata(&file).unwrap().len(), size);
    probe(&file).assert_codecs(&["video:vp8", "audio:opus"]);
    assert_decodes_cleanly(&file);

    let delete = format!("{}/api/webrtc/recordings/{id}", server.base);
    let deleted = call(Method::DELETE, &delete, Some(&host.token)).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(object_size(&moto, &key).await, None, "object deleted");

    // readyz tells when the store is unreachable.
    let mut moto = moto;
    moto.stop();
    let ready = reqwest::get(format!("{}/readyz", server.base))
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = ready.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("object store"),
        "{body}"
    );
    server.assert_clean_log();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_down_is_retried_and_nothing_is_lost() {
    let mut moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let patient = s3_server(&moto, "12").await;
    let impatient = s3_server(&moto, "2").await;
    let _a = Participant::join(&patient, "r", "a").await;
    let _b = Participant::join(&impatient, "r", "b").await;
    let (p_host, i_host) = (Host::new(&patient, "r"), Host::new(&impatient, "r"));
    moto.stop();

    // Patient server: retries while the store is down, then succeeds by itself.
    let p_id = id_of(&p_host.record_tracks("s3", 3).await);
    let retrying = p_host.wait_upload_retrying(&p_id, WAIT).await;
    let upload = &retrying["metadata"]["upload"];
    assert_eq!(upload["state"], "retrying", "{retrying}");
    assert!(upload["last_error"].is_string(), "{retrying}");
    let local = retrying["files"][0]["local_path"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(Path::new(&local).exists(), "local file kept while retrying");

    // Impatient server: gives up, says so, keeps the file.
    let i_id = id_of(&i_host.record_tracks("s3", 3).await);
    let failed = i_host.wait_status(&i_id, "failed", WAIT).await;
    assert!(
        failed["error"].as_str().unwrap().contains("upload failed"),
        "{failed}"
    );
    assert_eq!(failed["metadata"]["upload"]["state"], "failed");
    let i_local = failed["local_path"].as_str().unwrap().to_string();
    assert!(
        Path::new(&i_local).exists(),
        "local file kept after failure"
    );
    assert!(impatient.metric("capstan_upload_failures_total").await >= 1.0);

    moto.restart().await;
    moto.create_bucket(BUCKET).await;
    let done = p_host.wait_status(&p_id, "completed", WAIT).await;
    let key = done["s3_key"].as_str().unwrap();
    assert_eq!(
        object_size(&moto, key).await,
        done["file_size_bytes"].as_u64()
    );
    assert!(
        !Path::new(&local).exists(),
        "spool copy removed after the confirmed upload"
    );

    let retry = format!("{}/api/webrtc/recordings/{i_id}/upload", impatient.base);
    let again = call(Method::POST, &retry, Some(&i_host.token))
        .await
        .expect(StatusCode::OK);
    assert_eq!(again["status"], "processing");
    let done = i_host.wait_status(&i_id, "completed", WAIT).await;
    let key = done["s3_key"].as_str().unwrap();
    assert_eq!(
        object_size(&moto, key).await,
        done["file_size_bytes"].as_u64()
    );
    assert!(!Path::new(&i_local).exists());
    let twice = call(Method::POST, &retry, Some(&i_host.token)).await;
    assert_eq!(twice.status, StatusCode::CONFLICT, "nothing left to upload");
}
