//! Finding a stepped counter's steps to within microseconds without polling all the time.
//!
//! A RAPL counter steps about every millisecond on a fixed lattice (with some jitter); NVML's
//! energy counter every 10-100 ms. [`StepLock`] learns the lattice from a few steps found by
//! reading back to back, then sleeps until just before the next expected step and reads back
//! to back until the value changes: the step lies between the last unchanged read and the
//! first changed one, a microsecond or two apart. The lattice is a least-squares line through
//! the recent steps (index against time), so one step's jitter barely moves the next window
//! and a slow drift is followed; its residuals size the watch window. Windows that keep
//! missing send it back to learning (a counter that drifted, paused or skipped).

use std::collections::VecDeque;

use crate::units::Nanos;

/// What to do next for one source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Sleep until this instant, then read once (resting, or a slow source learning).
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

/// How coarse a stamp may be and still teach the lattice while learning (a source read at a
/// minimum interval is stamped no finer than that): the fit through many steps is finer
/// than any one of them.
const LEARN_SPACING: Nanos = Nanos(50_000);
/// Wake-ups whose lateness is remembered.
const LATES: usize = 32;
/// Steps a lock must hold before its learning is forgiven.
const HELD: usize = 32;
/// Learning watches before giving up for a while, and how long a while (doubling).
const LEARN_TRIES: u32 = 8;
const BACKOFF_MIN: Nanos = Nanos(100_000_000);
const BACKOFF_MAX: Nanos = Nanos(5_000_000_000);
/// Steps needed to lock.
const LEARN_STEPS: usize = 3;
/// Steps the lattice is fitted to.
const HISTORY: usize = 64;
/// The narrowest watch window on either side of an expected step.
const MIN_GUARD: f64 = 6_000.0;
/// The share of time the sampler may spend watching for steps.
const SPIN_BUDGET: f64 = 0.35;
/// The most steps between two watched ones.
const MAX_STRIDE: f64 = 4.0;
/// Windows that end without a step before going back to learning.
const MAX_MISSES: u32 = 3;

#[derive(Debug)]
pub(crate) struct StepLock {
    /// The counter's nominal period (0: unknown).
    nominal: f64,
    /// Recent precise steps: (lattice index, time in ns).
    steps: VecDeque<(f64, f64)>,
    /// The fitted lattice: step `n` at `origin + period * n`.
    origin: f64,
    period: f64,
    /// RMS distance of the steps from the lattice, ns.
    jitter: f64,
    locked: bool,
    /// The lattice index last watched for.
    watched: f64,
    /// Recent lateness of wake-ups, ns, and its 90th percentile (what the lead allows for:
    /// a wake-up later than the lead finds the step already taken).
    lates: VecDeque<f64>,
    late: f64,
    misses: u32,
    /// The minimum spacing of reads this source allows.
    min_interval: Nanos,
    /// The precision a stamp needs to steer by.
    precise: Nanos,
    /// Learning watches since learning last started, how long to wait after failing, and
    /// until when.
    attempts: u32,
    backoff: Nanos,
    resume: Nanos,
}

impl StepLock {
    pub(crate) fn new(nominal: Nanos, min_interval: Nanos, precise: Nanos) -> Self {
        StepLock {
            nominal: nominal.0 as f64,
            steps: VecDeque::with_capacity(HISTORY),
            origin: 0.0,
            period: nominal.0 as f64,
            jitter: 0.0,
            locked: false,
            watched: 0.0,
            lates: VecDeque::with_capacity(LATES),
            late: 20_000.0,
            misses: 0,
            min_interval,
            precise,
            attempts: 0,
            backoff: Nanos(0),
            resume: Nanos(0),
        }
    }

    #[cfg(test)]
    fn is_locked(&self) -> bool {
        self.locked
    }

    /// Half the watch window.
    fn guard(&self) -> f64 {
        // Three RMS jitters hold 99.7% of normal jitter and all of a uniform one.
        (3.0 * self.jitter + MIN_GUARD).min(self.period * 0.45)
    }

