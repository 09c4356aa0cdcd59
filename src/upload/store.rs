//! Uploads on disk: `<dir>/<id>/upload.json` (written to a temporary file, then renamed),
//! `<dir>/<id>/<sequence>.chunk` per chunk, or `<dir>/<id>/data` for tus.

use super::{Protocol, Upload, UploadError};
use bytes::Bytes;
use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

const RECORD: &str = "upload.json";
const DATA: &str = "data";

/// The upload directory.
#[derive(Clone)]
pub struct Store {
    dir: PathBuf,
}

fn io(action: &'static str, id: &str) -> impl FnOnce(std::io::Error) -> UploadError + use<> {
    let id = id.to_string();
    move |source| UploadError::Io { action, id, source }
}

fn chunk_name(sequence: u64) -> String {
    format!("{sequence}.chunk")
}

impl Store {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn at(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Every upload a previous run left (an unreadable record is logged and skipped).
    pub async fn load_all(&self) -> std::io::Result<Vec<Upload>> {
        tokio::fs::create_dir_all(&self.dir).await?;
        let mut entries = tokio::fs::read_dir(&self.dir).await?;
        let mut out = Vec::new();
        while let Some(entry) = entries.next_entry().await? {
            let path = entry.path().join(RECORD);
            match tokio::fs::read(&path)
                .await
                .map(|b| serde_json::from_slice(&b))
            {
                Ok(Ok(upload)) => out.push(upload),
                Ok(Err(e)) => tracing::warn!("{}: unreadable upload record: {e}", path.display()),
                Err(e) => tracing::warn!("{}: {e}", path.display()),
            }
        }
        Ok(out)
    }

    pub async fn create(&self, upload: &Upload) -> Result<(), UploadError> {
        tokio::fs::create_dir_all(self.at(&upload.id))
            .await
            .map_err(io("create", &upload.id))?;
        self.save(upload).await
    }

    /// Writes the record atomically (temporary file, then rename).
    pub async fn save(&self, upload: &Upload) -> Result<(), UploadError> {
        let dir = self.at(&upload.id);
        let json = serde_json::to_vec(upload).expect("an upload serialises");
        let tmp = dir.join(format!("{RECORD}.tmp"));
        tokio::fs::write(&tmp, json)
            .await
            .map_err(io("save", &upload.id))?;
        tokio::fs::rename(&tmp, dir.join(RECORD))
            .await
            .map_err(io("save", &upload.id))
    }

    /// Writes one chunk's bytes (temporary file, then rename: a chunk file is whole).
    pub async fn write_chunk(
        &self,
        id: &str,
        sequence: u64,
        bytes: &[u8],
    ) -> Result<(), UploadError> {
        let path = self.at(id).join(chunk_name(sequence));
        let tmp = path.with_extension("tmp");
        tokio::fs::write(&tmp, bytes)
            .await
            .map_err(io("write a chunk of", id))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(io("write a chunk of", id))
    }

    /// Appends the body at `offset` of the tus data file (bytes past `offset`, left by a run
    /// that died before saving the record, are cut first), at most `allowed` bytes; a body
    /// frame must come within `frame_timeout`. Returns the bytes written, also on failure.
    pub async fn append<S, E>(
        &self,
        id: &str,
        offset: u64,
        allowed: u64,
        mut body: S,
        frame_timeout: Duration,
    ) -> Result<u64, (u64, UploadError)>
    where
        S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let path = self.at(id).join(DATA);
        let mut file = open_at(&path, offset)
            .await
            .map_err(|e| (0, io("append to", id)(e)))?;
        let mut written = 0u64;
        let result = loop {
            let frame = match tokio::time::timeout(frame_timeout, body.next()).await {
                Err(_) => {
                    break Err(UploadError::Invalid(format!(
                        "no body data for {}",
                        humantime::format_duration(frame_timeout)
                    )))
                }
                Ok(None) => break Ok(()),
                Ok(Some(Err(e))) => {
                    break Err(UploadError::Invalid(format!("the body broke off: {e}")))
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let room = allowed - written;
            let take = (frame.len() as u64).min(room) as usize;
            if let Err(e) = file.write_all(&frame[..take]).await {
                break Err(io("append to", id)(e));
            }
            written += take as u64;
            if take < frame.len() {
                break Err(UploadError::TooLarge(format!(
                    "the body goes past the upload's end ({allowed} more bytes were allowed)"
                )));
            }
        };
        let synced = file.sync_data().await;
        match (result, synced) {
            (Ok(()), Ok(())) => Ok(written),
            (Err(e), _) => Err((written, e)),
            (Ok(()), Err(e)) => Err((written, io("append to", id)(e))),
        }
    }

    /// Writes the upload's bytes, in order, into `target` (streamed; blocking I/O on a
    /// blocking thread).
    pub async fn assemble(&self, upload: &Upload, target: &Path) -> Result<(), UploadError> {
        let dir = self.at(&upload.id);
        let sources: Vec<PathBuf> = match &upload.protocol {
            Protocol::Chunks(chunks) => chunks
                .sequences()
                .map(|s| dir.join(chunk_name(s)))
                .collect(),
            Protocol::Tus { .. } => vec![dir.join(DATA)],
        };
        let target = target.to_path_buf();
        let tus_length = match &upload.protocol {
            Protocol::Tus { progress, .. } => Some(progress.offset),
            Protocol::Chunks(_) => None,
        };
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut out = std::fs::File::create(&target)?;
            for source in sources {
                let file = std::fs::File::open(&source)?;
                // A tus data file may hold bytes past the recorded offset (see `append`).
                let mut limited = std::io::Read::take(file, tus_length.unwrap_or(u64::MAX));
                std::io::copy(&mut limited, &mut out)?;
            }
            out.sync_all()
        })
        .await
        .map_err(|e| io("assemble", &upload.id)(std::io::Error::other(e)))?
        .map_err(io("assemble", &upload.id))
    }

    /// Removes the chunks or data file, keeping the record.
    pub async fn remove_data(&self, id: &str) {
        let Ok(mut entries) = tokio::fs::read_dir(self.at(id)).await else {
            return;
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            if entry.file_name() != RECORD {
                let _ = tokio::fs::remove_file(entry.path()).await;
            }
        }
    }

    /// Removes the upload entirely.
    pub async fn remove(&self, id: &str) {
        if let Err(e) = tokio::fs::remove_dir_all(self.at(id)).await {
            tracing::warn!("cannot remove upload {id}: {e}");
        }
    }
}

async fn open_at(path: &Path, offset: u64) -> std::io::Result<tokio::fs::File> {
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(path)
        .await?;
    file.set_len(offset).await?;
    file.seek(std::io::SeekFrom::Start(offset)).await?;
    Ok(file)
}
