//! What a recorder's handle, its inputs and its control thread share: the timeline, the live
//! inputs, the files being written and the recent errors, behind short mutexes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gstreamer as gst;

use crate::build::MediaSpan;
use crate::input::{Timeline, TrackInput};
use crate::stats::OutputFile;

/// Locks a mutex, ignoring poisoning (the data are plain counters and lists).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// State shared between the handle, the inputs and the control thread.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) timeline: Arc<Timeline>,
    pub(crate) inputs: Mutex<Vec<TrackInput>>,
    pub(crate) files: Mutex<Vec<OutputFile>>,
    pub(crate) errors: Mutex<Vec<String>>,
    pub(crate) paused_at: Mutex<Option<gst::ClockTime>>,
    /// Every file's start offset and the media its muxer was given.
    pub(crate) media: Mutex<Vec<(Duration, Arc<MediaSpan>)>>,
}

impl Shared {
    pub(crate) fn note_error(&self, message: String) {
        let mut errors = lock(&self.errors);
        if errors.len() == 16 {
            errors.remove(0);
        }
        errors.push(message);
    }

    /// Where the media of the files ends on the recording timeline: the latest start offset
    /// plus muxed length over every file.
    pub(crate) fn media(&self) -> Duration {
        lock(&self.media)
            .iter()
            .map(|(origin, span)| *origin + span.duration())
            .max()
            .unwrap_or_default()
    }

    pub(crate) fn position(&self) -> gst::ClockTime {
        let paused = *lock(&self.paused_at);
        paused.unwrap_or_else(|| self.timeline.now())
    }
}
