//! Start-up recovery: recordings the catalog shows mid-flight belonged to a server that was
//! killed. Their `.part` files are remuxed into playable files (`pipelines::salvage`) and the
//! recording is marked completed with `metadata.interrupted = true`, or failed with the reason
//! when nothing could be saved. Recordings that were being delivered are delivered again.

use super::catalog::ListFilter;
use super::running::file_entry;
use super::state::{FileEntry, RecordingState, Source, Status, StopReason};
use super::{Ctx, RecordingEvent};
use crate::storage::room_dir;
use pipelines::crypt::Keyring;
use std::path::{Path, PathBuf};

/// Salvages interrupted recordings; returns those that still need delivering (uploading).
pub(super) async fn recover(ctx: &Ctx) -> Vec<RecordingState> {
    let all = match ctx.catalog.list(&ListFilter::default()).await {
        Ok(all) => all,
        Err(e) => {
            tracing::error!("recovery: cannot read the catalog: {e}");
            return Vec::new();
        }
    };
    let mut to_deliver = Vec::new();
    // A client's upload without its file yet is finished by the uploads service
    // (`Recordings::add_uploaded` again), not salvaged.
    let unfinished_upload = |s: &RecordingState| s.source == Source::Client && s.files.is_empty();
    for mut state in all
        .into_iter()
        .filter(|s| !s.status.is_final() && !unfinished_upload(s))
    {
        tracing::warn!(
            "recovering recording {} (was {})",
            state.recording_id,
            state.status.as_str()
        );
        if state.status.is_live() || unfinished(ctx, &state).await {
            salvage(ctx, &mut state).await;
        }
        if state.status == Status::Processing {
            to_deliver.push(state);
        }
    }
    to_deliver
}

/// Whether a recording past `recording` still has files its pipeline never finished: a server
/// whose catalog said `processing` before the files were final (as it did during a stop) left
/// `.part` files and no file list.
async fn unfinished(ctx: &Ctx, state: &RecordingState) -> bool {
    if state.files.is_empty() && !state.files_begun().is_empty() {
        return true;
    }
    let dir = room_dir(&ctx.config.output_dir, &state.room_id);
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return false;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&state.recording_id) && name.ends_with(".part") {
            return true;
        }
    }
    false
}

/// Turns the `.part` files of an interrupted recording into final files.
async fn salvage(ctx: &Ctx, state: &mut RecordingState) {
    let dir = room_dir(&ctx.config.output_dir, &state.room_id);
    let id = state.recording_id.clone();
    let keys = ctx.config.encryption.clone();
    let found = tokio::task::spawn_blocking(move || salvage_dir(&dir, &id, keys.as_ref()))
        .await
        .unwrap_or_default();
    state.metadata.interrupted = Some(true);
    state.metadata.stop_reason = Some(StopReason::ServerRestart);
    let (files, errors): (Vec<_>, Vec<_>) = found.into_iter().partition(Result::is_ok);
    let mut files: Vec<FileEntry> = files.into_iter().filter_map(Result::ok).collect();
    state.restore_origins(&mut files);
    let errors: Vec<Unsalvaged> = errors.into_iter().filter_map(Result::err).collect();
    let described: Vec<String> = errors.iter().map(Unsalvaged::describe).collect();
    if !errors.is_empty() {
        state.metadata.salvage_errors = Some(described.clone());
        // The unreadable `.part` files stay for ops; deleting the recording removes them.
        let kept: Vec<String> = errors
            .iter()
            .map(|e| e.path.display().to_string())
            .collect();
        state.metadata.partial_files = Some(kept);
    }
    if files.is_empty() {
        let why = if errors.is_empty() {
            " (no files were written)".to_string()
        } else {
            format!(": {}", described.join("; "))
        };
        state.error = Some(format!(
            "the server stopped during the recording and nothing could be saved{why}"
        ));
        ctx.commit(state, Status::Failed, RecordingEvent::Failed)
            .await;
        return;
    }
    state.set_files(files);
    if state.status == Status::Pending {
        let _ = state.transition(Status::Recording);
    }
    // Duration: the last checkpoint (at most a few seconds short).
    if state.status == Status::Processing {
        ctx.save(state).await;
    } else {
        ctx.commit(state, Status::Processing, RecordingEvent::Stopped)
            .await;
    }
}

/// A file of the recording that could not be turned into a playable one.
struct Unsalvaged {
    path: PathBuf,
    error: String,
}

impl Unsalvaged {
    fn describe(&self) -> String {
        format!("{}: {}", self.path.display(), self.error)
    }
}

/// Salvages every `<id>*.part` in `dir` and keeps `<id>*` files already finished.
fn salvage_dir(dir: &Path, id: &str, keys: Option<&Keyring>) -> Vec<Result<FileEntry, Unsalvaged>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(id))
        })
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter(|p| !p.to_string_lossy().ends_with(".salvage"))
        .map(|p| {
            let path = if p.extension().is_some_and(|e| e == "part") {
                pipelines::salvage(&p, keys).map_err(|e| Unsalvaged {
                    error: e.to_string(),
                    path: p,
                })?
            } else {
                p
            };
            entry(&path)
        })
        .collect()
}

fn entry(path: &Path) -> Result<FileEntry, Unsalvaged> {
    let bytes = pipelines::crypt::media_len(path).map_err(|e| Unsalvaged {
        path: path.to_path_buf(),
        error: e.to_string(),
    })?;
    Ok(file_entry(&pipelines::OutputFile {
        path: path.to_path_buf(),
        participant: None,
        start_offset: std::time::Duration::ZERO,
        bytes,
    }))
}
