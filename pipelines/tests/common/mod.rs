//! Shared test helpers: synthetic RTP generated with GStreamer, real-time feeding through
//! `TrackInput`, and media checks with ffprobe/ffmpeg and a GStreamer decoder.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use pipelines::*;

pub const VP8_PT: u8 = 96;
pub const OPUS_PT: u8 = 111;

/// One RTP packet and when (relative to the start of its track) it should be sent.
#[derive(Debug, Clone)]
pub struct Packet {
    pub at: Duration,
    pub data: Vec<u8>,
}

/// A generated RTP stream.
#[derive(Debug, Clone)]
pub struct RtpTrack {
    pub packets: Vec<Packet>,
    pub duration: Duration,
    pub clock_rate: u32,
}

fn init() {
    gst::init().expect("gstreamer init");
}

/// Runs `desc` (ending in `appsink name=out`) as fast as possible and collects the packets.
/// If the description has an `appsrc name=in`, `feed` buffers are pushed into it first.
fn collect(desc: &str, feed: Vec<gst::Buffer>, duration: Duration, clock_rate: u32) -> RtpTrack {
    init();
    let pipeline = gst::parse::launch(desc)
        .expect("generator pipeline")
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = pipeline
        .by_name("out")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    if let Some(src) = pipeline.by_name("in") {
        let src = src.downcast::<gst_app::AppSrc>().unwrap();
        for b in feed {
            src.push_buffer(b).unwrap();
        }
        src.end_of_stream().unwrap();
    }
    let mut packets = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        let buf = sample.buffer().unwrap();
        let at = Duration::from_nanos(buf.pts().map(|t| t.nseconds()).unwrap_or(0));
        packets.push(Packet {
            at,
            data: buf.map_readable().unwrap().to_vec(),
        });
    }
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(!packets.is_empty(), "generator produced nothing: {desc}");
    RtpTrack {
        packets,
        duration,
        clock_rate,
    }
}

/// `videotestsrc ! vp8enc ! rtpvp8pay`: `secs` of `width`x`height` at 30 fps, a keyframe
/// every second.
pub fn vp8(width: u32, height: u32, secs: f64, pattern: &str) -> RtpTrack {
    let frames = (secs * 30.0).round() as u32;
    let desc = format!(
        "videotestsrc pattern={pattern} num-buffers={frames} ! video/x-raw,format=I420,width={width},height={height},framerate=30/1 \
         ! vp8enc deadline=1 cpu-used=8 keyframe-max-dist=30 target-bitrate=400000 \
         ! rtpvp8pay pt={VP8_PT} mtu=1200 ! appsink name=out sync=false"
    );
    collect(&desc, Vec::new(), Duration::from_secs_f64(secs), 90_000)
}

/// `audiotestsrc ! opusenc ! rtpopuspay`: `secs` of a sine tone, 20 ms packets.
pub fn opus(secs: f64, freq: u32) -> RtpTrack {
    let buffers = (secs * 50.0).round() as u32;
    let desc = format!(
        "audiotestsrc wave=sine freq={freq} volume=0.3 samplesperbuffer=960 num-buffers={buffers} \
         ! audio/x-raw,rate=48000,channels=2 ! opusenc frame-size=20 ! rtpopuspay pt={OPUS_PT} \
         ! appsink name=out sync=false"
    );
    collect(&desc, Vec::new(), Duration::from_secs_f64(secs), 48_000)
}

/// Instants of the A/V sync markers.
pub fn markers(secs: f64) -> Vec<f64> {
    (1..secs.floor() as u32).map(f64::from).collect()
}

/// 320x240 black video, white for 100 ms (3 frames) from each of `marks` (seconds), VP8 RTP.
pub fn flashes(secs: f64, marks: &[f64]) -> RtpTrack {
    init();
    let (w, h) = (320usize, 240usize);
    let frames = (secs * 30.0).round() as u64;
    let feed = (0..frames)
        .map(|i| {
            let t = i as f64 / 30.0;
            let white = marks.iter().any(|m| t > m - 0.01 && t < m + 0.09);
            let mut data = vec![if white { 235u8 } else { 16 }; w * h];
            data.extend(std::iter::repeat_n(128u8, w * h / 2));
            timed(
                gst::Buffer::from_mut_slice(data),
                i * 1_000_000_000 / 30,
                1_000_000_000 / 30,
            )
        })
        .collect();
    let desc = format!(
        "appsrc name=in format=time caps=video/x-raw,format=I420,width={w},height={h},framerate=30/1 \
         ! vp8enc deadline=1 cpu-used=8 keyframe-max-dist=30 target-bitrate=400000 \
         ! rtpvp8pay pt={VP8_PT} mtu=1200 ! appsink name=out sync=false"
    );
    collect(&desc, feed, Duration::from_secs_f64(secs), 90_000)
}

