//! Client-side recording uploads: a browser records locally (MediaRecorder) and uploads the
//! file as numbered chunks (`POST /video-calls/chunks/upload`) or through tus 1.0
//! (`/api/webrtc/uploads`). The decisions are the pure cores [`chunks::Chunks`] (sequences:
//! repeats, conflicts, gaps, completeness) and [`tus::Progress`] (offsets); this shell keeps
//! each upload under `<data>/uploads/<id>/` (`upload.json`, plus one file per chunk or one
//! append file), so a restart loses nothing, assembles a finished upload into the room's
//! spool and hands it to [`Recordings::add_uploaded`]. Uploads untouched for the TTL are
//! removed.

pub mod chunks;
mod store;
pub mod tus;

use crate::auth::Claims;
use crate::recording::{RecError, RecordingState, Recordings, UploadedFile};
use bytes::Bytes;
use chunks::{Chunk, Chunks, Outcome};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
pub use store::Store;

/// How far ahead of the first missing sequence a chunk may arrive (the gap policy).
pub const GAP_WINDOW: u64 = 32;

/// Upload limits and where uploads are kept.
#[derive(Debug, Clone)]
pub struct UploadConfig {
    /// `<data>/uploads`.
    pub dir: PathBuf,
    pub max_chunk: u64,
    pub max_size: u64,
    pub max_per_user: usize,
    pub ttl: Duration,
}

/// Why an upload request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("upload {0} not found")]
    NotFound(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("sequence {0} was received before with other bytes")]
    ChunkConflict(u64),
    #[error(
        "sequence {sequence} is too far ahead: sequence {first_missing} is missing and chunks \
         are held at most {window} sequences ahead of it"
    )]
    Gap {
        sequence: u64,
        first_missing: u64,
        window: u64,
    },
    #[error("cannot finish: sequences {} are missing", list(.0))]
    Missing(Vec<u64>),
    #[error("{0}")]
    Finished(String),
    #[error("{0}")]
    Offset(tus::Refused),
    #[error("{0}")]
    Conflict(String),
    #[error("this user already has {0} unfinished uploads")]
    TooMany(usize),
    #[error("cannot {action} upload {id}: {source}")]
    Io {
        action: &'static str,
        id: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Recording(#[from] RecError),
}

fn list(sequences: &[u64]) -> String {
    let shown: Vec<String> = sequences.iter().take(50).map(u64::to_string).collect();
    let more = sequences.len().saturating_sub(shown.len());
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!("{}{tail}", shown.join(", "))
}

/// How an upload receives its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Chunks(Chunks),
    Tus {
        progress: tus::Progress,
        /// `Upload-Metadata` as sent.
        metadata: Option<String>,
    },
}

/// Where an upload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Receiving,
    /// Assembled and handed to the recordings.
    Finished,
}

/// One upload, as `upload.json` keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Upload {
    pub id: String,
    pub room: String,
    pub user: String,
    pub created_at: String,
    /// Unix seconds of the last request; the TTL counts from here.
    pub touched: u64,
    pub phase: Phase,
    pub protocol: Protocol,
}

impl Upload {
    fn new(id: &str, claims: &Claims, protocol: Protocol) -> Self {
        Self {
            id: id.into(),
            room: claims.room.clone(),
            user: claims.sub.clone(),
            created_at: crate::recording::state::now(),
            touched: unix_now(),
            phase: Phase::Receiving,
            protocol,
        }
    }

