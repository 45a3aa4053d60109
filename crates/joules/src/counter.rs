//! Monotonic totals from wrapping hardware counters.

/// Turns successive readings of a counter that wraps at `modulus` into a monotonic total.
///
/// Each wrap between two readings is seen as a reading smaller than the last one. More than
/// one wrap between two readings cannot be seen by any reader, so callers must read at least
/// once per wrap period (RAPL powercap: `max_energy_range_uj`, minutes at full power; the
/// sampler reads every millisecond).
///
/// ```
/// use joules::counter::WrappingCounter;
/// let mut c = WrappingCounter::new(1000);
/// assert_eq!(c.update(990), 0); // the first reading is the origin
/// assert_eq!(c.update(10), 20); // wrapped once: 10 to 1000, then 10
/// assert_eq!(c.update(500), 510);
/// ```
#[derive(Clone, Debug)]
pub struct WrappingCounter {
    modulus: u64,
    last: Option<u64>,
    total: u64,
    wraps: u64,
}

impl WrappingCounter {
    /// A counter whose raw value runs in `0..modulus`.
    pub fn new(modulus: u64) -> Self {
        assert!(modulus > 0, "a counter's modulus must be positive");
        WrappingCounter {
            modulus,
            last: None,
            total: 0,
            wraps: 0,
        }
    }

    /// Feeds a raw reading; returns the total advance since the first reading.
    pub fn update(&mut self, raw: u64) -> u64 {
        let raw = raw % self.modulus;
        if let Some(last) = self.last {
            if raw >= last {
                self.total += raw - last;
            } else {
                self.total += self.modulus - last + raw;
                self.wraps += 1;
            }
        }
        self.last = Some(raw);
        self.total
    }

    /// How many wraps have been corrected.
    pub fn wraps(&self) -> u64 {
        self.wraps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Against a reference: a true monotonic total observed through `% modulus`.
        #[test]
        fn matches_unwrapped_truth(
            modulus in 2u64..1_000_000,
            start in 0u64..1_000_000_000,
            steps in proptest::collection::vec(0u64..1_000_000, 1..200),
        ) {
            let mut c = WrappingCounter::new(modulus);
            let mut truth = start;
            c.update(truth % modulus);
            let mut expected_wraps = 0;
            for step in steps {
                let step = step % modulus; // at most one wrap between readings
                let before = truth;
                truth += step;
                expected_wraps += truth / modulus - before / modulus;
                prop_assert_eq!(c.update(truth % modulus), truth - start);
            }
            prop_assert_eq!(c.wraps(), expected_wraps);
        }
    }
}
