//! Delivery of a stopped recording: with local storage it is complete at once; with an object
//! store (S3, GCS or Azure) each file is uploaded (progress in `metadata.upload`), and its spool copy is deleted only after
//! the store confirmed it with the right size. A permanent failure marks the recording
//! `failed` with the reason and keeps every local file for `POST .../upload`.

use super::state::{RecordingState, Status, Upload, UploadPhase};
use super::{Ctx, RecordingEvent};
use crate::metrics::METRICS;
use crate::storage::{remove_local, LocalMedia, ObjectStore, Storage, StoreError, UploadProgress};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Upload progress is written to the catalog at most this often.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Takes a `processing` recording to `completed` or `failed`; returns the final state.
pub(super) async fn deliver(ctx: &Ctx, mut state: RecordingState) -> RecordingState {
    match &ctx.storage {
        Storage::Local => {
            ctx.commit(&mut state, Status::Completed, RecordingEvent::Completed)
                .await
        }
        Storage::Object(store) => match upload_all(ctx, store, &mut state).await {
            Ok(()) => {
                state.error = None;
                ctx.commit(&mut state, Status::Completed, RecordingEvent::Completed)
                    .await;
            }
            Err(e) => {
                METRICS.upload_failures.inc();
                tracing::warn!("recording {}: {e}", state.recording_id);
                set_upload(&mut state, UploadPhase::Failed, None, Some(&e.to_string()));
                state.error = Some(format!(
                    "upload failed: {e}; the local files are kept: POST /api/webrtc/recordings/{}/upload retries",
                    state.recording_id
                ));
                ctx.commit(&mut state, Status::Failed, RecordingEvent::Failed)
                    .await;
            }
        },
    }
    state
}

async fn upload_all(
    ctx: &Ctx,
    store: &ObjectStore,
    state: &mut RecordingState,
) -> Result<(), StoreError> {
    let total: u64 = state.files.iter().map(|f| f.size_bytes).sum();
    let mut done: u64 = 0;
    for i in 0..state.files.len() {
        let file = state.files[i].clone();
        let Some(local) = file.local_path.clone() else {
            done += file.size_bytes; // uploaded by an earlier attempt
            continue;
        };
        let key = store.key_for(&format!("{}/{}", state.room_id, file.file_name));
        let report = upload_one(ctx, store, state, Path::new(&local), &key, done, total).await?;
        METRICS.upload_bytes.inc_by(report);
        done += file.size_bytes;
        state.files[i].s3_key = Some(key);
        state.files[i].local_path = None;
        let files = state.files.clone();
        state.set_files(files);
        ctx.save(state).await; // the object is confirmed before the spool copy goes
        if let Err(e) = remove_local(Path::new(&local)).await {
            tracing::warn!("cannot remove uploaded spool file {local}: {e}");
        }
    }
    set_upload(state, UploadPhase::Completed, Some((total, total, 0)), None);
    Ok(())
}

/// Uploads one file while writing its progress to the catalog; returns the bytes uploaded.
async fn upload_one(
    ctx: &Ctx,
    store: &ObjectStore,
    state: &mut RecordingState,
    path: &Path,
    key: &str,
    done: u64,
    total: u64,
) -> Result<u64, StoreError> {
    let (tx, mut rx) = watch::channel(None::<UploadProgress>);
    let media = LocalMedia::new(path, ctx.config.encryption.as_ref());
    let upload = store.upload(media, key, move |p| {
        let _ = tx.send(Some(p));
    });
    tokio::pin!(upload);
    let mut last_save = Instant::now() - PROGRESS_EVERY;
    loop {
        tokio::select! {
            result = &mut upload => {
                return result.map(|r| r.bytes);
            }
            changed = rx.changed() => {
                if changed.is_err() {
                    continue;
                }
                let progress = rx.borrow_and_update().clone();
                if let Some(p) = progress {
                    let phase = if p.last_error.is_some() { UploadPhase::Retrying } else { UploadPhase::Uploading };
                    set_upload(state, phase, Some((done + p.uploaded, total, p.attempt)), p.last_error.as_deref());
                    if last_save.elapsed() >= PROGRESS_EVERY || p.last_error.is_some() {
                        last_save = Instant::now();
                        ctx.save(state).await;
                    }
                }
            }
        }
    }
}

/// `metadata.upload`: phase, bytes uploaded/total, attempt and the last error (a missing
/// figure or error keeps the previous one).
fn set_upload(
    state: &mut RecordingState,
    phase: UploadPhase,
    progress: Option<(u64, u64, u32)>,
    error: Option<&str>,
) {
    let previous = state.metadata.upload.take();
    let (uploaded, total, attempt) = progress.unwrap_or(match &previous {
        Some(p) => (p.bytes_uploaded, p.bytes_total, p.attempt),
        None => (0, state.file_size_bytes, 0),
    });
    let percent = if total == 0 {
        100.0
    } else {
        (uploaded as f64 * 100.0 / total as f64).min(100.0)
    };
    let last_error = error
        .map(str::to_string)
        .or_else(|| previous.and_then(|p| p.last_error));
    state.metadata.upload = Some(Upload {
        state: phase,
        bytes_uploaded: uploaded,
        bytes_total: total,
        percent: (percent * 10.0).round() / 10.0,
        attempt,
        last_error,
    });
}
