//! The S3 object store that finished recordings are uploaded to: a recording is written to the
//! local spool first and uploaded once it is finished.
//!
//! The local file stays the source of truth: an upload only counts once `HeadObject` reports the
//! local file's size. A failed upload is retried whole, with exponential backoff, by
//! [`S3Store::upload`] (the loop in `super::upload`); the SDK itself retries each request only once and gives up quickly, so a
//! store that is down fails fast into that outer loop. Nothing here deletes the local file: the
//! caller does that once the upload is confirmed.
//!
//! Large files go up as multipart uploads: each part is read from disk at its offset (never the
//! whole file in memory), at most [`S3Config::parallel_parts`] at once, with a CRC32 checksum per
//! part that S3 verifies.

use super::error::{chain, ensure, AttemptError, StoreError};
use super::upload::{self, Attempt, LocalMedia, Retry, UploadProgress, UploadReport};
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ServerSideEncryption,
};
use aws_sdk_s3::Client;
use futures::stream::{self, StreamExt};
use std::sync::Arc;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;
/// S3's smallest part (except the last one).
const MIN_PART_SIZE: u64 = 5 * MIB;
/// S3's largest number of parts in one multipart upload.
const MAX_PARTS: u64 = 10_000;
/// How long [`S3Store::check`] waits for `HeadBucket`.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the SDK waits for a TCP/TLS connection to the store.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Upper bound for one S3 operation (one part, or a whole single-request upload).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(300);
/// Attempts the SDK makes per request before our own retry loop takes over.
const SDK_ATTEMPTS: u32 = 2;

/// Where and how recordings are uploaded. The `RECORDING_S3_*` variables named below are the
/// ones existing deployments use (see `src/recording/config.rs`).
#[derive(Clone)]
pub struct S3Config {
    /// `RECORDING_S3_BUCKET`.
    pub bucket: String,
    /// `RECORDING_S3_REGION`, default `us-east-1`.
    pub region: String,
    /// `RECORDING_S3_ACCESS_KEY_ID`; required (with the secret) by [`S3Store::new`].
    pub access_key_id: Option<String>,
    /// `RECORDING_S3_SECRET_ACCESS_KEY`; required (with the key id) by [`S3Store::new`].
    pub secret_access_key: Option<String>,
    /// `RECORDING_S3_ENDPOINT`, for S3-compatible stores; when set, buckets are addressed by path
    /// (`http://host/bucket/key`) rather than by virtual host.
    pub endpoint: Option<String>,
    /// Prepended to every object name by [`S3Store::key_for`], e.g. `recordings/`; default empty.
    pub prefix: String,
    /// Server-side encryption for uploads, e.g. `AES256` or `aws:kms`; default none.
    pub sse: Option<String>,
    /// Multipart part size in bytes, at least 5 MiB; default 8 MiB. Grown when a file would need
    /// more than 10,000 parts.
    pub part_size: u64,
    /// Files of at least this many bytes use a multipart upload; default 16 MiB.
    pub multipart_threshold: u64,
    /// Parts uploaded at once; default 4.
    pub parallel_parts: usize,
    /// Whole-upload attempts before giving up; default 5.
    pub max_attempts: u32,
    /// Wait before the first retry, doubled for each further one and capped at 30 s; default 1 s.
    pub backoff: Duration,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("prefix", &self.prefix)
            .field("sse", &self.sse)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<hidden>"),
            )
            .finish_non_exhaustive()
    }
}

