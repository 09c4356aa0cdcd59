//! Why an object-store operation failed, for every provider.

use std::path::PathBuf;
use std::time::Duration;

/// Why an object-store operation failed (`store` is `S3`, `GCS` or `Azure`; `location` is the
/// object or bucket as a URL such as `s3://bucket/key`).
#[derive(thiserror::Error, Debug)]
pub enum StoreError {
    #[error("invalid {store} configuration: {problem}")]
    Config {
        store: &'static str,
        problem: String,
    },
    #[error("cannot read local file {}: {source}", path.display())]
    LocalFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "uploading {} to {location} failed after {attempts} attempt(s); last error: {last_error}",
        path.display()
    )]
    Upload {
        path: PathBuf,
        location: String,
        attempts: u32,
        #[source]
        last_error: Box<AttemptError>,
    },
    #[error("{store} {operation} on {location} failed: {message}")]
    Request {
        store: &'static str,
        operation: &'static str,
        location: String,
        message: String,
    },
    #[error("{store} {location} did not answer {operation} within {timeout:?}")]
    Timeout {
        store: &'static str,
        operation: &'static str,
        location: String,
        timeout: Duration,
    },
}

/// Why one upload attempt failed (the whole upload is retried).
#[derive(thiserror::Error, Debug)]
pub enum AttemptError {
    /// A request the store refused or that did not reach it; `message` is the client's error
    /// with its causes.
    #[error("{operation}: {message}")]
    Request { operation: String, message: String },
    #[error("reading {}: {source}", path.display())]
    Body {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("decrypting the local file: {0}")]
    Decrypt(#[source] Box<pipelines::crypt::CryptError>),
    #[error("{0}")]
    Protocol(String),
    #[error("size check: the object has {}, the local file {local} bytes",
        object.map_or("no size".into(), |n| format!("{n} bytes")))]
    SizeMismatch { object: Option<u64>, local: u64 },
}

impl AttemptError {
    /// An [`AttemptError::Request`]: `operation` and `error` with its whole chain of causes.
    pub(crate) fn request(operation: impl Into<String>, error: &dyn std::error::Error) -> Self {
        AttemptError::Request {
            operation: operation.into(),
            message: chain(error),
        }
    }
}

/// `Ok` when `ok`, else a [`StoreError::Config`] of `store` with `problem`.
pub(crate) fn ensure(
    store: &'static str,
    ok: bool,
    problem: impl Into<String>,
) -> Result<(), StoreError> {
    if ok {
        Ok(())
    } else {
        Err(StoreError::Config {
            store,
            problem: problem.into(),
        })
    }
}

/// `error` and its causes, joined by `: ` (SDK errors' own `Display` is only the outermost one,
/// e.g. "dispatch failure").
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        message = format!("{message}: {error}");
        cause = error.source();
    }
    message
}
