//! The recording state object the API returns, and its forward-only lifecycle.

use crate::storage::Backend;
use pipelines::{Format, Layout, Mode, Quality};
use serde::{Deserialize, Serialize};
use std::time::SystemTime;
use utoipa::ToSchema;

/// Lifecycle: pending → recording ⇄ paused → processing → completed | failed | cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Recording,
    Paused,
    Processing,
    Completed,
    Failed,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Pending,
        Status::Recording,
        Status::Paused,
        Status::Processing,
        Status::Completed,
        Status::Failed,
        Status::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Recording => "recording",
            Status::Paused => "paused",
            Status::Processing => "processing",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// A pipeline is (or is about to be) running.
    pub fn is_live(self) -> bool {
        matches!(self, Status::Pending | Status::Recording | Status::Paused)
    }

    /// Nothing will change any more (except an upload retry of a failed upload).
    pub fn is_final(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Cancelled)
    }

    /// Whether the lifecycle may move from `self` to `next`. The one step back,
    /// failed → processing, is an explicit upload retry of a recording whose files were kept.
    pub fn can_become(self, next: Status) -> bool {
        use Status::*;
        matches!(
            (self, next),
            (Pending, Recording)
                | (Recording, Paused)
                | (Paused, Recording)
                | (Recording | Paused, Processing)
                | (Processing, Completed)
                | (Pending | Recording | Paused | Processing, Failed)
                | (Pending | Recording | Paused, Cancelled)
                | (Failed, Processing)
        )
    }
}

/// Who made a recording's file: the server's pipeline, or a client that recorded locally and
/// uploaded it (`source` in the API; catalog rows from before the field read as `server`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    #[default]
    Server,
    Client,
}

/// The preset numbers, as the API shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QualityView {
    pub resolution: String,
    pub video_bitrate: u32,
    pub audio_bitrate: u32,
    pub fps: u32,
}

impl From<Quality> for QualityView {
    fn from(q: Quality) -> Self {
        let s = q.settings();
        QualityView {
            resolution: format!("{}x{}", s.width, s.height),
            video_bitrate: s.video_bitrate,
            audio_bitrate: s.audio_bitrate,
            fps: s.fps,
        }
    }
}

/// One output file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FileEntry {
    pub file_name: String,
    pub local_path: Option<String>,
    /// The object's name in the configured store (S3, GCS or Azure): the field keeps its
    /// historical name so the JSON contract stays as it was.
    pub s3_key: Option<String>,
    /// Tracks mode: whose file this is.
    pub participant: Option<String>,
    pub size_bytes: u64,
    /// Where the file's time zero lies on the recording timeline.
    pub start_offset_seconds: f64,
}

/// Whose a file being written is and where it starts, noted in `metadata.files_begun` while
/// recording so that a salvage after a crash can restore both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FileOrigin {
    /// The file's final name (without `.part`).
    pub file_name: String,
    pub participant: Option<String>,
    pub start_offset_seconds: f64,
}

/// Why a recording stopped (`metadata.stop_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The host (or an admin) asked.
    Requested,
    /// The server was shutting down (SIGTERM).
    Shutdown,
    /// The manager actor ended (the server is going away).
    ManagerGone,
    /// Auto-stop: the maximum duration was reached.
    MaxDuration,
    /// Auto-stop: nobody was in the room for the empty timeout.
    RoomEmpty,
    /// Auto-stop: no media arrived for the no-media timeout.
    NoMedia,
    /// The server was killed; recovery salvaged the files at the next start.
    ServerRestart,
}

/// Phase of an upload to the object store (`metadata.upload.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UploadPhase {
    Uploading,
    /// The last attempt failed and another is under way.
    Retrying,
    Completed,
    Failed,
}

/// Upload progress (`metadata.upload`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Upload {
    pub state: UploadPhase,
    pub bytes_uploaded: u64,
    pub bytes_total: u64,
    /// 0-100, one decimal.
    pub percent: f64,
    pub attempt: u32,
    pub last_error: Option<String>,
}

