//! The thin, effectful half of pipeline construction: turns plan pieces into linked elements.

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::crypt::elements::encrypted_sink;
use crate::plan::{ElementPlan, MixerPlan, OutputPlan, Plan};
use crate::spec::TrackKind;

/// A GStreamer element could not be created, configured or linked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pipeline build failed: {0}")]
pub struct BuildError(pub String);

fn err(context: impl std::fmt::Display) -> impl FnOnce(glib::BoolError) -> BuildError {
    move |e| BuildError(format!("{context}: {e}"))
}

/// Creates one element and sets its planned properties.
pub(crate) fn element(plan: &ElementPlan) -> Result<gst::Element, BuildError> {
    let e = gst::ElementFactory::make(plan.factory)
        .build()
        .map_err(err(format!("missing element {}", plan.factory)))?;
    for (name, text) in &plan.props {
        let pspec = e
            .find_property(name)
            .ok_or_else(|| BuildError(format!("{} has no property {name}", plan.factory)))?;
        let value = glib::Value::deserialize(text, pspec.value_type())
            .map_err(err(format!("{}.{name}={text}", plan.factory)))?;
        e.set_property_from_value(name, &value);
    }
    Ok(e)
}

/// Creates, adds and links a chain of elements (state is left to the caller).
pub(crate) fn add_chain(
    bin: &gst::Pipeline,
    plans: &[ElementPlan],
) -> Result<Vec<gst::Element>, BuildError> {
    let elements = plans.iter().map(element).collect::<Result<Vec<_>, _>>()?;
    bin.add_many(&elements).map_err(err("add chain"))?;
    if let Err(e) = gst::Element::link_many(&elements) {
        let _ = bin.remove_many(&elements);
        return Err(BuildError(format!("link chain: {e}")));
    }
    Ok(elements)
}

/// Links `src`'s src pad to a new request pad of `sink` (`sink_%u`, `video_%u` or `audio_%u`).
pub(crate) fn link_request(
    src: &gst::Element,
    sink: &gst::Element,
    template: &str,
) -> Result<gst::Pad, BuildError> {
    let pad = sink
        .request_pad_simple(template)
        .ok_or_else(|| BuildError(format!("{} refused a {template} pad", sink.name())))?;
    let src_pad = src
        .static_pad("src")
        .ok_or_else(|| BuildError("chain has no src pad".into()))?;
    src_pad
        .link(&pad)
        .map_err(|e| BuildError(format!("link to {template}: {e:?}")))?;
    Ok(pad)
}

/// The muxer request pad template for a kind.
pub(crate) fn mux_template(kind: TrackKind) -> &'static str {
    match kind {
        TrackKind::Audio => "audio_%u",
        TrackKind::Video => "video_%u",
    }
}

/// A muxer writing to its `.part` file.
#[derive(Debug, Clone)]
pub(crate) struct BuiltOutput {
    pub(crate) muxer: gst::Element,
    pub(crate) sink: gst::Element,
    /// The media its muxer was given.
    pub(crate) span: Arc<MediaSpan>,
}

/// The running time of the first buffer into a muxer and the end of the last one, over all of
/// its inputs: the length of the media its file holds, which is shorter than the timeline when
/// the pipeline fell behind or the inputs ended early.
#[derive(Debug)]
pub(crate) struct MediaSpan {
    first: AtomicU64,
    end: AtomicU64,
}

impl MediaSpan {
    fn new() -> Self {
        MediaSpan {
            first: AtomicU64::new(u64::MAX),
            end: AtomicU64::new(0),
        }
    }

    fn note(&self, start: u64, end: u64) {
        self.first.fetch_min(start, Ordering::Relaxed);
        self.end.fetch_max(end, Ordering::Relaxed);
    }

    /// From the first buffer's start to the last one's end; zero before any buffer.
    pub(crate) fn duration(&self) -> Duration {
        let first = self.first.load(Ordering::Relaxed);
        let end = self.end.load(Ordering::Relaxed);
        Duration::from_nanos(end.saturating_sub(first))
    }
}

/// Notes every buffer entering one of `muxer`'s sink pads in `span`.
fn measure_input(muxer: &gst::Element, span: Arc<MediaSpan>) {
    muxer.connect_pad_added(move |_, pad| {
        if pad.direction() != gst::PadDirection::Sink {
            return;
        }
        let span = span.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let Some(buffer) = info.buffer() else {
                return gst::PadProbeReturn::Ok;
            };
            let Some(pts) = buffer.pts() else {
                return gst::PadProbeReturn::Ok;
            };
            let running = |t: gst::ClockTime| {
                pad.sticky_event::<gst::event::Segment>(0)
                    .and_then(|e| {
                        e.segment()
                            .downcast_ref::<gst::ClockTime>()
                            .and_then(|s| s.to_running_time(t))
                    })
                    .unwrap_or(t)
                    .nseconds()
            };
            let end = pts + buffer.duration().unwrap_or(gst::ClockTime::ZERO);
            span.note(running(pts), running(end));
            gst::PadProbeReturn::Ok
        });
    });
}