    /// Bytes received.
    pub fn bytes(&self) -> u64 {
        match &self.protocol {
            Protocol::Chunks(c) => c.bytes(),
            Protocol::Tus { progress, .. } => progress.offset,
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One chunk of `POST /video-calls/chunks/upload`, decoded.
pub struct ChunkRequest {
    pub recording_id: String,
    pub participant_id: String,
    pub sequence: u64,
    pub bytes: Bytes,
    pub last: bool,
}

/// What a chunk request did.
#[derive(Debug, Clone)]
pub struct ChunkAnswer {
    /// False for a repeat.
    pub stored: bool,
    pub upload: Upload,
    /// The recording, once the final chunk completed the upload.
    pub recording: Option<RecordingState>,
}

/// An open upload: its owner (fixed), whether it still receives, and its state.
struct Entry {
    room: String,
    user: String,
    receiving: AtomicBool,
    upload: tokio::sync::Mutex<Upload>,
}

type Slot = Arc<Entry>;

impl Entry {
    fn new(upload: Upload) -> Slot {
        Arc::new(Entry {
            room: upload.room.clone(),
            user: upload.user.clone(),
            receiving: AtomicBool::new(upload.phase == Phase::Receiving),
            upload: tokio::sync::Mutex::new(upload),
        })
    }
}

/// The upload service; cheap to clone.
#[derive(Clone)]
pub struct Uploads {
    config: Arc<UploadConfig>,
    store: Store,
    recordings: Recordings,
    open: Arc<Mutex<HashMap<String, Slot>>>,
}

impl Uploads {
    /// Loads the uploads a previous run left, finishes those that were being handed over,
    /// and starts the expiry sweep.
    pub async fn start(config: UploadConfig, recordings: Recordings) -> std::io::Result<Self> {
        let store = Store::new(config.dir.clone());
        let loaded = store.load_all().await?;
        let uploads = Self {
            config: Arc::new(config),
            store,
            recordings,
            open: Arc::default(),
        };
        for upload in loaded {
            if upload.phase == Phase::Finished {
                if let Err(e) = uploads.hand_over(&upload).await {
                    tracing::warn!("upload {}: cannot finish after restart: {e}", upload.id);
                }
            }
            uploads
                .slots()
                .insert(upload.id.clone(), Entry::new(upload));
        }
        let every =
            (uploads.config.ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
        tokio::spawn(uploads.clone().expire(every));
        Ok(uploads)
    }

    pub fn config(&self) -> &UploadConfig {
        &self.config
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn slot(&self, id: &str) -> Option<Slot> {
        self.slots().get(id).cloned()
    }

    /// The upload `id` as the caller may see it: 403 when it belongs to another room, or
    /// another user of the room.
    fn owned(&self, id: &str, claims: &Claims) -> Result<Slot, UploadError> {
        let slot = self
            .slot(id)
            .ok_or_else(|| UploadError::NotFound(id.into()))?;
        check_owner(id, &slot, claims)?;
        Ok(slot)
    }

    /// The caller's upload `id`, created by `make` when there is none, within the caller's
    /// cap of unfinished uploads. Of concurrent creations one wins; the others get its upload.
    async fn open(
        &self,
        id: &str,
        claims: &Claims,
        make: impl FnOnce() -> Upload,
    ) -> Result<Slot, UploadError> {
        if let Some(slot) = self.slot(id) {
            check_owner(id, &slot, claims)?;
            return Ok(slot);
        }
        if self
            .recordings
            .id_taken(id, &claims.room, &claims.sub)
            .await?
        {
            return Err(UploadError::Conflict(format!(
                "recording {id} exists; choose another id"
            )));
        }
        let slot = Entry::new(make());
        // Held until the record is first written: a concurrent request waits for it.
        let held = slot.upload.try_lock().expect("a new lock is free");
        {
            let mut slots = self.slots();
            if let Some(existing) = slots.get(id) {
                let existing = existing.clone();
                drop(slots);
                check_owner(id, &existing, claims)?;
                return Ok(existing);
            }
            let open = slots
                .values()
                .filter(|e| e.room == claims.room && e.user == claims.sub)
                .filter(|e| e.receiving.load(Ordering::Relaxed))
                .count();
            if open >= self.config.max_per_user {
                return Err(UploadError::TooMany(self.config.max_per_user));
            }
            slots.insert(id.into(), slot.clone());
        }
        if let Err(e) = self.store.create(&held).await {
            self.slots().remove(id);
            return Err(e);
        }
        drop(held);
        Ok(slot.clone())
    }

    /// One chunk of the seed route.
    pub async fn chunk(
        &self,
        claims: &Claims,
        req: ChunkRequest,
    ) -> Result<ChunkAnswer, UploadError> {
        if uuid::Uuid::parse_str(&req.recording_id).is_err() {
            return Err(UploadError::Invalid(format!(
                "recordingId `{}` is not a UUID",
                req.recording_id
            )));
        }
        if req.participant_id != claims.sub {
            return Err(UploadError::Forbidden(format!(
                "participantId `{}` is not the token's identity",
                req.participant_id
            )));
        }
        let len = req.bytes.len() as u64;
        if len > self.config.max_chunk {
            return Err(UploadError::TooLarge(format!(
                "the chunk is {len} bytes; the limit is {} (CAPSTAN_UPLOAD_MAX_CHUNK)",
                self.config.max_chunk
            )));
        }
        let slot = self
            .open(&req.recording_id, claims, || {
                let chunks = Chunks::new(GAP_WINDOW, self.config.max_size);
                Upload::new(&req.recording_id, claims, Protocol::Chunks(chunks))
            })
            .await?;
        let mut upload = slot.upload.lock().await;
        let Protocol::Chunks(chunks) = &upload.protocol else {
            return Err(UploadError::Conflict(format!(
                "upload {} is a tus upload",
                upload.id
            )));
        };
        let chunk = Chunk {
            sequence: req.sequence,
            len,
            digest: Sha256::digest(&req.bytes).into(),
            last: req.last,
        };
        let outcome = chunks.handle(&chunk);
        if upload.phase == Phase::Finished
            && !matches!(outcome, Outcome::Repeat | Outcome::Complete)
        {
            return Err(UploadError::Finished(format!(
                "upload {} is finished; it takes no more chunks",
                upload.id
            )));
        }
        let write = match &outcome {
            Outcome::Store | Outcome::StoreAndComplete => true,
            Outcome::Missing { write, .. } => *write,
            Outcome::Repeat | Outcome::Complete => false,
            Outcome::Conflict { sequence } => return Err(UploadError::ChunkConflict(*sequence)),
            Outcome::TooFarAhead {
                sequence,
                first_missing,
                window,
            } => {
                return Err(UploadError::Gap {
                    sequence: *sequence,
                    first_missing: *first_missing,
                    window: *window,
                })
            }
            Outcome::AfterFinal { sequence, last } => {
                return Err(UploadError::Finished(format!(
                    "sequence {sequence} is past the final sequence {last}"
                )))
            }
            Outcome::TooLarge { total, cap } => {
                return Err(UploadError::TooLarge(format!(
                "the upload would be {total} bytes; the limit is {cap} (CAPSTAN_UPLOAD_MAX_SIZE)"
            )))
            }
        };
        if write {
            self.store
                .write_chunk(&upload.id, req.sequence, &req.bytes)
                .await?;
        }
        upload.touched = unix_now();
        if !matches!(outcome, Outcome::Repeat) {
            if let Protocol::Chunks(chunks) = &mut upload.protocol {
                chunks.commit(&chunk);
            }
        }
        self.store.save(&upload).await?;
        match outcome {
            Outcome::Missing { missing, .. } => Err(UploadError::Missing(missing)),
            Outcome::StoreAndComplete | Outcome::Complete => {
                let recording = self.finish(&slot, &mut upload).await?;
                Ok(ChunkAnswer {
                    stored: write,
                    upload: upload.clone(),
                    recording: Some(recording),
                })
            }
            _ => Ok(ChunkAnswer {
                stored: write,
                upload: upload.clone(),
                recording: None,
            }),
        }
    }

    /// Assembles a complete upload in the room's spool and hands it over (once; again it
    /// answers the recording as it is).
    async fn finish(
        &self,
        slot: &Entry,
        upload: &mut Upload,
    ) -> Result<RecordingState, UploadError> {
        if upload.phase == Phase::Receiving {
            let target = self.recordings.upload_spool_path(&upload.room, &upload.id);
            self.store.assemble(upload, &target).await?;
            upload.phase = Phase::Finished;
            self.store.save(upload).await?;
            slot.receiving.store(false, Ordering::Relaxed);
        }
        let recording = self.hand_over(upload).await?;
        self.store.remove_data(&upload.id).await;
        Ok(recording)
    }

    async fn hand_over(&self, upload: &Upload) -> Result<RecordingState, UploadError> {
        Ok(self
            .recordings
            .add_uploaded(UploadedFile {
                id: upload.id.clone(),
                room: upload.room.clone(),
                user: upload.user.clone(),
                began: upload.created_at.clone(),
                path: self.recordings.upload_spool_path(&upload.room, &upload.id),
            })
            .await?)
    }

    /// The upload and, once handed over, its recording.
    pub async fn status(
        &self,
        claims: &Claims,
        id: &str,
    ) -> Result<(Option<Upload>, Option<RecordingState>), UploadError> {
        let upload = match self.slot(id) {
            Some(_) => Some(self.owned(id, claims)?.upload.lock().await.clone()),
            None => None,
        };
        let recording = self.recordings.get(id).await?.filter(|r| {
            r.source == crate::recording::Source::Client
                && r.room_id == claims.room
                && r.user_id == claims.sub
        });
        if upload.is_none() && recording.is_none() {
            return Err(UploadError::NotFound(id.into()));
        }
        Ok((upload, recording))
    }

    /// A new tus upload of `length` bytes (`None`: deferred).
    pub async fn tus_create(
        &self,
        claims: &Claims,
        length: Option<u64>,
        metadata: Option<String>,
    ) -> Result<(Upload, Option<RecordingState>), UploadError> {
        let progress = tus::Progress::new(length, self.config.max_size).map_err(too_large)?;
        let id = uuid::Uuid::new_v4().to_string();
        let slot = self
            .open(&id, claims, || {
                Upload::new(&id, claims, Protocol::Tus { progress, metadata })
            })
            .await?;
        let mut upload = slot.upload.lock().await;
        let recording = match tus_complete(&upload) {
            true => Some(self.finish(&slot, &mut upload).await?),
            false => None,
        };
        Ok((upload.clone(), recording))
    }

    /// The tus upload `id` (`HEAD`).
    pub async fn tus_get(&self, claims: &Claims, id: &str) -> Result<Upload, UploadError> {
        let upload = self.owned(id, claims)?.upload.lock().await.clone();
        match upload.protocol {
            Protocol::Tus { .. } => Ok(upload),
            Protocol::Chunks(_) => Err(UploadError::NotFound(id.into())),
        }
    }

    /// Appends `body` at `offset` (a `PATCH`), streaming it to disk; `length` sets a deferred
    /// length. The bytes that arrived stay even when the body breaks off (the client resumes
    /// from the offset a `HEAD` reports). Completes the upload when the offset reaches the
    /// length.
    pub async fn tus_patch<S, E>(
        &self,
        claims: &Claims,
        id: &str,
        offset: u64,
        length: Option<u64>,
        body: S,
        frame_timeout: Duration,
    ) -> Result<(Upload, Option<RecordingState>), UploadError>
    where
        S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let slot = self.owned(id, claims)?;
        let mut upload = slot.upload.lock().await;
        let Protocol::Tus { progress, .. } = &mut upload.protocol else {
            return Err(UploadError::NotFound(id.into()));
        };
        let allowed = progress.patch(offset, length).map_err(|e| match e {
            tus::Refused::TooLarge { .. } => too_large(e),
            tus::Refused::Complete => UploadError::Finished(e.to_string()),
            e => UploadError::Offset(e),
        })?;
        let appended = self
            .store
            .append(id, offset, allowed, body, frame_timeout)
            .await;
        let (written, broken) = match appended {
            Ok(n) => (n, None),
            Err((n, e)) => (n, Some(e)),
        };
        if let Protocol::Tus { progress, .. } = &mut upload.protocol {
            progress.appended(written);
        }
        upload.touched = unix_now();
        self.store.save(&upload).await?;
        if let Some(e) = broken {
            return Err(e);
        }
        let recording = match tus_complete(&upload) {
            true => Some(self.finish(&slot, &mut upload).await?),
            false => None,
        };
        Ok((upload.clone(), recording))
    }

    /// Removes uploads untouched for the TTL, every `every`.
    async fn expire(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let cutoff = unix_now().saturating_sub(self.config.ttl.as_secs());
            let slots: Vec<(String, Slot)> = self
                .slots()
                .iter()
                .map(|(id, s)| (id.clone(), s.clone()))
                .collect();
            for (id, slot) in slots {
                let upload = slot.upload.lock().await;
                if upload.touched > cutoff {
                    continue;
                }
                if upload.phase == Phase::Receiving {
                    tracing::info!("upload {id} expired unfinished");
                }
                self.store.remove(&id).await;
                self.slots().remove(&id);
            }
        }
    }
}

fn tus_complete(upload: &Upload) -> bool {
    matches!(&upload.protocol, Protocol::Tus { progress, .. } if progress.is_complete())
}

fn too_large(e: tus::Refused) -> UploadError {
    UploadError::TooLarge(format!("{e} (CAPSTAN_UPLOAD_MAX_SIZE)"))
}

fn check_owner(id: &str, entry: &Entry, claims: &Claims) -> Result<(), UploadError> {
    if entry.room != claims.room {
        return Err(UploadError::Forbidden(format!(
            "upload {id} belongs to another room"
        )));
    }
    if entry.user != claims.sub {
        return Err(UploadError::Forbidden(format!(
            "upload {id} belongs to another participant"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_record_survives_a_json_round_trip() {
        let mut chunks = Chunks::new(GAP_WINDOW, 100);
        let chunk = Chunk {
            sequence: 0,
            len: 3,
            digest: [9; 32],
            last: false,
        };
        chunks.commit(&chunk);
        for protocol in [
            Protocol::Chunks(chunks),
            Protocol::Tus {
                progress: tus::Progress::new(None, 100).unwrap(),
                metadata: Some("filename YS53ZWJt".into()),
            },
        ] {
            let upload = Upload {
                id: "u".into(),
                room: "r".into(),
                user: "ann".into(),
                created_at: "2026-12-02T07:00:00.000Z".into(),
                touched: 1,
                phase: Phase::Receiving,
                protocol,
            };
            let json = serde_json::to_string(&upload).unwrap();
            assert_eq!(
                serde_json::from_str::<Upload>(&json).unwrap(),
                upload,
                "{json}"
            );
        }
    }
}
