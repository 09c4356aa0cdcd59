//! Recordings delivered to GCS and Azure Blob emulators (fake-gcs-server and Azurite, on
//! loopback), once per provider: the object has the right size, download redirects to a
//! working signed URL and the file decodes, delete removes the object, readyz names the store
//! when it is down; with the store down the upload is retried, then fails with the reason in
//! `metadata.upload` keeping the local file, and `POST .../upload` delivers it once the store is
//! back.

mod common;

use common::check::{assert_decodes_cleanly, probe};
use common::peer::Participant;
use common::recording::{call, id_of, Host};
use common::stores::{Emulator, Provider, Tune};
use common::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// A server that delivers to `emulator`, with `attempts` upload attempts 500 ms apart.
async fn server(emulator: &Emulator, attempts: &str) -> TestServer {
    let mut env = emulator.server_env();
    env.push(("CAPSTAN_UPLOAD_ATTEMPTS", attempts.into()));
    env.push(("CAPSTAN_UPLOAD_BACKOFF", "500ms".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    TestServer::start_with(&env).await
}

/// The size of `key` as the store reports it.
async fn object_size(emulator: &Emulator, key: &str) -> Option<u64> {
    let store = emulator.store(Tune::default());
    store.object_size(key).await.expect("object size")
}

macro_rules! per_provider {
    ($($scenario:ident),+ $(,)?) => {
        mod gcs {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                super::$scenario(super::Provider::Gcs).await
            })+
        }
        mod azure {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                super::$scenario(super::Provider::Azure).await
            })+
        }
    };
}

per_provider!(
    upload_download_delete_and_readyz,
    store_down_fails_with_the_reason_then_uploads_on_request,
);

async fn upload_download_delete_and_readyz(provider: Provider) {
    let mut emulator = Emulator::start(provider).await;
    let server = server(&emulator, "5").await;
    let ready = reqwest::get(format!("{}/readyz", server.base))
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["storage"], provider.backend(), "{body}");
    let _a = Participant::join(&server, "r", "a").await;
    let host = Host::new(&server, "r");
    let id = id_of(&host.record_tracks(provider.backend(), 4).await);
    let done = host.wait_status(&id, "completed", WAIT).await;
    let key = done["s3_key"].as_str().expect("object key").to_string();
    assert!(key.starts_with("recordings/r/"), "{key}");
    assert!(done["local_path"].is_null(), "spool copy removed: {done}");
    assert_eq!(done["metadata"]["upload"]["state"], "completed");
    assert_eq!(done["metadata"]["upload"]["percent"], 100.0);
    let size = done["file_size_bytes"].as_u64().unwrap();
    assert_eq!(object_size(&emulator, &key).await, Some(size));

    // Download: a redirect to a signed URL that serves the object.
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
    assert_eq!(object_size(&emulator, &key).await, None, "object deleted");

    // readyz names the store while it is unreachable, and recovers once it is back.
    emulator.stop();
    let ready = reqwest::get(format!("{}/readyz", server.base))
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = ready.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("object store"), "{body}");
    assert!(message.contains(provider.store_name()), "{body}");
    emulator.restart().await;
    let ready = reqwest::get(format!("{}/readyz", server.base))
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    server.assert_clean_log();
}

async fn store_down_fails_with_the_reason_then_uploads_on_request(provider: Provider) {
    let mut emulator = Emulator::start(provider).await;
    let server = server(&emulator, "3").await;
    let _a = Participant::join(&server, "r", "a").await;
    let host = Host::new(&server, "r");
    emulator.stop();

    let id = id_of(&host.record_tracks(provider.backend(), 3).await);
    let retrying = host.wait_upload_retrying(&id, WAIT).await;
    assert!(
        retrying["metadata"]["upload"]["last_error"].is_string(),
        "{retrying}"
    );
    let failed = host.wait_status(&id, "failed", WAIT).await;
    let upload = &failed["metadata"]["upload"];
    assert_eq!(upload["state"], "failed", "{failed}");
    assert_eq!(upload["attempt"], 3, "{failed}");
    let reason = upload["last_error"].as_str().unwrap();
    assert!(reason.contains("3 attempt"), "{reason}");
    let local = failed["local_path"].as_str().unwrap().to_string();
    assert!(Path::new(&local).exists(), "local file kept after failure");

    emulator.restart().await;
    let retry = format!("{}/api/webrtc/recordings/{id}/upload", server.base);
    let again = call(Method::POST, &retry, Some(&host.token))
        .await
        .expect(StatusCode::OK);
    assert_eq!(again["status"], "processing");
    let done = host.wait_status(&id, "completed", WAIT).await;
    let key = done["s3_key"].as_str().unwrap();
    assert_eq!(
        object_size(&emulator, key).await,
        done["file_size_bytes"].as_u64()
    );
    assert!(!Path::new(&local).exists(), "spool copy removed");
}
