//! Finding a stepped counter's steps to within microseconds without polling all the time.
//!
//! A RAPL counter steps about every millisecond on a fixed lattice (with some jitter); NVML's
//! energy counter every 10-100 ms. [`StepLock`] learns the period and phase from a few steps
//! taken by dense polling, then sleeps until just before the next expected step and reads
//! back to back until the value changes: the step lies between the last unchanged read and
//! the first changed one, a few microseconds apart. It keeps the phase with a small
//! phase-locked loop (the lattice, not the last step, predicts the next one, so one step's
//! jitter does not move the next window), widens its window when steps come late, and goes
//! back to learning after repeated misses (a counter that drifted, paused or skipped).

use crate::units::Nanos;

/// What to do next for one source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Sleep until this instant, then read once (learning, or a slow source).
    ReadAt(Nanos),
    /// Sleep until `wake`, then read back to back until the value changes or `until` passes.
    Watch {
        /// When to wake.
        wake: Nanos,
        /// When to give up if the counter has not stepped.
        until: Nanos,
    },
}

impl Plan {
    pub(crate) fn wake(self) -> Nanos {
        match self {
            Plan::ReadAt(t) | Plan::Watch { wake: t, .. } => t,
        }
    }
}

/// Polling interval while learning a counter's phase: fine enough to place steps within
/// 10-15 us, and only for the few steps learning takes.
const LEARN_SPACING: Nanos = Nanos(20_000);
/// Steps needed to lock.
const LEARN_STEPS: u32 = 3;
/// The narrowest watch window on either side of an expected step.
const MIN_GUARD: f64 = 6_000.0;
/// Windows that end without a step before going back to learning.
const MAX_MISSES: u32 = 3;

#[derive(Debug)]
pub(crate) struct StepLock {
    /// The counter's nominal period (0: unknown).
    nominal: f64,
    /// Learned period, ns.
    period: f64,
    /// A lattice point: the predicted instant of the step last watched for.
    anchor: f64,
    locked: bool,
    /// Precisely stamped steps seen while learning, and the first of them.
    learned: u32,
    first: f64,
    /// Periods between the last step seen and the one watched for.
    skipped: f64,
    /// The lattice point of the last step seen (or given up on).
    observed: f64,
    /// Mean absolute error of predictions, ns.
    jitter: f64,
    /// Mean lateness of wake-ups, ns.
    late: f64,
    misses: u32,
    /// The minimum spacing of reads this source allows.
    min_interval: Nanos,
    /// The precision a stamp needs to count for learning.
    precise: Nanos,
}

impl StepLock {
    pub(crate) fn new(nominal: Nanos, min_interval: Nanos, precise: Nanos) -> Self {
        StepLock {
            nominal: nominal.0 as f64,
            period: nominal.0 as f64,
            anchor: 0.0,
            locked: false,
            learned: 0,
            first: 0.0,
            skipped: 1.0,
            observed: 0.0,
            jitter: 0.0,
            late: 20_000.0,
            misses: 0,
            min_interval,
            precise,
        }
    }

    #[cfg(test)]
    fn is_locked(&self) -> bool {
        self.locked
    }

    /// Half the watch window.
    fn guard(&self) -> f64 {
        (4.0 * self.jitter + MIN_GUARD).min(self.period * 0.45)
    }

    /// The next action after `now`; `gap` asks to skip steps so that watched steps are at
    /// least that far apart (to rest while nothing needs attributing).
    pub(crate) fn plan(&mut self, now: Nanos, gap: Nanos) -> Plan {
        if !self.locked || self.period <= 0.0 {
            return Plan::ReadAt(Nanos(now.0 + LEARN_SPACING.0.max(self.min_interval.0)));
        }
        let guard = self.guard();
        let lead = guard + self.late * 1.5 + 2_000.0;
        let earliest = now.0 as f64 + lead;
        // From the last step seen: re-planning (when spans resume after a rest) may move
        // the watch earlier than the one planned.
        let mut n = ((earliest - self.observed) / self.period).ceil().max(1.0);
        let skip = (gap.0 as f64 / self.period).floor();
        n = n.max(skip);
        let expected = self.observed + n * self.period;
        self.anchor = expected;
        self.skipped = n;
        Plan::Watch {
            wake: Nanos((expected - lead).max(0.0) as u64),
            until: Nanos((expected + guard) as u64),
        }
    }

    /// How late a wake-up for `planned` came (real at `woke`).
    pub(crate) fn woke(&mut self, planned: Nanos, woke: Nanos) {
        let late = woke.0.saturating_sub(planned.0) as f64;
        self.late = 0.9 * self.late + 0.1 * late.min(1e6);
    }

