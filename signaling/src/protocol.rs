//! The JSON messages exchanged over `GET /ws?token=JWT`, tagged by `type` (snake_case).
//!
//! Each participant has two peer connections: *publish* (the client offers, the server answers)
//! and *subscribe* (the server offers, the client answers). Server SDP is complete (all host
//! candidates included); clients may trickle their candidates with [`ClientMessage::Candidate`].

use serde::{Deserialize, Serialize};

/// Largest text frame the server accepts; larger frames get [`ErrorCode::MessageTooLarge`].
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Which of the participant's two peer connections a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerRole {
    Publish,
    Subscribe,
}

/// Media kind of a published track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Audio,
    Video,
}

/// A trickled ICE candidate, shaped like the browser's `RTCIceCandidateInit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceCandidate {
    pub candidate: String,
    #[serde(rename = "sdpMid", default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    #[serde(
        rename = "sdpMLineIndex",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sdp_mline_index: Option<u16>,
}

/// Messages a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Offer (initial or renegotiation) for the publish connection.
    PublishOffer { sdp: String },
    /// Answer to the server's latest [`ServerMessage::SubscribeOffer`].
    SubscribeAnswer { sdp: String },
    /// A trickled local candidate of one of the client's connections.
    Candidate {
        pc: PeerRole,
        candidate: IceCandidate,
    },
    /// The client muted or unmuted its microphone or camera.
    Mute { kind: MediaKind, muted: bool },
    /// The client leaves the room; the server closes the socket afterwards.
    Leave,
}

/// A track as the other participants see it: the subscribe connection carries it with
/// `MediaStream.id == stream_id` and `MediaStreamTrack.id == track_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    pub track_id: String,
    pub stream_id: String,
    pub kind: MediaKind,
    pub muted: bool,
}

/// A participant as the others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    /// The token's `sub`, unique within the room.
    pub identity: String,
    pub name: String,
    pub role: String,
    pub tracks: Vec<TrackInfo>,
}

/// An ICE server handed to clients for their `RTCPeerConnection` configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Messages the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// First message after the socket opens.
    Welcome {
        room: String,
        me: ParticipantInfo,
        participants: Vec<ParticipantInfo>,
        ice_servers: Vec<IceServer>,
    },
    PublishAnswer {
        sdp: String,
    },
    SubscribeOffer {
        sdp: String,
    },
    ParticipantJoined {
        participant: ParticipantInfo,
    },
    /// A participant's tracks or mute state changed.
    ParticipantUpdated {
        participant: ParticipantInfo,
    },
    ParticipantLeft {
        identity: String,
    },
    /// The loudest participant of the room (RFC 6464 levels), `None` when everyone is quiet.
    ActiveSpeaker {
        identity: Option<String>,
    },
    /// Recording lifecycle events; `recording` is the recording state object of the API.
    RecordingStarted {
        recording: serde_json::Value,
    },
    RecordingPaused {
        recording: serde_json::Value,
    },
    RecordingResumed {
        recording: serde_json::Value,
    },
    RecordingStopped {
        recording: serde_json::Value,
    },
    RecordingCancelled {
        recording: serde_json::Value,
    },
    RecordingCompleted {
        recording: serde_json::Value,
    },
    RecordingFailed {
        recording: serde_json::Value,
    },
    /// A precise error; `fatal` errors are followed by the socket closing.
    Error {
        code: ErrorCode,
        message: String,
        fatal: bool,
    },
}

/// Machine-readable error codes, one list for the HTTP API (`{"error": code, ...}`) and the
/// WebSocket protocol (`{"type": "error", "code": ...}`). Serialised in snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    // Requests and messages.
    MalformedMessage,
    MessageTooLarge,
    UnknownMessageType,
    BadRequest,
    InvalidRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    /// The route exists, not with this HTTP method.
    MethodNotAllowed,
    // Negotiation.
    InvalidSdp,
    UnsupportedCodecs,
    NegotiationFailed,
    NoMediaPort,
    // Rooms and participants.
    RoomFull,
    RoomNotFound,
    /// The same identity joined again elsewhere.
    Replaced,
    /// Removed by request (e.g. `DELETE` of its WHIP/WHEP resource).
    Removed,
    NotFound,
    // Access.
    Unauthorized,
    TokenExpired,
    /// A token claim (`sub`, `name`, `room`) is unprintable or too long.
    InvalidClaim,
    Forbidden,
    UrlExpired,
    InvalidSignature,
    TokenInUrl,
    // Recordings.
    RecordingDisabled,
    RecordingNotFound,
    RecordingInProgress,
    TooManyRecordings,
    InsufficientCapacity,
    InvalidState,
    PipelineError,
    StorageError,
    CatalogError,
    IoError,
    EncryptionError,
    // Client uploads.
    UploadNotFound,
    /// A chunk's sequence arrived before with other bytes.
    ChunkConflict,
    /// A chunk too far ahead of the first missing sequence.
    SequenceGap,
    /// `final` while sequences are missing.
    MissingChunks,
    /// The upload is finished; it takes no more data.
    UploadFinished,
    /// A tus `PATCH` whose `Upload-Offset` is not the upload's offset.
    OffsetMismatch,
    TooManyUploads,
    /// A tus request without `Tus-Resumable: 1.0.0`.
    UnsupportedTusVersion,
    // Limits.
    RateLimited,
    TooManyPending,
    RequestTimeout,
    // The server.
    NotReady,
    Internal,
}