impl S3Config {
    /// The defaults for `bucket`; credentials must still be set before [`S3Store::new`].
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            region: "us-east-1".into(),
            access_key_id: None,
            secret_access_key: None,
            endpoint: None,
            prefix: String::new(),
            sse: None,
            part_size: 8 * MIB,
            multipart_threshold: 16 * MIB,
            parallel_parts: 4,
            max_attempts: 5,
            backoff: Duration::from_secs(1),
        }
    }

    /// Fails with the first problem that makes this configuration unusable.
    fn validate(&self) -> Result<(), StoreError> {
        let ensure = |ok: bool, problem: String| ensure("S3", ok, problem);
        let http = |e: &str| e.starts_with("http://") || e.starts_with("https://");
        let known_sse = |s: &str| ServerSideEncryption::values().contains(&s);
        let (endpoint, sse) = (&self.endpoint, &self.sse);
        let credentials = self.access_key_id.is_some() && self.secret_access_key.is_some();
        ensure(
            !self.bucket.is_empty(),
            "the bucket (RECORDING_S3_BUCKET) is empty".into(),
        )?;
        ensure(
            !self.region.is_empty(),
            "the region (RECORDING_S3_REGION) is empty".into(),
        )?;
        ensure(
            credentials,
            "RECORDING_S3_ACCESS_KEY_ID and RECORDING_S3_SECRET_ACCESS_KEY are both required"
                .into(),
        )?;
        ensure(
            endpoint.as_deref().is_none_or(http),
            format!("endpoint {endpoint:?} is not an http(s) URL"),
        )?;
        ensure(
            sse.as_deref().is_none_or(known_sse),
            format!(
                "server-side encryption {sse:?} is not one of {:?}",
                ServerSideEncryption::values()
            ),
        )?;
        ensure(
            self.part_size >= MIN_PART_SIZE,
            format!(
                "part size {} is below S3's minimum of 5 MiB",
                self.part_size
            ),
        )?;
        ensure(
            self.parallel_parts > 0,
            "parallel_parts must be at least 1".into(),
        )?;
        ensure(
            self.max_attempts > 0,
            "max_attempts must be at least 1".into(),
        )
    }

    /// The SDK client configuration: static credentials, few SDK retries, short timeouts.
    fn sdk_config(&self) -> aws_sdk_s3::Config {
        let credentials = Credentials::new(
            self.access_key_id.clone().unwrap_or_default(),
            self.secret_access_key.clone().unwrap_or_default(),
            None,
            None,
            "capstan-config",
        );
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_timeout(OPERATION_TIMEOUT)
            .build();
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .credentials_provider(credentials)
            .retry_config(RetryConfig::standard().with_max_attempts(SDK_ATTEMPTS))
            .timeout_config(timeouts);
        if let Some(endpoint) = &self.endpoint {
            builder = builder.endpoint_url(endpoint).force_path_style(true);
        }
        builder.build()
    }
}

/// A client for one bucket; cheap to clone.
#[derive(Clone)]
pub struct S3Store {
    client: Client,
    cfg: Arc<S3Config>,
    sse: Option<ServerSideEncryption>,
}

impl S3Store {
    /// Validates `cfg` and builds the client; makes no request.
    pub fn new(cfg: S3Config) -> Result<Self, StoreError> {
        cfg.validate()?;
        Ok(Self {
            client: Client::from_conf(cfg.sdk_config()),
            sse: cfg.sse.as_deref().map(ServerSideEncryption::from),
            cfg: Arc::new(cfg),
        })
    }

    /// The object key for `name`: the configured prefix followed by `name`.
    pub fn key_for(&self, name: &str) -> String {
        format!("{}{name}", self.cfg.prefix)
    }

    /// Uploads the file at `path` to `key` and confirms the object's size, retrying the whole
    /// upload with exponential backoff. `progress` hears about each attempt's start, each part (or
    /// the single request) the store accepted, and each failure. The local file is left alone.
    /// Dropping the future mid-way leaves any multipart upload incomplete (not aborted).
    pub async fn upload(
        &self,
        media: LocalMedia<'_>,
        key: &str,
        progress: impl Fn(UploadProgress) + Send + Sync,
    ) -> Result<UploadReport, StoreError> {
        upload::upload(self, media, key, progress).await
    }

