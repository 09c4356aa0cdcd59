//! The pure half of pipeline construction: [`plan`] turns a [`RecordingSpec`] and the current
//! inputs into a [`Plan`] (element factories, properties, targets, tile geometry, file paths).
//! Nothing here touches GStreamer state; `build.rs` materializes plans.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::crypt::Keyring;
use crate::layout::{self, Rect};
use crate::spec::{
    AudioCodec, Codec, Mode, QualitySettings, RecordingSpec, TrackKind, TrackSpec, VideoCodec,
};

/// Jitter buffer latency for every input, in milliseconds: how long a missing packet is
/// waited for before it counts as lost.
///
/// The server NACKs a publisher for every missing packet every 100 ms (webrtc-rs's NACK
/// generator) until it arrives, so a retransmission lands one RTT plus up to 100 ms after the
/// loss, and a retransmission that is lost too is asked for again. 1 s covers six rounds at
/// a 50 ms RTT and three at 200 ms: with 10 % random loss, 0.1 % of losses stay lost at a
/// 200 ms RTT. With the 200 ms of a live view, a recording behind 10 % loss kept 82 % of its
/// frames (one lost retransmission cost the rest of the keyframe interval). A recording may
/// lag real time by this much; what it holds is what a viewer with a long buffer would see.
pub const JITTER_LATENCY_MS: u32 = 1000;
/// One AAC frame (the encoder's priming) at 48 kHz, as a buffer duration.
const AAC_PRIMING_FRACTION: &str = "1024/48000";

/// How both mixers choose their start: at their first input buffer (the live black/silence
/// source's, a few ms after PLAYING).
///
/// With `zero`, GStreamer 1.22's aggregator may output on a clock timeout before any pad has
/// a buffer (its base time is stale while the pipeline goes to PLAYING, fixed upstream in
/// 1.26.2, or the first source buffer is late under load). The first buffer then moves the
/// output position back to zero while the frame count runs on: the compositor emitted two
/// frames with PTS 0 (h264parse stripped the second one's PTS and mp4mux failed with "Buffer
/// has no PTS"), and the audio mixer repeated its first tens of milliseconds (audio late by
/// that much at the start of a file). With `first` nothing is output before a buffer arrives.
const MIXER_START: &str = "first";

/// Aggregator (compositor/audiomixer) latency, in nanoseconds: how late an input's buffer may
/// reach the mixer and still be mixed. A buffer later than this is skipped. It covers the
/// input's jitter buffer, which holds every packet after a gap for up to
/// [`JITTER_LATENCY_MS`] (waiting for a retransmission), and 500 ms more for the
/// stalls of a loaded machine (with 100 ms, a 2-core machine busy compiling lost up to 3
/// frames in a row). A recording may lag behind real time; it should not lose frames.
pub const MIXER_LATENCY_NS: u64 = JITTER_LATENCY_MS as u64 * 1_000_000 + 500_000_000;
/// A tile whose input sent nothing for this long is blanked, in nanoseconds.
pub const TILE_HOLD_NS: u64 = 1_000_000_000;
/// Upper bound of RTP bytes queued in an input's appsrc.
pub const APPSRC_MAX_BYTES: u64 = 2_000_000;
/// Upper bound of raw video bytes in one queue, whatever its time bound: 1 s of 3840x2160@60
/// I420 alone is 746 MB (one ultra composite with no inputs reached 1.95 GB RSS unbounded).
pub const RAW_VIDEO_QUEUE_MAX_BYTES: u64 = 32 * 1024 * 1024;
/// Bytes per second of raw audio in the mixers' format at most (48 kHz stereo F32).
const RAW_AUDIO_BYTES_PER_SECOND: u64 = 48_000 * 2 * 4;
/// Encoded queues hold their time bound at twice the target bitrate (keyframes, bursts), and
/// at least this much.
const ENCODED_QUEUE_MIN_BYTES: u64 = 256 * 1024;
/// Passthrough queues carry the publisher's encoded video, whose bitrate the server does not
/// set: sized for this many bits per second (browsers' WebRTC video stays below it).
const PASSTHROUGH_VIDEO_BITRATE: u64 = 4_000_000;
/// Opus's highest bitrate (RFC 6716).
const OPUS_MAX_BITRATE: u64 = 510_000;

/// One GStreamer element: factory name and properties as GStreamer value strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementPlan {
    /// Element factory, e.g. `rtpjitterbuffer`.
    pub factory: &'static str,
    /// `(property, value)` pairs, set with `set_property_from_str`.
    pub props: Vec<(&'static str, String)>,
}