/// `muxer ! filesink location=<part>`, or the [`encrypted_sink`] when the plan has keys.
/// Unbuffered: each muxed buffer is written at once, so a killed process leaves everything
/// muxed so far on disk. With the default 64 KiB buffer a low-bitrate composite (about
/// 28 KB/s) lost several seconds to a SIGKILL.
pub(crate) fn add_output(
    bin: &gst::Pipeline,
    plan: &OutputPlan,
) -> Result<BuiltOutput, BuildError> {
    let muxer = element(&plan.muxer)?;
    let span = Arc::new(MediaSpan::new());
    measure_input(&muxer, span.clone());
    let sink = match &plan.encryption {
        Some(keys) => encrypted_sink(&plan.part_path, keys)
            .map_err(|e| BuildError(format!("{}: {e}", plan.part_path.display())))?,
        None => gst::ElementFactory::make("filesink")
            .property("location", plan.part_path.to_string_lossy().to_string())
            .property("async", false)
            .property("sync", false)
            .property_from_str("buffer-mode", "unbuffered")
            .build()
            .map_err(err("filesink"))?,
    };
    bin.add_many([&muxer, &sink]).map_err(err("add output"))?;
    muxer.link(&sink).map_err(err("link muxer"))?;
    Ok(BuiltOutput { muxer, sink, span })
}

/// `source ! mixer ! encode... ! muxer`; returns the mixer.
pub(crate) fn add_mixer(
    bin: &gst::Pipeline,
    plan: &MixerPlan,
    muxer: &gst::Element,
) -> Result<gst::Element, BuildError> {
    let source = add_chain(bin, &plan.source)?;
    let mixer = element(&plan.mixer)?;
    bin.add(&mixer).map_err(err("add mixer"))?;
    let background = link_request(source.last().expect("source chain"), &mixer, "sink_%u")?;
    if plan.kind == TrackKind::Video {
        background.set_property("zorder", 0u32);
    }
    let encode = add_chain(bin, &plan.encode.elements)?;
    mixer.link(&encode[0]).map_err(err("link mixer"))?;
    if plan.skip_buffers > 0 {
        skip_leading_buffers(&encode[0], plan.skip_buffers);
    }
    link_request(
        encode.last().expect("encode chain"),
        muxer,
        mux_template(plan.kind),
    )?;
    Ok(mixer)
}

/// A pad probe's answer that discards the buffer or event it was given.
///
/// `PadProbeReturn::Drop` makes gstreamer-rs 0.25 unref the item itself and hand GStreamer
/// 1.22 a NULL, which the core unrefs again: "GStreamer-CRITICAL: gst_mini_object_unref:
/// assertion 'mini_object != NULL' failed" on every dropped item. `Handled` tells the core
/// the probe consumed the item, which it did.
pub(crate) fn discard(info: &mut gst::PadProbeInfo) -> gst::PadProbeReturn {
    drop(info.data.take());
    gst::PadProbeReturn::Handled
}

/// Drops the first `count` buffers entering `element` (the probe runs on a streaming thread).
fn skip_leading_buffers(element: &gst::Element, count: u32) {
    let pad = element
        .static_pad("sink")
        .expect("encode chain starts with a sink pad");
    let left = std::sync::atomic::AtomicU32::new(count);
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let dropping = left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if dropping {
            discard(info)
        } else {
            gst::PadProbeReturn::Remove
        }
    });
}

/// The static part of a plan: outputs and mixers (branches are added per input).
#[derive(Debug, Default)]
pub(crate) struct BuiltCore {
    pub(crate) outputs: Vec<(String, BuiltOutput)>,
    pub(crate) mixers: Vec<(TrackKind, gst::Element)>,
}

/// Materializes the outputs and mixers of `plan` into `bin`.
pub(crate) fn materialize(bin: &gst::Pipeline, plan: &Plan) -> Result<BuiltCore, BuildError> {
    let mut core = BuiltCore::default();
    for out in &plan.outputs {
        core.outputs.push((out.key.clone(), add_output(bin, out)?));
    }
    for mix in &plan.mixers {
        let muxer = &core.outputs[0].1.muxer;
        core.mixers.push((mix.kind, add_mixer(bin, mix, muxer)?));
    }
    Ok(core)
}

/// Every element factory a recording may use.
const REQUIRED: &[&str] = &[
    "appsrc",
    "rtpjitterbuffer",
    "rtpvp8depay",
    "rtpopusdepay",
    "opusparse",
    "opusdec",
    "opusenc",
    "vp8dec",
    "vp8enc",
    "x264enc",
    "h264parse",
    "avenc_aac",
    "aacparse",
    "compositor",
    "audiomixer",
    "textoverlay",
    "audioconvert",
    "audioresample",
    "capsfilter",
    "queue",
    "webmmux",
    "matroskamux",
    "mp4mux",
    "filesink",
    "fakesink",
    "appsrc",
];

/// Initialises GStreamer and checks that every element a recording may need is installed.
pub fn check_plugins() -> Result<(), BuildError> {
    gst::init().map_err(|e| BuildError(format!("gstreamer init: {e}")))?;
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|f| gst::ElementFactory::find(f).is_none())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(BuildError(format!(
            "missing GStreamer elements: {}",
            missing.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_required_plugin_is_installed() {
        super::check_plugins().unwrap();
    }
}
