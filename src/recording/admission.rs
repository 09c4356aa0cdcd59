//! Which recordings may start, decided without I/O: one recording per room, at most
//! `max_concurrent` on the server and `max_per_user` per user, and the CPU [`Budget`] (each
//! recording's [`cost`], recomputed when its inputs change). The manager actor owns one and
//! carries out what it answers (spawning the recording, metrics, log lines).

use super::budget::{Budget, Refused};
use super::cost::{cost, Cost};
use super::state::RecordingParams;
use std::collections::HashMap;

/// Why a start was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("Recording already in progress")]
    InProgress,
    #[error("Too many recordings in progress on this server (limit {0})")]
    ServerLimit(usize),
    #[error("You already have {running} recordings in progress (limit {limit})")]
    UserLimit { running: usize, limit: usize },
    #[error("{0}")]
    Capacity(Refused),
}

/// A running recording whose inputs pushed the running recordings past the budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Overcommitted {
    pub cost: Cost,
    pub used: f64,
    pub total: f64,
}

struct Admitted {
    room: String,
    user: String,
    params: RecordingParams,
}

/// The running recordings as admission sees them.
pub struct Admission {
    max_concurrent: usize,
    max_per_user: usize,
    running: HashMap<String, Admitted>,
    budget: Budget,
}

impl Admission {
    pub fn new(max_concurrent: usize, max_per_user: usize, budget: Budget) -> Self {
        Self {
            max_concurrent,
            max_per_user,
            running: HashMap::new(),
            budget,
        }
    }

    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// Admits recording `id` of `room` for `user` with `tracks` published now, or says why not.
    pub fn admit(
        &mut self,
        id: &str,
        room: &str,
        user: &str,
        params: RecordingParams,
        tracks: usize,
    ) -> Result<Cost, Refusal> {
        if self.running.values().any(|r| r.room == room) {
            return Err(Refusal::InProgress);
        }
        if self.running.len() >= self.max_concurrent {
            return Err(Refusal::ServerLimit(self.max_concurrent));
        }
        let mine = self.running.values().filter(|r| r.user == user).count();
        if mine >= self.max_per_user {
            return Err(Refusal::UserLimit {
                running: mine,
                limit: self.max_per_user,
            });
        }
        let cost = cost(params.mode, params.format, params.quality, tracks);
        self.budget.admit(id, cost).map_err(Refusal::Capacity)?;
        self.running.insert(
            id.to_owned(),
            Admitted {
                room: room.to_owned(),
                user: user.to_owned(),
                params,
            },
        );
        Ok(cost)
    }

    /// Recording `id` now records `tracks` tracks. It keeps running whatever its new cost;
    /// `Some` when that grew the overcommit.
    pub fn inputs(&mut self, id: &str, tracks: usize) -> Option<Overcommitted> {
        let p = self.running.get(id)?.params;
        let cost = cost(p.mode, p.format, p.quality, tracks);
        let before = self.budget.overcommit();
        let grew = self.budget.update(id, cost) && self.budget.overcommit() > before;
        grew.then(|| Overcommitted {
            cost,
            used: self.budget.used(),
            total: self.budget.total(),
        })
    }

    /// Recording `id` ended: its room, its user's slot and its CPU are free.
    pub fn ended(&mut self, id: &str) {
        self.running.remove(id);
        self.budget.release(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipelines::{Format, Layout, Mode, Quality};

    fn params(mode: Mode, quality: Quality) -> RecordingParams {
        RecordingParams {
            format: Format::Webm,
            quality,
            mode,
            layout: Layout::Grid,
        }
    }

    fn composite() -> RecordingParams {
        params(Mode::Composite, Quality::Low)
    }

    #[test]
    fn one_recording_per_room() {
        let mut a = Admission::new(10, 10, Budget::new(100.0));
        a.admit("1", "r", "u", composite(), 2).unwrap();
        assert_eq!(
            a.admit("2", "r", "v", composite(), 2),
            Err(Refusal::InProgress)
        );
        a.ended("1");
        a.admit("2", "r", "v", composite(), 2).unwrap();
    }

    #[test]
    fn server_and_user_limits_count_running_recordings() {
        let mut a = Admission::new(3, 2, Budget::new(100.0));
        a.admit("1", "r1", "u", composite(), 1).unwrap();
        a.admit("2", "r2", "u", composite(), 1).unwrap();
        assert_eq!(
            a.admit("3", "r3", "u", composite(), 1),
            Err(Refusal::UserLimit {
                running: 2,
                limit: 2
            })
        );
        a.admit("3", "r3", "v", composite(), 1).unwrap();
        assert_eq!(
            a.admit("4", "r4", "w", composite(), 1),
            Err(Refusal::ServerLimit(3))
        );
        a.ended("1");
        a.admit("4", "r4", "u", composite(), 1).unwrap();
    }

    #[test]
    fn the_budget_refuses_what_does_not_fit_and_frees_on_end() {
        let one = cost(Mode::Composite, Format::Webm, Quality::Medium, 2).cores;
        let mut a = Admission::new(10, 10, Budget::new(one * 1.5));
        a.admit("1", "r1", "u", params(Mode::Composite, Quality::Medium), 2)
            .unwrap();
        let refused = a
            .admit("2", "r2", "v", params(Mode::Composite, Quality::Medium), 2)
            .unwrap_err();
        let Refusal::Capacity(r) = &refused else {
            panic!("{refused:?}");
        };
        assert!((r.free - one * 0.5).abs() < 1e-9, "{r:?}");
        assert!(refused.to_string().contains("is free"), "{refused}");
        a.admit("2", "r2", "v", params(Mode::Tracks, Quality::Medium), 2)
            .unwrap();
        a.ended("1");
        assert!(a.budget().used() < one);
    }

    #[test]
    fn growing_inputs_overcommit_once_and_keep_running() {
        let two = cost(Mode::Composite, Format::Webm, Quality::Low, 2).cores;
        let mut a = Admission::new(10, 10, Budget::new(two));
        a.admit("1", "r", "u", composite(), 2).unwrap();
        assert_eq!(a.inputs("1", 2), None, "same cost");
        let over = a.inputs("1", 6).expect("six inputs cost more than two");
        assert!(over.used > over.total, "{over:?}");
        assert_eq!(a.inputs("1", 6), None, "no further growth");
        assert_eq!(a.inputs("1", 1), None, "shrinking");
        assert_eq!(a.inputs("unknown", 4), None);
    }
}