impl ElementPlan {
    fn new(factory: &'static str, props: &[(&'static str, &dyn ToString)]) -> Self {
        ElementPlan {
            factory,
            props: props.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        }
    }

    /// The value planned for `prop`, if any.
    pub fn prop(&self, prop: &str) -> Option<&str> {
        self.props
            .iter()
            .find(|(k, _)| *k == prop)
            .map(|(_, v)| v.as_str())
    }
}

/// Where a chain's last element is linked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A request pad of the audio or video mixer.
    Mixer(TrackKind),
    /// A request pad (`audio_%u`/`video_%u`) of the muxer of the output with this key.
    Output(String),
}

/// A linear chain of elements ending at a [`Target`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// Elements, linked in order.
    pub elements: Vec<ElementPlan>,
    /// What the last element links to.
    pub target: Target,
    /// Media kind flowing into the target.
    pub kind: TrackKind,
}

/// The per-input branch: `appsrc ! rtpjitterbuffer ! depay ! ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchPlan {
    /// The input id.
    pub input: String,
    /// The chain; element 0 is the appsrc.
    pub chain: Chain,
    /// Index of the jitter buffer (its statistics count lost packets).
    pub jitterbuffer_index: usize,
    /// Index of the depayloader (its sink pad carries keyframe requests upstream).
    pub depay_index: usize,
}

/// A mixer with its live timing source and its encoder chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MixerPlan {
    /// Audio (audiomixer) or video (compositor).
    pub kind: TrackKind,
    /// Live black/silence source keeping time with zero inputs, linked to the mixer's first pad.
    pub source: Vec<ElementPlan>,
    /// The aggregator.
    pub mixer: ElementPlan,
    /// Caps filter, encoder and queues after the mixer, ending at the output.
    pub encode: Chain,
    /// Mixer output buffers dropped before encoding, to cancel the encoder's priming delay:
    /// AAC prepends 1024 samples and fragmented mp4mux (1.22) writes no edit list to skip
    /// them, so the mixer emits 1024-sample buffers and the first one is dropped.
    pub skip_buffers: u32,
}

/// One output file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputPlan {
    /// Key used by [`Target::Output`]: `""` for composite, `participant#generation` for tracks.
    pub key: String,
    /// Participant of a tracks-mode file.
    pub participant: Option<String>,
    /// File written while recording.
    pub part_path: PathBuf,
    /// File name after a clean stop.
    pub final_path: PathBuf,
    /// The muxer.
    pub muxer: ElementPlan,
    /// The keys the file is encrypted with; `None` writes it in the clear.
    pub encryption: Option<Keyring>,
}

/// Placement of one video input on the canvas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TilePlan {
    /// The input id.
    pub input: String,
    /// The tile.
    pub rect: Rect,
}

/// A complete pipeline description for a spec and a set of inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Mixers (composite only).
    pub mixers: Vec<MixerPlan>,
    /// Output files.
    pub outputs: Vec<OutputPlan>,
    /// One branch per accepted input.
    pub branches: Vec<BranchPlan>,
    /// Video tiles (composite with video only).
    pub tiles: Vec<TilePlan>,
}

/// Live state the plan depends on besides the inputs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanContext {
    /// Participant whose tile is large in the speaker layout.
    pub active_speaker: Option<String>,
    /// Tracks mode: how many files each participant already finished or started before the
    /// current one (a track joining after a participant's file began opens a new file).
    pub file_generation: BTreeMap<String, u32>,
}

/// Plans the whole pipeline. Inputs the spec cannot record (video in audio-only) are skipped;
/// `Recorder::add_input` rejects them before they get here.
pub fn plan(spec: &RecordingSpec, inputs: &[TrackSpec], ctx: &PlanContext) -> Plan {
    let inputs: Vec<&TrackSpec> = inputs.iter().filter(|t| accepts(spec, t)).collect();
    match spec.mode() {
        Mode::Composite => Plan {
            mixers: composite_mixers(spec),
            outputs: vec![composite_output(spec)],
            branches: inputs.iter().map(|t| branch(spec, t, ctx)).collect(),
            tiles: tiles(spec, &inputs, ctx),
        },
        Mode::Tracks => {
            let mut outputs: Vec<OutputPlan> = Vec::new();
            for t in &inputs {
                let out = participant_output(spec, &t.participant, generation(ctx, &t.participant));
                if !outputs.iter().any(|o| o.key == out.key) {
                    outputs.push(out);
                }
            }
            Plan {
                mixers: Vec::new(),
                outputs,
                branches: inputs.iter().map(|t| branch(spec, t, ctx)).collect(),
                tiles: Vec::new(),
            }
        }
    }
}

