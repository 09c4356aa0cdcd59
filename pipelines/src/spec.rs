//! Typed, validated recording requests ([`RecordingSpec`]) and input descriptions ([`TrackSpec`]).

use crate::crypt::Keyring;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// What a recording produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Mode {
    /// One file for the whole room: video tiles composited onto a canvas, audio mixed.
    Composite,
    /// One file per participant, media copied without decoding (passthrough).
    Tracks,
}

/// Container format of the output files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Format {
    /// WebM: VP8 + Opus.
    Webm,
    /// Matroska: VP8 (tracks) or H.264 (composite) + Opus.
    Mkv,
    /// Fragmented MP4: H.264 + AAC. Composite only (VP8 cannot be stored in MP4).
    Mp4,
}

/// Output quality preset (composite canvas, frame rate and encoder bitrates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Quality {
    /// 854x480 @ 24 fps, 1 Mbit/s video, 96 kbit/s audio.
    Low,
    /// 1280x720 @ 30 fps, 2.5 Mbit/s video, 128 kbit/s audio.
    Medium,
    /// 1920x1080 @ 30 fps, 5 Mbit/s video, 192 kbit/s audio.
    High,
    /// 3840x2160 @ 60 fps, 15 Mbit/s video, 256 kbit/s audio.
    Ultra,
}

/// Composite layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Layout {
    /// Equal tiles, re-flowed as inputs come and go.
    Grid,
    /// The active speaker large, everyone else in a strip below.
    Speaker,
}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    /// An audio track.
    Audio,
    /// A video track.
    Video,
}

/// RTP payload codec of an input track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// VP8 (RFC 7741), clock rate 90000.
    Vp8,
    /// Opus (RFC 7587), clock rate 48000.
    Opus,
}

/// The numbers behind a [`Quality`] preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QualitySettings {
    /// Canvas width in pixels.
    pub width: u32,
    /// Canvas height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Video bitrate in bits per second.
    pub video_bitrate: u32,
    /// Audio bitrate in bits per second.
    pub audio_bitrate: u32,
}

impl Quality {
    /// The preset's canvas, frame rate and bitrates.
    pub fn settings(self) -> QualitySettings {
        let (width, height, fps, video_bitrate, audio_bitrate) = match self {
            Quality::Low => (854, 480, 24, 1_000_000, 96_000),
            Quality::Medium => (1280, 720, 30, 2_500_000, 128_000),
            Quality::High => (1920, 1080, 30, 5_000_000, 192_000),
            Quality::Ultra => (3840, 2160, 60, 15_000_000, 256_000),
        };
        QualitySettings {
            width,
            height,
            fps,
            video_bitrate,
            audio_bitrate,
        }
    }
}

impl Format {
    /// File extension without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Webm => "webm",
            Format::Mkv => "mkv",
            Format::Mp4 => "mp4",
        }
    }
}

/// Encoded video codec written to the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// VP8 (passthrough or vp8enc).
    Vp8,
    /// H.264 (x264enc).
    H264,
}

/// Encoded audio codec written to the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioCodec {
    /// Opus (passthrough or opusenc).
    Opus,
    /// AAC-LC (avenc_aac).
    Aac,
}

/// Why a [`RecordingSpec`] or [`TrackSpec`] was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// A string did not name a known mode/format/quality/layout.
    #[error("unknown {what} {value:?}")]
    Unknown {
        /// Which field.
        what: &'static str,
        /// The rejected text.
        value: String,
    },
    /// Tracks mode copies VP8 without re-encoding, and MP4 cannot hold VP8.
    #[error(
        "tracks mode cannot write mp4: VP8 passthrough is not possible in MP4; use webm or mkv"
    )]
    TracksModeMp4,
    /// The base name is empty or contains a path separator.
    #[error("invalid base name {0:?}: must be non-empty without '/', '\\\\' or NUL")]
    BaseName(String),
    /// The output directory is empty.
    #[error("output directory must not be empty")]
    OutputDir,
    /// Track id or participant is empty.
    #[error("track id and participant must not be empty")]
    EmptyTrackId,
    /// The codec does not match the track kind.
    #[error("codec {codec:?} is not a {kind:?} codec")]
    CodecKind {
        /// The codec.
        codec: Codec,
        /// The kind it was declared as.
        kind: TrackKind,
    },
    /// The clock rate does not match the codec's RTP clock rate.
    #[error("clock rate {got} is wrong for {codec:?} (expected {expected})")]
    ClockRate {
        /// The codec.
        codec: Codec,
        /// The declared rate.
        got: u32,
        /// The codec's required rate.
        expected: u32,
    },
    /// Payload types are 7 bits; 72-76 are reserved for RTCP.
    #[error("payload type {0} is not a valid dynamic RTP payload type")]
    PayloadType(u8),
}

/// A validated recording request. Build it with [`RecordingSpec::new`]; fields are read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSpec {
    mode: Mode,
    format: Format,
    quality: Quality,
    layout: Layout,
    audio_only: bool,
    output_dir: PathBuf,
    base_name: String,
    encryption: Option<Keyring>,
}