    /// The next action after `now`.
    pub(crate) fn plan(&mut self, now: Nanos) -> Plan {
        if !self.locked || self.period <= 0.0 {
            // Learning reads back to back until the counter steps: sleeping between reads
            // would place steps no better than the wake-ups' lateness (tens of us on a VM).
            // It lasts a few steps; a source that must not be read that often is read at its
            // own pace.
            if self.min_interval.0 > 0 {
                return Plan::ReadAt(Nanos(now.0 + self.min_interval.0));
            }
            if now < self.resume {
                // Learning failed lately (steps too irregular, or the sampler preempted at
                // each one): plain reads every other step until it is tried again.
                let every = if self.nominal > 0.0 { 2.0 * self.nominal } else { 2e6 };
                return Plan::ReadAt(Nanos(now.0 + every as u64).min(self.resume));
            }
            if self.attempts >= LEARN_TRIES {
                self.attempts = 0;
                self.backoff = Nanos(self.backoff.0 * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
                self.resume = Nanos(now.0 + self.backoff.0);
                return Plan::ReadAt(Nanos(now.0 + 1));
            }
            self.attempts += 1;
            let span = if self.nominal > 0.0 { 1.5 * self.nominal } else { 2e6 };
            return Plan::Watch { wake: now, until: Nanos(now.0 + span as u64) };
        }
        let guard = self.guard();
        let lead = guard + self.late + 2_000.0;
        let earliest = now.0 as f64 + lead;
        let last = self.steps.back().map_or(self.watched, |s| s.0);
        // A watch spins for about its lead plus half its window. Where steps jitter so much
        // that this would take more than SPIN_BUDGET of the time, only every k-th step is
        // watched (at most MAX_STRIDE apart, so regression intervals stay short).
        let spin = lead + guard;
        let stride = (spin / (SPIN_BUDGET * self.period)).ceil().clamp(1.0, MAX_STRIDE);
        let n = ((earliest - self.origin) / self.period).ceil().max(last + stride);
        self.watched = n;
        let expected = self.origin + n * self.period;
        Plan::Watch {
            wake: Nanos((expected - lead).max(0.0) as u64),
            until: Nanos((expected + guard) as u64),
        }
    }

    /// How late a wake-up for `planned` came (real at `woke`).
    pub(crate) fn woke(&mut self, planned: Nanos, woke: Nanos) {
        if self.lates.len() == LATES {
            self.lates.pop_front();
        }
        self.lates.push_back(woke.0.saturating_sub(planned.0).min(1_000_000) as f64);
        let mut sorted: Vec<f64> = self.lates.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        self.late = sorted[(sorted.len() * 9 / 10).min(sorted.len() - 1)];
    }

    /// A step stamped at `t` +/- `uncertainty` while watching (or learning).
    pub(crate) fn stepped(&mut self, t: Nanos, uncertainty: Nanos) {
        let t = t.0 as f64;
        let bar =
            if self.locked { self.precise } else { self.precise.max(LEARN_SPACING).max(self.min_interval) };
        if uncertainty > bar {
            // Bracketed too loosely to steer by: the watch woke after the step. As good as a
            // miss: widen the window, and relearn if it keeps happening.
            if self.locked {
                self.missed();
            }
            return;
        }
        let n = match (self.steps.back(), self.locked) {
            (Some(_), true) => ((t - self.origin) / self.period).round(),
            (Some(&(n0, t0)), false) => {
                // While learning, a nominal period tells how many steps were missed.
                let per = if self.nominal > 0.0 { self.nominal } else { t - t0 };
                n0 + ((t - t0) / per).round().max(1.0)
            }
            (None, _) => 0.0,
        };
        if self.steps.back().is_some_and(|&(last, _)| n <= last) {
            return;
        }
        if self.steps.len() == HISTORY {
            self.steps.pop_front();
        }
        self.steps.push_back((n, t));
        self.misses = 0;
        if self.steps.len() >= LEARN_STEPS {
            self.fit();
            self.locked = true;
            // Learning counts as done once the lock has held a while: a lock that keeps
            // failing right after learning is as costly as learning that never ends.
            if self.steps.len() >= HELD {
                self.attempts = 0;
                self.backoff = Nanos(0);
            }
        }
    }

    /// The least-squares lattice through the recent steps.
    fn fit(&mut self) {
        let k = self.steps.len() as f64;
        let (n0, t0) = self.steps[0];
        let (mut sn, mut st, mut snn, mut snt) = (0.0, 0.0, 0.0, 0.0);
        for &(n, t) in &self.steps {
            let (n, t) = (n - n0, t - t0);
            sn += n;
            st += t;
            snn += n * n;
            snt += n * t;
        }
        let den = k * snn - sn * sn;
        if den <= 0.0 {
            return;
        }
        let period = (k * snt - sn * st) / den;
        if period <= 0.0 {
            return;
        }
        let intercept = (st - period * sn) / k;
        self.period = period;
        self.origin = t0 + intercept - period * n0;
        let ss: f64 =
            self.steps.iter().map(|&(n, t)| (t - (self.origin + self.period * n)).powi(2)).sum::<f64>();
        self.jitter = (ss / k).sqrt();
    }

    /// A watch window ended with no step.
    pub(crate) fn missed(&mut self) {
        self.misses += 1;
        self.jitter = (self.jitter * 2.0 + MIN_GUARD).min(self.period * 0.25);
        if self.misses >= MAX_MISSES {
            self.relearn();
        }
    }

    /// Starts learning the lattice again.
    pub(crate) fn relearn(&mut self) {
        self.locked = false;
        self.steps.clear();
        self.misses = 0;
        self.period = self.nominal;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lattice(k: u64) -> f64 {
        let j = (crate::source::sim::splitmix64(k) % 60_000) as f64 - 30_000.0;
        k as f64 * 1_000_003.0 + 350_000.0 + j
    }

    /// Steps on a 1 ms lattice with +/-30 us jitter: once locked, every watch window holds
    /// its step, and the learned period is within 0.05%.
    #[test]
    fn locks_onto_a_jittered_lattice() {
        let mut lock = StepLock::new(Nanos(1_000_000), Nanos(0), Nanos(10_000));
        for k in 1..=3 {
            lock.stepped(Nanos(lattice(k) as u64), Nanos(2_000));
        }
        assert!(lock.is_locked());
        let mut now = Nanos(lattice(3) as u64 + 1_000);
        let mut hits = 0;
        for _ in 0..500 {
            let Plan::Watch { wake, until } = lock.plan(now) else { panic!("not watching") };
            lock.woke(wake, wake);
            let k = lock.watched as u64 + 1;
            let s = lattice(k);
            if s >= wake.0 as f64 && s <= until.0 as f64 {
                hits += 1;
                lock.stepped(Nanos(s as u64), Nanos(1_000));
                now = Nanos(s as u64 + 500);
            } else {
                lock.missed();
                now = until;
                assert!(lock.is_locked(), "lost lock at step {k}");
            }
        }
        assert!(hits >= 495, "{hits} of 500 windows held their step");
        // The slope of 64 steps with +/-30 us jitter is known to about 0.1 us.
        assert!((lock.period - 1_000_003.0).abs() < 500.0, "period {}", lock.period);
    }
}