/// Whether the spec records this kind of track at all.
pub fn accepts(spec: &RecordingSpec, track: &TrackSpec) -> bool {
    !(spec.audio_only() && track.kind == TrackKind::Video)
}

fn generation(ctx: &PlanContext, participant: &str) -> u32 {
    ctx.file_generation.get(participant).copied().unwrap_or(0)
}

/// The output key of a tracks-mode participant file.
pub fn output_key(participant: &str, generation: u32) -> String {
    format!("{participant}#{generation}")
}

fn composite_output(spec: &RecordingSpec) -> OutputPlan {
    output(spec, String::new(), None, spec.base_name().to_string())
}

/// The file of one participant in tracks mode (`<base>_<participant>[_<n>].<ext>`).
pub fn participant_output(spec: &RecordingSpec, participant: &str, generation: u32) -> OutputPlan {
    let safe: String = participant
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let stem = match generation {
        0 => format!("{}_{safe}", spec.base_name()),
        n => format!("{}_{safe}_{n}", spec.base_name()),
    };
    output(
        spec,
        output_key(participant, generation),
        Some(participant.to_string()),
        stem,
    )
}

fn output(
    spec: &RecordingSpec,
    key: String,
    participant: Option<String>,
    stem: String,
) -> OutputPlan {
    let final_path = spec
        .output_dir()
        .join(format!("{stem}.{}", spec.format().extension()));
    let mut part = final_path.clone().into_os_string();
    part.push(".part");
    OutputPlan {
        key,
        participant,
        part_path: part.into(),
        final_path,
        muxer: muxer(spec),
        encryption: spec.encryption().cloned(),
    }
}

fn muxer(spec: &RecordingSpec) -> ElementPlan {
    match spec.format() {
        crate::spec::Format::Webm => ElementPlan::new("webmmux", &[]),
        crate::spec::Format::Mkv => ElementPlan::new("matroskamux", &[]),
        // Standard fragmented MP4 (moov, then moof/mdat pairs of 1 s): playable after a
        // crash, and qtdemux reads every fragment back for salvage (with
        // `first-moov-then-finalise` it stops after the first one).
        crate::spec::Format::Mp4 => ElementPlan::new(
            "mp4mux",
            &[
                ("fragment-duration", &1000),
                ("fragment-mode", &"dash-or-mss"),
            ],
        ),
    }
}

/// The branch for one input: RTP in, depayloaded (tracks) or decoded (composite) media out.
pub fn branch(spec: &RecordingSpec, track: &TrackSpec, ctx: &PlanContext) -> BranchPlan {
    let (depay, tail, target) = match spec.mode() {
        Mode::Tracks => {
            let key = output_key(&track.participant, generation(ctx, &track.participant));
            (
                depayloader(track.codec),
                passthrough_tail(track.codec),
                Target::Output(key),
            )
        }
        Mode::Composite => (
            depayloader(track.codec),
            decode_tail(spec, track),
            Target::Mixer(track.kind),
        ),
    };
    let mut elements = vec![appsrc(track), jitterbuffer(spec.mode()), depay];
    elements.extend(tail);
    BranchPlan {
        input: track.id.clone(),
        chain: Chain {
            elements,
            target,
            kind: track.kind,
        },
        jitterbuffer_index: 1,
        depay_index: 2,
    }
}

/// RTP caps for an input's appsrc.
pub fn rtp_caps(track: &TrackSpec) -> String {
    let (media, name) = match track.codec {
        Codec::Vp8 => ("video", "VP8"),
        Codec::Opus => ("audio", "OPUS"),
    };
    format!(
        "application/x-rtp,media={media},clock-rate={},encoding-name={name},payload={}",
        track.clock_rate, track.payload_type
    )
}

fn appsrc(track: &TrackSpec) -> ElementPlan {
    ElementPlan::new(
        "appsrc",
        &[
            ("is-live", &true),
            ("format", &"time"),
            ("do-timestamp", &false),
            ("max-bytes", &APPSRC_MAX_BYTES),
            ("leaky-type", &"downstream"),
            ("caps", &rtp_caps(track)),
        ],
    )
}

/// Consecutive packets after which a composite input's jitter buffer starts pushing, instead
/// of holding the input's first packet for its whole latency.
const JITTER_FASTSTART_PACKETS: u32 = 2;