/// Unvalidated fields of a [`RecordingSpec`].
#[derive(Debug, Clone)]
pub struct RecordingRequest {
    /// Composite or tracks.
    pub mode: Mode,
    /// Container format.
    pub format: Format,
    /// Quality preset (composite canvas and bitrates; ignored by tracks mode).
    pub quality: Quality,
    /// Composite layout (ignored by tracks mode).
    pub layout: Layout,
    /// Record audio only; video inputs are rejected by `add_input`.
    pub audio_only: bool,
    /// Directory the files are written to (must exist when the recorder starts).
    pub output_dir: PathBuf,
    /// File name stem, e.g. the recording id. Composite: `<base>.<ext>`;
    /// tracks: `<base>_<participant>.<ext>`.
    pub base_name: String,
}

impl RecordingSpec {
    /// Validates a request. Rejects tracks + mp4 and unusable base names.
    pub fn new(req: RecordingRequest) -> Result<Self, SpecError> {
        if req.mode == Mode::Tracks && req.format == Format::Mp4 {
            return Err(SpecError::TracksModeMp4);
        }
        if req.base_name.is_empty()
            || req.base_name.contains(['/', '\\', '\0'])
            || req.base_name == "."
            || req.base_name == ".."
        {
            return Err(SpecError::BaseName(req.base_name));
        }
        if req.output_dir.as_os_str().is_empty() {
            return Err(SpecError::OutputDir);
        }
        Ok(RecordingSpec {
            mode: req.mode,
            format: req.format,
            quality: req.quality,
            layout: req.layout,
            audio_only: req.audio_only,
            output_dir: req.output_dir,
            base_name: req.base_name,
            encryption: None,
        })
    }

    /// The same recording with its files encrypted with `keyring`'s current key.
    pub fn encrypted(self, keyring: Keyring) -> Self {
        RecordingSpec {
            encryption: Some(keyring),
            ..self
        }
    }

    /// Composite or tracks.
    pub fn mode(&self) -> Mode {
        self.mode
    }
    /// Container format.
    pub fn format(&self) -> Format {
        self.format
    }
    /// Quality preset.
    pub fn quality(&self) -> Quality {
        self.quality
    }
    /// Composite layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }
    /// Audio-only recording.
    pub fn audio_only(&self) -> bool {
        self.audio_only
    }
    /// Output directory.
    pub fn output_dir(&self) -> &std::path::Path {
        &self.output_dir
    }
    /// File name stem.
    pub fn base_name(&self) -> &str {
        &self.base_name
    }
    /// The keys its files are encrypted with, if they are.
    pub fn encryption(&self) -> Option<&Keyring> {
        self.encryption.as_ref()
    }

    /// The video codec written to the files (`None` for audio-only).
    pub fn video_codec(&self) -> Option<VideoCodec> {
        match (self.audio_only, self.mode, self.format) {
            (true, _, _) => None,
            (false, Mode::Tracks, _) | (false, Mode::Composite, Format::Webm) => {
                Some(VideoCodec::Vp8)
            }
            (false, Mode::Composite, Format::Mkv | Format::Mp4) => Some(VideoCodec::H264),
        }
    }

    /// The audio codec written to the files.
    pub fn audio_codec(&self) -> AudioCodec {
        match self.format {
            Format::Mp4 => AudioCodec::Aac,
            Format::Webm | Format::Mkv => AudioCodec::Opus,
        }
    }
}

/// One RTP input: a participant's audio or video track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackSpec {
    /// Unique input id (e.g. the track id). Used in events and stats.
    pub id: String,
    /// Participant identity; tracks mode groups files by it, composite labels tiles with it.
    pub participant: String,
    /// Audio or video.
    pub kind: TrackKind,
    /// RTP payload codec.
    pub codec: Codec,
    /// RTP clock rate (90000 for VP8, 48000 for Opus).
    pub clock_rate: u32,
    /// RTP payload type; packets with another payload type are dropped and counted.
    pub payload_type: u8,
}

impl Codec {
    /// The only RTP clock rate this codec uses.
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Vp8 => 90_000,
            Codec::Opus => 48_000,
        }
    }
    /// The kind of track this codec carries.
    pub fn kind(self) -> TrackKind {
        match self {
            Codec::Vp8 => TrackKind::Video,
            Codec::Opus => TrackKind::Audio,
        }
    }
}

impl TrackSpec {
    /// Checks ids, codec/kind agreement, clock rate and payload type.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.id.is_empty() || self.participant.is_empty() {
            return Err(SpecError::EmptyTrackId);
        }
        if self.codec.kind() != self.kind {
            return Err(SpecError::CodecKind {
                codec: self.codec,
                kind: self.kind,
            });
        }
        if self.clock_rate != self.codec.clock_rate() {
            return Err(SpecError::ClockRate {
                codec: self.codec,
                got: self.clock_rate,
                expected: self.codec.clock_rate(),
            });
        }
        if self.payload_type > 127 || (72..=76).contains(&self.payload_type) {
            return Err(SpecError::PayloadType(self.payload_type));
        }
        Ok(())
    }
}