/// Silence with a 100 ms 1 kHz beep starting at each of `marks` (seconds), Opus RTP.
pub fn beeps(secs: f64, marks: &[f64]) -> RtpTrack {
    init();
    let chunks = (secs * 50.0).round() as u64;
    let feed = (0..chunks)
        .map(|c| {
            let mut data = Vec::with_capacity(960 * 2);
            for s in 0..960u64 {
                let t = (c * 960 + s) as f64 / 48_000.0;
                let on = marks.iter().any(|m| t >= *m && t < m + 0.1);
                let v = if on {
                    (t * 1000.0 * std::f64::consts::TAU).sin() * 12_000.0
                } else {
                    0.0
                };
                data.extend((v as i16).to_le_bytes());
            }
            timed(
                gst::Buffer::from_mut_slice(data),
                c * 20_000_000,
                20_000_000,
            )
        })
        .collect();
    let desc = format!(
        "appsrc name=in format=time caps=audio/x-raw,format=S16LE,rate=48000,channels=1,layout=interleaved \
         ! opusenc frame-size=20 ! rtpopuspay pt={OPUS_PT} ! appsink name=out sync=false"
    );
    collect(&desc, feed, Duration::from_secs_f64(secs), 48_000)
}

fn timed(mut buf: gst::Buffer, pts: u64, dur: u64) -> gst::Buffer {
    let b = buf.get_mut().unwrap();
    b.set_pts(gst::ClockTime::from_nseconds(pts));
    b.set_duration(gst::ClockTime::from_nseconds(dur));
    buf
}

fn rtp_fields(p: &[u8]) -> (u16, u32) {
    (
        u16::from_be_bytes([p[2], p[3]]),
        u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
    )
}

impl RtpTrack {
    /// Rewrites the SSRC (distinct participants must not share one).
    pub fn with_ssrc(mut self, ssrc: u32) -> Self {
        for p in &mut self.packets {
            p.data[8..12].copy_from_slice(&ssrc.to_be_bytes());
        }
        self
    }

    /// Appends `next` as if the same sender continued: sequence numbers, RTP timestamps,
    /// SSRC and send times carry on.
    pub fn then(mut self, next: RtpTrack) -> Self {
        let (last_seq, _) = rtp_fields(&self.packets.last().unwrap().data);
        let (first_seq, first_ts) = rtp_fields(&next.packets[0].data);
        let ssrc: [u8; 4] = self.packets[0].data[8..12].try_into().unwrap();
        let ts_step = (self.duration.as_secs_f64() * f64::from(self.clock_rate)) as u32;
        let first_ts_new = rtp_fields(&self.packets[0].data).1.wrapping_add(ts_step);
        for mut p in next.packets {
            let (seq, ts) = rtp_fields(&p.data);
            let seq = last_seq
                .wrapping_add(1)
                .wrapping_add(seq.wrapping_sub(first_seq));
            let ts = first_ts_new.wrapping_add(ts.wrapping_sub(first_ts));
            p.data[2..4].copy_from_slice(&seq.to_be_bytes());
            p.data[4..8].copy_from_slice(&ts.to_be_bytes());
            p.data[8..12].copy_from_slice(&ssrc);
            p.at += self.duration;
            self.packets.push(p);
        }
        self.duration += next.duration;
        self
    }

    /// Drops the packets sent in `[from, to)` seconds (network loss or Opus DTX).
    pub fn without(mut self, from: f64, to: f64) -> Self {
        self.packets.retain(|p| {
            let t = p.at.as_secs_f64();
            t < from || t >= to
        });
        self
    }

    /// Delays every packet sent at or after `at` seconds by `pause` (a stalled sender that
    /// then resumes with a burst-free continuation).
    pub fn stalled(mut self, at: f64, pause: Duration) -> Self {
        for p in &mut self.packets {
            if p.at.as_secs_f64() >= at {
                p.at += pause;
            }
        }
        self.duration += pause;
        self
    }
}

/// Pushes `track` into `input` in real time from a thread, starting now.
pub fn feed(input: TrackInput, track: RtpTrack) -> JoinHandle<()> {
    let start = Instant::now();
    std::thread::spawn(move || {
        for p in track.packets {
            let wait = (start + p.at).saturating_duration_since(Instant::now());
            std::thread::sleep(wait);
            let _ = input.push_rtp(&p.data);
        }
    })
}

pub fn track_spec(id: &str, participant: &str, kind: TrackKind) -> TrackSpec {
    let codec = match kind {
        TrackKind::Video => Codec::Vp8,
        TrackKind::Audio => Codec::Opus,
    };
    TrackSpec {
        id: id.into(),
        participant: participant.into(),
        kind,
        codec,
        clock_rate: codec.clock_rate(),
        payload_type: if kind == TrackKind::Video {
            VP8_PT
        } else {
            OPUS_PT
        },
    }
}