/// A composite input starts at once: its first frames reach the mixer within its latency. A
/// tracks input holds its first packet for the whole latency, so that a participant's audio
/// and video both reach their muxer before it writes the file's headers (started on two
/// packets, video wrote them alone: the audio then failed the recording, "Caps on pad arrived
/// late", or opened a second file).
fn jitterbuffer(mode: Mode) -> ElementPlan {
    let faststart = match mode {
        Mode::Composite => JITTER_FASTSTART_PACKETS,
        Mode::Tracks => 0,
    };
    ElementPlan::new(
        "rtpjitterbuffer",
        &[
            ("latency", &JITTER_LATENCY_MS),
            ("faststart-min-packets", &faststart),
        ],
    )
}

fn depayloader(codec: Codec) -> ElementPlan {
    match codec {
        Codec::Vp8 => ElementPlan::new(
            "rtpvp8depay",
            &[("request-keyframe", &true), ("wait-for-keyframe", &true)],
        ),
        Codec::Opus => ElementPlan::new("rtpopusdepay", &[]),
    }
}

/// A queue bounded by time and by bytes, whichever is reached first.
fn queue(max_time_ns: u64, max_bytes: u64, leaky: bool) -> ElementPlan {
    let leaky = if leaky { "downstream" } else { "no" };
    ElementPlan::new(
        "queue",
        &[
            ("max-size-time", &max_time_ns),
            ("max-size-buffers", &0),
            ("max-size-bytes", &max_bytes),
            ("leaky", &leaky),
        ],
    )
}

/// Raw I420 video of the preset's canvas for `ns`, capped at [`RAW_VIDEO_QUEUE_MAX_BYTES`]
/// but never under one frame (decoded inputs larger than the canvas fit fewer frames).
pub fn raw_video_queue_bytes(q: QualitySettings, ns: u64) -> u64 {
    let frame = u64::from(q.width) * u64::from(q.height) * 3 / 2;
    let frames = (u64::from(q.fps) * ns).div_ceil(1_000_000_000).max(1);
    (frame * frames).min(RAW_VIDEO_QUEUE_MAX_BYTES).max(frame)
}

/// Raw audio for `ns`.
pub fn raw_audio_queue_bytes(ns: u64) -> u64 {
    RAW_AUDIO_BYTES_PER_SECOND * ns / 1_000_000_000
}

/// Encoded media at `bitrate` bits per second for `ns`, with twice the room.
pub fn encoded_queue_bytes(bitrate: u64, ns: u64) -> u64 {
    (2 * bitrate / 8 * ns / 1_000_000_000).max(ENCODED_QUEUE_MIN_BYTES)
}

/// Passthrough: hold a few seconds so the muxer can wait for the first keyframe.
fn passthrough_tail(codec: Codec) -> Vec<ElementPlan> {
    const HOLD_NS: u64 = 5_000_000_000;
    match codec {
        Codec::Vp8 => vec![queue(
            HOLD_NS,
            encoded_queue_bytes(PASSTHROUGH_VIDEO_BITRATE, HOLD_NS),
            true,
        )],
        Codec::Opus => vec![
            ElementPlan::new("opusparse", &[]),
            queue(
                HOLD_NS,
                encoded_queue_bytes(OPUS_MAX_BITRATE, HOLD_NS),
                true,
            ),
        ],
    }
}

fn decode_tail(spec: &RecordingSpec, track: &TrackSpec) -> Vec<ElementPlan> {
    // While the mixer waits for a late input, the others queue here.
    const HOLD_NS: u64 = MIXER_LATENCY_NS;
    match track.codec {
        Codec::Vp8 => vec![
            ElementPlan::new("vp8dec", &[]),
            name_label(&track.participant),
            queue(
                HOLD_NS,
                raw_video_queue_bytes(spec.quality().settings(), HOLD_NS),
                true,
            ),
        ],
        Codec::Opus => vec![
            ElementPlan::new("opusdec", &[("plc", &true)]),
            ElementPlan::new("audioconvert", &[]),
            ElementPlan::new("audioresample", &[]),
            queue(HOLD_NS, raw_audio_queue_bytes(HOLD_NS), true),
        ],
    }
}

