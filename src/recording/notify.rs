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

    /// Sends `recording_<event>` with the state to the room (if anyone is in it) and webhooks.
    pub async fn emit(&self, event: &str, state: &RecordingState) {
        let recording = serde_json::to_value(state).unwrap_or_default();
        if let Some(message) = message(event, recording.clone()) {
            if let Some(room) = self.sfu.find(&state.room_id).await {
                room.announce(message);
            }
        }
        self.webhooks.send(&format!("recording_{event}"), recording);
    }
}

fn message(event: &str, recording: serde_json::Value) -> Option<ServerMessage> {
    Some(match event {
        "started" => ServerMessage::RecordingStarted { recording },
        "paused" => ServerMessage::RecordingPaused { recording },
        "resumed" => ServerMessage::RecordingResumed { recording },
        "stopped" => ServerMessage::RecordingStopped { recording },
        "cancelled" => ServerMessage::RecordingCancelled { recording },
        "completed" => ServerMessage::RecordingCompleted { recording },
        "failed" => ServerMessage::RecordingFailed { recording },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_has_a_message_tagged_recording_event() {
        for event in [
            "started",
            "paused",
            "resumed",
            "stopped",
            "cancelled",
            "completed",
            "failed",
        ] {
            let m = message(event, serde_json::json!({"recording_id": "r"})).unwrap();
            let v = serde_json::to_value(m).unwrap();
            assert_eq!(v["type"], format!("recording_{event}"));
            assert_eq!(v["recording"]["recording_id"], "r");
        }
        assert!(message("exploded", serde_json::Value::Null).is_none());
    }
}
