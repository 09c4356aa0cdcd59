//! Serving a local recording file with Range support. Encrypted files (`pipelines::crypt`) are
//! decrypted on the fly, chunk by chunk, on a blocking thread; plain ones are read as they are.
//! Either way the client sees the media's bytes and length.

use super::ApiError;
use crate::recording::RecError;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use futures::stream;
use pipelines::crypt::{Keyring, MediaFile};
use signaling::protocol::ErrorCode;
use std::ops::Range;
use std::path::Path;
use tokio::sync::mpsc;

/// Bytes read (and decrypted) per piece of the response body.
const PIECE: usize = 256 * 1024;

/// What a `Range` header asks of a file `len` bytes long.
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    Whole,
    Part(Range<u64>),
    Unsatisfiable,
}

/// Reads a `Range` header (RFC 9110 section 14.2). A malformed one, another unit, or a set of
/// several ranges is ignored, as the RFC allows, and the whole file served; a well-formed
/// single range that misses the file is unsatisfiable.
fn wanted(range: Option<&str>, len: u64) -> Wanted {
    let Some((unit, set)) = range.and_then(|r| r.split_once('=')) else {
        return Wanted::Whole;
    };
    let number = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return Wanted::Whole;
    }
    let Some((first, last)) = set.split_once('-') else {
        return Wanted::Whole;
    };
    let range = match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix) {
            Some(0) => return Wanted::Unsatisfiable,
            Some(n) => len.saturating_sub(n)..len,
            None => return Wanted::Whole,
        },
        (first, "") => match number(first) {
            Some(start) => start..len,
            None => return Wanted::Whole,
        },
        (first, last) => match (number(first), number(last)) {
            (Some(a), Some(b)) if a <= b => a..(b + 1).min(len),
            _ => return Wanted::Whole,
        },
    };
    if range.start >= len {
        Wanted::Unsatisfiable
    } else {
        Wanted::Part(range)
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Internal,
        e.to_string(),
    )
}

fn content_type(name: &str) -> &'static str {
    match Path::new(name).extension().and_then(|e| e.to_str()) {
        Some("webm") => "video/webm",
        Some("mkv") => "video/x-matroska",
        Some("mp4") => "video/mp4",
        _ => "application/octet-stream",
    }
}

/// The file at `path`, as an attachment named `name`: 200 with the whole media, 206 with the
/// range asked for, or 416.
pub async fn serve_file(
    path: &Path,
    name: &str,
    headers: &HeaderMap,
    keys: Option<&Keyring>,
) -> Result<Response, ApiError> {
    let (path_buf, keys) = (path.to_owned(), keys.cloned());
    let opened = tokio::task::spawn_blocking(move || MediaFile::open(&path_buf, keys.as_ref()))
        .await
        .map_err(internal)?;
    let file = match opened {
        Ok(file) => file,
        Err(pipelines::crypt::CryptError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            return Err(ApiError::not_found(
                "Recording file is missing from local storage",
            ))
        }
        Err(e) => return Err(RecError::Crypt(e).into()),
    };
    let len = file.len();
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let mut response = Response::builder()
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, content_type(name));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        response = response.header(header::CONTENT_DISPOSITION, value);
    }
    let (status, span) = match wanted(range, len) {
        Wanted::Whole => (StatusCode::OK, 0..len),
        Wanted::Part(span) => {
            let value = format!("bytes {}-{}/{len}", span.start, span.end - 1);
            response = response.header(header::CONTENT_RANGE, value);
            (StatusCode::PARTIAL_CONTENT, span)
        }
        Wanted::Unsatisfiable => {
            return response
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                .body(Body::empty())
                .map_err(internal);
        }
    };
    response
        .status(status)
        .header(header::CONTENT_LENGTH, span.end - span.start)
        .body(body(file, span))
        .map_err(internal)
}

/// The bytes of `span`, read piece by piece on a blocking thread as the client takes them. A
/// read that fails (a corrupt chunk) ends the body with that error.
fn body(mut file: MediaFile, span: Range<u64>) -> Body {
    let (tx, rx) = mpsc::channel::<std::io::Result<Vec<u8>>>(2);
    tokio::task::spawn_blocking(move || {
        let mut at = span.start;
        while at < span.end {
            let want = PIECE.min((span.end - at) as usize);
            let piece = file.read_range(at, want);
            let stop = match &piece {
                Ok(bytes) if bytes.is_empty() => true,
                Ok(bytes) => {
                    at += bytes.len() as u64;
                    false
                }
                Err(_) => true,
            };
            if tx.blocking_send(piece).is_err() || stop {
                return;
            }
        }
    });
    Body::from_stream(stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|piece| (piece, rx))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        let w = |r: &str| wanted(Some(r), 100);
        assert_eq!(w("bytes=0-9"), Wanted::Part(0..10));
        assert_eq!(w("bytes=90-"), Wanted::Part(90..100));
        assert_eq!(w("bytes=-5"), Wanted::Part(95..100));
        assert_eq!(w("bytes=-500"), Wanted::Part(0..100));
        assert_eq!(w("bytes=50-500"), Wanted::Part(50..100));
        assert_eq!(w("bytes=100-"), Wanted::Unsatisfiable);
        assert_eq!(w("bytes=-0"), Wanted::Unsatisfiable);
        assert_eq!(w("BYTES=9-9"), Wanted::Part(9..10));
        for ignored in [
            "bytes=abc",
            "bytes=5-2",
            "bytes",
            "bytes=",
            "lines=1-2",
            "bytes=--1",
            "bytes=0-1,",
            "bytes=0-1,5-6",
            "bytes=+1-2",
            "bytes=99999999999999999999-",
        ] {
            assert_eq!(w(ignored), Wanted::Whole, "{ignored}");
        }
        assert_eq!(wanted(None, 100), Wanted::Whole);
    }
}
