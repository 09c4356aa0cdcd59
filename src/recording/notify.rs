//! Announces recording events to every participant of the room (signaling WebSocket) and to
//! the configured webhooks.

use super::state::RecordingState;
use crate::sfu::Sfu;
use crate::webhooks::Webhooks;
use signaling::protocol::ServerMessage;

#[derive(Clone)]
pub struct Notifier {
    sfu: Sfu,
    webhooks: Webhooks,
}

impl Notifier {
    pub fn new(sfu: Sfu, webhooks: Webhooks) -> Self {
        Self { sfu, webhooks }
    }

    pub fn webhooks(&self) -> &Webhooks {
        &self.webhooks
    }

    /// Sends the event with the state to the room (if anyone is in it) and to webhooks.
    pub async fn emit(&self, event: RecordingEvent, state: &RecordingState) {
        let recording = serde_json::to_value(state).unwrap_or_default();
        if let Some(message) = event.message(recording.clone()) {
            if let Some(room) = self.sfu.find(&state.room_id).await {
                room.announce(message);
            }
        }
        self.webhooks.send(event.name(), recording);
    }
}

/// What happened to a recording: the WebSocket message type and the webhook event name are
/// both `recording_<event>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingEvent {
    Started,
    Paused,
    Resumed,
    Stopped,
    Cancelled,
    Completed,
    Failed,
    /// An upload retry began (webhooks only: the call UI has nothing to show for it).
    Processing,
}

impl RecordingEvent {
    pub const ALL: [RecordingEvent; 8] = [
        RecordingEvent::Started,
        RecordingEvent::Paused,
        RecordingEvent::Resumed,
        RecordingEvent::Stopped,
        RecordingEvent::Cancelled,
        RecordingEvent::Completed,
        RecordingEvent::Failed,
        RecordingEvent::Processing,
    ];

    /// `recording_started`, ...
    pub fn name(self) -> &'static str {
        match self {
            RecordingEvent::Started => "recording_started",
            RecordingEvent::Paused => "recording_paused",
            RecordingEvent::Resumed => "recording_resumed",
            RecordingEvent::Stopped => "recording_stopped",
            RecordingEvent::Cancelled => "recording_cancelled",
            RecordingEvent::Completed => "recording_completed",
            RecordingEvent::Failed => "recording_failed",
            RecordingEvent::Processing => "recording_processing",
        }
    }

    /// The WebSocket message announcing it to the room, if participants are told.
    fn message(self, recording: serde_json::Value) -> Option<ServerMessage> {
        Some(match self {
            RecordingEvent::Started => ServerMessage::RecordingStarted { recording },
            RecordingEvent::Paused => ServerMessage::RecordingPaused { recording },
            RecordingEvent::Resumed => ServerMessage::RecordingResumed { recording },
            RecordingEvent::Stopped => ServerMessage::RecordingStopped { recording },
            RecordingEvent::Cancelled => ServerMessage::RecordingCancelled { recording },
            RecordingEvent::Completed => ServerMessage::RecordingCompleted { recording },
            RecordingEvent::Failed => ServerMessage::RecordingFailed { recording },
            RecordingEvent::Processing => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_websocket_message_and_the_webhook_share_the_event_name() {
        for event in RecordingEvent::ALL {
            let Some(m) = event.message(serde_json::json!({"recording_id": "r"})) else {
                assert_eq!(event, RecordingEvent::Processing);
                continue;
            };
            let v = serde_json::to_value(m).unwrap();
            assert_eq!(v["type"], event.name());
            assert_eq!(v["recording"]["recording_id"], "r");
        }
    }
}
