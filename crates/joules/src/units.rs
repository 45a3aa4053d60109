//! Unit newtypes. Figures carry their unit in their type so that joules are never added to
//! watts or nanoseconds by accident.

use std::ops::{Add, AddAssign, Div, Mul, Sub};

/// Energy in joules.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
#[cfg_attr(feature = "profiler", derive(serde::Serialize, serde::Deserialize), serde(transparent))]
pub struct Joules(pub f64);

/// Power in watts.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
#[cfg_attr(feature = "profiler", derive(serde::Serialize, serde::Deserialize), serde(transparent))]
pub struct Watts(pub f64);

/// A duration or an instant in nanoseconds (instants count from the profiler's start).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "profiler", derive(serde::Serialize, serde::Deserialize), serde(transparent))]
pub struct Nanos(pub u64);

impl Nanos {
    /// This duration in seconds.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 * 1e-9
    }
}

impl From<std::time::Duration> for Nanos {
    fn from(d: std::time::Duration) -> Self {
        Nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

impl Sub for Nanos {
    type Output = Nanos;
    fn sub(self, rhs: Nanos) -> Nanos {
        Nanos(self.0.saturating_sub(rhs.0))
    }
}

impl Add for Joules {
    type Output = Joules;
    fn add(self, rhs: Joules) -> Joules {
        Joules(self.0 + rhs.0)
    }
}

impl AddAssign for Joules {
    fn add_assign(&mut self, rhs: Joules) {
        self.0 += rhs.0;
    }
}

impl Sub for Joules {
    type Output = Joules;
    fn sub(self, rhs: Joules) -> Joules {
        Joules(self.0 - rhs.0)
    }
}

impl Div<Nanos> for Joules {
    type Output = Watts;
    fn div(self, rhs: Nanos) -> Watts {
        Watts(self.0 / rhs.as_secs_f64())
    }
}

impl Mul<Nanos> for Watts {
    type Output = Joules;
    fn mul(self, rhs: Nanos) -> Joules {
        Joules(self.0 * rhs.as_secs_f64())
    }
}
