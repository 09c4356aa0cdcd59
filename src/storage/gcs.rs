//! The Google Cloud Storage bucket that finished recordings are uploaded to.
//!
//! Uploads are JSON-API resumable uploads: the file goes up in chunks read from disk at their
//! offset (never the whole file in memory), and an upload only counts once the object's
//! metadata reports the local file's size. A failed upload is cancelled and retried whole, with
//! exponential backoff (`super::upload`). `object_store` supplies the credentials (a
//! service-account key signs its own tokens; without one, the application default credentials
//! or the instance metadata server) and the V4 signed download URLs.
//!
//! `endpoint` points everything at another server speaking the GCS API (an emulator): it
//! becomes the credentials' `gcs_base_url`, which `object_store` signs URLs for too.

use super::error::{chain, ensure, AttemptError, StoreError};
use super::upload::{self, Attempt, LocalMedia, Retry, UploadProgress, UploadReport};
use object_store::gcp::{GoogleCloudStorage, GoogleCloudStorageBuilder};
use object_store::signer::Signer;
use object_store::{ClientOptions, RetryConfig};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::{header, Method, StatusCode};
use std::sync::Arc;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;
/// Resumable-upload chunks must be multiples of this (except the last one).
const CHUNK_UNIT: u64 = 256 * 1024;
/// Where GCS is, unless `endpoint` says otherwise.
const GCS_URL: &str = "https://storage.googleapis.com";
/// How long [`GcsStore::check`] waits for the bucket's metadata.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a connection to the store may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Upper bound for one request (one chunk).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Characters of an object name that stay as they are in a JSON-API URL path.
const NAME: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Where and how recordings are uploaded (`RECORDING_GCS_*`, see `src/recording/config.rs`).
#[derive(Clone)]
pub struct GcsConfig {
    /// `RECORDING_GCS_BUCKET`.
    pub bucket: String,
    /// `RECORDING_GCS_PROJECT_ID`: logged at start; bucket names are global, so requests do
    /// not need it.
    pub project_id: Option<String>,
    /// Service-account key JSON (`RECORDING_GCS_CREDENTIALS`, or the content of the file
    /// `RECORDING_GCS_KEY_FILENAME`); without it the application default credentials are used.
    pub credentials: Option<String>,
    /// `RECORDING_GCS_ENDPOINT`: another GCS-API server, e.g. an emulator; needs `credentials`.
    pub endpoint: Option<String>,
    /// Prepended to every object name by [`GcsStore::key_for`]; default `recordings/`.
    pub prefix: String,
    /// Bytes per resumable-upload chunk, a multiple of 256 KiB; default 8 MiB.
    pub chunk_size: u64,
    /// Whole-upload attempts and backoff; default 5 attempts from 1 s.
    pub retry: Retry,
}

impl std::fmt::Debug for GcsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcsConfig")
            .field("bucket", &self.bucket)
            .field("project_id", &self.project_id)
            .field("endpoint", &self.endpoint)
            .field("prefix", &self.prefix)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<hidden>"),
            )
            .finish_non_exhaustive()
    }
}

impl GcsConfig {
    /// The defaults for `bucket`.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            project_id: None,
            credentials: None,
            endpoint: None,
            prefix: "recordings/".into(),
            chunk_size: 8 * MIB,
            retry: Retry {
                max_attempts: 5,
                backoff: Duration::from_secs(1),
            },
        }
    }

    /// Fails with the first problem that makes this configuration unusable.
    fn validate(&self) -> Result<(), StoreError> {
        let ensure = |ok: bool, problem: String| ensure("GCS", ok, problem);
        let endpoint = &self.endpoint;
        ensure(
            !self.bucket.is_empty(),
            "the bucket (RECORDING_GCS_BUCKET) is empty".into(),
        )?;
        ensure(
            endpoint.as_deref().is_none_or(is_http),
            format!("endpoint {endpoint:?} is not an http(s) URL"),
        )?;
        ensure(
            endpoint.is_none() || self.credentials.is_some(),
            "RECORDING_GCS_ENDPOINT needs a service-account key (RECORDING_GCS_KEY_FILENAME or \
             RECORDING_GCS_CREDENTIALS)"
                .into(),
        )?;
        ensure(
            self.chunk_size >= CHUNK_UNIT && self.chunk_size.is_multiple_of(CHUNK_UNIT),
            format!(
                "chunk size {} is not a multiple of 256 KiB",
                self.chunk_size
            ),
        )?;
        ensure(
            self.retry.max_attempts > 0,
            "max_attempts must be at least 1".into(),
        )
    }

    /// The service-account key with `gcs_base_url` set to the endpoint, if there is one.
    fn service_account_key(&self) -> Result<Option<String>, StoreError> {
        let Some(json) = &self.credentials else {
            return Ok(None);
        };
        let invalid = |problem: String| StoreError::Config {
            store: "GCS",
            problem: format!("the service-account key is not usable: {problem}"),
        };
        let mut key: serde_json::Value =
            serde_json::from_str(json).map_err(|e| invalid(e.to_string()))?;
        let fields = key
            .as_object_mut()
            .ok_or_else(|| invalid("not a JSON object".into()))?;
        if let Some(endpoint) = &self.endpoint {
            fields.insert("gcs_base_url".into(), endpoint.trim_end_matches('/').into());
        }
        Ok(Some(key.to_string()))
    }
}

