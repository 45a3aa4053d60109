//! Energy from power readings: what NVML's power fallback and hwmon's power sensors share.

use crate::units::{Joules, Nanos};

/// Integrates power read at instants by the trapezoid rule: between two readings, their mean
/// power over the time between them.
#[derive(Clone, Debug, Default)]
pub(crate) struct PowerIntegral {
    /// The last power read, watts, and when.
    last: Option<(f64, Nanos)>,
    joules: f64,
}

impl PowerIntegral {
    /// Adds a reading of `watts` at `now`; the energy so far.
    pub(crate) fn add(&mut self, watts: f64, now: Nanos) -> Joules {
        if let Some((w, t)) = self.last
            && now > t
        {
            self.joules += (w + watts) / 2.0 * (now - t).as_secs_f64();
        }
        self.last = Some((watts, now));
        Joules(self.joules)
    }

    /// A reading refused: the energy holds, and the next reading starts afresh (nothing is
    /// invented for the gap).
    pub(crate) fn pause(&mut self) -> Joules {
        self.last = None;
        Joules(self.joules)
    }
}
