//! The Azure Blob Storage container that finished recordings are uploaded to, through
//! `object_store`.
//!
//! Uploads are block-blob uploads: each block is read from disk at its offset (never the whole
//! file in memory), at most [`AzureConfig::parallel_blocks`] at once, then the block list is
//! committed; an upload only counts once the blob's properties report the local file's size. A
//! failed upload is retried whole, with exponential backoff (`super::upload`); uncommitted
//! blocks are dropped by the service. Downloads are service-SAS URLs signed with the access key.

use super::error::{chain, ensure, AttemptError, StoreError};
use super::upload::{self, Attempt, LocalMedia, Retry, UploadProgress, UploadReport};
use futures::stream::{FuturesUnordered, StreamExt};
use object_store::azure::{MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer;
use object_store::{ClientOptions, MultipartUpload, ObjectStore as _, PutPayload, RetryConfig};
use reqwest::Method;
use std::sync::Arc;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;
/// How long [`AzureStore::check`] waits for the container to answer.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a connection to the store may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Upper bound for one request (one block).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Azure's largest number of blocks in one blob.
const MAX_BLOCKS: u64 = 50_000;

/// Where and how recordings are uploaded (`RECORDING_AZURE_*`, see `src/recording/config.rs`).
#[derive(Clone)]
pub struct AzureConfig {
    /// `RECORDING_AZURE_ACCOUNT`.
    pub account: String,
    /// `RECORDING_AZURE_ACCESS_KEY` (base64), which also signs the download URLs.
    pub access_key: String,
    /// `RECORDING_AZURE_CONTAINER`.
    pub container: String,
    /// `RECORDING_AZURE_ENDPOINT`: the account's blob URL when it is not
    /// `https://<account>.blob.core.windows.net`, e.g. an emulator's
    /// `http://127.0.0.1:10000/<account>`.
    pub endpoint: Option<String>,
    /// Prepended to every blob name by [`AzureStore::key_for`]; default `recordings/`.
    pub prefix: String,
    /// Bytes per block; default 8 MiB. Grown when a file would need more than 50,000 blocks.
    pub block_size: u64,
    /// Blocks uploaded at once; default 4.
    pub parallel_blocks: usize,
    /// Whole-upload attempts and backoff; default 5 attempts from 1 s.
    pub retry: Retry,
}

impl std::fmt::Debug for AzureConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureConfig")
            .field("account", &self.account)
            .field("container", &self.container)
            .field("endpoint", &self.endpoint)
            .field("prefix", &self.prefix)
            .field("access_key", &"<hidden>")
            .finish_non_exhaustive()
    }
}

impl AzureConfig {
    /// The defaults for `container` of `account`, signed with `access_key`.
    pub fn new(
        account: impl Into<String>,
        access_key: impl Into<String>,
        container: impl Into<String>,
    ) -> Self {
        Self {
            account: account.into(),
            access_key: access_key.into(),
            container: container.into(),
            endpoint: None,
            prefix: "recordings/".into(),
            block_size: 8 * MIB,
            parallel_blocks: 4,
            retry: Retry {
                max_attempts: 5,
                backoff: Duration::from_secs(1),
            },
        }
    }

    /// Fails with the first problem that makes this configuration unusable.
    fn validate(&self) -> Result<(), StoreError> {
        let ensure = |ok: bool, problem: String| ensure("Azure", ok, problem);
        let endpoint = &self.endpoint;
        let http = |e: &str| e.starts_with("http://") || e.starts_with("https://");
        ensure(
            !self.account.is_empty(),
            "the account (RECORDING_AZURE_ACCOUNT) is empty".into(),
        )?;
        ensure(
            !self.access_key.is_empty(),
            "the access key (RECORDING_AZURE_ACCESS_KEY) is empty".into(),
        )?;
        ensure(
            !self.container.is_empty(),
            "the container (RECORDING_AZURE_CONTAINER) is empty".into(),
        )?;
        ensure(
            endpoint.as_deref().is_none_or(http),
            format!("endpoint {endpoint:?} is not an http(s) URL"),
        )?;
        ensure(self.block_size > 0, "block size must be positive".into())?;
        ensure(
            self.parallel_blocks > 0,
            "parallel_blocks must be at least 1".into(),
        )?;
        ensure(
            self.retry.max_attempts > 0,
            "max_attempts must be at least 1".into(),
        )
    }
}

/// A client for one container; cheap to clone.
#[derive(Clone)]
pub struct AzureStore {
    azure: Arc<MicrosoftAzure>,
    cfg: Arc<AzureConfig>,
}