fn is_http(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// A client for one bucket; cheap to clone.
#[derive(Clone)]
pub struct GcsStore {
    gcs: Arc<GoogleCloudStorage>,
    http: reqwest::Client,
    base_url: String,
    cfg: Arc<GcsConfig>,
}

impl GcsStore {
    /// Validates `cfg` and builds the client; makes no request.
    pub fn new(cfg: GcsConfig) -> Result<Self, StoreError> {
        cfg.validate()?;
        let options = ClientOptions::new()
            .with_allow_http(
                cfg.endpoint
                    .as_deref()
                    .is_some_and(|e| e.starts_with("http:")),
            )
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT);
        let mut builder = GoogleCloudStorageBuilder::new()
            .with_bucket_name(&cfg.bucket)
            .with_client_options(options)
            .with_retry(few_retries());
        if let Some(key) = cfg.service_account_key()? {
            builder = builder.with_service_account_key(key);
        }
        let gcs = builder.build().map_err(|e| StoreError::Config {
            store: "GCS",
            problem: chain(&e),
        })?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| StoreError::Config {
                store: "GCS",
                problem: chain(&e),
            })?;
        let base_url = cfg
            .endpoint
            .as_deref()
            .unwrap_or(GCS_URL)
            .trim_end_matches('/')
            .to_string();
        if let Some(project) = &cfg.project_id {
            tracing::info!(project, bucket = cfg.bucket, "recordings go to GCS");
        }
        Ok(Self {
            gcs: Arc::new(gcs),
            http,
            base_url,
            cfg: Arc::new(cfg),
        })
    }

    /// The object name for `name`: the configured prefix followed by `name`.
    pub fn key_for(&self, name: &str) -> String {
        format!("{}{name}", self.cfg.prefix)
    }

    /// Uploads the file at `path` to `key` (see [`super::ObjectStore::upload`]).
    pub async fn upload(
        &self,
        media: LocalMedia<'_>,
        key: &str,
        progress: impl Fn(UploadProgress) + Send + Sync,
    ) -> Result<UploadReport, StoreError> {
        upload::upload(self, media, key, progress).await
    }

    /// A V4 signed URL that lets anyone GET `key` for `ttl` (at most 7 days).
    pub async fn presigned_get(&self, key: &str, ttl: Duration) -> Result<String, StoreError> {
        let path = object_store::path::Path::from(key);
        let url = self.gcs.signed_url(Method::GET, &path, ttl).await;
        url.map(String::from)
            .map_err(|e| self.request_error("signing a URL", key, &e))
    }

    /// Deletes `key` (an object that is already gone is fine).
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let response = self
            .send(Method::DELETE, &self.object_url(key))
            .await
            .map_err(|e| self.request_error("objects.delete", key, &e))?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(()),
            _ => ok_status(response)
                .await
                .map(drop)
                .map_err(|e| self.request_error("objects.delete", key, &e)),
        }
    }

    /// Whether the bucket is reachable with these credentials (its metadata, at most 3 s).
    pub async fn check(&self) -> Result<(), StoreError> {
        let url = format!("{}/storage/v1/b/{}", self.base_url, self.bucket_segment());
        let get = async {
            let response = self.send(Method::GET, &url).await?;
            ok_status(response)
                .await
                .map(drop)
                .map_err(|e| AttemptError::request("bucket", &e))
        };
        match tokio::time::timeout(CHECK_TIMEOUT, get).await {
            Ok(result) => result.map_err(|e| self.request_error("buckets.get", "", &e)),
            Err(_) => Err(StoreError::Timeout {
                store: "GCS",
                operation: "buckets.get",
                location: format!("gs://{}", self.cfg.bucket),
                timeout: CHECK_TIMEOUT,
            }),
        }
    }

    /// The size of `key`, or `None` when there is no such object.
    pub async fn object_size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        self.metadata(key)
            .await
            .map(|m| m.map(|(size, _)| size))
            .map_err(|e| self.request_error("objects.get", key, &e))
    }

    /// The object's size and ETag, or `None` when there is no such object.
    async fn metadata(&self, key: &str) -> Result<Option<(u64, Option<String>)>, AttemptError> {
        #[derive(serde::Deserialize)]
        struct Object {
            size: String,
            etag: Option<String>,
        }
        let response = self
            .send(Method::GET, &self.object_url(key))
            .await
            .map_err(|e| AttemptError::request("objects.get", &e))?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = ok_status(response)
            .await
            .map_err(|e| AttemptError::request("objects.get", &e))?;
        let object: Object = response
            .json()
            .await
            .map_err(|e| AttemptError::request("objects.get", &e))?;
        let size = object.size.parse().map_err(|_| {
            AttemptError::Protocol(format!("objects.get: size {:?} is no number", object.size))
        })?;
        Ok(Some((size, object.etag)))
    }

    /// Starts a resumable upload of `total` bytes to `key`; returns the session URL.
    async fn start_session(&self, key: &str, total: u64) -> Result<String, AttemptError> {
        let url = format!(
            "{}/upload/storage/v1/b/{}/o?uploadType=resumable&name={}",
            self.base_url,
            self.bucket_segment(),
            utf8_percent_encode(key, NAME)
        );
        let request = self
            .authorized(Method::POST, &url)
            .await?
            .header("X-Upload-Content-Length", total)
            .header(header::CONTENT_LENGTH, 0);
        let response = request
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| AttemptError::request("starting a resumable upload", &e))?;
        let location = response.headers().get(header::LOCATION);
        location
            .and_then(|l| l.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| AttemptError::Protocol("the resumable upload has no session URL".into()))
    }

    /// Sends every chunk to the session in order, reporting bytes as chunks are accepted.
    async fn send_chunks(
        &self,
        session: &str,
        media: LocalMedia<'_>,
        total: u64,
        report: &(dyn Fn(u64) + Sync),
    ) -> Result<(), AttemptError> {
        for (offset, len) in upload::parts(total, self.cfg.chunk_size) {
            let range = if len == 0 {
                format!("bytes */{total}")
            } else {
                format!("bytes {offset}-{}/{total}", offset + len - 1)
            };
            let body = media.read(offset, len).await?;
            let operation = || format!("chunk at byte {offset}");
            let response = self
                .authorized(Method::PUT, session)
                .await?
                .header(header::CONTENT_RANGE, range)
                .body(body)
                .send()
                .await
                .map_err(|e| AttemptError::request(operation(), &e))?;
            // 308 "Resume Incomplete" for every chunk but the last one.
            if response.status() != StatusCode::PERMANENT_REDIRECT {
                ok_status(response)
                    .await
                    .map_err(|e| AttemptError::request(operation(), &e))?;
            }
            report(offset + len);
        }
        Ok(())
    }

    /// Best-effort cancel of a resumable upload, so the store drops what it received.
    async fn cancel(&self, session: &str) {
        let cancelled = match self.authorized(Method::DELETE, session).await {
            Ok(request) => request.send().await.map(drop).map_err(|e| chain(&e)),
            Err(e) => Err(e.to_string()),
        };
        if let Err(error) = cancelled {
            tracing::warn!(session, %error, "could not cancel a GCS resumable upload");
        }
    }

    /// A request with the bearer token of the configured credentials.
    async fn authorized(
        &self,
        method: Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, AttemptError> {
        let credential = self
            .gcs
            .credentials()
            .get_credential()
            .await
            .map_err(|e| AttemptError::request("getting a token", &e))?;
        let request = self.http.request(method, url);
        Ok(match credential.bearer.as_str() {
            "" => request,
            bearer => request.bearer_auth(bearer),
        })
    }

    /// Sends an authorized request without a body.
    async fn send(&self, method: Method, url: &str) -> Result<reqwest::Response, AttemptError> {
        let request = self.authorized(method, url).await?;
        request
            .send()
            .await
            .map_err(|e| AttemptError::request("request", &e))
    }

    /// The JSON-API URL of `key`'s metadata.
    fn object_url(&self, key: &str) -> String {
        format!(
            "{}/storage/v1/b/{}/o/{}",
            self.base_url,
            self.bucket_segment(),
            utf8_percent_encode(key, NAME)
        )
    }

    fn bucket_segment(&self) -> String {
        utf8_percent_encode(&self.cfg.bucket, NAME).to_string()
    }

    /// A [`StoreError::Request`] for `operation` on `key`.
    fn request_error(
        &self,
        operation: &'static str,
        key: &str,
        error: &dyn std::error::Error,
    ) -> StoreError {
        StoreError::Request {
            store: "GCS",
            operation,
            location: self.location(key),
            message: chain(error),
        }
    }
}