    /// A step stamped at `t` +/- `uncertainty` while watching (or learning).
    pub(crate) fn stepped(&mut self, t: Nanos, uncertainty: Nanos) {
        let t = t.0 as f64;
        // Learning polls every LEARN_SPACING, so its stamps are that coarse.
        let bar = if self.locked { self.precise } else { self.precise.max(LEARN_SPACING) };
        if uncertainty > bar {
            // Bracketed too loosely to steer by: the watch woke after the step. As good as a
            // miss: widen the window, and relearn if it keeps happening (the lattice drifted).
            if self.locked {
                self.missed();
            }
            return;
        }
        if !self.locked {
            if self.learned == 0 {
                self.first = t;
            }
            self.learned += 1;
            if self.learned >= LEARN_STEPS {
                let span = t - self.first;
                let steps = f64::from(self.learned - 1);
                // A nominal period tells how many steps the span holds even if some were
                // missed; without one, assume none was.
                let n = if self.nominal > 0.0 { (span / self.nominal).round().max(steps) } else { steps };
                self.period = span / n;
                self.anchor = t;
                self.observed = t;
                self.jitter = (self.precise.0 as f64).min(self.period * 0.1);
                self.locked = true;
                self.misses = 0;
            }
            return;
        }
        let err = t - self.anchor;
        self.jitter = 0.9 * self.jitter + 0.1 * err.abs();
        // A phase-locked loop: move the lattice part of the way toward what was seen, and the
        // period much less, so one step's jitter barely moves the next window while a slow
        // drift is followed.
        self.anchor += 0.3 * err;
        self.period += 0.02 * err / self.skipped;
        self.observed = self.anchor;
        self.misses = 0;
    }

    /// A watch window ended with no step.
    pub(crate) fn missed(&mut self) {
        // The lattice still holds where the step was expected.
        self.observed = self.anchor;
        self.misses += 1;
        self.jitter = (self.jitter * 2.0 + MIN_GUARD).min(self.period * 0.25);
        if self.misses >= MAX_MISSES {
            self.relearn();
        }
    }

    /// Starts learning the phase again.
    pub(crate) fn relearn(&mut self) {
        self.locked = false;
        self.learned = 0;
        self.misses = 0;
        self.period = self.nominal;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps on a 1 ms lattice with +/-30 us jitter: once locked, every watch window holds
    /// its step, and the learned period is within 0.1%.
    #[test]
    fn locks_onto_a_jittered_lattice() {
        let step = |k: u64| -> f64 {
            let j = (crate::source::sim::splitmix64(k) % 60_000) as f64 - 30_000.0;
            k as f64 * 1_000_000.0 + 350_000.0 + j
        };
        let mut lock = StepLock::new(Nanos(1_000_000), Nanos(0), Nanos(10_000));
        // Learning: three steps stamped to 5 us.
        for k in 1..=3 {
            lock.stepped(Nanos(step(k) as u64), Nanos(5_000));
        }
        assert!(lock.is_locked());
        let mut now = Nanos(step(3) as u64 + 1_000);
        let mut hits = 0;
        for _ in 0..500 {
            let Plan::Watch { wake, until } = lock.plan(now, Nanos(0)) else { panic!("not watching") };
            lock.woke(wake, wake);
            let k = ((lock.anchor - 350_000.0) / 1_000_000.0).round() as u64;
            let s = step(k);
            if s >= wake.0 as f64 && s <= until.0 as f64 {
                hits += 1;
                lock.stepped(Nanos(s as u64), Nanos(1_000));
                now = Nanos(s as u64 + 500);
            } else {
                lock.missed();
                now = until;
                if !lock.is_locked() {
                    panic!("lost lock at step {k}");
                }
            }
        }
        assert!(hits >= 495, "{hits} of 500 windows held their step");
        assert!((lock.period - 1_000_000.0).abs() < 1_000.0, "period {}", lock.period);
    }

    #[test]
    fn gap_skips_steps_when_resting() {
        let mut lock = StepLock::new(Nanos(1_000_000), Nanos(0), Nanos(10_000));
        for k in 1..=3u64 {
            lock.stepped(Nanos(k * 1_000_000), Nanos(1_000));
        }
        let Plan::Watch { until, .. } = lock.plan(Nanos(3_000_100), Nanos(20_000_000)) else { panic!() };
        assert!(until.0 >= 22_000_000, "{until:?}");
    }
}
