//! Admission by CPU: the costs of the running recordings against a budget in cores. Pure (no
//! I/O, no clock); the manager owns one and reports it in the metrics and the pipelines view.

use super::cost::Cost;
use std::collections::HashMap;

/// Costs closer than this to the free budget still fit (rounding of the figures).
const EPSILON: f64 = 1e-9;

/// A start refused for lack of CPU.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub cost: Cost,
    pub free: f64,
    pub total: f64,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "this recording needs {:.2} CPU ({}); {:.2} of {:.2} is free",
            self.cost.cores, self.cost, self.free, self.total
        )
    }
}

/// The CPU budget and what each running recording costs.
#[derive(Debug, Clone)]
pub struct Budget {
    total: f64,
    running: HashMap<String, Cost>,
}

impl Budget {
    /// A budget of `total` cores with nothing running.
    pub fn new(total: f64) -> Self {
        Budget {
            total,
            running: HashMap::new(),
        }
    }

    pub fn total(&self) -> f64 {
        self.total
    }

    /// Cores the running recordings need.
    pub fn used(&self) -> f64 {
        self.running.values().map(|c| c.cores).sum()
    }

    /// Cores left (0 when overcommitted).
    pub fn free(&self) -> f64 {
        (self.total - self.used()).max(0.0)
    }

    /// Cores used beyond the budget (running recordings whose inputs grew).
    pub fn overcommit(&self) -> f64 {
        (self.used() - self.total).max(0.0)
    }

    /// Whether a recording of this cost fits next to the running ones.
    pub fn fits(&self, cost: &Cost) -> bool {
        cost.cores <= self.free() + EPSILON
    }

    /// The cost of recording `id`, if it runs.
    pub fn cost_of(&self, id: &str) -> Option<&Cost> {
        self.running.get(id)
    }

    /// Admits recording `id` if it fits.
    pub fn admit(&mut self, id: &str, cost: Cost) -> Result<(), Refused> {
        if !self.fits(&cost) {
            return Err(Refused {
                cost,
                free: self.free(),
                total: self.total,
            });
        }
        self.running.insert(id.to_string(), cost);
        Ok(())
    }

    /// Replaces the cost of a running recording (its inputs changed); it keeps running even
    /// past the budget. Returns whether the budget is now overcommitted.
    pub fn update(&mut self, id: &str, cost: Cost) -> bool {
        if let Some(c) = self.running.get_mut(id) {
            *c = cost;
        }
        self.overcommit() > 0.0
    }

    /// Recording `id` ended.
    pub fn release(&mut self, id: &str) {
        self.running.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipelines::{Format, Mode, Quality};

    fn costing(cores: f64) -> Cost {
        Cost {
            cores,
            mode: Mode::Composite,
            format: Format::Webm,
            quality: Quality::Medium,
            tracks: 4,
        }
    }

    #[test]
    fn admits_while_it_fits_then_refuses_naming_the_numbers() {
        let mut b = Budget::new(1.6);
        assert_eq!((b.used(), b.free()), (0.0, 1.6));
        b.admit("a", costing(0.6)).unwrap();
        b.admit("b", costing(0.7)).unwrap();
        assert!((b.used() - 1.3).abs() < 1e-9 && (b.free() - 0.3).abs() < 1e-9);
        assert!(b.fits(&costing(0.3)));
        let refused = b.admit("c", costing(0.45)).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "this recording needs 0.45 CPU (composite webm medium, 4 tracks); 0.30 of 1.60 is free"
        );
        assert!(b.cost_of("c").is_none());
        b.admit("c", costing(0.3)).unwrap();
        assert!(b.free().abs() < 1e-9);
    }

    #[test]
    fn release_frees_and_unknown_ids_change_nothing() {
        let mut b = Budget::new(1.0);
        b.admit("a", costing(0.8)).unwrap();
        assert!(!b.fits(&costing(0.5)));
        b.release("a");
        b.release("never");
        assert!(!b.update("never", costing(5.0)));
        assert_eq!(b.used(), 0.0);
        assert!(b.fits(&costing(1.0)));
    }

    #[test]
    fn growing_past_the_budget_is_kept_and_reported() {
        let mut b = Budget::new(1.0);
        b.admit("a", costing(0.6)).unwrap();
        b.admit("b", costing(0.3)).unwrap();
        assert!(!b.update("a", costing(0.65)));
        assert!(b.update("a", costing(0.9)));
        assert!((b.overcommit() - 0.2).abs() < 1e-9);
        assert_eq!(b.free(), 0.0);
        assert_eq!(b.cost_of("a").map(|c| c.cores), Some(0.9));
        assert!(!b.fits(&costing(0.01)));
        b.release("b");
        assert_eq!(b.overcommit(), 0.0);
    }

    #[test]
    fn a_cost_above_the_whole_budget_never_fits() {
        let b = Budget::new(1.6);
        assert!(!b.fits(&costing(4.0)));
        assert!(b.fits(&costing(1.6)));
    }
}