pub fn spec(dir: &Path, mode: Mode, format: Format, audio_only: bool) -> RecordingSpec {
    RecordingSpec::new(RecordingRequest {
        mode,
        format,
        quality: Quality::Low,
        layout: Layout::Grid,
        audio_only,
        output_dir: dir.to_path_buf(),
        base_name: "rec".into(),
    })
    .unwrap()
}

/// A participant's generated media, ready to feed.
pub struct Participant {
    pub name: String,
    pub video: Option<RtpTrack>,
    pub audio: RtpTrack,
}

impl Participant {
    pub fn new(index: u32, secs: f64, with_video: bool) -> Self {
        let patterns = ["smpte", "ball", "snow", "pinwheel"];
        Participant {
            name: format!("p{index}"),
            video: with_video.then(|| {
                vp8(320, 240, secs, patterns[index as usize % 4]).with_ssrc(0x1000 + index)
            }),
            audio: opus(secs, 300 + 200 * index).with_ssrc(0x2000 + index),
        }
    }

    /// Adds this participant's inputs and starts feeding them in real time.
    pub async fn join(self, rec: &Recorder) -> Vec<JoinHandle<()>> {
        let mut feeders = Vec::new();
        if let Some(video) = self.video {
            let input = rec
                .add_input(track_spec(
                    &format!("{}-v", self.name),
                    &self.name,
                    TrackKind::Video,
                ))
                .await
                .unwrap();
            feeders.push(feed(input, video));
        }
        let input = rec
            .add_input(track_spec(
                &format!("{}-a", self.name),
                &self.name,
                TrackKind::Audio,
            ))
            .await
            .unwrap();
        feeders.push(feed(input, self.audio));
        feeders
    }
}

/// Waits for feeder threads without blocking the runtime.
pub async fn wait(feeders: Vec<JoinHandle<()>>) {
    tokio::task::spawn_blocking(move || feeders.into_iter().for_each(|f| f.join().unwrap()))
        .await
        .unwrap();
}

/// What ffprobe says about a file.
#[derive(Debug, Clone)]
pub struct Probe {
    pub format: String,
    pub duration: f64,
    pub start_time: f64,
    pub streams: Vec<Stream>,
}

#[derive(Debug, Clone)]
pub struct Stream {
    pub kind: String,
    pub codec: String,
    pub width: u64,
    pub height: u64,
    pub duration: Option<f64>,
}

fn num(v: &serde_json::Value) -> Option<f64> {
    v.as_str().and_then(|s| s.parse().ok())
}

/// `ffprobe -show_streams -show_format -of json`.
pub fn probe(path: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let streams = json["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| Stream {
            kind: s["codec_type"].as_str().unwrap_or_default().into(),
            codec: s["codec_name"].as_str().unwrap_or_default().into(),
            width: s["width"].as_u64().unwrap_or(0),
            height: s["height"].as_u64().unwrap_or(0),
            duration: num(&s["duration"]),
        })
        .collect();
    let probe = Probe {
        format: json["format"]["format_name"]
            .as_str()
            .unwrap_or_default()
            .into(),
        duration: num(&json["format"]["duration"]).unwrap_or(0.0),
        start_time: num(&json["format"]["start_time"]).unwrap_or(0.0),
        streams,
    };
    eprintln!("ffprobe {}: {probe:?}", path.display());
    probe
}

impl Probe {
    pub fn stream(&self, kind: &str) -> Option<&Stream> {
        self.streams.iter().find(|s| s.kind == kind)
    }

    /// Asserts the stream list as `kind:codec` pairs (order-insensitive).
    pub fn assert_codecs(&self, expected: &[&str]) {
        let mut got: Vec<String> = self
            .streams
            .iter()
            .map(|s| format!("{}:{}", s.kind, s.codec))
            .collect();
        let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{self:?}");
    }

    /// Asserts the duration is within 0.5 s of `secs`.
    pub fn assert_duration(&self, secs: f64) {
        let d = self.duration;
        assert!(
            (d - secs).abs() <= 0.5,
            "duration {d:.3} s, expected {secs:.3} ± 0.5 s: {self:?}"
        );
    }
}

/// `ffmpeg -v error -i FILE -f null -` must print nothing.
pub fn assert_decodes_cleanly(path: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && errors.trim().is_empty(),
        "{}: {errors}",
        path.display()
    );
}

pub fn stop_timeout() -> Duration {
    Duration::from_secs(15)
}

/// Stops the recorder and returns the outcome, checking all files have final names.
pub async fn stop(rec: &Recorder) -> Outcome {
    let outcome = rec.stop(stop_timeout()).await.unwrap();
    assert!(outcome.clean, "{outcome:?}");
    for f in &outcome.files {
        assert!(!f.path.to_string_lossy().ends_with(".part"), "{f:?}");
        assert!(f.path.exists() && f.bytes > 0, "{f:?}");
    }
    outcome
}

