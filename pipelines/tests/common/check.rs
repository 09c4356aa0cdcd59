//! Media checks: ffprobe fields, ffmpeg decode errors, and a GStreamer decoder that measures
//! frame brightness and beep onsets.

use std::path::Path;
use std::process::Command;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

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

/// Where a stream's media ends: the largest `pts + duration` of its packets (ffprobe), in s.
pub fn stream_end(path: &Path, kind: &str) -> f64 {
    packet_times(path, kind)
        .into_iter()
        .map(|(pts, duration)| pts + duration)
        .fold(0.0, f64::max)
}

/// Where a stream's media starts: the smallest pts of its packets (ffprobe), in s.
pub fn stream_start(path: &Path, kind: &str) -> f64 {
    packet_times(path, kind)
        .into_iter()
        .map(|(pts, _)| pts)
        .fold(f64::INFINITY, f64::min)
}

/// Asserts that the packets of the first `kind` stream have strictly increasing timestamps (a
/// composite encodes without B-frames, so decode order is presentation order): a mixer that
/// emitted one instant twice shows here as a repeated pts.
pub fn assert_pts_increasing(path: &Path, kind: &str) {
    let pts: Vec<f64> = packet_times(path, kind)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert!(!pts.is_empty(), "{}: no {kind} packets", path.display());
    if let Some(i) = pts.windows(2).position(|w| w[1] <= w[0]) {
        panic!(
            "{}: {kind} packet {} has pts {} after {}",
            path.display(),
            i + 1,
            pts[i + 1],
            pts[i]
        );
    }
}

/// `(pts, duration)` of every packet of the first `kind` ("video"/"audio") stream, in s.
fn packet_times(path: &Path, kind: &str) -> Vec<(f64, f64)> {
    let selector = &kind[..1]; // "v" or "a"
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", selector, "-show_packets"])
        .args([
            "-show_entries",
            "packet=pts_time,duration_time",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split(',').map(|v| v.trim().parse::<f64>().ok());
            Some((f.next()??, f.next().flatten().unwrap_or(0.0)))
        })
        .collect()
}

/// `ffmpeg -v error -i FILE -enc_time_base:v -1 -f null -` must print nothing.
///
/// `-enc_time_base:v -1` keeps each decoded frame on the file's own time base. Without it
/// ffmpeg 5.1 rounds video frames onto a grid of the frame rate it guessed (15 fps for the
/// test peers) before its null muxer, and two frames of a variable-rate passthrough track
/// that sit half a frame off that grid (66/67 ms apart after Matroska's 1 ms rounding) land
/// on the same tick: "non monotonically increasing dts to muxer". That error comes from the
/// checker's own re-timing, not from the file; every frame is still decoded.
pub fn assert_decodes_cleanly(path: &Path) {
    let errors = decode_errors(path);
    assert!(errors.is_empty(), "{}: {errors}", path.display());
}

/// What `ffmpeg -v error` prints while decoding `path` as [`assert_decodes_cleanly`] does
/// (a failed run with nothing printed says so); empty for a clean decode.
pub fn decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-enc_time_base:v", "-1", "-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let errors = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if errors.is_empty() && !out.status.success() {
        return format!("ffmpeg failed ({})", out.status);
    }
    errors
}

/// A decoded file: mean luma of every video frame and the onsets of beeps.
pub struct Decoded {
    /// `(pts seconds, mean luma 0-255)` per frame.
    pub frames: Vec<(f64, f64)>,
    /// `(pts seconds, mean luma of each cell of a 4x4 grid, row-major)` per frame.
    pub cells: Vec<(f64, [f64; 16])>,
    /// Onset times (s) of beeps.
    pub beeps: Vec<f64>,
}

impl Decoded {
    /// Mean luma of grid cell (`row`, `col`) of the frame shown at `t` seconds.
    pub fn cell_at(&self, t: f64, row: usize, col: usize) -> f64 {
        self.cells
            .iter()
            .rev()
            .find(|(pts, _)| *pts <= t)
            .map(|(_, c)| c[row * 4 + col])
            .unwrap_or_else(|| panic!("no frame at {t}"))
    }

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
    gst::init().expect("gstreamer init");
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
    let (frames, cells) = video.join().unwrap();
    pipeline.set_state(gst::State::Null).unwrap();
    Decoded {
        frames,
        cells,
        beeps,
    }
}

