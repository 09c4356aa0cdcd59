//! Synthetic RTP sources for tests: VP8/Opus generated with GStreamer
//! (`videotestsrc ! vp8enc ! rtpvp8pay`, `audiotestsrc ! opusenc ! rtpopuspay`, or raw frames
//! through `appsrc` for A/V sync markers), edited (SSRC, splicing, gaps, stalls) and pushed in
//! real time through a `TrackInput`; or real Chromium RTP replayed from the repository's
//! `fixtures/` (`fixture`). Depends only on gstreamer, gstreamer-app and `pipelines`,
//! so other crates' tests can include it with `#[path]`.

use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use pipelines::{Codec, TrackInput, TrackKind, TrackSpec};

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

/// Initialises GStreamer for a test; a GLib or GStreamer CRITICAL aborts it (fails the test).
pub fn init() {
    gst::init().expect("gstreamer init");
    gst::glib::log_set_always_fatal(gst::glib::LogLevels::LEVEL_CRITICAL);
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

/// 320x240 black video, white for 200 ms (6 frames) from each of `marks` (seconds), VP8 RTP.
pub fn flashes(secs: f64, marks: &[f64]) -> RtpTrack {
    init();
    let (w, h) = (320usize, 240usize);
    let frames = (secs * 30.0).round() as u64;
    let feed = (0..frames)
        .map(|i| {
            let t = i as f64 / 30.0;
            let white = marks.iter().any(|m| t > m - 0.01 && t < m + 0.19);
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

/// `fixtures/<name>` (format in fixtures/README.md): each packet at its capture's arrival
/// time; the track lasts until the last one. The payload types are [`VP8_PT`] and [`OPUS_PT`].
pub fn fixture(name: &str) -> RtpTrack {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut packets = Vec::new();
    let mut rest = bytes.as_slice();
    while !rest.is_empty() {
        let at = u32::from_be_bytes(rest[..4].try_into().unwrap());
        let len = usize::from(u16::from_be_bytes([rest[4], rest[5]]));
        packets.push(Packet {
            at: Duration::from_micros(at.into()),
            data: rest[6..6 + len].to_vec(),
        });
        rest = &rest[6 + len..];
    }
    let clock_rate = match packets[0].data[1] & 0x7f {
        OPUS_PT => 48_000,
        VP8_PT => 90_000,
        pt => panic!("{name}: payload type {pt}"),
    };
    RtpTrack {
        duration: packets.last().unwrap().at,
        packets,
        clock_rate,
    }
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
            let _ = input.push_rtp(p.data);
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
