//! Where finished recordings live: the local spool directory, and optionally an S3-compatible
//! object store the spool is uploaded to (the local file stays the source of truth until the
//! store has confirmed the upload and its size).

pub mod s3;

use pipelines::crypt::{self, Keyring, MediaFile};
use std::path::{Path, PathBuf};

/// The configured backend.
#[derive(Clone)]
pub enum Storage {
    Local,
    S3(s3::S3Store),
}

/// The kinds of store: `local` or `s3` in the API and configuration.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Local,
    S3,
}

/// Where finished recordings go.
#[derive(Debug, Clone)]
pub enum StorageConfig {
    /// Files stay in the output directory.
    Local,
    /// Files are uploaded, then removed from the spool.
    S3(Box<s3::S3Config>),
}

impl Storage {
    /// The store of `config`; it reads encrypted local files with `keys`.
    pub fn new(config: &StorageConfig, keys: Option<Keyring>) -> Result<Self, s3::S3Error> {
        match config {
            StorageConfig::Local => Ok(Storage::Local),
            StorageConfig::S3(c) => s3::S3Store::new(c.as_ref().clone())
                .map(|store| Storage::S3(store.reading_with(keys))),
        }
    }

    /// Which kind of store this is (the API's `storage_backend`).
    pub fn backend(&self) -> Backend {
        match self {
            Storage::Local => Backend::Local,
            Storage::S3(_) => Backend::S3,
        }
    }

    /// Whether the object store answers (always true for local storage).
    pub async fn check(&self) -> Result<(), s3::S3Error> {
        match self {
            Storage::Local => Ok(()),
            Storage::S3(store) => store.check().await,
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

/// The length of the media in a local file: what an upload of it sends (an encrypted file's
/// plaintext is a little shorter than the file).
pub async fn local_media_len(path: &Path) -> std::io::Result<u64> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || crypt::media_len(&path))
        .await
        .map_err(std::io::Error::other)?
}

/// `len` bytes of an encrypted local file's media from `offset`, decrypted; `None` when the
/// file is not encrypted, to be read from disk as it is.
pub async fn read_encrypted(
    path: &Path,
    keys: Option<&Keyring>,
    offset: u64,
    len: u64,
) -> Result<Option<Vec<u8>>, crypt::CryptError> {
    let (path, keys) = (path.to_owned(), keys.cloned());
    let read = move || {
        let io = |source| crypt::CryptError::Io {
            path: path.clone(),
            source,
        };
        if !crypt::is_encrypted(&path).map_err(io)? {
            return Ok(None);
        }
        let mut file = MediaFile::open(&path, keys.as_ref())?;
        let len = usize::try_from(len).map_err(|e| io(std::io::Error::other(e)))?;
        file.read_range(offset, len).map(Some).map_err(io)
    };
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| crypt::CryptError::Io {
            path: Default::default(),
            source: std::io::Error::other(e),
        })?
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