type Lumas = (Vec<(f64, f64)>, Vec<(f64, [f64; 16])>);

fn frame_lumas(sink: &gst_app::AppSink) -> Lumas {
    let (mut frames, mut cells) = (Vec::new(), Vec::new());
    while let Ok(sample) = sink.pull_sample() {
        let s = sample.caps().unwrap().structure(0).unwrap().to_owned();
        let (w, h) = (
            s.get::<i32>("width").unwrap() as usize,
            s.get::<i32>("height").unwrap() as usize,
        );
        let buf = sample.buffer().unwrap();
        let map = buf.map_readable().unwrap();
        let stride = (w + 3) & !3;
        let mut sums = [0f64; 16];
        let mut counts = [0f64; 16];
        for y in 0..h {
            for (x, &px) in map[y * stride..y * stride + w].iter().enumerate() {
                let cell = (y * 4 / h) * 4 + x * 4 / w;
                sums[cell] += f64::from(px);
                counts[cell] += 1.0;
            }
        }
        let pts = buf.pts().unwrap().nseconds() as f64 / 1e9;
        frames.push((pts, sums.iter().sum::<f64>() / counts.iter().sum::<f64>()));
        cells.push((pts, std::array::from_fn(|i| sums[i] / counts[i])));
    }
    (frames, cells)
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

/// `(pts, duration)` in s of every decoded frame of the first `kind` ("video"/"audio")
/// stream, as ffprobe's decoder outputs them (an audio frame lasts its samples at 48 kHz, the
/// rate of every recording's audio).
pub fn decoded_frame_times(path: &Path, kind: &str) -> Vec<(f64, f64)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", &kind[..1], "-show_frames"])
        .args([
            "-show_entries",
            "frame=pts_time,duration_time,nb_samples",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    json["frames"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|f| {
            let pts = num(&f["pts_time"])?;
            let duration = match f["nb_samples"].as_f64() {
                Some(samples) => samples / 48_000.0,
                None => num(&f["duration_time"]).unwrap_or(0.0),
            };
            Some((pts, duration))
        })
        .collect()
}

/// For each cell of a `rows` x `columns` grid over the first video stream (row-major), the
/// longest time in s its picture did not change and when that still began, between its first
/// and its last change (a tile waiting for its first frame is not frozen, and at the end the
/// inputs stop one after the other): decoded at 64x36 gray,
/// a cell changed when one of its pixels moved by more than 12 levels since the previous
/// frame (coding noise of a still picture stays below that; the test sources' moving ball is
/// far above it).
pub fn longest_still(path: &Path, rows: usize, columns: usize) -> Vec<(f64, f64)> {
    const W: usize = 64;
    const H: usize = 36;
    let times = decoded_frame_times(path, "video");
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-fps_mode", "passthrough"])
        .args([
            "-vf",
            &format!("scale={W}:{H},format=gray"),
            "-f",
            "rawvideo",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    let frames: Vec<&[u8]> = out.stdout.chunks_exact(W * H).collect();
    assert_eq!(frames.len(), times.len(), "{}: frames", path.display());
    assert!(frames.len() > 1, "{}: no video", path.display());
    let (cell_w, cell_h) = (W / columns, H / rows);
    (0..rows * columns)
        .map(|cell| {
            let (x0, y0) = ((cell % columns) * cell_w, (cell / columns) * cell_h);
            let changed = |a: &[u8], b: &[u8]| {
                (y0..y0 + cell_h).any(|y| {
                    let row = y * W + x0..y * W + x0 + cell_w;
                    a[row.clone()]
                        .iter()
                        .zip(&b[row])
                        .any(|(p, q)| p.abs_diff(*q) > 12)
                })
            };
            let mut since: Option<f64> = None;
            let mut longest = (0.0, 0.0);
            for i in 1..frames.len() {
                if changed(frames[i - 1], frames[i]) {
                    let t = times[i].0;
                    if let Some(s) = since.filter(|s| t - s > longest.0) {
                        longest = (t - s, s);
                    }
                    since = Some(t);
                }
            }
            assert!(since.is_some(), "cell {cell} never changed");
            longest
        })
        .collect()
}
