//! Turning a `.part` file left behind by a crash into a final, playable file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::build::mux_template;
use crate::spec::{Format, TrackKind};

/// How long a remux may take before it is abandoned.
const SALVAGE_TIMEOUT: Duration = Duration::from_secs(600);

/// Why [`salvage`] failed. The `.part` file is never deleted on failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SalvageError {
    /// The path does not end in `.webm.part`, `.mkv.part` or `.mp4.part`.
    #[error("not a recorder .part file: {0}")]
    NotAPartFile(PathBuf),
    /// GStreamer failed (missing plugin, unreadable or empty file).
    #[error("salvage failed: {0}")]
    Gstreamer(String),
    /// Filesystem error.
    #[error("salvage i/o: {0}")]
    Io(String),
}

/// Remuxes `<name>.<ext>.part` (written by a recorder that was killed) into `<name>.<ext>`
/// with an index and a correct duration, then deletes the `.part`. Returns the final path.
///
/// Blocking: it runs a GStreamer pipeline as fast as the disk allows (about a second per hour
/// of media); call it from `spawn_blocking` or a startup task, not from an async task.
pub fn salvage(part: &Path) -> Result<PathBuf, SalvageError> {
    let (final_path, format) = final_name(part)?;
    gst::init().map_err(|e| SalvageError::Gstreamer(e.to_string()))?;
    let mut tmp = final_path.clone().into_os_string();
    tmp.push(".salvage");
    let tmp = PathBuf::from(tmp);
    let pipeline = remux_pipeline(part, &tmp, format)?;
    let result = run_to_eos(&pipeline);
    let _ = pipeline.set_state(gst::State::Null);
    let written = std::fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0);
    if let Err(e) = result.and_then(|()| non_empty(written)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &final_path).map_err(|e| SalvageError::Io(e.to_string()))?;
    std::fs::remove_file(part).map_err(|e| SalvageError::Io(e.to_string()))?;
    Ok(final_path)
}

fn non_empty(written: u64) -> Result<(), SalvageError> {
    if written == 0 {
        return Err(SalvageError::Gstreamer(
            "no media could be recovered".into(),
        ));
    }
    Ok(())
}

fn final_name(part: &Path) -> Result<(PathBuf, Format), SalvageError> {
    let bad = || SalvageError::NotAPartFile(part.to_path_buf());
    let name = part.to_str().ok_or_else(bad)?;
    let stem = name.strip_suffix(".part").ok_or_else(bad)?;
    let ext = Path::new(stem)
        .extension()
        .and_then(|e| e.to_str())
        .ok_or_else(bad)?;
    let format = ext.parse::<Format>().map_err(|_| bad())?;
    Ok((PathBuf::from(stem), format))
}

fn make(factory: &str) -> Result<gst::Element, SalvageError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|e| SalvageError::Gstreamer(format!("{factory}: {e}")))
}

fn remux_pipeline(part: &Path, out: &Path, format: Format) -> Result<gst::Pipeline, SalvageError> {
    let (demux, mux) = match format {
        Format::Webm => ("matroskademux", "webmmux"),
        Format::Mkv => ("matroskademux", "matroskamux"),
        Format::Mp4 => ("qtdemux", "mp4mux"),
    };
    let pipeline = gst::Pipeline::new();
    let src = make("filesrc")?;
    src.set_property("location", part.to_string_lossy().to_string());
    let (demux, mux, sink) = (make(demux)?, make(mux)?, make("filesink")?);
    sink.set_property("location", out.to_string_lossy().to_string());
    let gerr = |e: gst::glib::BoolError| SalvageError::Gstreamer(e.to_string());
    pipeline
        .add_many([&src, &demux, &mux, &sink])
        .map_err(gerr)?;
    src.link(&demux).map_err(gerr)?;
    mux.link(&sink).map_err(gerr)?;
    let bin = pipeline.downgrade();
    demux.connect_pad_added(move |_, pad| {
        if let Some(bin) = bin.upgrade() {
            link_stream(&bin, pad, &mux);
        }
    });
    Ok(pipeline)
}

/// Links a demuxed stream through a queue to a new muxer pad (offline pipeline, so done
/// directly in `pad-added`). Streams of other kinds are left unlinked.
fn link_stream(bin: &gst::Pipeline, pad: &gst::Pad, mux: &gst::Element) {
    let kind = match pad.name().split('_').next() {
        Some("video") => TrackKind::Video,
        Some("audio") => TrackKind::Audio,
        _ => return,
    };
    let Ok(queue) = make("queue") else { return };
    let Some(mux_pad) = mux.request_pad_simple(mux_template(kind)) else {
        return;
    };
    if bin.add(&queue).is_err() {
        return;
    }
    let linked = queue.static_pad("src").map(|q| q.link(&mux_pad).is_ok()) == Some(true)
        && queue.static_pad("sink").map(|q| pad.link(&q).is_ok()) == Some(true);
    if linked {
        let _ = queue.sync_state_with_parent();
    }
}

/// Plays the pipeline until EOS. A demuxer error at the truncated tail ends the streams instead
/// of failing: whatever was muxed before it is kept.
fn run_to_eos(pipeline: &gst::Pipeline) -> Result<(), SalvageError> {
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| SalvageError::Gstreamer(e.to_string()))?;
    let bus = pipeline.bus().expect("pipeline has a bus");
    let types = [gst::MessageType::Eos, gst::MessageType::Error];
    let mut tail_error = None;
    while let Some(msg) = bus.timed_pop_filtered(
        gst::ClockTime::from_nseconds(SALVAGE_TIMEOUT.as_nanos() as u64),
        &types,
    ) {
        match msg.view() {
            gst::MessageView::Eos(_) => return Ok(()),
            gst::MessageView::Error(e) if tail_error.is_none() => {
                tail_error = Some(e.error().to_string());
                end_mux_inputs(pipeline);
            }
            gst::MessageView::Error(e) => {
                return Err(SalvageError::Gstreamer(e.error().to_string()))
            }
            _ => {}
        }
    }
    Err(SalvageError::Gstreamer(
        tail_error.unwrap_or_else(|| "timed out".into()),
    ))
}

fn end_mux_inputs(pipeline: &gst::Pipeline) {
    for q in pipeline.iterate_elements().into_iter().flatten() {
        if q.factory().is_some_and(|f| f.name() == "queue") {
            if let Some(pad) = q.static_pad("sink") {
                pad.send_event(gst::event::Eos::new());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_names() {
        let (p, f) = final_name(Path::new("/r/a_b.webm.part")).unwrap();
        assert_eq!((p.to_str().unwrap(), f), ("/r/a_b.webm", Format::Webm));
        assert_eq!(
            final_name(Path::new("/r/x.mp4.part")).unwrap().1,
            Format::Mp4
        );
        for bad in ["/r/x.webm", "/r/x.avi.part", "/r/.part"] {
            assert!(
                matches!(
                    final_name(Path::new(bad)),
                    Err(SalvageError::NotAPartFile(_))
                ),
                "{bad}"
            );
        }
    }
}