impl AzureStore {
    /// Validates `cfg` and builds the client; makes no request.
    pub fn new(cfg: AzureConfig) -> Result<Self, StoreError> {
        cfg.validate()?;
        let options = ClientOptions::new()
            .with_allow_http(
                cfg.endpoint
                    .as_deref()
                    .is_some_and(|e| e.starts_with("http:")),
            )
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT);
        let mut builder = MicrosoftAzureBuilder::new()
            .with_account(&cfg.account)
            .with_access_key(&cfg.access_key)
            .with_container_name(&cfg.container)
            .with_client_options(options)
            .with_retry(RetryConfig {
                max_retries: 1,
                retry_timeout: Duration::from_secs(10),
                ..RetryConfig::default()
            });
        if let Some(endpoint) = &cfg.endpoint {
            builder = builder.with_endpoint(endpoint.trim_end_matches('/').to_string());
        }
        let azure = builder.build().map_err(|e| StoreError::Config {
            store: "Azure",
            problem: chain(&e),
        })?;
        Ok(Self {
            azure: Arc::new(azure),
            cfg: Arc::new(cfg),
        })
    }

    /// The blob name for `name`: the configured prefix followed by `name`.
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

    /// A service-SAS URL that lets anyone GET `key` for `ttl`.
    pub async fn presigned_get(&self, key: &str, ttl: Duration) -> Result<String, StoreError> {
        let url = self.azure.signed_url(Method::GET, &key.into(), ttl).await;
        url.map(String::from)
            .map_err(|e| self.request_error("SAS signing", key, &e))
    }

    /// Deletes `key` (a blob that is already gone is fine).
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.azure.delete(&key.into()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.request_error("Delete Blob", key, &e)),
        }
    }

    /// Whether the container is reachable with these credentials: lists a prefix that holds
    /// nothing (at most 3 s).
    pub async fn check(&self) -> Result<(), StoreError> {
        let probe = ObjectPath::from(format!("{}.capstan-readiness-probe", self.cfg.prefix));
        let list = async {
            let mut blobs = self.azure.list(Some(&probe));
            blobs.next().await.transpose().map(drop)
        };
        match tokio::time::timeout(CHECK_TIMEOUT, list).await {
            Ok(result) => result.map_err(|e| self.request_error("List Blobs", "", &e)),
            Err(_) => Err(StoreError::Timeout {
                store: "Azure",
                operation: "List Blobs",
                location: self.location(""),
                timeout: CHECK_TIMEOUT,
            }),
        }
    }

    /// The size of `key`, or `None` when there is no such blob.
    pub async fn object_size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        match self.azure.head(&key.into()).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.request_error("Get Blob Properties", key, &e)),
        }
    }

    /// Puts every block, at most `parallel_blocks` at once, reporting bytes as blocks finish,
    /// then commits the block list.
    async fn put_blocks(
        &self,
        upload: &mut dyn MultipartUpload,
        media: LocalMedia<'_>,
        total: u64,
        report: &(dyn Fn(u64) + Sync),
    ) -> Result<(), AttemptError> {
        let block_size = self.cfg.block_size.max(total.div_ceil(MAX_BLOCKS));
        let mut in_flight = FuturesUnordered::new();
        let mut uploaded = 0;
        for (offset, len) in upload::parts(total, block_size).filter(|&(_, len)| len > 0) {
            let block = media.read(offset, len).await?;
            let put = upload.put_part(PutPayload::from(block));
            in_flight.push(async move { put.await.map(|()| len) });
            while in_flight.len() >= self.cfg.parallel_blocks {
                uploaded += block_done(in_flight.next().await)?;
                report(uploaded);
            }
        }
        while let Some(done) = in_flight.next().await {
            uploaded += block_done(Some(done))?;
            report(uploaded);
        }
        upload
            .complete()
            .await
            .map_err(|e| AttemptError::request("Put Block List", &e))?;
        Ok(())
    }

    /// A [`StoreError::Request`] for `operation` on `key`.
    fn request_error(
        &self,
        operation: &'static str,
        key: &str,
        error: &dyn std::error::Error,
    ) -> StoreError {
        StoreError::Request {
            store: "Azure",
            operation,
            location: self.location(key),
            message: chain(error),
        }
    }
}

/// The length of a finished block, or why it failed.
fn block_done(done: Option<object_store::Result<u64>>) -> Result<u64, AttemptError> {
    match done {
        Some(Ok(len)) => Ok(len),
        Some(Err(e)) => Err(AttemptError::request("Put Block", &e)),
        None => Ok(0),
    }
}

impl Attempt for AzureStore {
    fn location(&self, key: &str) -> String {
        format!("azure://{}/{}/{key}", self.cfg.account, self.cfg.container)
    }

    fn retry(&self) -> Retry {
        self.cfg.retry
    }

    /// One block-blob upload, then the size check.
    async fn upload_once(
        &self,
        media: LocalMedia<'_>,
        key: &str,
        total: u64,
        report: &(dyn Fn(u64) + Sync),
    ) -> Result<Option<String>, AttemptError> {
        let location = ObjectPath::from(key);
        let mut upload = self
            .azure
            .put_multipart(&location)
            .await
            .map_err(|e| AttemptError::request("starting a block upload", &e))?;
        if let Err(e) = self.put_blocks(upload.as_mut(), media, total, report).await {
            if let Err(error) = upload.abort().await {
                tracing::warn!(key, %error, "could not abort an Azure block upload");
            }
            return Err(e);
        }
        let meta = self
            .azure
            .head(&location)
            .await
            .map_err(|e| AttemptError::request("Get Blob Properties", &e))?;
        if meta.size != total {
            return Err(AttemptError::SizeMismatch {
                object: Some(meta.size),
                local: total,
            });
        }
        Ok(meta.e_tag.map(|tag| tag.trim_matches('"').to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(cfg: AzureConfig) -> String {
        match AzureStore::new(cfg) {
            Err(StoreError::Config { problem, .. }) => problem,
            Err(other) => panic!("expected a config error, got {other}"),
            Ok(_) => panic!("expected a config error, got a store"),
        }
    }

    #[test]
    fn unusable_configs_are_rejected_without_network() {
        let key = "a2V5";
        assert!(rejected(AzureConfig::new("", key, "c")).contains("RECORDING_AZURE_ACCOUNT"));
        assert!(rejected(AzureConfig::new("a", "", "c")).contains("RECORDING_AZURE_ACCESS_KEY"));
        assert!(rejected(AzureConfig::new("a", key, "")).contains("RECORDING_AZURE_CONTAINER"));
        let endpoint = AzureConfig {
            endpoint: Some("127.0.0.1:10000".into()),
            ..AzureConfig::new("a", key, "c")
        };
        assert!(rejected(endpoint).contains("http"));
        assert!(AzureStore::new(AzureConfig::new("a", key, "c")).is_ok());
    }
}
