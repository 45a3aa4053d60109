//! Units for people: one unit per figure, picked from its size.

use crate::stats::Estimate;

/// A unit chosen for a column from its typical value, criterion-style.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale {
    factor: f64,
    unit: &'static str,
}

impl Scale {
    /// The energy unit (kJ .. nJ) that shows `typical` joules with 1 to 3 integer digits.
    pub fn energy(typical: f64) -> Self {
        Self::pick(typical, &[(1e3, "kJ"), (1.0, "J"), (1e-3, "mJ"), (1e-6, "µJ"), (1e-9, "nJ")])
    }

    /// The time unit (s .. ns) for `typical` nanoseconds.
    pub fn time(typical_ns: f64) -> Self {
        let s = Self::pick(typical_ns * 1e-9, &[(1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")]);
        Scale { factor: s.factor * 1e-9, unit: s.unit }
    }

    fn pick(typical: f64, units: &[(f64, &'static str)]) -> Self {
        let typical = typical.abs();
        let &(factor, unit) = units.iter().find(|(f, _)| typical >= *f).unwrap_or(&units[units.len() - 1]);
        Scale { factor: 1.0 / factor, unit }
    }

    /// `value` in this unit, 4 significant digits at most.
    pub fn format(&self, value: f64) -> String {
        let v = value * self.factor;
        let digits = if v.abs() >= 100.0 {
            1
        } else if v.abs() >= 10.0 {
            2
        } else {
            3
        };
        format!("{v:.digits$} {}", self.unit)
    }

    /// `point ± half-width` in this unit, or the point and "(1 sample)".
    pub fn estimate(&self, e: &Estimate) -> String {
        match e.half_width() {
            Some(h) => format!(
                "{} ± {}",
                self.format(e.point),
                self.format(h).trim_end_matches(self.unit).trim_end()
            ),
            None => format!("{} (1 sample)", self.format(e.point)),
        }
    }
}