/// The participant's name in the tile's bottom-left corner, drawn at the input's own size
/// (so it scales with the tile); text is rendered once and blended per frame.
fn name_label(participant: &str) -> ElementPlan {
    ElementPlan::new(
        "textoverlay",
        &[
            ("text", &participant),
            ("valignment", &"bottom"),
            ("halignment", &"left"),
            ("font-desc", &"Sans Bold 16"),
            ("shaded-background", &true),
        ],
    )
}

fn composite_mixers(spec: &RecordingSpec) -> Vec<MixerPlan> {
    let mut mixers = Vec::new();
    if let Some(codec) = spec.video_codec() {
        mixers.push(video_mixer(spec, codec));
    }
    mixers.push(audio_mixer(spec));
    mixers
}

/// Time bounds of the queues before and after a mixer's encoder.
const RAW_HOLD_NS: u64 = 1_000_000_000;
const ENCODED_HOLD_NS: u64 = 2_000_000_000;

fn video_mixer(spec: &RecordingSpec, codec: VideoCodec) -> MixerPlan {
    let q = spec.quality().settings();
    // Colorimetry is fixed too: the background alone negotiates bt709 at HD sizes, and a
    // decoded VP8 input (bt601, jpeg chroma siting) joining later would renegotiate the
    // compositor's output, which the muxers refuse ("caps changes are not supported").
    let raw = format!(
        "video/x-raw,format=I420,width={},height={},framerate={}/1,colorimetry=bt601,chroma-site=jpeg",
        q.width, q.height, q.fps
    );
    let mut encode = vec![
        ElementPlan::new("capsfilter", &[("caps", &raw)]),
        queue(RAW_HOLD_NS, raw_video_queue_bytes(q, RAW_HOLD_NS), false),
    ];
    encode.extend(video_encoder(codec, q.video_bitrate, q.fps));
    encode.push(queue(
        ENCODED_HOLD_NS,
        encoded_queue_bytes(q.video_bitrate.into(), ENCODED_HOLD_NS),
        false,
    ));
    MixerPlan {
        kind: TrackKind::Video,
        skip_buffers: 0,
        source: vec![
            ElementPlan::new("videotestsrc", &[("is-live", &true), ("pattern", &"black")]),
            ElementPlan::new("capsfilter", &[("caps", &raw)]),
        ],
        mixer: ElementPlan::new(
            "compositor",
            &[
                ("background", &"black"),
                ("start-time-selection", &MIXER_START),
                ("latency", &MIXER_LATENCY_NS),
            ],
        ),
        encode: Chain {
            elements: encode,
            target: Target::Output(String::new()),
            kind: TrackKind::Video,
        },
    }
}

fn video_encoder(codec: VideoCodec, bitrate: u32, fps: u32) -> Vec<ElementPlan> {
    match codec {
        VideoCodec::Vp8 => vec![ElementPlan::new(
            "vp8enc",
            &[
                ("deadline", &1),
                ("cpu-used", &8),
                ("end-usage", &"cbr"),
                ("target-bitrate", &bitrate),
                ("keyframe-max-dist", &(fps * 2)),
                ("lag-in-frames", &0),
                ("threads", &2),
            ],
        )],
        VideoCodec::H264 => vec![
            ElementPlan::new(
                "x264enc",
                &[
                    ("speed-preset", &"ultrafast"),
                    ("tune", &"zerolatency"),
                    ("bitrate", &(bitrate / 1000)),
                    ("key-int-max", &(fps * 2)),
                ],
            ),
            ElementPlan::new("h264parse", &[]),
        ],
    }
}

fn audio_mixer(spec: &RecordingSpec) -> MixerPlan {
    let raw = "audio/x-raw,rate=48000,channels=2";
    let bitrate = spec.quality().settings().audio_bitrate;
    let mut encode = vec![
        ElementPlan::new("capsfilter", &[("caps", &raw)]),
        queue(RAW_HOLD_NS, raw_audio_queue_bytes(RAW_HOLD_NS), false),
    ];
    encode.extend(match spec.audio_codec() {
        AudioCodec::Opus => vec![ElementPlan::new("opusenc", &[("bitrate", &bitrate)])],
        AudioCodec::Aac => vec![
            ElementPlan::new("audioconvert", &[]),
            ElementPlan::new("avenc_aac", &[("bitrate", &bitrate)]),
            ElementPlan::new("aacparse", &[]),
        ],
    });
    encode.push(queue(
        ENCODED_HOLD_NS,
        encoded_queue_bytes(bitrate.into(), ENCODED_HOLD_NS),
        false,
    ));
    let aac = spec.audio_codec() == AudioCodec::Aac;
    let mut mixer_props: Vec<(&'static str, &dyn ToString)> = vec![
        ("start-time-selection", &MIXER_START),
        ("latency", &MIXER_LATENCY_NS),
    ];
    if aac {
        mixer_props.push(("output-buffer-duration-fraction", &AAC_PRIMING_FRACTION));
    }
    MixerPlan {
        kind: TrackKind::Audio,
        skip_buffers: u32::from(aac),
        source: vec![
            ElementPlan::new(
                "audiotestsrc",
                &[
                    ("is-live", &true),
                    ("wave", &"silence"),
                    ("samplesperbuffer", &960),
                ],
            ),
            ElementPlan::new("capsfilter", &[("caps", &raw)]),
        ],
        mixer: ElementPlan::new("audiomixer", &mixer_props),
        encode: Chain {
            elements: encode,
            target: Target::Output(String::new()),
            kind: TrackKind::Audio,
        },
    }
}

