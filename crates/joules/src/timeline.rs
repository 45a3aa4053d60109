//! Energy readings over time, as the sampler took them: per domain, a series of
//! (time, energy since the profiler started).
//!
//! A counter that updates in steps (RAPL every ~1 ms, NVML every 10-100 ms) is read around
//! each step it is expected to take (see the sampler), and a new value is stamped at the
//! middle of the two reads that bracket the step, with half their distance as the stamp's
//! uncertainty. Stamping it at the read time instead would shift energy later by up to a
//! whole step, by an amount that depends on the phase between reads and updates. A continuous
//! counter (the CPU-time estimate, integrated NVML power) is stamped at the middle of its read.
//!
//! The regression estimator trusts only steps stamped to within [`Series::precise_limit`]:
//! a step misplaced by `d` moves about `(P_a - P_b) x d` of energy between neighbours.

use crate::source::{Domain, SourceKind};
use crate::units::{Joules, Nanos};

/// One domain's readings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// When each value held, ascending.
    pub times: Vec<Nanos>,
    /// The energy since the profiler started, at `times`.
    pub energy: Vec<Joules>,
    /// Half the width of the bracket each time was stamped in: the true instant lies within
    /// `times[i] +/- uncertainty[i]` ns.
    pub uncertainty: Vec<u32>,
}

impl Series {
    /// Appends a reading stamped exactly (a hand-built or continuous series).
    pub fn push(&mut self, t: Nanos, e: Joules) {
        self.push_within(t, e, Nanos(0));
    }

    /// Appends a reading whose instant is known to within `+/- uncertainty`.
    pub fn push_within(&mut self, t: Nanos, e: Joules, uncertainty: Nanos) {
        self.times.push(t);
        self.energy.push(e);
        self.uncertainty.push(u32::try_from(uncertainty.0).unwrap_or(u32::MAX));
    }

    /// Reserves room for `n` more readings.
    pub fn reserve(&mut self, n: usize) {
        self.times.reserve(n);
        self.energy.reserve(n);
        self.uncertainty.reserve(n);
    }

    /// The largest stamp uncertainty the regression accepts for a counter updating every
    /// `period` (0: continuous): 10 us, or 1% of the period for slow counters. At 1 ms and a
    /// 50 us layer, 10 us of misplacement is about the 3% the offline check found at +/-25 us
    /// halved; beyond it, a step is skipped and its two intervals are merged into one.
    pub fn precise_limit(period: Nanos) -> Nanos {
        Nanos(10_000.max(period.0 / 100))
    }

    /// The median stamp uncertainty and the fraction of readings within `limit`.
    pub fn stamp_quality(&self, limit: Nanos) -> Option<(Nanos, f64)> {
        if self.uncertainty.is_empty() {
            return None;
        }
        let mut u = self.uncertainty.clone();
        let mid = u.len() / 2;
        let (_, median, _) = u.select_nth_unstable(mid);
        let median = Nanos(u64::from(*median));
        let ok = self.uncertainty.iter().filter(|&&x| u64::from(x) <= limit.0).count();
        Some((median, ok as f64 / self.uncertainty.len() as f64))
    }

    /// Drops the readings before `t`, but the last one at or before it (a window from `t`
    /// needs a reading before its start); returns how many went.
    pub fn drop_before(&mut self, t: Nanos) -> usize {
        let keep_from = self.times.partition_point(|&x| x <= t).saturating_sub(1);
        self.times.drain(..keep_from);
        self.energy.drain(..keep_from);
        self.uncertainty.drain(..keep_from);
        keep_from
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
    /// Whether the hardware models this energy rather than measuring it (AMD's RAPL).
    pub modelled: bool,
    /// The readings.
    pub series: Series,
    /// When it was last read, whether or not its value had changed: a stepped counter that
    /// shows no change for a while (an idle uncore) has no new reading, yet is known flat.
    pub read_until: Nanos,
}

impl TimelineDomain {
    /// A domain with no readings yet.
    pub fn new(domain: Domain, source: SourceKind) -> Self {
        TimelineDomain {
            domain,
            source,
            ended: None,
            modelled: false,
            series: Series::default(),
            read_until: Nanos(0),
        }
    }

    /// Until when its counter is known to have held its last value: a stepped counter read
    /// unchanged a step and a half after its last change took no step meanwhile (or a step
    /// of zero energy). None while that is not yet known, and for continuous counters, whose
    /// every read is a reading.
    pub fn held_until(&self) -> Option<Nanos> {
        let p = self.domain.update_period.0;
        let last = *self.series.times.last()?;
        let held = Nanos(self.read_until.0.checked_sub(p + p / 2)?);
        (p > 0 && held > last).then_some(held)
    }

    /// How far apart its readings are in time: the counter's update period, or for a
    /// continuous one the median gap between reads (0 with fewer than two).
    pub fn reading_period(&self) -> Nanos {
        if self.domain.update_period.0 > 0 {
            return self.domain.update_period;
        }
        let mut gaps: Vec<u64> = self.series.times.windows(2).take(4096).map(|w| w[1].0 - w[0].0).collect();
        if gaps.is_empty() {
            return Nanos(0);
        }
        let mid = gaps.len() / 2;
        Nanos(*gaps.select_nth_unstable(mid).1)
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