    /// A URL that lets anyone GET `key` for `ttl`.
    pub async fn presigned_get(&self, key: &str, ttl: Duration) -> Result<String, StoreError> {
        let presigning = PresigningConfig::expires_in(ttl)
            .map_err(|e| self.request_error("GetObject presigning", key, e))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.cfg.bucket)
            .key(key)
            .presigned(presigning)
            .await
            .map_err(|e| self.request_error("GetObject presigning", key, e))?;
        Ok(request.uri().to_string())
    }

    /// Deletes `key` (S3 reports success for a key that does not exist).
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.cfg.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.request_error("DeleteObject", key, e))?;
        Ok(())
    }

    /// Whether the bucket is reachable with these credentials (`HeadBucket`, at most 3 s).
    pub async fn check(&self) -> Result<(), StoreError> {
        let head = self.client.head_bucket().bucket(&self.cfg.bucket).send();
        match tokio::time::timeout(CHECK_TIMEOUT, head).await {
            Ok(result) => result
                .map(drop)
                .map_err(|e| self.request_error("HeadBucket", "", e)),
            Err(_) => Err(StoreError::Timeout {
                store: "S3",
                operation: "HeadBucket",
                location: format!("s3://{}", self.cfg.bucket),
                timeout: CHECK_TIMEOUT,
            }),
        }
    }

    /// The size of `key`, or `None` when there is no such object.
    pub async fn object_size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let head = self.client.head_object().bucket(&self.cfg.bucket).key(key);
        match head.send().await {
            Ok(object) => Ok(object.content_length().and_then(|n| u64::try_from(n).ok())),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(e) => Err(self.request_error("HeadObject", key, e)),
        }
    }

    /// `PutObject` streamed from the file.
    async fn put_single(
        &self,
        media: LocalMedia<'_>,
        key: &str,
        total: u64,
    ) -> Result<(), AttemptError> {
        let body = media.read(0, total).await?;
        self.client
            .put_object()
            .bucket(&self.cfg.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .set_server_side_encryption(self.sse.clone())
            .send()
            .await
            .map_err(|e| sdk_message("PutObject", e))?;
        Ok(())
    }

    /// A multipart upload, aborted when any step fails.
    async fn put_multipart(
        &self,
        media: LocalMedia<'_>,
        key: &str,
        total: u64,
        report: &(dyn Fn(u64) + Sync),
    ) -> Result<(), AttemptError> {
        let upload_id = self.create_multipart(key).await?;
        let result = async {
            let parts = self
                .upload_parts(media, key, &upload_id, total, report)
                .await?;
            self.complete_multipart(key, &upload_id, parts).await
        }
        .await;
        if result.is_err() {
            self.abort_multipart(key, &upload_id).await;
        }
        result
    }

    /// `CreateMultipartUpload` with CRC32 part checksums; returns the upload id.
    async fn create_multipart(&self, key: &str) -> Result<String, AttemptError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.cfg.bucket)
            .key(key)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .set_server_side_encryption(self.sse.clone())
            .send()
            .await
            .map_err(|e| sdk_message("CreateMultipartUpload", e))?;
        created.upload_id.ok_or_else(|| {
            AttemptError::Protocol("CreateMultipartUpload returned no upload id".into())
        })
    }

    /// Uploads every part, at most `parallel_parts` at once, reporting bytes as parts finish.
    async fn upload_parts(
        &self,
        media: LocalMedia<'_>,
        key: &str,
        upload_id: &str,
        total: u64,
        report: &(dyn Fn(u64) + Sync),
    ) -> Result<Vec<CompletedPart>, AttemptError> {
        let part_size = self.cfg.part_size.max(total.div_ceil(MAX_PARTS));
        let mut in_flight = stream::iter(0..total.div_ceil(part_size))
            .map(|index| {
                let offset = index * part_size;
                let len = part_size.min(total - offset);
                let number = i32::try_from(index + 1).expect("at most 10,000 parts");
                self.upload_part(media, key, upload_id, number, offset, len)
            })
            .buffer_unordered(self.cfg.parallel_parts);
        let (mut parts, mut uploaded) = (Vec::new(), 0);
        while let Some(finished) = in_flight.next().await {
            let (part, len) = finished?;
            uploaded += len;
            report(uploaded);
            parts.push(part);
        }
        parts.sort_by_key(|part| part.part_number);
        Ok(parts)
    }

    /// `UploadPart` for `len` bytes of the file from `offset`; returns the part and its length.
    async fn upload_part(
        &self,
        media: LocalMedia<'_>,
        key: &str,
        upload_id: &str,
        number: i32,
        offset: u64,
        len: u64,
    ) -> Result<(CompletedPart, u64), AttemptError> {
        let body = media.read(offset, len).await?;
        let uploaded = self
            .client
            .upload_part()
            .bucket(&self.cfg.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| sdk_message(&format!("UploadPart {number}"), e))?;
        let part = CompletedPart::builder()
            .part_number(number)
            .set_e_tag(uploaded.e_tag)
            .set_checksum_crc32(uploaded.checksum_crc32)
            .build();
        Ok((part, len))
    }

    /// `CompleteMultipartUpload` with the parts in order.
    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<(), AttemptError> {
        let parts = CompletedMultipartUpload::builder()
            .set_parts(Some(parts))
            .build();
        self.client
            .complete_multipart_upload()
            .bucket(&self.cfg.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(parts)
            .send()
            .await
            .map_err(|e| sdk_message("CompleteMultipartUpload", e))?;
        Ok(())
    }

    /// Best-effort `AbortMultipartUpload`, so the store frees the parts (logged when it fails;
    /// a bucket lifecycle rule for incomplete uploads catches the rest).
    async fn abort_multipart(&self, key: &str, upload_id: &str) {
        let aborted = self
            .client
            .abort_multipart_upload()
            .bucket(&self.cfg.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
        if let Err(e) = aborted {
            let error = sdk_message("AbortMultipartUpload", e);
            tracing::warn!(key, upload_id, %error, "could not abort S3 multipart upload");
        }
    }

    /// `HeadObject`: the object must have the local file's size. Returns its ETag.
    async fn confirm(&self, key: &str, total: u64) -> Result<Option<String>, AttemptError> {
        let head = self
            .client
            .head_object()
            .bucket(&self.cfg.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk_message("HeadObject", e))?;
        let size = head.content_length().and_then(|n| u64::try_from(n).ok());
        if size != Some(total) {
            return Err(AttemptError::SizeMismatch {
                object: size,
                local: total,
            });
        }
        Ok(head.e_tag().map(|tag| tag.trim_matches('"').to_string()))
    }

    /// A [`StoreError::Request`] for `operation` on `key`.
    fn request_error(
        &self,
        operation: &'static str,
        key: &str,
        error: impl std::error::Error,
    ) -> StoreError {
        StoreError::Request {
            store: "S3",
            operation,
            location: self.location(key),
            message: chain(&error),
        }
    }
}

impl Attempt for S3Store {
    fn location(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.cfg.bucket)
    }

    fn retry(&self) -> Retry {
        Retry {
            max_attempts: self.cfg.max_attempts,
            backoff: self.cfg.backoff,
        }
    }

    /// One upload attempt, single request or multipart, then the size check; returns the ETag.
    async fn upload_once(
        &self,
        media: LocalMedia<'_>,
        key: &str,
        total: u64,
        report: &(dyn Fn(u64) + Sync),
    ) -> Result<Option<String>, AttemptError> {
        if total >= self.cfg.multipart_threshold.max(1) {
            self.put_multipart(media, key, total, report).await?;
        } else {
            self.put_single(media, key, total).await?;
            report(total);
        }
        self.confirm(key, total).await
    }
}