/// What the recording's `metadata` object holds. Each key is present only once set, as the
/// API has always shown it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<StopReason>,
    /// True when a rule (not a person) stopped the recording.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_stopped: Option<bool>,
    /// Whether the pipeline finished its files before the stop timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_stop: Option<bool>,
    /// True when the server died during the recording and recovery salvaged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<bool>,
    /// Files a failed pipeline or salvage left behind; deleting the recording removes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_files: Option<Vec<String>>,
    /// Why salvage could not save some files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salvage_errors: Option<Vec<String>>,
    /// Origins of the files being written, so that a salvage after a crash keeps them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_begun: Option<Vec<FileOrigin>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<Upload>,
}

/// A participant seen during the recording, with the packets recorded from them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ParticipantEntry {
    pub identity: String,
    pub name: String,
    pub joined_at: String,
    pub left_at: Option<String>,
    pub audio_packets: u64,
    pub video_packets: u64,
}

/// The recording state object (field names are a contract).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RecordingState {
    pub recording_id: String,
    pub room_id: String,
    pub user_id: String,
    pub format: Format,
    pub quality: Quality,
    pub quality_settings: QualityView,
    pub mode: Mode,
    pub layout: Layout,
    pub status: Status,
    pub storage_backend: Backend,
    pub local_path: Option<String>,
    /// The first file's object name in any store (see [`FileEntry::s3_key`]).
    pub s3_key: Option<String>,
    pub file_name: Option<String>,
    pub files: Vec<FileEntry>,
    pub started_at: Option<String>,
    pub paused_at: Option<String>,
    pub resumed_at: Option<String>,
    pub stopped_at: Option<String>,
    pub processed_at: Option<String>,
    pub duration_seconds: f64,
    pub file_size_bytes: u64,
    pub participants: Vec<ParticipantEntry>,
    pub metadata: Metadata,
    pub error: Option<String>,
    #[serde(default)]
    pub source: Source,
    /// Creation time, for ordering and retention (not part of the contract, kept for ops).
    pub created_at: String,
}

/// The parameters of a start request.
#[derive(Debug, Clone, Copy)]
pub struct RecordingParams {
    pub format: Format,
    pub quality: Quality,
    pub mode: Mode,
    pub layout: Layout,
}

impl RecordingState {
    /// A new `pending` recording.
    pub fn new(id: String, room: &str, user: &str, p: RecordingParams, storage: Backend) -> Self {
        RecordingState {
            recording_id: id,
            room_id: room.into(),
            user_id: user.into(),
            format: p.format,
            quality: p.quality,
            quality_settings: p.quality.into(),
            mode: p.mode,
            layout: p.layout,
            status: Status::Pending,
            storage_backend: storage,
            local_path: None,
            s3_key: None,
            file_name: None,
            files: Vec::new(),
            started_at: None,
            paused_at: None,
            resumed_at: None,
            stopped_at: None,
            processed_at: None,
            duration_seconds: 0.0,
            file_size_bytes: 0,
            participants: Vec::new(),
            metadata: Metadata::default(),
            error: None,
            source: Source::Server,
            created_at: now(),
        }
    }

    /// A client's uploaded recording, `processing` from the start (nothing runs on the
    /// server): `started_at` is when the upload began, `stopped_at` when it was finished. The
    /// format is the container the file turns out to be; quality, mode and layout describe
    /// no server pipeline and keep their defaults.
    pub fn uploaded(id: String, room: &str, user: &str, began: String, storage: Backend) -> Self {
        let params = RecordingParams {
            format: Format::Webm,
            quality: Quality::Medium,
            mode: Mode::Composite,
            layout: Layout::Grid,
        };
        let mut state = Self::new(id, room, user, params, storage);
        state.source = Source::Client;
        state.status = Status::Processing;
        state.started_at = Some(began);
        state.stopped_at = Some(now());
        state
    }

    /// Moves to `next` and stamps the matching time; refuses a move the lifecycle forbids.
    pub fn transition(&mut self, next: Status) -> Result<(), Status> {
        if !self.status.can_become(next) {
            return Err(self.status);
        }
        let t = Some(now());
        match next {
            Status::Recording if self.status == Status::Pending => self.started_at = t,
            Status::Recording => self.resumed_at = t,
            Status::Paused => self.paused_at = t,
            Status::Processing if self.stopped_at.is_none() => self.stopped_at = t,
            Status::Completed => self.processed_at = t,
            Status::Cancelled | Status::Failed if self.stopped_at.is_none() => self.stopped_at = t,
            _ => {}
        }
        self.status = next;
        Ok(())
    }