/// Why a text frame could not be turned into a [`ClientMessage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub code: ErrorCode,
    pub message: String,
}

/// Decodes one text frame, telling a too-large frame, malformed JSON and an unknown `type` apart.
pub fn decode_client_message(text: &str) -> Result<ClientMessage, DecodeError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError {
            code: ErrorCode::MessageTooLarge,
            message: format!(
                "message is {} bytes; the limit is {MAX_MESSAGE_BYTES}",
                text.len()
            ),
        });
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| DecodeError {
        code: ErrorCode::MalformedMessage,
        message: format!("invalid JSON: {e}"),
    })?;
    let Some(kind) = value
        .get("type")
        .and_then(|t| t.as_str())
        .map(str::to_owned)
    else {
        return Err(DecodeError {
            code: ErrorCode::MalformedMessage,
            message: "missing string field `type`".into(),
        });
    };
    serde_json::from_value(value).map_err(|e| {
        let unknown = is_unknown_type(&kind);
        DecodeError {
            code: if unknown {
                ErrorCode::UnknownMessageType
            } else {
                ErrorCode::MalformedMessage
            },
            message: if unknown {
                format!("unknown message type `{kind}`")
            } else {
                format!("invalid `{kind}` message: {e}")
            },
        }
    })
}

/// Whether `kind` names no client message. A bare `{"type": kind}` fails on the tag itself
/// for an unknown type, and on a missing field for a known one; so a known message with a bad
/// field value (a `mute` whose `kind` is `screen`) is malformed, not of an unknown type.
fn is_unknown_type(kind: &str) -> bool {
    serde_json::from_value::<ClientMessage>(serde_json::json!({ "type": kind }))
        .is_err_and(|e| e.to_string().starts_with("unknown variant"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_publish_offer() {
        let msg = decode_client_message(r#"{"type":"publish_offer","sdp":"v=0"}"#).unwrap();
        assert_eq!(msg, ClientMessage::PublishOffer { sdp: "v=0".into() });
    }

    #[test]
    fn decodes_candidate_with_browser_field_names() {
        let text = r#"{"type":"candidate","pc":"subscribe","candidate":
            {"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}}"#;
        let ClientMessage::Candidate { pc, candidate } = decode_client_message(text).unwrap()
        else {
            panic!("not a candidate");
        };
        assert_eq!(pc, PeerRole::Subscribe);
        assert_eq!(candidate.sdp_mid.as_deref(), Some("0"));
        assert_eq!(candidate.sdp_mline_index, Some(0));
    }

    #[test]
    fn unknown_type_is_reported_as_such() {
        let err = decode_client_message(r#"{"type":"dance"}"#).unwrap_err();
        assert_eq!(err.code, ErrorCode::UnknownMessageType);
        assert!(err.message.contains("dance"), "{}", err.message);
    }

    #[test]
    fn a_known_type_with_a_bad_value_is_malformed() {
        for text in [
            r#"{"type":"mute","kind":"screen","muted":true}"#,
            r#"{"type":"mute","kind":"mute","muted":true}"#,
            r#"{"type":"candidate","pc":"sideways","candidate":{"candidate":"c"}}"#,
        ] {
            let err = decode_client_message(text).unwrap_err();
            assert_eq!(err.code, ErrorCode::MalformedMessage, "{text}: {err:?}");
            assert!(err.message.starts_with("invalid `"), "{}", err.message);
        }
    }

    #[test]
    fn malformed_json_and_missing_fields_are_malformed() {
        for text in ["{", "[]", r#"{"sdp":"x"}"#, r#"{"type":"publish_offer"}"#] {
            let err = decode_client_message(text).unwrap_err();
            assert_eq!(err.code, ErrorCode::MalformedMessage, "{text}: {err:?}");
        }
    }

    #[test]
    fn oversized_message_is_rejected_before_parsing() {
        let text = format!(
            r#"{{"type":"publish_offer","sdp":"{}"}}"#,
            "a".repeat(MAX_MESSAGE_BYTES)
        );
        let err = decode_client_message(&text).unwrap_err();
        assert_eq!(err.code, ErrorCode::MessageTooLarge);
    }

    #[test]
    fn server_messages_are_tagged_snake_case() {
        let text = serde_json::to_string(&ServerMessage::ParticipantLeft {
            identity: "a".into(),
        })
        .unwrap();
        assert_eq!(text, r#"{"type":"participant_left","identity":"a"}"#);
    }

    #[test]
    fn error_codes_serialise_as_their_wire_names() {
        let cases = [
            (ErrorCode::MalformedMessage, "malformed_message"),
            (ErrorCode::UnsupportedMediaType, "unsupported_media_type"),
            (ErrorCode::NoMediaPort, "no_media_port"),
            (ErrorCode::TokenExpired, "token_expired"),
            (ErrorCode::InvalidClaim, "invalid_claim"),
            (ErrorCode::MethodNotAllowed, "method_not_allowed"),
            (ErrorCode::RecordingInProgress, "recording_in_progress"),
            (ErrorCode::InsufficientCapacity, "insufficient_capacity"),
            (ErrorCode::NotReady, "not_ready"),
        ];
        for (code, wire) in cases {
            assert_eq!(serde_json::to_value(code).unwrap(), wire);
        }
    }
}