macro_rules! parse_enum {
    ($ty:ty, $what:literal, { $($text:literal => $val:path),+ $(,)? }) => {
        impl FromStr for $ty {
            type Err = SpecError;
            fn from_str(s: &str) -> Result<Self, SpecError> {
                match s.to_ascii_lowercase().as_str() {
                    $($text => Ok($val),)+
                    _ => Err(SpecError::Unknown { what: $what, value: s.to_string() }),
                }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let text = match self { $($val => $text,)+ };
                f.write_str(text)
            }
        }
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

parse_enum!(Mode, "mode", { "composite" => Mode::Composite, "tracks" => Mode::Tracks });
parse_enum!(Format, "format", { "webm" => Format::Webm, "mkv" => Format::Mkv, "mp4" => Format::Mp4 });
parse_enum!(Quality, "quality", {
    "low" => Quality::Low, "medium" => Quality::Medium, "high" => Quality::High, "ultra" => Quality::Ultra,
});
parse_enum!(Layout, "layout", { "grid" => Layout::Grid, "speaker" => Layout::Speaker });

#[cfg(test)]
mod tests {
    use super::*;

    fn request(mode: Mode, format: Format) -> RecordingRequest {
        RecordingRequest {
            mode,
            format,
            quality: Quality::Low,
            layout: Layout::Grid,
            audio_only: false,
            output_dir: "/tmp".into(),
            base_name: "rec".into(),
        }
    }

    #[test]
    fn presets_match_the_contract() {
        let s = Quality::Medium.settings();
        assert_eq!((s.width, s.height, s.fps), (1280, 720, 30));
        assert_eq!((s.video_bitrate, s.audio_bitrate), (2_500_000, 128_000));
        assert_eq!(Quality::Ultra.settings().fps, 60);
    }

    #[test]
    fn tracks_mp4_is_rejected() {
        let err = RecordingSpec::new(request(Mode::Tracks, Format::Mp4)).unwrap_err();
        assert_eq!(err, SpecError::TracksModeMp4);
        assert!(RecordingSpec::new(request(Mode::Composite, Format::Mp4)).is_ok());
    }

    #[test]
    fn base_name_must_be_a_plain_name() {
        for bad in ["", "a/b", "..", "x\\y"] {
            let mut r = request(Mode::Composite, Format::Webm);
            r.base_name = bad.into();
            assert!(matches!(RecordingSpec::new(r), Err(SpecError::BaseName(_))));
        }
    }

    #[test]
    fn codecs_follow_format_and_mode() {
        let spec = |m, f| RecordingSpec::new(request(m, f)).unwrap();
        assert_eq!(
            spec(Mode::Tracks, Format::Mkv).video_codec(),
            Some(VideoCodec::Vp8)
        );
        assert_eq!(
            spec(Mode::Composite, Format::Mkv).video_codec(),
            Some(VideoCodec::H264)
        );
        assert_eq!(
            spec(Mode::Composite, Format::Mp4).audio_codec(),
            AudioCodec::Aac
        );
        assert_eq!(
            spec(Mode::Composite, Format::Webm).audio_codec(),
            AudioCodec::Opus
        );
    }

    #[test]
    fn strings_round_trip() {
        assert_eq!("MP4".parse::<Format>().unwrap(), Format::Mp4);
        assert_eq!(Quality::High.to_string(), "high");
        assert!(matches!(
            "avi".parse::<Format>(),
            Err(SpecError::Unknown { what: "format", .. })
        ));
    }

    #[test]
    fn serde_uses_the_same_names() {
        assert_eq!(serde_json::to_value(Format::Mkv).unwrap(), "mkv");
        assert_eq!(serde_json::to_value(Mode::Tracks).unwrap(), "tracks");
        let quality: Quality = serde_json::from_value("ultra".into()).unwrap();
        assert_eq!(quality, Quality::Ultra);
        let layout: Result<Layout, _> = serde_json::from_value("mosaic".into());
        assert!(layout.unwrap_err().to_string().contains("mosaic"));
    }

    #[test]
    fn track_spec_validation() {
        let mut t = TrackSpec {
            id: "v".into(),
            participant: "alice".into(),
            kind: TrackKind::Video,
            codec: Codec::Vp8,
            clock_rate: 90_000,
            payload_type: 96,
        };
        assert!(t.validate().is_ok());
        t.clock_rate = 48_000;
        assert!(matches!(t.validate(), Err(SpecError::ClockRate { .. })));
        t.clock_rate = 90_000;
        t.codec = Codec::Opus;
        assert!(matches!(t.validate(), Err(SpecError::CodecKind { .. })));
        t.codec = Codec::Vp8;
        t.payload_type = 200;
        assert_eq!(t.validate(), Err(SpecError::PayloadType(200)));
    }
}
