//! Energy readings over time, as the sampler took them.

use crate::source::{Domain, SourceKind};
use crate::units::{Joules, Nanos};

/// A domain in a timeline, with the source that read it.
#[derive(Clone, Debug)]
pub struct TimelineDomain {
    /// The counter.
    pub domain: Domain,
    /// Who read it.
    pub source: SourceKind,
    /// If reading stopped early: when, and why. Readings after `t` repeat the last one and
    /// are not used.
    pub ended: Option<(Nanos, String)>,
}

/// Readings of every domain at the sampler's ticks: `energy[i * domains + d]` is domain `d`'s
/// energy since the profiler started, at `times[i]`.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// The domains, in reading order.
    pub domains: Vec<TimelineDomain>,
    /// When each reading was taken.
    pub times: Vec<Nanos>,
    /// The readings, row-major.
    pub energy: Vec<Joules>,
}

impl Timeline {
    /// Domain `d`'s energy at reading `i`.
    pub fn energy(&self, i: usize, d: usize) -> Joules {
        self.energy[i * self.domains.len() + d]
    }

    /// Appends one row of readings.
    pub fn push(&mut self, t: Nanos, row: &[Joules]) {
        debug_assert_eq!(row.len(), self.domains.len());
        self.times.push(t);
        self.energy.extend_from_slice(row);
    }

    /// The number of readings of domain `d` that are valid (before it ended).
    pub fn valid_len(&self, d: usize) -> usize {
        match &self.domains[d].ended {
            Some((t, _)) => self.times.partition_point(|x| x <= t),
            None => self.times.len(),
        }
    }
}
