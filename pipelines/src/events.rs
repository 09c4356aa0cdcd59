//! Recorder events as an async stream.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::mpsc;

use crate::stats::Outcome;

/// Something the server may need to act on.
#[derive(Debug, Clone)]
pub enum RecorderEvent {
    /// The input's depayloader needs a keyframe: send a PLI to its publisher.
    /// Rate-limited per input (at most one per [`KEYFRAME_INTERVAL`]).
    KeyframeNeeded {
        /// Input id.
        input: String,
    },
    /// Non-fatal problem (e.g. an element warning); recording continues.
    Warning {
        /// Human-readable text.
        message: String,
    },
    /// Fatal pipeline error; the recorder stops and `stop` returns the error.
    Error {
        /// Human-readable text.
        message: String,
    },
    /// The recorder finished (stop, cancel or fatal error). Always the last event.
    Finished {
        /// The result for a clean or forced stop; `None` after cancel or a fatal error.
        outcome: Option<Outcome>,
    },
}

/// Minimum time between two [`RecorderEvent::KeyframeNeeded`] for one input.
pub const KEYFRAME_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// Capacity of the event channel; when the consumer lags, further events are dropped.
const EVENT_CAPACITY: usize = 256;

/// Async stream of [`RecorderEvent`]s. Implements [`futures_core::Stream`]; ends after
/// [`RecorderEvent::Finished`].
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::Receiver<RecorderEvent>,
}

impl EventStream {
    /// The next event, or `None` once the recorder is gone.
    pub async fn recv(&mut self) -> Option<RecorderEvent> {
        self.rx.recv().await
    }
}

impl futures_core::Stream for EventStream {
    type Item = RecorderEvent;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<RecorderEvent>> {
        self.rx.poll_recv(cx)
    }
}

/// Sending half; never blocks (events are dropped when the stream is full or gone).
#[derive(Debug, Clone)]
pub(crate) struct EventSender {
    tx: mpsc::Sender<RecorderEvent>,
}

impl EventSender {
    pub(crate) fn emit(&self, event: RecorderEvent) {
        if let Err(e) = self.tx.try_send(event) {
            tracing::debug!("recorder event dropped: {e}");
        }
    }
}

pub(crate) fn channel() -> (EventSender, EventStream) {
    let (tx, rx) = mpsc::channel(EVENT_CAPACITY);
    (EventSender { tx }, EventStream { rx })
}
