//! Monotonic totals from wrapping hardware counters.

/// Turns successive readings of a counter that wraps at `modulus` into a monotonic total.
///
/// Every reader shares it: powercap (wraps at `max_energy_range_uj`), MSR (32 bits), perf
/// (64 bits, widened by the kernel). Each wrap between two readings is seen as a reading
/// smaller than the last one. More than
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
    /// Up to 2^64, hence wider than the readings.
    modulus: u128,
    last: Option<u64>,
    total: u64,
    wraps: u64,
    /// A smaller reading is a reset to 0 (the counter is too wide to wrap), not a wrap.
    resets: bool,
}

impl WrappingCounter {
    /// Where the raw value wraps (saturated to `u64::MAX` for a 64-bit counter).
    pub fn modulus(&self) -> u64 {
        u64::try_from(self.modulus).unwrap_or(u64::MAX)
    }

    /// A counter whose raw value runs in `0..modulus` (powercap: `max_energy_range_uj`).
    pub fn new(modulus: u64) -> Self {
        assert!(modulus > 0, "a counter's modulus must be positive");
        Self::with_modulus(u128::from(modulus))
    }

    /// A counter `bits` wide (MSR energy fields: 32; perf counters: 64).
    pub fn with_bits(bits: u32) -> Self {
        assert!((1..=64).contains(&bits), "a counter is 1 to 64 bits wide");
        Self::with_modulus(1u128 << bits)
    }

    fn with_modulus(modulus: u128) -> Self {
        WrappingCounter { modulus, last: None, total: 0, wraps: 0, resets: false }
    }

    /// A 64-bit counter that never wraps in practice (hwmon's microjoules: 584,000 years at
    /// 1 kW) but may be reset to 0 (a driver reloaded, a GPU reset): a smaller reading
    /// counts from 0, so the energy since the reset is added and the energy between the last
    /// reading and the reset, which no reading saw, is lost (at most one read interval's).
    ///
    /// ```
    /// use joules::counter::WrappingCounter;
    /// let mut c = WrappingCounter::resetting();
    /// c.update(5_000);
    /// assert_eq!(c.update(7_000), 2_000);
    /// assert_eq!(c.update(300), 2_300); // reset, then 300 since
    /// assert_eq!(c.wraps(), 1);
    /// ```
    pub fn resetting() -> Self {
        WrappingCounter { resets: true, ..Self::with_modulus(1u128 << 64) }
    }

    /// Feeds a raw reading; returns the total advance since the first reading.
    pub fn update(&mut self, raw: u64) -> u64 {
        let raw = (u128::from(raw) % self.modulus) as u64;
        if let Some(last) = self.last {
            let step = if raw >= last {
                u128::from(raw - last)
            } else if self.resets {
                self.wraps += 1;
                u128::from(raw)
            } else {
                self.wraps += 1;
                self.modulus - u128::from(last) + u128::from(raw)
            };
            self.total = self.total.wrapping_add(step as u64);
        }
        self.last = Some(raw);
        self.total
    }

    /// Takes `raw` as the new starting point without adding to the total (a counter that
    /// restarted from a value it had accumulated elsewhere); counts as a reset.
    pub fn rebase(&mut self, raw: u64) {
        self.last = Some((u128::from(raw) % self.modulus) as u64);
        self.wraps += 1;
    }

    /// How many wraps (or, for [`resetting`](Self::resetting), resets) have been corrected.
    pub fn wraps(&self) -> u64 {
        self.wraps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn full_width_counters_wrap_at_two_to_the_64() {
        let mut c = WrappingCounter::with_bits(64);
        c.update(u64::MAX - 5);
        assert_eq!(c.update(4), 10);
        assert_eq!(c.wraps(), 1);
    }

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