impl Attempt for GcsStore {
    fn location(&self, key: &str) -> String {
        format!("gs://{}/{key}", self.cfg.bucket)
    }

    fn retry(&self) -> Retry {
        self.cfg.retry
    }

    /// One resumable upload (cancelled when a chunk fails), then the size check.
    async fn upload_once(
        &self,
        media: LocalMedia<'_>,
        key: &str,
        total: u64,
        report: &(dyn Fn(u64) + Sync),
    ) -> Result<Option<String>, AttemptError> {
        let session = self.start_session(key, total).await?;
        if let Err(e) = self.send_chunks(&session, media, total, report).await {
            self.cancel(&session).await;
            return Err(e);
        }
        match self.metadata(key).await? {
            Some((size, etag)) if size == total => Ok(etag),
            found => Err(AttemptError::SizeMismatch {
                object: found.map(|(size, _)| size),
                local: total,
            }),
        }
    }
}

/// `object_store`'s own retries: one, quickly, so a store that is down fails into the
/// whole-upload loop.
fn few_retries() -> RetryConfig {
    RetryConfig {
        max_retries: 1,
        retry_timeout: Duration::from_secs(10),
        ..RetryConfig::default()
    }
}

/// The response if its status is a success, else an error with the status and the body.
async fn ok_status(response: reqwest::Response) -> Result<reqwest::Response, StatusError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    Err(StatusError {
        status,
        body: body.chars().take(300).collect(),
    })
}

