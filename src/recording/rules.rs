//! When a running recording stops by itself, as a pure core on explicit time: the session
//! actor reports who is present, when media last arrived and how far the recording got,
//! and asks at each tick whether a rule fires.

use super::state::StopReason;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// The limits of the auto-stop rules.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Recorded media time (pauses excluded) after which the recording stops.
    pub max_duration: Duration,
    /// How long the room may stay empty.
    pub empty_timeout: Duration,
    /// How long a recording (not paused) may go without any media.
    pub no_media_timeout: Duration,
}

pub(super) struct AutoStop {
    limits: Limits,
    present: HashSet<String>,
    empty_since: Option<Instant>,
    last_media: Instant,
}

impl AutoStop {
    /// A recording that starts at `now`. The empty-room clock starts when the last
    /// participant leaves or the room closes.
    pub(super) fn new(limits: Limits, now: Instant) -> Self {
        AutoStop {
            limits,
            present: HashSet::new(),
            empty_since: None,
            last_media: now,
        }
    }

    pub(super) fn joined(&mut self, identity: &str) {
        self.present.insert(identity.to_string());
        self.empty_since = None;
    }

    pub(super) fn left(&mut self, identity: &str, now: Instant) {
        self.present.remove(identity);
        if self.present.is_empty() {
            self.empty_since.get_or_insert(now);
        }
    }

    /// The room itself ended: everybody is gone.
    pub(super) fn room_closed(&mut self, now: Instant) {
        self.present.clear();
        self.empty_since.get_or_insert(now);
    }

    /// Media arrived at `at` (the freshest input's last packet), or the recording resumed.
    pub(super) fn media(&mut self, at: Instant) {
        self.last_media = self.last_media.max(at);
    }

    /// The rule that stops the recording at `now`, if any. `position` is the recorded media
    /// time; `recording` is false while paused (a paused recording expects no media).
    pub(super) fn check(
        &self,
        position: Duration,
        recording: bool,
        now: Instant,
    ) -> Option<StopReason> {
        if position >= self.limits.max_duration {
            return Some(StopReason::MaxDuration);
        }
        if self
            .empty_since
            .is_some_and(|t| now.duration_since(t) >= self.limits.empty_timeout)
        {
            return Some(StopReason::RoomEmpty);
        }
        if recording && now.duration_since(self.last_media) >= self.limits.no_media_timeout {
            return Some(StopReason::NoMedia);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn rules(t0: Instant) -> AutoStop {
        let limits = Limits {
            max_duration: 100 * S,
            empty_timeout: 30 * S,
            no_media_timeout: 300 * S,
        };
        AutoStop::new(limits, t0)
    }

    #[test]
    fn the_room_stops_a_recording_once_empty_for_the_timeout() {
        let t0 = Instant::now();
        let mut r = rules(t0);
        r.joined("ann");
        assert_eq!(r.check(S, true, t0 + 60 * S), None);
        r.joined("bob");
        r.left("ann", t0 + 61 * S);
        assert_eq!(r.check(S, true, t0 + 200 * S), None, "bob is still there");
        r.left("bob", t0 + 210 * S);
        assert_eq!(r.check(S, true, t0 + 239 * S), None);
        assert_eq!(r.check(S, true, t0 + 240 * S), Some(StopReason::RoomEmpty));
    }

    #[test]
    fn a_closed_room_counts_as_empty_from_then() {
        let t0 = Instant::now();
        let mut r = rules(t0);
        r.joined("ann");
        r.room_closed(t0 + 10 * S);
        assert_eq!(r.check(S, true, t0 + 39 * S), None);
        assert_eq!(r.check(S, true, t0 + 40 * S), Some(StopReason::RoomEmpty));
    }

    #[test]
    fn no_media_stops_only_while_recording() {
        let t0 = Instant::now();
        let mut r = rules(t0);
        r.joined("ann");
        r.media(t0 + 10 * S);
        r.media(t0 + 5 * S); // an older report does not move it back
        assert_eq!(r.check(S, true, t0 + 309 * S), None);
        assert_eq!(r.check(S, false, t0 + 310 * S), None, "paused");
        assert_eq!(r.check(S, true, t0 + 310 * S), Some(StopReason::NoMedia));
    }

    #[test]
    fn max_duration_counts_recorded_time() {
        let t0 = Instant::now();
        let mut r = rules(t0);
        r.joined("ann");
        r.media(t0 + 1000 * S);
        assert_eq!(r.check(99 * S, true, t0 + 1000 * S), None);
        assert_eq!(
            r.check(100 * S, false, t0 + 1000 * S),
            Some(StopReason::MaxDuration)
        );
    }
}