pub fn file_of<'a>(outcome: &'a Outcome, participant: Option<&str>) -> &'a PathBuf {
    &outcome
        .files
        .iter()
        .find(|f| f.participant.as_deref() == participant)
        .unwrap_or_else(|| panic!("no file for {participant:?}: {outcome:?}"))
        .path
}

/// A decoded file: mean luma of every video frame and the onsets of beeps.
pub struct Decoded {
    /// `(pts seconds, mean luma 0-255)` per frame.
    pub frames: Vec<(f64, f64)>,
    /// Onset times (s) of beeps.
    pub beeps: Vec<f64>,
}

impl Decoded {
    /// Onset times (s) of white flashes. A frame is "white" when its mean luma is above the midpoint of the darkest and the
    /// brightest frame (works for a full-canvas flash and for a flashing tile).
    pub fn flashes(&self) -> Vec<f64> {
        let lumas = self.frames.iter().map(|f| f.1);
        let (lo, hi) = lumas.fold((f64::MAX, f64::MIN), |(lo, hi), l| (lo.min(l), hi.max(l)));
        let threshold = (lo + hi) / 2.0;
        let mut found = Vec::new();
        let mut was_on = false;
        for &(t, luma) in &self.frames {
            let on = hi - lo > 40.0 && luma > threshold;
            if on && !was_on {
                found.push(t);
            }
            was_on = on;
        }
        found
    }

    /// Mean luma of the frame shown at `t` seconds.
    pub fn luma_at(&self, t: f64) -> f64 {
        self.frames
            .iter()
            .rev()
            .find(|(pts, _)| *pts <= t)
            .map(|(_, l)| *l)
            .unwrap_or_else(|| panic!("no frame at {t}"))
    }
}

/// Decodes a file with video and audio using GStreamer.
pub fn decode(path: &Path) -> Decoded {
    init();
    let desc = format!(
        "filesrc location={} ! decodebin name=d \
         d. ! videoconvert ! video/x-raw,format=GRAY8 ! queue ! appsink name=v sync=false \
         d. ! audioconvert ! audioresample ! audio/x-raw,format=F32LE,channels=1,rate=48000 ! queue ! appsink name=a sync=false",
        path.display()
    );
    let pipeline = gst::parse::launch(&desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = |n: &str| {
        pipeline
            .by_name(n)
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap()
    };
    let (v, a) = (sink("v"), sink("a"));
    pipeline.set_state(gst::State::Playing).unwrap();
    let video = std::thread::spawn(move || frame_lumas(&v));
    let beeps = audio_onsets(&a);
    let frames = video.join().unwrap();
    pipeline.set_state(gst::State::Null).unwrap();
    Decoded { frames, beeps }
}

fn frame_lumas(sink: &gst_app::AppSink) -> Vec<(f64, f64)> {
    let mut frames = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        let buf = sample.buffer().unwrap();
        let map = buf.map_readable().unwrap();
        let luma = map.iter().map(|&b| f64::from(b)).sum::<f64>() / map.len() as f64;
        frames.push((buf.pts().unwrap().nseconds() as f64 / 1e9, luma));
    }
    frames
}

/// Beep onsets at 1 ms resolution: first 1 ms window whose RMS exceeds 0.05 after ≥ 200 ms quiet.
fn audio_onsets(sink: &gst_app::AppSink) -> Vec<f64> {
    let mut found: Vec<f64> = Vec::new();
    let mut last_loud = f64::NEG_INFINITY;
    while let Ok(sample) = sink.pull_sample() {
        let buf = sample.buffer().unwrap();
        let start = buf.pts().unwrap().nseconds() as f64 / 1e9;
        let map = buf.map_readable().unwrap();
        let samples: Vec<f32> = map
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        for (i, w) in samples.chunks(48).enumerate() {
            let rms = (w.iter().map(|s| s * s).sum::<f32>() / w.len() as f32).sqrt();
            let t = start + i as f64 * 0.001;
            if rms > 0.05 {
                if t - last_loud > 0.2 {
                    found.push(t);
                }
                last_loud = t;
            }
        }
    }
    found
}

/// Starts a recorder for `spec` (panics on error).
pub async fn start(spec: RecordingSpec) -> (Recorder, EventStream) {
    Recorder::start(spec).await.expect("recorder starts")
}

/// Collects every event until `Finished` in the background.
pub fn drain_events(mut events: EventStream) -> tokio::task::JoinHandle<Vec<RecorderEvent>> {
    tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some(e) = events.recv().await {
            let last = matches!(e, RecorderEvent::Finished { .. });
            all.push(e);
            if last {
                break;
            }
        }
        all
    })
}