/// A response whose status is not a success.
#[derive(Debug, thiserror::Error)]
#[error("HTTP {status}: {body}")]
struct StatusError {
    status: StatusCode,
    body: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(cfg: GcsConfig) -> String {
        match GcsStore::new(cfg) {
            Err(StoreError::Config { problem, .. }) => problem,
            Err(other) => panic!("expected a config error, got {other}"),
            Ok(_) => panic!("expected a config error, got a store"),
        }
    }

    #[test]
    fn unusable_configs_are_rejected_without_network() {
        assert!(rejected(GcsConfig::new("")).contains("RECORDING_GCS_BUCKET"));
        let endpoint = GcsConfig {
            endpoint: Some("http://127.0.0.1:4443".into()),
            ..GcsConfig::new("b")
        };
        assert!(rejected(endpoint).contains("RECORDING_GCS_CREDENTIALS"));
        let key = GcsConfig {
            credentials: Some("[]".into()),
            ..GcsConfig::new("b")
        };
        assert!(rejected(key).contains("not a JSON object"));
        let chunk = GcsConfig {
            chunk_size: 300_000,
            ..GcsConfig::new("b")
        };
        assert!(rejected(chunk).contains("256 KiB"));
    }

    #[test]
    fn the_endpoint_becomes_the_keys_base_url() {
        let cfg = GcsConfig {
            endpoint: Some("http://127.0.0.1:4443/".into()),
            credentials: Some(r#"{"client_email": "a@b"}"#.into()),
            ..GcsConfig::new("b")
        };
        let key: serde_json::Value =
            serde_json::from_str(&cfg.service_account_key().unwrap().unwrap()).unwrap();
        assert_eq!(key["gcs_base_url"], "http://127.0.0.1:4443");
        assert_eq!(key["client_email"], "a@b");
    }
}
