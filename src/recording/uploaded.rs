//! Recordings a client made and uploaded: the assembled file is checked by demuxing it
//! (`pipelines::examine`), then catalogued and delivered like a server recording (local or S3,
//! events, webhooks), with `source: "client"`.

use super::manager::Recordings;
use super::running::file_entry;
use super::state::{RecordingState, Source};
use super::{RecError, RecordingEvent, Status};
use crate::storage::room_dir;
use std::path::PathBuf;

/// A finished upload: whose it is and where its assembled bytes are (see
/// [`Recordings::upload_spool_path`]).
#[derive(Debug, Clone)]
pub struct UploadedFile {
    /// The recording id the client chose.
    pub id: String,
    pub room: String,
    pub user: String,
    /// When the upload began (RFC 3339).
    pub began: String,
    pub path: PathBuf,
}

impl Recordings {
    /// Where an upload is assembled: in its room's spool directory, so that the checked file
    /// becomes the recording's file by a rename.
    pub fn upload_spool_path(&self, room: &str, id: &str) -> PathBuf {
        room_dir(&self.ctx.config.output_dir, room).join(format!("{id}.upload"))
    }

    /// Whether recording `id` exists and is not `room`'s upload by `user`: a client may not
    /// choose the id of another recording.
    pub async fn id_taken(&self, id: &str, room: &str, user: &str) -> Result<bool, RecError> {
        Ok(self
            .ctx
            .catalog
            .get(id)
            .await?
            .is_some_and(|s| s.source != Source::Client || s.room_id != room || s.user_id != user))
    }

    /// Catalogues an uploaded file as a `processing` client recording and, in the background,
    /// checks it (`completed` after delivery, or `failed` naming why the media cannot be
    /// read; the file is then kept in `metadata.partial_files` until the recording is
    /// deleted). Idempotent: asked again after a restart it finishes the same recording; a
    /// recording already past the check is returned as it is.
    pub async fn add_uploaded(&self, file: UploadedFile) -> Result<RecordingState, RecError> {
        if self.id_taken(&file.id, &file.room, &file.user).await? {
            return Err(RecError::Conflict(format!(
                "recording {} exists; choose another id",
                file.id
            )));
        }
        let state = match self.ctx.catalog.get(&file.id).await? {
            Some(state) if state.status != Status::Processing || !state.files.is_empty() => {
                return Ok(state);
            }
            Some(state) => state,
            None => {
                let state = RecordingState::uploaded(
                    file.id.clone(),
                    &file.room,
                    &file.user,
                    file.began.clone(),
                    self.ctx.storage.backend(),
                );
                self.ctx.save(&state).await;
                self.ctx
                    .notifier
                    .emit(RecordingEvent::Processing, &state)
                    .await;
                state
            }
        };
        tokio::spawn(self.clone().check_uploaded(state.clone(), file.path));
        Ok(state)
    }

    async fn check_uploaded(self, mut state: RecordingState, path: PathBuf) {
        let examined = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || pipelines::examine(&path)).await
        };
        let found = match examined {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => return self.uploaded_failed(state, &path, e.to_string()).await,
            Err(e) => return self.uploaded_failed(state, &path, e.to_string()).await,
        };
        // MediaRecorder writes live WebM: no duration, no index. The remux of a crashed
        // recorder's `.part` adds both; the upload stays until the remux is done, so a restart
        // in between starts over.
        let ext = found.format.extension();
        let part = path.with_extension(format!("{ext}.part"));
        // With an encryption key the remux writes the recording's file encrypted.
        let remuxed = {
            let (path, part) = (path.clone(), part.clone());
            let keys = self.ctx.config.encryption.clone();
            tokio::task::spawn_blocking(move || {
                let _ = std::fs::remove_file(&part);
                std::fs::hard_link(&path, &part).map_err(|e| e.to_string())?;
                let target = pipelines::salvage(&part, keys.as_ref()).map_err(|e| e.to_string())?;
                let bytes = pipelines::crypt::media_len(&target).map_err(|e| e.to_string())?;
                Ok::<_, String>((target, bytes))
            })
            .await
        };
        let (target, bytes) = match remuxed {
            Ok(Ok(done)) => done,
            Ok(Err(why)) => return self.uploaded_failed(state, &path, why).await,
            Err(e) => return self.uploaded_failed(state, &path, e.to_string()).await,
        };
        if let Err(e) = crate::storage::remove_local(&path).await {
            tracing::warn!("cannot remove the assembled upload {}: {e}", path.display());
        }
        state.format = found.format;
        state.duration_seconds = found.duration.as_secs_f64();
        state.set_files(vec![file_entry(&pipelines::OutputFile {
            path: target,
            participant: Some(state.user_id.clone()),
            start_offset: std::time::Duration::ZERO,
            bytes,
        })]);
        self.ctx.save(&state).await;
        self.tx.deliver(state);
    }

    async fn uploaded_failed(
        &self,
        mut state: RecordingState,
        path: &std::path::Path,
        why: String,
    ) {
        tracing::info!("uploaded recording {} failed: {why}", state.recording_id);
        state.error = Some(format!("the uploaded file is not playable: {why}"));
        state.metadata.partial_files = Some(vec![path.display().to_string()]);
        self.ctx
            .commit(&mut state, Status::Failed, RecordingEvent::Failed)
            .await;
    }
}