/// An [`AttemptError::Request`]: `operation` and the SDK error with its whole chain of causes.
fn sdk_message(operation: &str, error: impl std::error::Error) -> AttemptError {
    AttemptError::request(operation, &error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> S3Config {
        S3Config {
            access_key_id: Some("id".into()),
            secret_access_key: Some("secret".into()),
            ..S3Config::new("bucket")
        }
    }

    fn rejected(cfg: S3Config) -> String {
        match S3Store::new(cfg) {
            Err(StoreError::Config { problem, .. }) => problem,
            Err(other) => panic!("expected a config error, got {other}"),
            Ok(_) => panic!("expected a config error, got a store"),
        }
    }

    #[test]
    fn key_is_prefix_then_name() {
        let store = S3Store::new(S3Config {
            prefix: "recordings/".into(),
            ..config()
        })
        .expect("valid config");
        assert_eq!(store.key_for("r1.webm"), "recordings/r1.webm");
    }

    #[test]
    fn unusable_configs_are_rejected_without_network() {
        assert!(rejected(S3Config {
            secret_access_key: None,
            ..config()
        })
        .contains("SECRET_ACCESS_KEY"));
        assert!(rejected(S3Config {
            bucket: String::new(),
            ..config()
        })
        .contains("bucket"));
        assert!(rejected(S3Config {
            sse: Some("rot13".into()),
            ..config()
        })
        .contains("rot13"));
        assert!(rejected(S3Config {
            part_size: MIB,
            ..config()
        })
        .contains("5 MiB"));
        let endpoint = Some("127.0.0.1:9000".into());
        assert!(rejected(S3Config {
            endpoint,
            ..config()
        })
        .contains("http"));
        assert!(S3Store::new(S3Config {
            sse: Some("aws:kms".into()),
            ..config()
        })
        .is_ok());
    }

    #[test]
    fn upload_can_run_on_a_spawned_task() {
        fn assert_send<T: Send>(_: T) {}
        let store = S3Store::new(config()).expect("valid config");
        let media = LocalMedia::new(std::path::Path::new("file"), None);
        assert_send(store.upload(media, "key", |_| {}));
    }
}