    /// Records files; the first one also fills the top-level `local_path`/`file_name`.
    /// They replace the origins noted while recording.
    pub fn set_files(&mut self, files: Vec<FileEntry>) {
        self.metadata.files_begun = None;
        self.file_size_bytes = files.iter().map(|f| f.size_bytes).sum();
        self.file_name = files.first().map(|f| f.file_name.clone());
        self.local_path = files.first().and_then(|f| f.local_path.clone());
        self.s3_key = files.first().and_then(|f| f.s3_key.clone());
        self.files = files;
    }

    /// The origins noted by [`RecordingState::note_files_begun`].
    pub fn files_begun(&self) -> &[FileOrigin] {
        self.metadata.files_begun.as_deref().unwrap_or_default()
    }

    /// Notes the origins of files the pipeline began; true when one was not noted yet.
    pub fn note_files_begun(&mut self, origins: impl IntoIterator<Item = FileOrigin>) -> bool {
        let begun = self.metadata.files_begun.get_or_insert_with(Vec::new);
        let noted = begun.len();
        for origin in origins {
            if !begun.iter().any(|b| b.file_name == origin.file_name) {
                begun.push(origin);
            }
        }
        if begun.is_empty() {
            self.metadata.files_begun = None;
        }
        self.files_begun().len() > noted
    }

    /// Gives salvaged `files` the participant and start offset noted when they began.
    pub fn restore_origins(&self, files: &mut [FileEntry]) {
        let begun = self.files_begun();
        for file in files {
            if let Some(origin) = begun.iter().find(|o| o.file_name == file.file_name) {
                file.participant.clone_from(&origin.participant);
                file.start_offset_seconds = origin.start_offset_seconds;
            }
        }
    }

    /// The participant entry of `identity`, added when first seen.
    pub fn participant(&mut self, identity: &str, name: &str) -> &mut ParticipantEntry {
        let index = match self
            .participants
            .iter()
            .position(|p| p.identity == identity)
        {
            Some(i) => i,
            None => {
                self.participants.push(ParticipantEntry {
                    identity: identity.into(),
                    name: name.into(),
                    joined_at: now(),
                    left_at: None,
                    audio_packets: 0,
                    video_packets: 0,
                });
                self.participants.len() - 1
            }
        };
        &mut self.participants[index]
    }
}

