//! Subscribe-side negotiation: the server always offers, with at most one offer in flight.
//! Track changes that arrive while an offer is outstanding are folded into one follow-up offer.

/// Where the subscribe connection's offer/answer exchange stands.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeNegotiator {
    awaiting_answer: bool,
    changed_meanwhile: bool,
}

impl SubscribeNegotiator {
    /// The set of subscribed tracks changed. Returns true when the caller must create and send
    /// an offer now; false when one is in flight (a follow-up is queued).
    pub fn tracks_changed(&mut self) -> bool {
        if self.awaiting_answer {
            self.changed_meanwhile = true;
            false
        } else {
            self.awaiting_answer = true;
            true
        }
    }

    /// The answer to the outstanding offer was applied (or the offer failed). Returns true when
    /// changes queued meanwhile need a new offer now.
    pub fn answer_applied(&mut self) -> bool {
        self.awaiting_answer = false;
        std::mem::take(&mut self.changed_meanwhile) && self.tracks_changed()
    }

    /// Whether an offer is waiting for its answer.
    pub fn awaiting_answer(&self) -> bool {
        self.awaiting_answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_change_offers_at_once() {
        let mut n = SubscribeNegotiator::default();
        assert!(n.tracks_changed());
        assert!(n.awaiting_answer());
    }

    #[test]
    fn changes_during_an_offer_fold_into_one_follow_up() {
        let mut n = SubscribeNegotiator::default();
        assert!(n.tracks_changed());
        assert!(!n.tracks_changed());
        assert!(!n.tracks_changed());
        assert!(n.answer_applied(), "queued changes need a second offer");
        assert!(n.awaiting_answer());
        assert!(
            !n.answer_applied(),
            "nothing changed during the second offer"
        );
        assert!(!n.awaiting_answer());
    }
}
