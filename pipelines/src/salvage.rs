//! Turning a `.part` file left behind by a crash into a final, playable file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::build::mux_template;
use crate::crypt::elements::{decrypting_source, encrypted_sink};
use crate::crypt::{self, CryptError, EncryptedReader, Keyring};
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
    /// An encrypted `.part` whose key is not at hand, or whose header is corrupt.
    #[error("salvage: {0}")]
    Crypt(String),
}

/// Remuxes `<name>.<ext>.part` (written by a recorder that was killed) into `<name>.<ext>`
/// with an index and a correct duration, then deletes the `.part`. Returns the final path.
///
/// The streams are cut where the shortest one ends: a killed muxer leaves each stream's tail
/// at a different point (fragmented MP4 writes each track's fragments on its own, and the
/// video encoder runs behind the audio), and a file whose audio outlasts its video by a
/// second is not what was recorded.
///
/// With a `keyring`, the final file is encrypted with its current key, and an encrypted
/// `.part` is read through it (any of its keys); without one, both are plain.
///
/// Blocking: it runs two GStreamer pipelines as fast as the disk allows (a scan, then the
/// remux; about a second per hour of media each); call it from `spawn_blocking` or a startup
/// task, not from an async task.
pub fn salvage(part: &Path, keyring: Option<&Keyring>) -> Result<PathBuf, SalvageError> {
    let (final_path, format) = final_name(part)?;
    gst::init().map_err(|e| SalvageError::Gstreamer(e.to_string()))?;
    let io = |e: std::io::Error| SalvageError::Io(e.to_string());
    let source = if crypt::is_encrypted(part).map_err(io)? {
        let keyring = keyring.ok_or_else(|| {
            SalvageError::Crypt(CryptError::NoKeyring { path: part.into() }.to_string())
        })?;
        Source::Encrypted(part.to_owned(), keyring.clone())
    } else {
        Source::Plain(part.to_owned())
    };
    let end = common_end(&source, format)?;
    let mut tmp = final_path.clone().into_os_string();
    tmp.push(".salvage");
    let tmp = PathBuf::from(tmp);
    let result = remux(&source, &tmp, format, end, keyring);
    let written = crypt::media_len(&tmp).unwrap_or(0);
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

fn gerr(e: gst::glib::BoolError) -> SalvageError {
    SalvageError::Gstreamer(e.to_string())
}

/// Scans the `.part` and returns the earliest end (timestamp + duration of the last buffer)
/// among its streams that carry any media; `None` when no stream does.
fn common_end(part: &Source, format: Format) -> Result<Option<gst::ClockTime>, SalvageError> {
    let ends: Arc<Mutex<Vec<Arc<AtomicU64>>>> = Arc::default();
    let found = ends.clone();
    let pipeline = demux_pipeline(part, format, move |bin, pad, _kind| {
        let sink = make("fakesink").ok()?;
        sink.set_property("sync", false);
        bin.add(&sink).ok()?;
        let _ = sink.sync_state_with_parent();
        let end = Arc::new(AtomicU64::new(0));
        found
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(end.clone());
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(b) = info.buffer() {
                let stop = b.pts().map(|pts| pts + b.duration().unwrap_or_default());
                end.fetch_max(stop.map_or(0, |t| t.nseconds()), Ordering::Relaxed);
            }
            gst::PadProbeReturn::Ok
        });
        sink.static_pad("sink")
    })?;
    let result = run_to_eos(&pipeline);
    let _ = pipeline.set_state(gst::State::Null);
    result?;
    let ends = ends.lock().unwrap_or_else(|e| e.into_inner());
    Ok(ends
        .iter()
        .map(|e| e.load(Ordering::Relaxed))
        .filter(|&ns| ns > 0)
        .min()
        .map(gst::ClockTime::from_nseconds))
}

/// Remuxes every stream into `out`, dropping media that starts at or after `end`.
fn remux(
    part: &Source,
    out: &Path,
    format: Format,
    end: Option<gst::ClockTime>,
    keyring: Option<&Keyring>,
) -> Result<(), SalvageError> {
    let mux = make(match format {
        Format::Webm => "webmmux",
        Format::Mkv => "matroskamux",
        Format::Mp4 => "mp4mux",
    })?;
    let sink = match keyring {
        None => {
            let sink = make("filesink")?;
            sink.set_property("location", out.to_string_lossy().to_string());
            sink
        }
        Some(keyring) => {
            encrypted_sink(out, keyring).map_err(|e| SalvageError::Io(e.to_string()))?
        }
    };
    let muxer = mux.clone();
    let pipeline = demux_pipeline(part, format, move |_, pad, kind| {
        if let Some(end) = end {
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                match info.buffer().and_then(|b| b.pts()) {
                    Some(pts) if pts >= end => crate::build::discard(info),
                    _ => gst::PadProbeReturn::Ok,
                }
            });
        }
        muxer.request_pad_simple(mux_template(kind))
    })?;
    pipeline.add_many([&mux, &sink]).map_err(gerr)?;
    mux.link(&sink).map_err(gerr)?;
    let result = run_to_eos(&pipeline);
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// What a salvage reads: a plain `.part`, or an encrypted one and the keys to open it.
enum Source {
    Plain(PathBuf),
    Encrypted(PathBuf, Keyring),
}

