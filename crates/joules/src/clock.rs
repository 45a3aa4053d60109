//! The one clock of a profile. Spans and the sampler stamp raw ticks from the same
//! [`quanta::Clock`] (the invariant TSC where the CPU has one, else the monotonic clock); ticks
//! become nanoseconds since the profiler started only off the hot path.

use std::sync::OnceLock;

use crate::units::Nanos;

static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();

#[inline]
pub(crate) fn clock() -> &'static quanta::Clock {
    CLOCK.get_or_init(quanta::Clock::new)
}

/// Raw ticks: cheap to read, meaningful only through [`since`].
#[inline]
pub(crate) fn raw_now() -> u64 {
    clock().raw()
}

/// Nanoseconds from `start` to `raw` (0 if `raw` is earlier).
pub(crate) fn since(start: u64, raw: u64) -> Nanos {
    Nanos(clock().delta_as_nanos(start, raw))
}
