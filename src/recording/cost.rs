//! What a recording costs, in CPU-seconds per second of media (i.e. cores while it runs), as a
//! pure function of its mode, format, quality and recorded tracks.
//!
//! Measured with `cargo bench --bench recording` (`benches/recording.rs`,
//! `CAPSTAN_BENCH_SECONDS=15 CAPSTAN_BENCH_PRESETS=webm-low,...,mkv-high,tracks`) on the
//! README's 2-core AMD EPYC, otherwise idle, 2026-12-02: one room of 2 publishers (320x240@15
//! VP8 + Opus, 4 recorded tracks), the whole server process per recorded second. Ultra took
//! 1.4-1.7 in 5 s runs, every core the bench's clients left, so it is derived from high:
//! [`ULTRA_OVER_HIGH`].

use pipelines::{Format, Mode, Quality};
use std::fmt;

/// Server CPU per media-second of the measured room with no recording (forwarding only: 0.018
/// for two such rooms).
const BENCH_FORWARDING: f64 = 0.009;
/// Tracks recorded in every measured row (2 publishers x audio + video).
const BENCH_TRACKS: f64 = 4.0;

/// Tracks mode: measured 0.051 with 4 tracks, i.e. 0.042 over forwarding: about 0.01 per track
/// (depayload, mux, write) over a small fixed part.
const TRACKS_BASE: f64 = 0.002;
const TRACKS_PER_TRACK: f64 = 0.01;

/// Composite: per track decode, label, convert and resample (pipelines bench, 640x480@30 VP8:
/// composite webm low grew by 0.03-0.09 per input of 2 tracks from 1 to 4 inputs).
const COMPOSITE_PER_TRACK: f64 = 0.015;

/// Measured server CPU per media-second of a 1 x 2 composite, by format and quality.
const COMPOSITE_MEASURED: &[(Format, Quality, f64)] = &[
    (Format::Webm, Quality::Low, 0.261),
    (Format::Webm, Quality::Medium, 0.425),
    (Format::Webm, Quality::High, 0.550),
    (Format::Mp4, Quality::Low, 0.178),
    (Format::Mp4, Quality::Medium, 0.257),
    (Format::Mp4, Quality::High, 0.336),
    (Format::Mkv, Quality::Low, 0.125),
    (Format::Mkv, Quality::Medium, 0.237),
    (Format::Mkv, Quality::High, 0.375),
];

/// Ultra (3840x2160@60) encodes 8 times the pixels per second of high (1920x1080@30).
const ULTRA_OVER_HIGH: f64 = 8.0;

/// The CPU a recording needs, in cores, and what it was computed for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cost {
    /// CPU-seconds per media-second: cores busy while it runs.
    pub cores: f64,
    pub mode: Mode,
    pub format: Format,
    pub quality: Quality,
    /// Recorded tracks (each published audio or video track of the room).
    pub tracks: usize,
}

/// What recording `tracks` tracks in this mode, format and quality costs.
pub fn cost(mode: Mode, format: Format, quality: Quality, tracks: usize) -> Cost {
    let n = tracks as f64;
    let cores = match mode {
        Mode::Tracks => TRACKS_BASE + TRACKS_PER_TRACK * n,
        Mode::Composite => composite_base(format, quality) + COMPOSITE_PER_TRACK * n,
    };
    Cost {
        cores,
        mode,
        format,
        quality,
        tracks,
    }
}

/// A composite with no inputs: mixers, encoders and muxer at the preset.
fn composite_base(format: Format, quality: Quality) -> f64 {
    let measured = |q: Quality| {
        COMPOSITE_MEASURED
            .iter()
            .find(|(f, mq, _)| *f == format && *mq == q)
            .map_or(0.0, |(_, _, c)| *c)
    };
    let at = |q: Quality| measured(q) - BENCH_FORWARDING - COMPOSITE_PER_TRACK * BENCH_TRACKS;
    match quality {
        Quality::Ultra => at(Quality::High) * ULTRA_OVER_HIGH,
        q => at(q),
    }
}