impl Source {
    /// `filesrc`, or a [`decrypting_source`] over the authentic prefix of the file.
    fn element(&self) -> Result<gst::Element, SalvageError> {
        match self {
            Source::Plain(path) => {
                let src = make("filesrc")?;
                src.set_property("location", path.to_string_lossy().to_string());
                Ok(src)
            }
            Source::Encrypted(path, keyring) => {
                let reader = EncryptedReader::open(path, keyring)
                    .map_err(|e| SalvageError::Crypt(e.to_string()))?;
                Ok(decrypting_source(reader))
            }
        }
    }
}

/// `filesrc ! demux` (or the decrypting source); each audio or video stream the demuxer finds goes through the
/// multiqueue to the pad `to(pipeline, stream pad, kind)` returns (streams of other kinds, and
/// streams it returns `None` for, are left unlinked). Offline, so linking happens in
/// `pad-added`.
fn demux_pipeline<F>(part: &Source, format: Format, to: F) -> Result<gst::Pipeline, SalvageError>
where
    F: Fn(&gst::Pipeline, &gst::Pad, TrackKind) -> Option<gst::Pad> + Send + Sync + 'static,
{
    let pipeline = gst::Pipeline::new();
    let src = part.element()?;
    let demux = make(match format {
        Format::Webm | Format::Mkv => "matroskademux",
        Format::Mp4 => "qtdemux",
    })?;
    let queues = stream_queues()?;
    pipeline.add_many([&src, &demux, &queues]).map_err(gerr)?;
    src.link(&demux).map_err(gerr)?;
    let bin = pipeline.downgrade();
    demux.connect_pad_added(move |_, pad| {
        let Some(bin) = bin.upgrade() else { return };
        let kind = match pad.name().split('_').next() {
            Some("video") => TrackKind::Video,
            Some("audio") => TrackKind::Audio,
            _ => return,
        };
        if let Some(target) = to(&bin, pad, kind) {
            link_through(&queues, pad, &target);
        }
    });
    Ok(pipeline)
}

/// One queue per stream. A file holds its streams interleaved by time, so when one starts
/// late (a track's video waits for its first keyframe, a camera is turned on minutes into
/// the call) the demuxer must get past all the earlier media of the others before the late
/// stream's first buffer reaches the muxer, which waits for every stream. A `queue` with
/// its 1 s limit blocks the demuxer there for good; a multiqueue lets a queue grow while
/// another is empty and otherwise holds 5 buffers per stream.
fn stream_queues() -> Result<gst::Element, SalvageError> {
    gst::ElementFactory::make("multiqueue")
        .name(STREAM_QUEUES)
        .property("max-size-buffers", 5u32)
        .property("max-size-bytes", 0u32)
        .property("max-size-time", 0u64)
        .build()
        .map_err(|e| SalvageError::Gstreamer(format!("multiqueue: {e}")))
}

/// The name of the [`stream_queues`] element in a salvage pipeline.
const STREAM_QUEUES: &str = "streams";

fn link_through(queues: &gst::Element, pad: &gst::Pad, target: &gst::Pad) {
    let Some(sink) = queues.request_pad_simple("sink_%u") else {
        return;
    };
    let src = sink.iterate_internal_links().next().ok().flatten();
    if let Some(src) = src {
        if src.link(target).is_ok() {
            let _ = pad.link(&sink);
        }
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
            // With no stream found, no EOS will follow.
            gst::MessageView::Error(e) if tail_error.is_none() => {
                if end_streams(pipeline) == 0 {
                    return Err(SalvageError::Gstreamer(e.error().to_string()));
                }
                tail_error = Some(e.error().to_string());
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

/// Sends EOS into every stream's queue; returns how many streams there were.
fn end_streams(pipeline: &gst::Pipeline) -> usize {
    let pads = pipeline
        .by_name(STREAM_QUEUES)
        .map(|queues| queues.sink_pads())
        .unwrap_or_default();
    for pad in &pads {
        pad.send_event(gst::event::Eos::new());
    }
    pads.len()
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
