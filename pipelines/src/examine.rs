//! Checking a media file someone else wrote (a browser's MediaRecorder upload): demux and
//! parse every stream to the end, and report the container, the streams and the duration.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::spec::Format;

/// How long a probe may take before it is abandoned.
const PROBE_TIMEOUT: Duration = Duration::from_secs(300);

/// What [`examine`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Examined {
    pub format: Format,
    /// The end of the last buffer of the longest stream.
    pub duration: Duration,
    /// Each stream's parsed caps name, e.g. `video/x-vp8`, `audio/x-opus`.
    pub streams: Vec<String>,
}

/// Why a file is not playable media.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExamineError {
    #[error("not a WebM, Matroska or MP4 file")]
    Container,
    #[error("cannot read the file: {0}")]
    Io(String),
    #[error("the file holds no audio or video")]
    NoMedia,
    #[error("the media cannot be read: {0}")]
    Unreadable(String),
}

#[derive(Default)]
struct Found {
    streams: Vec<String>,
    end: u64,
}

fn make(factory: &str) -> Result<gst::Element, ExamineError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|e| ExamineError::Unreadable(format!("{factory}: {e}")))
}

/// Demuxes and parses `path` to its end (`filesrc ! parsebin`, no decoding).
/// Garbage, a file cut inside its headers, a demuxer error or a file without audio or video
/// fail with the reason.
///
/// Blocking: it reads the whole file as fast as the disk allows; call it from
/// `spawn_blocking`.
pub fn examine(path: &Path) -> Result<Examined, ExamineError> {
    let format = container(path)?;
    gst::init().map_err(|e| ExamineError::Unreadable(e.to_string()))?;
    let pipeline = gst::Pipeline::new();
    let src = make("filesrc")?;
    src.set_property("location", path.to_string_lossy().to_string());
    let parse = make("parsebin")?;
    let fail = |e: gst::glib::BoolError| ExamineError::Unreadable(e.to_string());
    pipeline.add_many([&src, &parse]).map_err(fail)?;
    src.link(&parse).map_err(fail)?;
    let found: Arc<Mutex<Found>> = Arc::default();
    let seen = found.clone();
    let bin = pipeline.downgrade();
    parse.connect_pad_added(move |_, pad| {
        let Some(bin) = bin.upgrade() else { return };
        let Ok(sink) = gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .property("async", false)
            .build()
        else {
            return;
        };
        let caps = pad.current_caps().or_else(|| Some(pad.query_caps(None)));
        let name = caps
            .and_then(|c| c.structure(0).map(|s| s.name().to_string()))
            .unwrap_or_default();
        seen.lock()
            .unwrap_or_else(|e| e.into_inner())
            .streams
            .push(name);
        let ends = seen.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(b) = info.buffer() {
                if let Some(pts) = b.pts() {
                    let stop = (pts + b.duration().unwrap_or_default()).nseconds();
                    let mut f = ends.lock().unwrap_or_else(|e| e.into_inner());
                    f.end = f.end.max(stop);
                }
            }
            gst::PadProbeReturn::Ok
        });
        if bin.add(&sink).is_ok() {
            let _ = sink.sync_state_with_parent();
            if let Some(sink_pad) = sink.static_pad("sink") {
                let _ = pad.link(&sink_pad);
            }
        }
    });
    let result = run(&pipeline);
    let _ = pipeline.set_state(gst::State::Null);
    result?;
    let found = found.lock().unwrap_or_else(|e| e.into_inner());
    let media = |s: &String| s.starts_with("video/") || s.starts_with("audio/");
    if found.end == 0 || !found.streams.iter().any(media) {
        return Err(ExamineError::NoMedia);
    }
    Ok(Examined {
        format,
        duration: Duration::from_nanos(found.end),
        streams: found.streams.clone(),
    })
}

fn run(pipeline: &gst::Pipeline) -> Result<(), ExamineError> {
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| ExamineError::Unreadable(e.to_string()))?;
    let bus = pipeline.bus().expect("pipeline has a bus");
    let types = [gst::MessageType::Eos, gst::MessageType::Error];
    let timeout = gst::ClockTime::from_nseconds(PROBE_TIMEOUT.as_nanos() as u64);
    let Some(msg) = bus.timed_pop_filtered(timeout, &types) else {
        return Err(ExamineError::Unreadable(format!(
            "no end of stream within {} s",
            PROBE_TIMEOUT.as_secs()
        )));
    };
    match msg.view() {
        gst::MessageView::Error(e) => {
            let detail = e.debug().map(|d| format!(" ({d})")).unwrap_or_default();
            Err(ExamineError::Unreadable(format!("{}{detail}", e.error())))
        }
        _ => Ok(()),
    }
}

/// The container, from the file's first bytes: an EBML header with DocType `webm` or
/// `matroska`, or an MP4 `ftyp` box.
fn container(path: &Path) -> Result<Format, ExamineError> {
    let mut head = Vec::with_capacity(64);
    let file = std::fs::File::open(path).map_err(|e| ExamineError::Io(e.to_string()))?;
    std::io::Read::read_to_end(&mut std::io::Read::take(file, 64), &mut head)
        .map_err(|e| ExamineError::Io(e.to_string()))?;
    let has = |needle: &[u8]| head.windows(needle.len()).any(|w| w == needle);
    if head.starts_with(&[0x1a, 0x45, 0xdf, 0xa3]) {
        if has(b"webm") {
            return Ok(Format::Webm);
        }
        if has(b"matroska") {
            return Ok(Format::Mkv);
        }
    }
    if head.get(4..8) == Some(b"ftyp") {
        return Ok(Format::Mp4);
    }
    Err(ExamineError::Container)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container_of(bytes: &[u8]) -> Result<Format, ExamineError> {
        let dir = std::env::temp_dir().join(format!("examine-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}", bytes.len()));
        std::fs::write(&path, bytes).unwrap();
        let found = container(&path);
        let _ = std::fs::remove_file(&path);
        found
    }

    #[test]
    fn containers_by_their_first_bytes() {
        let ebml =
            |doc: &[u8]| [&[0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0x42, 0x82, 0x84][..], doc].concat();
        assert_eq!(container_of(&ebml(b"webm")), Ok(Format::Webm));
        assert_eq!(container_of(&ebml(b"matroska")), Ok(Format::Mkv));
        assert_eq!(container_of(b"\0\0\0\x20ftypisom"), Ok(Format::Mp4));
        assert_eq!(container_of(b"hello world"), Err(ExamineError::Container));
        assert_eq!(container_of(&ebml(b"other")), Err(ExamineError::Container));
    }
}
