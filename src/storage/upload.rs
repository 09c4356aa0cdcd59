//! What every provider's upload shares: the whole-upload retry loop with exponential backoff,
//! progress reports, and reading a part of a local file's media ([`LocalMedia`]).

use super::error::{AttemptError, StoreError};
use bytes::Bytes;
use pipelines::crypt::{CryptError, Keyring, MediaFile};
use std::future::Future;
use std::path::Path;
use std::time::Duration;

/// Longest wait between two whole-upload attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A local recording file as an upload reads it: its media, which for an encrypted file is
/// its plaintext, decrypted part by part (the object store encrypts with its own server-side
/// encryption). Cheap to copy.
#[derive(Clone, Copy, Debug)]
pub struct LocalMedia<'a> {
    path: &'a Path,
    keys: Option<&'a Keyring>,
}

impl<'a> LocalMedia<'a> {
    /// The file at `path`; `keys` open it when it is encrypted.
    pub fn new(path: &'a Path, keys: Option<&'a Keyring>) -> Self {
        LocalMedia { path, keys }
    }

    /// The file's path.
    pub fn path(&self) -> &'a Path {
        self.path
    }

    /// Opens the file on a blocking thread and runs `f` on it.
    async fn with_file<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut MediaFile) -> std::io::Result<T> + Send + 'static,
    ) -> std::io::Result<T> {
        let (path, keys) = (self.path.to_owned(), self.keys.cloned());
        let read = move || {
            let mut file = MediaFile::open(&path, keys.as_ref()).map_err(std::io::Error::from)?;
            f(&mut file)
        };
        tokio::task::spawn_blocking(read)
            .await
            .map_err(std::io::Error::other)?
    }

    /// The length of the media: what the object will hold.
    pub async fn len(&self) -> std::io::Result<u64> {
        self.with_file(|file| Ok(file.len())).await
    }

    /// `len` bytes of the media from `offset` (one part: the file is never read whole).
    pub(crate) async fn read(&self, offset: u64, len: u64) -> Result<Bytes, AttemptError> {
        let read = self.with_file(move |file| {
            let len = usize::try_from(len).map_err(std::io::Error::other)?;
            let bytes = file.read_range(offset, len)?;
            if bytes.len() < len {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            Ok(Bytes::from(bytes))
        });
        read.await
            .map_err(|source| match source.downcast::<CryptError>() {
                Ok(crypt) => AttemptError::Decrypt(Box::new(crypt)),
                Err(source) => AttemptError::Body {
                    path: self.path.to_owned(),
                    source,
                },
            })
    }
}

/// How an upload is going, passed to the `progress` callback of an upload.
#[derive(Clone, Debug)]
pub struct UploadProgress {
    /// Bytes the store has accepted in this attempt (0 after a failed attempt).
    pub uploaded: u64,
    /// Size of the local file.
    pub total: u64,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// The most recent failure of this upload, if any.
    pub last_error: Option<String>,
}

/// A confirmed upload.
#[derive(Clone, Debug)]
pub struct UploadReport {
    /// Object size, equal to the local file's size.
    pub bytes: u64,
    /// Attempts it took, from 1.
    pub attempts: u32,
    /// The object's ETag without quotes (S3: `<md5>-<parts>` for a multipart upload).
    pub etag: Option<String>,
}

/// Whole-upload attempts and the wait before the first retry (doubled for each further one,
/// at most 30 s).
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    pub max_attempts: u32,
    pub backoff: Duration,
}

impl Retry {
    /// Wait before retry number `retry` (from 1): `backoff`, doubled each time, at most 30 s.
    pub(crate) fn wait(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.backoff.saturating_mul(factor).min(MAX_BACKOFF)
    }
}

/// One provider's single upload attempt; [`upload`] retries it.
pub(crate) trait Attempt: Sync {
    /// The object as a URL for messages, e.g. `s3://bucket/key`.
    fn location(&self, key: &str) -> String;
    fn retry(&self) -> Retry;
    /// Uploads the file (`total` bytes) to `key`, calls `report` with the bytes the store has
    /// accepted so far, then checks the object's size; returns its ETag.
    fn upload_once<'a>(
        &'a self,
        media: LocalMedia<'a>,
        key: &'a str,
        total: u64,
        report: &'a (dyn Fn(u64) + Sync),
    ) -> impl Future<Output = Result<Option<String>, AttemptError>> + Send + 'a;
}

/// Uploads the file at `path` to `key` and confirms the object's size, retrying the whole
/// upload with exponential backoff. `progress` hears about each attempt's start, each part the
/// store accepted, and each failure. The local file is left alone.
pub(crate) async fn upload(
    store: &impl Attempt,
    media: LocalMedia<'_>,
    key: &str,
    progress: impl Fn(UploadProgress) + Send + Sync,
) -> Result<UploadReport, StoreError> {
    let path = media.path();
    let total = media.len().await.map_err(|source| StoreError::LocalFile {
        path: path.to_owned(),
        source,
    })?;
    let retry = store.retry();
    let mut last_error: Option<AttemptError> = None;
    for attempt in 1..=retry.max_attempts {
        if attempt > 1 {
            tokio::time::sleep(retry.wait(attempt - 1)).await;
        }
        let report = |uploaded, last_error: &Option<String>| {
            let last_error = last_error.clone();
            progress(UploadProgress {
                uploaded,
                total,
                attempt,
                last_error,
            })
        };
        let previous = last_error.as_ref().map(ToString::to_string);
        report(0, &previous);
        match store
            .upload_once(media, key, total, &|n| report(n, &previous))
            .await
        {
            Ok(etag) => {
                return Ok(UploadReport {
                    bytes: total,
                    attempts: attempt,
                    etag,
                });
            }
            Err(error) => {
                tracing::warn!(key, attempt, %error, "upload attempt failed");
                report(0, &Some(error.to_string()));
                last_error = Some(error);
            }
        }
    }
    Err(StoreError::Upload {
        path: path.to_owned(),
        location: store.location(key),
        attempts: retry.max_attempts,
        last_error: Box::new(last_error.expect("max_attempts is at least 1")),
    })
}

/// `(offset, len)` of each part of a `total`-byte file cut into `part_size` pieces (one empty
/// part for an empty file).
pub(crate) fn parts(total: u64, part_size: u64) -> impl Iterator<Item = (u64, u64)> {
    let count = total.div_ceil(part_size).max(1);
    (0..count).map(move |i| {
        (
            i * part_size,
            part_size.min(total - (i * part_size).min(total)),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_30_s() {
        let retry = Retry {
            max_attempts: 5,
            backoff: Duration::from_secs(1),
        };
        let waits: Vec<_> = [1, 2, 3, 6, 40].map(|r| retry.wait(r).as_secs()).into();
        assert_eq!(waits, [1, 2, 4, 30, 30]);
    }

    #[test]
    fn parts_cover_the_file() {
        let cut = |total, size| parts(total, size).collect::<Vec<_>>();
        assert_eq!(cut(10, 4), [(0, 4), (4, 4), (8, 2)]);
        assert_eq!(cut(8, 4), [(0, 4), (4, 4)]);
        assert_eq!(cut(0, 4), [(0, 0)]);
    }
}
