//! Active-speaker detection, a pure core on explicit time: RFC 6464 levels in, a change of
//! speaker out. The room actor feeds it and announces what it decides.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Levels (dBov, 0 = loudest) above this count as silence.
const SPEECH_LEVEL: u8 = 60;
/// Level reports older than this no longer count.
const LEVEL_FRESHNESS: Duration = Duration::from_secs(1);
/// A new active speaker is chosen at most this often (no flicker between two voices).
const SPEAKER_HOLD: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(super) struct SpeakerDetector {
    levels: HashMap<String, (u8, Instant)>,
    current: Option<String>,
    since: Option<Instant>,
}

impl SpeakerDetector {
    /// The active speaker, if anyone speaks.
    pub(super) fn current(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// `identity` reported `level` at `now`; true when the active speaker changed.
    pub(super) fn level(&mut self, identity: String, level: u8, now: Instant) -> bool {
        self.levels.insert(identity, (level, now));
        let loudest = self
            .levels
            .iter()
            .filter(|(_, (l, at))| *l <= SPEECH_LEVEL && now.duration_since(*at) < LEVEL_FRESHNESS)
            .min_by_key(|(_, (l, _))| *l)
            .map(|(id, _)| id.clone());
        let held = self
            .since
            .is_some_and(|since| now.duration_since(since) < SPEAKER_HOLD);
        if loudest.is_none() || loudest == self.current || held {
            return false;
        }
        self.current = loudest;
        self.since = Some(now);
        true
    }

    /// `identity` left; true when it was the active speaker (now nobody is).
    pub(super) fn left(&mut self, identity: &str) -> bool {
        self.levels.remove(identity);
        if self.current.as_deref() != Some(identity) {
            return false;
        }
        self.current = None;
        self.since = None;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loudest_recent_voice_speaks_without_flicker() {
        let mut d = SpeakerDetector::default();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert!(!d.level("quiet".into(), 90, t0), "silence is nobody");
        assert_eq!(d.current(), None);
        assert!(d.level("ann".into(), 40, at(0)));
        assert_eq!(d.current(), Some("ann"));
        assert!(!d.level("bob".into(), 20, at(500)), "held for a second");
        assert!(
            d.level("bob".into(), 20, at(1000)),
            "bob is louder once the hold ends"
        );
        assert_eq!(d.current(), Some("bob"));
        assert!(!d.level("ann".into(), 45, at(1500)), "bob is louder");
        assert!(
            d.level("ann".into(), 45, at(2500)),
            "bob's last report is stale: ann, though quieter, speaks"
        );
        assert_eq!(d.current(), Some("ann"));
    }

    #[test]
    fn the_speaker_leaving_leaves_nobody() {
        let mut d = SpeakerDetector::default();
        let t0 = Instant::now();
        d.level("ann".into(), 30, t0);
        assert!(!d.left("bob"));
        assert!(d.left("ann"));
        assert_eq!(d.current(), None);
        assert!(
            d.level("bob".into(), 50, t0 + Duration::from_millis(10)),
            "no hold after a leave"
        );
    }
}
