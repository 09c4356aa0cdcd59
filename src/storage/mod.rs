//! Where finished recordings live: the local spool directory, and optionally an object store
//! (S3, Google Cloud Storage or Azure Blob) the spool is uploaded to. The local file stays the
//! source of truth until the store has confirmed the upload and its size.
//!
//! [`ObjectStore`] is the one place that dispatches to a provider; the rest of the server
//! uploads, signs download URLs, deletes and checks through it.

pub mod azure;
mod error;
pub mod gcs;
pub mod s3;
mod upload;

pub use error::{AttemptError, StoreError};
pub use upload::{LocalMedia, Retry, UploadProgress, UploadReport};

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The configured backend.
#[derive(Clone)]
pub enum Storage {
    Local,
    Object(ObjectStore),
}

/// An object store of any provider; cheap to clone.
#[derive(Clone)]
pub enum ObjectStore {
    S3(s3::S3Store),
    Gcs(gcs::GcsStore),
    Azure(azure::AzureStore),
}

/// The kinds of store: `local`, `s3`, `gcs` or `azure` in the API and configuration.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Local,
    S3,
    Gcs,
    Azure,
}

/// Where finished recordings go.
#[derive(Debug, Clone)]
pub enum StorageConfig {
    /// Files stay in the output directory.
    Local,
    /// Files are uploaded to S3, then removed from the spool.
    S3(Box<s3::S3Config>),
    /// Files are uploaded to Google Cloud Storage, then removed from the spool.
    Gcs(Box<gcs::GcsConfig>),
    /// Files are uploaded to Azure Blob Storage, then removed from the spool.
    Azure(Box<azure::AzureConfig>),
}

impl Storage {
    /// Validates the configuration and builds the store's client; makes no request.
    pub fn new(config: &StorageConfig) -> Result<Self, StoreError> {
        let store = match config {
            StorageConfig::Local => return Ok(Storage::Local),
            StorageConfig::S3(c) => ObjectStore::S3(s3::S3Store::new(c.as_ref().clone())?),
            StorageConfig::Gcs(c) => ObjectStore::Gcs(gcs::GcsStore::new(c.as_ref().clone())?),
            StorageConfig::Azure(c) => {
                ObjectStore::Azure(azure::AzureStore::new(c.as_ref().clone())?)
            }
        };
        Ok(Storage::Object(store))
    }

    /// Which kind of store this is (the API's `storage_backend`).
    pub fn backend(&self) -> Backend {
        match self {
            Storage::Local => Backend::Local,
            Storage::Object(store) => store.backend(),
        }
    }

    /// The object store, unless recordings stay local.
    pub fn object_store(&self) -> Option<&ObjectStore> {
        match self {
            Storage::Local => None,
            Storage::Object(store) => Some(store),
        }
    }

    /// Whether the object store answers (always true for local storage).
    pub async fn check(&self) -> Result<(), StoreError> {
        match self {
            Storage::Local => Ok(()),
            Storage::Object(store) => store.check().await,
        }
    }
}

impl ObjectStore {
    /// Which provider this is.
    pub fn backend(&self) -> Backend {
        match self {
            ObjectStore::S3(_) => Backend::S3,
            ObjectStore::Gcs(_) => Backend::Gcs,
            ObjectStore::Azure(_) => Backend::Azure,
        }
    }

    /// The object name for `name`: the configured prefix followed by `name`.
    pub fn key_for(&self, name: &str) -> String {
        match self {
            ObjectStore::S3(store) => store.key_for(name),
            ObjectStore::Gcs(store) => store.key_for(name),
            ObjectStore::Azure(store) => store.key_for(name),
        }
    }

    /// Uploads the media of a local file to `key`, retried whole with backoff, and confirms
    /// the object's size; `progress` hears about every attempt, part and failure.
    pub async fn upload(
        &self,
        media: LocalMedia<'_>,
        key: &str,
        progress: impl Fn(UploadProgress) + Send + Sync,
    ) -> Result<UploadReport, StoreError> {
        match self {
            ObjectStore::S3(store) => store.upload(media, key, progress).await,
            ObjectStore::Gcs(store) => store.upload(media, key, progress).await,
            ObjectStore::Azure(store) => store.upload(media, key, progress).await,
        }
    }

    /// A URL that lets anyone GET `key` for `ttl` (S3 presigned, GCS V4 signed, Azure SAS).
    pub async fn presigned_get(&self, key: &str, ttl: Duration) -> Result<String, StoreError> {
        match self {
            ObjectStore::S3(store) => store.presigned_get(key, ttl).await,
            ObjectStore::Gcs(store) => store.presigned_get(key, ttl).await,
            ObjectStore::Azure(store) => store.presigned_get(key, ttl).await,
        }
    }

    /// Deletes `key`; an object that is already gone is fine.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            ObjectStore::S3(store) => store.delete(key).await,
            ObjectStore::Gcs(store) => store.delete(key).await,
            ObjectStore::Azure(store) => store.delete(key).await,
        }
    }

    /// Whether the bucket or container is reachable with these credentials (at most 3 s).
    pub async fn check(&self) -> Result<(), StoreError> {
        match self {
            ObjectStore::S3(store) => store.check().await,
            ObjectStore::Gcs(store) => store.check().await,
            ObjectStore::Azure(store) => store.check().await,
        }
    }

    /// The size of `key`, or `None` when there is no such object.
    pub async fn object_size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        match self {
            ObjectStore::S3(store) => store.object_size(key).await,
            ObjectStore::Gcs(store) => store.object_size(key).await,
            ObjectStore::Azure(store) => store.object_size(key).await,
        }
    }
}

/// The spool directory of a room's recordings: `<output>/<room>` with the room name reduced to
/// `[A-Za-z0-9_-]` (other characters become `_`).
pub fn room_dir(output: &Path, room: &str) -> PathBuf {
    let safe: String = room
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    output.join(if safe.is_empty() { "_".into() } else { safe })
}

/// Removes a local file; a file that is already gone is fine.
pub async fn remove_local(path: &Path) -> std::io::Result<()> {
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_dirs_are_single_safe_components() {
        let out = Path::new("/spool");
        assert_eq!(room_dir(out, "standup-42"), Path::new("/spool/standup-42"));
        assert_eq!(room_dir(out, "../etc"), Path::new("/spool/___etc"));
        assert_eq!(room_dir(out, "a/b c"), Path::new("/spool/a_b_c"));
        assert_eq!(room_dir(out, ""), Path::new("/spool/_"));
    }
}