impl fmt::Display for Cost {
    /// `composite webm medium, 4 tracks`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.tracks == 1 { "" } else { "s" };
        match self.mode {
            Mode::Tracks => write!(f, "tracks {}, {} track{s}", self.format, self.tracks),
            Mode::Composite => write!(
                f,
                "composite {} {}, {} track{s}",
                self.format, self.quality, self.tracks
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORMATS: [Format; 3] = [Format::Webm, Format::Mkv, Format::Mp4];
    const QUALITIES: [Quality; 4] = [Quality::Low, Quality::Medium, Quality::High, Quality::Ultra];

    #[test]
    fn the_measured_rows_come_back() {
        for &(format, quality, measured) in COMPOSITE_MEASURED {
            let c = cost(Mode::Composite, format, quality, 4).cores + BENCH_FORWARDING;
            assert!((c - measured).abs() < 1e-9, "{format} {quality}: {c}");
        }
        let tracks = cost(Mode::Tracks, Format::Webm, Quality::Medium, 4).cores;
        assert!((tracks + BENCH_FORWARDING - 0.051).abs() < 1e-9, "{tracks}");
    }

    #[test]
    fn every_composite_preset_has_a_positive_base() {
        for format in FORMATS {
            for quality in QUALITIES {
                let base = cost(Mode::Composite, format, quality, 0).cores;
                assert!(base > 0.0, "{format} {quality}: {base}");
            }
        }
    }

    #[test]
    fn cost_grows_with_quality_and_tracks() {
        for format in FORMATS {
            let by_quality: Vec<f64> = QUALITIES
                .iter()
                .map(|&q| cost(Mode::Composite, format, q, 4).cores)
                .collect();
            assert!(by_quality.windows(2).all(|w| w[0] < w[1]), "{by_quality:?}");
            let two = cost(Mode::Composite, format, Quality::Low, 2).cores;
            let six = cost(Mode::Composite, format, Quality::Low, 6).cores;
            assert!((six - two - 4.0 * COMPOSITE_PER_TRACK).abs() < 1e-9);
        }
        let passthrough = cost(Mode::Tracks, Format::Mkv, Quality::Ultra, 16).cores;
        assert!(passthrough < cost(Mode::Composite, Format::Mp4, Quality::Low, 4).cores);
    }

    #[test]
    fn ultra_does_not_fit_the_default_budget_of_two_cores() {
        for format in FORMATS {
            let ultra = cost(Mode::Composite, format, Quality::Ultra, 0).cores;
            assert!(ultra > 0.8 * 2.0, "{format}: {ultra}");
            assert!(ultra > 1.712, "above what a 5 s run could get: {ultra}");
        }
    }

    #[test]
    fn figures_per_preset() {
        let at = |f, q| (cost(Mode::Composite, f, q, 4).cores * 1000.0).round() / 1000.0;
        assert_eq!(at(Format::Webm, Quality::Low), 0.252);
        assert_eq!(at(Format::Webm, Quality::Medium), 0.416);
        assert_eq!(at(Format::Mp4, Quality::High), 0.327);
        assert_eq!(at(Format::Mkv, Quality::Low), 0.116);
        assert_eq!(at(Format::Webm, Quality::Ultra), 3.908);
        assert_eq!(at(Format::Mp4, Quality::Ultra), 2.196);
        let tracks = cost(Mode::Tracks, Format::Webm, Quality::Low, 4).cores;
        assert!((tracks - 0.042).abs() < 1e-9);
    }

    #[test]
    fn about_six_low_composites_fit_two_cores() {
        let low = cost(Mode::Composite, Format::Webm, Quality::Low, 4).cores;
        let fit = (0.8 * 2.0 / low).floor();
        assert_eq!(fit, 6.0, "{low}");
    }

    #[test]
    fn describes_itself() {
        let c = cost(Mode::Composite, Format::Webm, Quality::Medium, 4);
        assert_eq!(c.to_string(), "composite webm medium, 4 tracks");
        let t = cost(Mode::Tracks, Format::Mkv, Quality::Medium, 1);
        assert_eq!(t.to_string(), "tracks mkv, 1 track");
    }
}