/// Tiles for the video inputs, in join order; the active speaker's first video is large.
fn tiles(spec: &RecordingSpec, inputs: &[&TrackSpec], ctx: &PlanContext) -> Vec<TilePlan> {
    if spec.video_codec().is_none() {
        return Vec::new();
    }
    let videos: Vec<&&TrackSpec> = inputs
        .iter()
        .filter(|t| t.kind == TrackKind::Video)
        .collect();
    let speaker = ctx
        .active_speaker
        .as_deref()
        .and_then(|p| videos.iter().position(|t| t.participant == p));
    let q = spec.quality().settings();
    let rects = layout::tiles(
        spec.layout(),
        videos.len(),
        q.width as i32,
        q.height as i32,
        speaker,
    );
    videos
        .iter()
        .zip(rects)
        .map(|(t, rect)| TilePlan {
            input: t.id.clone(),
            rect,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Format, Layout, Quality, RecordingRequest};

    fn spec(mode: Mode, format: Format, audio_only: bool) -> RecordingSpec {
        spec_at(mode, format, Quality::Low, audio_only)
    }

    fn spec_at(mode: Mode, format: Format, quality: Quality, audio_only: bool) -> RecordingSpec {
        RecordingSpec::new(RecordingRequest {
            mode,
            format,
            quality,
            layout: Layout::Speaker,
            audio_only,
            output_dir: "/rec".into(),
            base_name: "r1".into(),
        })
        .unwrap()
    }

    fn track(id: &str, who: &str, codec: Codec) -> TrackSpec {
        TrackSpec {
            id: id.into(),
            participant: who.into(),
            kind: codec.kind(),
            codec,
            clock_rate: codec.clock_rate(),
            payload_type: if codec == Codec::Vp8 { 96 } else { 111 },
        }
    }

    fn factories(chain: &[ElementPlan]) -> Vec<&str> {
        chain.iter().map(|e| e.factory).collect()
    }

    fn room() -> Vec<TrackSpec> {
        vec![
            track("a-v", "alice", Codec::Vp8),
            track("a-a", "alice", Codec::Opus),
            track("b-v", "bob", Codec::Vp8),
            track("b-a", "bob", Codec::Opus),
        ]
    }

    #[test]
    fn tracks_mode_is_passthrough_one_file_per_participant() {
        let p = plan(
            &spec(Mode::Tracks, Format::Webm, false),
            &room(),
            &PlanContext::default(),
        );
        assert!(p.mixers.is_empty());
        let files: Vec<_> = p
            .outputs
            .iter()
            .map(|o| o.part_path.to_str().unwrap())
            .collect();
        assert_eq!(files, ["/rec/r1_alice.webm.part", "/rec/r1_bob.webm.part"]);
        assert_eq!(p.outputs[0].final_path.to_str(), Some("/rec/r1_alice.webm"));
        let v = &p.branches[0].chain;
        assert_eq!(
            factories(&v.elements),
            ["appsrc", "rtpjitterbuffer", "rtpvp8depay", "queue"]
        );
        assert_eq!(v.target, Target::Output("alice#0".into()));
        let a = &p.branches[1].chain;
        assert_eq!(
            factories(&a.elements),
            [
                "appsrc",
                "rtpjitterbuffer",
                "rtpopusdepay",
                "opusparse",
                "queue"
            ]
        );
        let all: Vec<&str> = p
            .branches
            .iter()
            .flat_map(|b| factories(&b.chain.elements))
            .collect();
        assert!(
            !all.iter().any(|f| f.ends_with("dec") || f.ends_with("enc")),
            "{all:?}"
        );
    }

    #[test]
    fn appsrc_is_live_bounded_and_typed() {
        let p = plan(
            &spec(Mode::Tracks, Format::Mkv, false),
            &room(),
            &PlanContext::default(),
        );
        let src = &p.branches[0].chain.elements[0];
        assert_eq!(src.prop("is-live"), Some("true"));
        assert_eq!(src.prop("leaky-type"), Some("downstream"));
        assert_eq!(src.prop("max-bytes"), Some("2000000"));
        assert_eq!(
            src.prop("caps"),
            Some("application/x-rtp,media=video,clock-rate=90000,encoding-name=VP8,payload=96")
        );
        assert_eq!(
            p.branches[0].chain.elements[p.branches[0].depay_index].factory,
            "rtpvp8depay"
        );
        assert_eq!(p.outputs[0].muxer.factory, "matroskamux");
    }

    #[test]
    fn later_generation_gets_a_new_file() {
        let mut ctx = PlanContext::default();
        ctx.file_generation.insert("bob".into(), 2);
        let p = plan(&spec(Mode::Tracks, Format::Webm, false), &room(), &ctx);
        assert_eq!(p.outputs[1].final_path.to_str(), Some("/rec/r1_bob_2.webm"));
        assert_eq!(p.branches[3].chain.target, Target::Output("bob#2".into()));
    }

    #[test]
    fn composite_webm_decodes_once_and_encodes_vp8_opus() {
        let p = plan(
            &spec(Mode::Composite, Format::Webm, false),
            &room(),
            &PlanContext::default(),
        );
        assert_eq!(p.outputs.len(), 1);
        assert_eq!(p.outputs[0].final_path.to_str(), Some("/rec/r1.webm"));
        assert_eq!(factories(&p.branches[0].chain.elements)[3], "vp8dec");
        let label = &p.branches[0].chain.elements[4];
        assert_eq!(label.factory, "textoverlay");
        assert_eq!(label.prop("text"), Some(room()[0].participant.as_str()));
        assert_eq!(p.branches[0].chain.target, Target::Mixer(TrackKind::Video));
        assert!(factories(&p.mixers[0].encode.elements).contains(&"vp8enc"));
        assert!(factories(&p.mixers[1].encode.elements).contains(&"opusenc"));
        assert_eq!(
            p.mixers[0].mixer.prop("start-time-selection"),
            Some("first")
        );
    }

    #[test]
    fn composite_mp4_is_fragmented_h264_aac() {
        let p = plan(
            &spec(Mode::Composite, Format::Mp4, false),
            &room(),
            &PlanContext::default(),
        );
        assert_eq!(
            p.outputs[0].muxer.prop("fragment-mode"),
            Some("dash-or-mss")
        );
        assert_eq!(p.outputs[0].muxer.prop("fragment-duration"), Some("1000"));
        assert!(factories(&p.mixers[0].encode.elements).contains(&"x264enc"));
        assert!(factories(&p.mixers[1].encode.elements).contains(&"avenc_aac"));
        assert_eq!(p.mixers[1].skip_buffers, 1, "AAC priming cancelled");
        assert_eq!(
            p.mixers[1].mixer.prop("output-buffer-duration-fraction"),
            Some(AAC_PRIMING_FRACTION)
        );
        let mkv = plan(
            &spec(Mode::Composite, Format::Mkv, false),
            &room(),
            &PlanContext::default(),
        );
        assert!(factories(&mkv.mixers[0].encode.elements).contains(&"x264enc"));
        assert!(factories(&mkv.mixers[1].encode.elements).contains(&"opusenc"));
    }

    #[test]
    fn audio_only_skips_video_inputs_and_mixer() {
        let p = plan(
            &spec(Mode::Composite, Format::Mp4, true),
            &room(),
            &PlanContext::default(),
        );
        assert_eq!(p.mixers.len(), 1);
        assert_eq!(p.mixers[0].kind, TrackKind::Audio);
        assert_eq!(p.branches.len(), 2);
        assert!(p.tiles.is_empty());
    }

    #[test]
    fn speaker_layout_follows_the_active_speaker() {
        let ctx = PlanContext {
            active_speaker: Some("bob".into()),
            ..Default::default()
        };
        let p = plan(&spec(Mode::Composite, Format::Webm, false), &room(), &ctx);
        let bob = p.tiles.iter().find(|t| t.input == "b-v").unwrap();
        assert_eq!((bob.rect.x, bob.rect.y, bob.rect.width), (0, 0, 854));
        let alice = p.tiles.iter().find(|t| t.input == "a-v").unwrap();
        assert!(alice.rect.y > 0);
    }

    fn queues(p: &Plan) -> Vec<&ElementPlan> {
        let chains = p.branches.iter().map(|b| &b.chain);
        chains
            .chain(p.mixers.iter().map(|m| &m.encode))
            .flat_map(|c| &c.elements)
            .filter(|e| e.factory == "queue")
            .collect()
    }

    fn max_bytes(e: &ElementPlan) -> u64 {
        e.prop("max-size-bytes").unwrap().parse().unwrap()
    }

    #[test]
    fn every_queue_is_bounded_in_bytes() {
        let qualities = [Quality::Low, Quality::Medium, Quality::High, Quality::Ultra];
        for (mode, format) in [
            (Mode::Tracks, Format::Webm),
            (Mode::Tracks, Format::Mkv),
            (Mode::Composite, Format::Webm),
            (Mode::Composite, Format::Mkv),
            (Mode::Composite, Format::Mp4),
        ] {
            for quality in qualities {
                let s = spec_at(mode, format, quality, false);
                let p = plan(&s, &room(), &PlanContext::default());
                let qs = queues(&p);
                assert!(!qs.is_empty());
                for q in qs {
                    let bytes = max_bytes(q);
                    assert!(
                        bytes > 0 && bytes <= RAW_VIDEO_QUEUE_MAX_BYTES,
                        "{mode} {format} {quality}: {bytes}"
                    );
                }
            }
        }
    }

    #[test]
    fn raw_video_queues_hold_their_time_at_the_canvas_size_up_to_a_cap() {
        let low = plan(
            &spec(Mode::Composite, Format::Webm, false),
            &room(),
            &PlanContext::default(),
        );
        // 854x480 I420 is 614,880 bytes: 1.5 s (the mixers' latency) at 24 fps is 36 frames,
        // 1 s is 24.
        let decoded = low.branches[0].chain.elements.last().unwrap();
        assert_eq!(decoded.prop("max-size-time"), Some("1500000000"));
        assert_eq!(max_bytes(decoded), 36 * 614_880);
        let video = &low.mixers[0].encode.elements;
        assert_eq!(max_bytes(&video[1]), 24 * 614_880, "before the encoder");
        assert_eq!(
            max_bytes(video.last().unwrap()),
            500_000,
            "2 s at 2 x 1 Mbit/s"
        );
        let audio = &low.mixers[1].encode.elements;
        assert_eq!(max_bytes(&audio[1]), 384_000, "1 s of 48 kHz stereo F32");
        assert_eq!(max_bytes(audio.last().unwrap()), ENCODED_QUEUE_MIN_BYTES);
        let opus = low.branches[1].chain.elements.last().unwrap();
        assert_eq!(max_bytes(opus), 576_000, "1.5 s of raw audio");

        let ultra = plan(
            &spec_at(Mode::Composite, Format::Mp4, Quality::Ultra, false),
            &room(),
            &PlanContext::default(),
        );
        let video = &ultra.mixers[0].encode.elements;
        assert_eq!(max_bytes(&video[1]), RAW_VIDEO_QUEUE_MAX_BYTES);
        assert_eq!(
            max_bytes(video.last().unwrap()),
            7_500_000,
            "2 s at 2 x 15 Mbit/s"
        );
        let decoded = ultra.branches[0].chain.elements.last().unwrap();
        assert_eq!(max_bytes(decoded), RAW_VIDEO_QUEUE_MAX_BYTES);
        // Never less than one frame, however tight the time bound.
        let huge = QualitySettings {
            width: 7680,
            height: 4320,
            ..Quality::Ultra.settings()
        };
        assert_eq!(raw_video_queue_bytes(huge, 1), 7680 * 4320 * 3 / 2);
    }

    #[test]
    fn passthrough_queues_hold_five_seconds_of_encoded_media() {
        let p = plan(
            &spec(Mode::Tracks, Format::Webm, false),
            &room(),
            &PlanContext::default(),
        );
        let video = p.branches[0].chain.elements.last().unwrap();
        assert_eq!(video.prop("max-size-time"), Some("5000000000"));
        assert_eq!(max_bytes(video), 5_000_000, "5 s at 2 x 4 Mbit/s");
        let audio = p.branches[1].chain.elements.last().unwrap();
        assert_eq!(max_bytes(audio), 637_500, "5 s at 2 x 510 kbit/s");
    }
}
