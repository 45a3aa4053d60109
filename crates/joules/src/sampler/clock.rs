//! The sampler's sense of time: the profile's clock and sleeping to absolute deadlines.
//!
//! The real clock sleeps with `clock_nanosleep(TIMER_ABSTIME)` after setting the thread's timer
//! slack to 1 ns: Linux otherwise wakes a normal thread up to 50 us late, which is most of
//! the error budget for a step instant. The virtual clock replays the same sampler logic in
//! simulated time, with a read cost and wake-up lateness, for the accuracy benchmark.

use crate::clock;
use crate::units::Nanos;

/// What the sampler needs from time.
pub trait SamplerClock {
    /// Nanoseconds since the profile started.
    fn now(&mut self) -> Nanos;
    /// Sleeps until `t` (returns at once if it has passed).
    fn sleep_until(&mut self, t: Nanos);
    /// The instant a read that starts at `before` sees the counter at. Hardware latches
    /// somewhere inside the read; the real clock says its start.
    fn latch(&mut self, before: Nanos) -> Nanos {
        before
    }
    /// A counter read has just been made (a virtual clock advances by its cost).
    fn read_done(&mut self) {}
    /// Sleeps until `t` while nothing needs watching, unless [`Alarm::ring`] wakes it
    /// earlier; true if it did.
    fn rest_until(&mut self, t: Nanos) -> bool {
        self.sleep_until(t);
        false
    }
    /// The reads an alarm asked for are done.
    fn alarm_answered(&mut self) {}
}

/// Wakes a resting sampler: a [`Window`](crate::Window) that begins after a pause needs a
/// reading at its start, which a sampler asleep for its rest gap would take up to 20 ms late.
#[derive(Debug, Default)]
pub(crate) struct Alarm {
    resting: std::sync::atomic::AtomicBool,
    thread: std::sync::OnceLock<std::thread::Thread>,
    /// Rings answered: bumped once the woken sampler has read every source.
    answered: std::sync::atomic::AtomicU64,
}

impl Alarm {
    /// Wakes the sampler if it rests, and then waits (at most 50 ms) until it has read every
    /// source, so that what the caller stamps next has a reading before it. While the
    /// sampler watches (spans or windows running) this is one relaxed load.
    pub(crate) fn ring(&self) {
        use std::sync::atomic::Ordering;
        let before = self.answered.load(Ordering::Acquire);
        if self.resting.load(Ordering::Relaxed)
            && self.resting.swap(false, Ordering::AcqRel)
            && let Some(thread) = self.thread.get()
        {
            thread.unpark();
            let give_up = std::time::Instant::now() + std::time::Duration::from_millis(50);
            while self.answered.load(Ordering::Acquire) == before && std::time::Instant::now() < give_up {
                std::thread::yield_now();
            }
        }
    }
}

/// The profile's clock, and the kernel's timers to sleep on it.
#[derive(Debug)]
pub struct RealClock {
    start_raw: u64,
    alarm: std::sync::Arc<Alarm>,
}

impl RealClock {
    /// Nanoseconds count from `start_raw` (raw ticks of the span clock). Call on the sampler
    /// thread: it sets that thread's timer slack.
    pub(crate) fn new(start_raw: u64, alarm: std::sync::Arc<Alarm>) -> Self {
        let _ = alarm.thread.set(std::thread::current());
        // SAFETY: prctl(PR_SET_TIMERSLACK, 1) takes plain integers and affects only this
        // thread; failure leaves the default slack, which costs precision, not correctness.
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
        }
        RealClock { start_raw, alarm }
    }
}

fn monotonic() -> libc::timespec {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec and CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts
}

impl SamplerClock for RealClock {
    fn now(&mut self) -> Nanos {
        clock::since(self.start_raw, clock::raw_now())
    }

    fn sleep_until(&mut self, t: Nanos) {
        let now = self.now();
        if t <= now {
            return;
        }
        // The span clock (TSC) and CLOCK_MONOTONIC tick at the same rate; the deadline is
        // moved onto the kernel's clock once, then slept to absolutely, so an interrupted
        // sleep resumes toward the same instant.
        let base = monotonic();
        let total = base.tv_nsec as u64 + (t - now).0;
        let deadline = libc::timespec {
            tv_sec: base.tv_sec + (total / 1_000_000_000) as libc::time_t,
            tv_nsec: (total % 1_000_000_000) as libc::c_long,
        };
        loop {
            // SAFETY: `deadline` is a valid timespec; a null remainder is allowed with
            // TIMER_ABSTIME.
            let rc = unsafe {
                libc::clock_nanosleep(
                    libc::CLOCK_MONOTONIC,
                    libc::TIMER_ABSTIME,
                    &deadline,
                    std::ptr::null_mut(),
                )
            };
            if rc != libc::EINTR {
                break;
            }
        }
    }

    fn rest_until(&mut self, t: Nanos) -> bool {
        use std::sync::atomic::Ordering;
        self.alarm.resting.store(true, Ordering::Release);
        loop {
            let now = self.now();
            if !self.alarm.resting.load(Ordering::Acquire) {
                return true;
            }
            if t <= now {
                break;
            }
            // Parking is a futex wait, which `Alarm::ring` ends; a spurious wake-up loops.
            std::thread::park_timeout(std::time::Duration::from_nanos((t - now).0));
        }
        // Not rung: a ring between the check and this store is answered by the read the
        // sampler makes now anyway.
        !self.alarm.resting.swap(false, Ordering::AcqRel)
    }

    fn alarm_answered(&mut self) {
        self.alarm.answered.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Simulated time for replaying the sampler offline: each read costs `read_cost`, each
/// wake-up comes late by a seeded amount in `late`.
#[derive(Debug, Clone)]
pub struct VirtualClock {
    t: Nanos,
    read_cost: Nanos,
    late: (Nanos, Nanos),
    rng: u64,
}

impl VirtualClock {
    /// At 0, with a read cost (at least 1 ns) and a range of wake-up lateness.
    pub fn new(read_cost: Nanos, late: (Nanos, Nanos), seed: u64) -> Self {
        // A read takes time: with none, a watch for a step would never see time pass.
        VirtualClock { t: Nanos(0), read_cost: Nanos(read_cost.0.max(1)), late, rng: seed | 1 }
    }
}

impl SamplerClock for VirtualClock {
    fn now(&mut self) -> Nanos {
        self.t
    }

    fn sleep_until(&mut self, t: Nanos) {
        if t <= self.t {
            return;
        }
        let span = self.late.1.0.saturating_sub(self.late.0.0);
        let extra = if span == 0 { 0 } else { crate::source::sim::splitmix64(self.rng) % span };
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        self.t = Nanos(t.0 + self.late.0.0 + extra);
    }

    fn latch(&mut self, before: Nanos) -> Nanos {
        // Anywhere in the read, uniformly: the sampler stamps its middle, unbiased.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let at = crate::source::sim::splitmix64(self.rng) % self.read_cost.0.max(1);
        Nanos(before.0 + at)
    }

    fn read_done(&mut self) {
        self.t = Nanos(self.t.0 + self.read_cost.0);
    }
}