/// Now as RFC 3339 UTC with milliseconds.
pub fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Parses a timestamp written by [`now`].
pub fn parse_time(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> RecordingState {
        let p = RecordingParams {
            format: Format::Webm,
            quality: Quality::Low,
            mode: Mode::Composite,
            layout: Layout::Grid,
        };
        RecordingState::new("r1".into(), "room", "alice", p, Backend::Local)
    }

    #[test]
    fn lifecycle_only_moves_forward() {
        let mut s = state();
        assert_eq!(s.transition(Status::Paused), Err(Status::Pending));
        s.transition(Status::Recording).unwrap();
        assert!(s.started_at.is_some() && s.resumed_at.is_none());
        s.transition(Status::Paused).unwrap();
        s.transition(Status::Recording).unwrap();
        assert!(s.paused_at.is_some() && s.resumed_at.is_some());
        s.transition(Status::Processing).unwrap();
        assert!(s.stopped_at.is_some());
        assert_eq!(s.transition(Status::Recording), Err(Status::Processing));
        assert_eq!(s.transition(Status::Cancelled), Err(Status::Processing));
        s.transition(Status::Completed).unwrap();
        assert!(s.processed_at.is_some());
        for next in Status::ALL {
            assert!(!Status::Completed.can_become(next), "{next:?}");
            assert!(!Status::Cancelled.can_become(next), "{next:?}");
        }
        assert!(Status::Failed.can_become(Status::Processing));
    }

    #[test]
    fn noted_origins_survive_a_catalog_round_trip_and_restore_salvaged_files() {
        let mut s = state();
        let origin = |name: &str, who: &str, offset: f64| FileOrigin {
            file_name: name.into(),
            participant: Some(who.into()),
            start_offset_seconds: offset,
        };
        assert!(s.note_files_begun([origin("r1_a.webm", "a", 0.0)]));
        assert!(s.note_files_begun([origin("r1_a.webm", "a", 0.0), origin("r1_b.webm", "b", 3.5)]));
        assert!(!s.note_files_begun([origin("r1_b.webm", "b", 9.0)]));
        let s: RecordingState = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        let file = |name: &str| FileEntry {
            file_name: name.into(),
            local_path: None,
            s3_key: None,
            participant: None,
            size_bytes: 1,
            start_offset_seconds: 0.0,
        };
        let mut files = vec![file("r1_b.webm"), file("r1_c.webm")];
        s.restore_origins(&mut files);
        assert_eq!(files[0].participant.as_deref(), Some("b"));
        assert_eq!(files[0].start_offset_seconds, 3.5);
        assert_eq!(
            files[1],
            file("r1_c.webm"),
            "a file never noted keeps its defaults"
        );
        let mut s = s;
        s.set_files(files);
        assert!(
            s.files_begun().is_empty(),
            "the final files replace the notes"
        );
        assert!(s.metadata.files_begun.is_none());
    }

    #[test]
    fn serializes_the_contract_fields() {
        let mut s = state();
        s.set_files(vec![FileEntry {
            file_name: "r1.webm".into(),
            local_path: Some("/x/r1.webm".into()),
            s3_key: None,
            participant: None,
            size_bytes: 42,
            start_offset_seconds: 0.0,
        }]);
        let v = serde_json::to_value(&s).unwrap();
        for field in [
            "recording_id",
            "room_id",
            "user_id",
            "format",
            "quality",
            "quality_settings",
            "mode",
            "layout",
            "status",
            "storage_backend",
            "local_path",
            "s3_key",
            "file_name",
            "files",
            "started_at",
            "paused_at",
            "resumed_at",
            "stopped_at",
            "processed_at",
            "duration_seconds",
            "file_size_bytes",
            "participants",
            "metadata",
            "error",
            "source",
        ] {
            assert!(v.get(field).is_some(), "missing {field}");
        }
        assert_eq!(v["status"], "pending");
        assert_eq!(v["quality_settings"]["resolution"], "854x480");
        assert_eq!(v["file_size_bytes"], 42);
        assert_eq!(v["file_name"], "r1.webm");
        let back: RecordingState = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }

    /// The JSON contract, pinned: a recording with every field and metadata key set
    /// serialises to exactly this, and this parses back to the same recording.
    #[test]
    fn the_json_contract_is_pinned() {
        let mut s = RecordingState::new(
            "0b6f4f7e".into(),
            "standup",
            "host",
            RecordingParams {
                format: Format::Mp4,
                quality: Quality::Medium,
                mode: Mode::Tracks,
                layout: Layout::Speaker,
            },
            Backend::S3,
        );
        s.status = Status::Failed;
        s.created_at = "2026-12-02T07:00:00.000Z".into();
        s.started_at = Some("2026-12-02T07:00:01.000Z".into());
        s.stopped_at = Some("2026-12-02T07:10:00.000Z".into());
        s.duration_seconds = 599.5;
        s.set_files(vec![FileEntry {
            file_name: "0b6f4f7e_ann.mp4".into(),
            local_path: Some("/data/recordings/standup/0b6f4f7e_ann.mp4".into()),
            s3_key: None,
            participant: Some("ann".into()),
            size_bytes: 1000,
            start_offset_seconds: 1.5,
        }]);
        s.participants.push(ParticipantEntry {
            identity: "ann".into(),
            name: "Ann".into(),
            joined_at: "2026-12-02T07:00:01.500Z".into(),
            left_at: None,
            audio_packets: 30000,
            video_packets: 50000,
        });
        s.error = Some("upload failed".into());
        s.metadata = Metadata {
            stop_reason: Some(StopReason::NoMedia),
            auto_stopped: Some(true),
            clean_stop: Some(true),
            interrupted: Some(false),
            partial_files: Some(vec!["/data/x.part".into()]),
            salvage_errors: Some(vec!["/data/x.part: torn".into()]),
            files_begun: Some(vec![FileOrigin {
                file_name: "0b6f4f7e_bob.mp4".into(),
                participant: Some("bob".into()),
                start_offset_seconds: 2.0,
            }]),
            upload: Some(Upload {
                state: UploadPhase::Failed,
                bytes_uploaded: 500,
                bytes_total: 1000,
                percent: 50.0,
                attempt: 3,
                last_error: Some("connection refused".into()),
            }),
        };
        let expected = serde_json::json!({
            "recording_id": "0b6f4f7e",
            "room_id": "standup",
            "user_id": "host",
            "format": "mp4",
            "quality": "medium",
            "quality_settings": {
                "resolution": "1280x720", "video_bitrate": 2500000,
                "audio_bitrate": 128000, "fps": 30
            },
            "mode": "tracks",
            "layout": "speaker",
            "status": "failed",
            "storage_backend": "s3",
            "local_path": "/data/recordings/standup/0b6f4f7e_ann.mp4",
            "s3_key": null,
            "file_name": "0b6f4f7e_ann.mp4",
            "files": [{
                "file_name": "0b6f4f7e_ann.mp4",
                "local_path": "/data/recordings/standup/0b6f4f7e_ann.mp4",
                "s3_key": null,
                "participant": "ann",
                "size_bytes": 1000,
                "start_offset_seconds": 1.5
            }],
            "started_at": "2026-12-02T07:00:01.000Z",
            "paused_at": null,
            "resumed_at": null,
            "stopped_at": "2026-12-02T07:10:00.000Z",
            "processed_at": null,
            "duration_seconds": 599.5,
            "file_size_bytes": 1000,
            "participants": [{
                "identity": "ann", "name": "Ann", "joined_at": "2026-12-02T07:00:01.500Z",
                "left_at": null, "audio_packets": 30000, "video_packets": 50000
            }],
            "metadata": {
                "stop_reason": "no_media",
                "auto_stopped": true,
                "clean_stop": true,
                "interrupted": false,
                "partial_files": ["/data/x.part"],
                "salvage_errors": ["/data/x.part: torn"],
                "files_begun": [{
                    "file_name": "0b6f4f7e_bob.mp4", "participant": "bob",
                    "start_offset_seconds": 2.0
                }],
                "upload": {
                    "state": "failed", "bytes_uploaded": 500, "bytes_total": 1000,
                    "percent": 50.0, "attempt": 3, "last_error": "connection refused"
                }
            },
            "error": "upload failed",
            "source": "server",
            "created_at": "2026-12-02T07:00:00.000Z"
        });
        assert_eq!(serde_json::to_value(&s).unwrap(), expected);
        let back: RecordingState = serde_json::from_value(expected.clone()).unwrap();
        assert_eq!(back, s);

        // A row written before `source` existed reads as a server recording.
        let mut old = expected.clone();
        old.as_object_mut().unwrap().remove("source");
        let back: RecordingState = serde_json::from_value(old).unwrap();
        assert_eq!(back, s);

        let mut client = s.clone();
        client.source = Source::Client;
        let mut expected_client = expected;
        expected_client["source"] = "client".into();
        assert_eq!(serde_json::to_value(&client).unwrap(), expected_client);
        assert_eq!(
            serde_json::from_value::<RecordingState>(expected_client).unwrap(),
            client
        );
    }

    #[test]
    fn unset_metadata_keys_are_absent() {
        let v = serde_json::to_value(state()).unwrap();
        assert_eq!(v["metadata"], serde_json::json!({}));
        let mut s = state();
        s.metadata.stop_reason = Some(StopReason::Requested);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v["metadata"],
            serde_json::json!({"stop_reason": "requested"})
        );
    }

    #[test]
    fn times_round_trip() {
        let t = now();
        assert!(parse_time(&t).is_some(), "{t}");
        assert_eq!(Status::parse("paused"), Some(Status::Paused));
        assert_eq!(Status::parse("nope"), None);
    }
}
