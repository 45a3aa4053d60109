//! Energy readings over time, as the sampler took them: per domain, a series of
//! (time, energy since the profiler started).
//!
//! A counter that updates in steps (RAPL every ~1 ms, NVML every 10-100 ms) is polled several
//! times per step, and a new value is stamped at the middle of the poll interval in which it
//! appeared: the update happened in that interval, so the stamp is off by at most half a poll
//! interval, and not biased. Stamping it at the read time instead would shift energy later by
//! up to a whole step, by an amount that depends on the phase between polls and updates and
//! so changes from run to run. A continuous counter (the CPU-time estimate) is stamped when
//! read.

use crate::source::{Domain, SourceKind};
use crate::units::{Joules, Nanos};

/// One domain's readings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// When each value held, ascending.
    pub times: Vec<Nanos>,
    /// The energy since the profiler started, at `times`.
    pub energy: Vec<Joules>,
}

impl Series {
    /// Appends a reading.
    pub fn push(&mut self, t: Nanos, e: Joules) {
        self.times.push(t);
        self.energy.push(e);
    }

    /// The number of readings.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// True with no readings.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// The energy between the first and the last reading, over that time.
    pub fn mean_power(&self) -> Option<f64> {
        let n = self.len();
        (n >= 2).then(|| {
            (self.energy[n - 1].0 - self.energy[0].0) / (self.times[n - 1] - self.times[0]).as_secs_f64()
        })
    }
}

/// A domain in a timeline, with the source that read it and its readings.
#[derive(Clone, Debug)]
pub struct TimelineDomain {
    /// The counter.
    pub domain: Domain,
    /// Who read it.
    pub source: SourceKind,
    /// If reading stopped early: when, and why.
    pub ended: Option<(Nanos, String)>,
    /// The readings.
    pub series: Series,
}

impl TimelineDomain {
    /// A domain with no readings yet.
    pub fn new(domain: Domain, source: SourceKind) -> Self {
        TimelineDomain { domain, source, ended: None, series: Series::default() }
    }
}

/// Every domain's readings, and when the sampler first and last polled.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// The domains, in reading order.
    pub domains: Vec<TimelineDomain>,
    /// The sampler's first poll.
    pub first_poll: Option<Nanos>,
    /// The sampler's last poll.
    pub last_poll: Nanos,
}

impl Timeline {
    /// Appends one reading of every domain at `t` (for timelines built by hand).
    pub fn push(&mut self, t: Nanos, row: &[Joules]) {
        debug_assert_eq!(row.len(), self.domains.len());
        for (d, &e) in self.domains.iter_mut().zip(row) {
            d.series.push(t, e);
        }
        self.polled(t);
    }

    /// Records a poll at `t`.
    pub fn polled(&mut self, t: Nanos) {
        self.first_poll.get_or_insert(t);
        self.last_poll = self.last_poll.max(t);
    }
}
