//! GStreamer media for test peers: live VP8/Opus RTP sources and RTP decoders that count
//! decoded frames.

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use rtc::rtp;
use rtc::shared::marshal::{Marshal, Unmarshal};
use signaling::protocol::MediaKind;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Once};
use tokio::sync::mpsc;

/// Test video size.
pub const WIDTH: u32 = 320;
pub const HEIGHT: u32 = 240;

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| gst::init().expect("GStreamer init"));
}

/// A running pipeline, stopped on drop.
pub struct Pipeline(gst::Pipeline);

impl Drop for Pipeline {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}

fn launch(description: &str) -> gst::Pipeline {
    init();
    gst::parse::launch(description)
        .unwrap_or_else(|e| panic!("bad pipeline `{description}`: {e}"))
        .downcast::<gst::Pipeline>()
        .expect("a pipeline")
}

/// The published audio, from source to RTP payloader: a 440 Hz sine, Opus 48 kHz stereo.
pub const AUDIO: &str = "audiotestsrc is-live=true wave=sine freq=440 \
    ! audio/x-raw,rate=48000,channels=2 ! opusenc ! rtpopuspay pt=111 mtu=1150";

/// Live RTP of `kind` (VP8 320x240@15 of `pattern`, or `audio` such as [`AUDIO`]) delivered
/// to `packets`.
pub fn rtp_source(
    kind: MediaKind,
    pattern: &str,
    audio: &str,
    packets: mpsc::Sender<rtp::Packet>,
) -> Pipeline {
    let description = match kind {
        MediaKind::Video => format!(
            "videotestsrc is-live=true pattern={pattern} ! video/x-raw,width={WIDTH},height={HEIGHT},framerate=15/1 \
             ! vp8enc deadline=1 cpu-used=8 keyframe-max-dist=30 target-bitrate=300000 \
             ! rtpvp8pay pt=96 mtu=1150 ! appsink name=sink sync=false"
        ),
        MediaKind::Audio => format!("{audio} ! appsink name=sink sync=false"),
    };
    let pipeline = launch(&description);
    let sink = app_sink(&pipeline);
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                if let Ok(packet) = rtp::Packet::unmarshal(&mut map.as_slice()) {
                    let _ = packets.try_send(packet);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    pipeline
        .set_state(gst::State::Playing)
        .expect("source plays");
    Pipeline(pipeline)
}

fn app_sink(pipeline: &gst::Pipeline) -> gst_app::AppSink {
    pipeline
        .by_name("sink")
        .expect("sink")
        .downcast::<gst_app::AppSink>()
        .expect("appsink")
}

/// What a decoder has produced so far.
#[derive(Default)]
pub struct DecodeStats {
    pub packets: AtomicU64,
    pub frames: AtomicU64,
    pub width: AtomicU32,
    pub height: AtomicU32,
}

impl DecodeStats {
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    pub fn size(&self) -> (u32, u32) {
        (
            self.width.load(Ordering::Relaxed),
            self.height.load(Ordering::Relaxed),
        )
    }
}

/// How long a test decoder waits for a missing packet: like a browser's jitter buffer on a
/// lossy link, long enough for a NACKed retransmission (one round trip plus the server's NACK
/// interval) to arrive.
const DECODER_LATENCY_MS: u32 = 500;

/// Decodes received RTP of one track (jitter buffer, depayloader, libvpx/libopus decoder).
/// Video frames are decoded only from a keyframe on and after each loss nothing until the next
/// keyframe, so a frame that counts was decoded from complete references.
pub struct Decoder {
    src: gst_app::AppSrc,
    pub stats: Arc<DecodeStats>,
    _pipeline: Pipeline,
}

impl Decoder {
    pub fn new(kind: MediaKind) -> Self {
        let (caps, chain) = match kind {
            MediaKind::Video => (
                "application/x-rtp,media=video,clock-rate=90000,encoding-name=VP8,payload=96",
                "rtpvp8depay wait-for-keyframe=true ! vp8dec ! videoconvert ! video/x-raw,format=I420",
            ),
            MediaKind::Audio => (
                "application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=111",
                "rtpopusdepay ! opusdec",
            ),
        };
        let pipeline = launch(&format!(
            "appsrc name=src is-live=true do-timestamp=true format=time caps=\"{caps}\" \
             ! rtpjitterbuffer latency={DECODER_LATENCY_MS} ! {chain} ! appsink name=sink sync=false"
        ));
        let stats = Arc::new(DecodeStats::default());
        let counted = Arc::clone(&stats);
        app_sink(&pipeline).set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    if let Some(s) = sample.caps().and_then(|c| c.structure(0)) {
                        if let (Ok(w), Ok(h)) = (s.get::<i32>("width"), s.get::<i32>("height")) {
                            counted.width.store(w as u32, Ordering::Relaxed);
                            counted.height.store(h as u32, Ordering::Relaxed);
                        }
                    }
                    counted.frames.fetch_add(1, Ordering::Relaxed);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        pipeline
            .set_state(gst::State::Playing)
            .expect("decoder plays");
        let src = pipeline
            .by_name("src")
            .expect("src")
            .downcast::<gst_app::AppSrc>()
            .expect("appsrc");
        Self {
            src,
            stats,
            _pipeline: Pipeline(pipeline),
        }
    }

    pub fn push(&self, packet: &rtp::Packet) {
        self.stats.packets.fetch_add(1, Ordering::Relaxed);
        if let Ok(bytes) = packet.marshal() {
            let _ = self
                .src
                .push_buffer(gst::Buffer::from_slice(bytes.to_vec()));
        }
    }
}
