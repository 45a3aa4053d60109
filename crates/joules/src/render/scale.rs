//! Units for people: one unit per figure, picked from its size.

use crate::stats::Estimate;

/// A unit chosen for a column from its typical value, criterion-style.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale {
    factor: f64,
    unit: &'static str,
}

impl Scale {
    /// The energy unit (GJ .. nJ) that shows `typical` joules with 1 to 3 integer digits.
    pub fn energy(typical: f64) -> Self {
        Self::pick(
            typical,
            &[(1e9, "GJ"), (1e6, "MJ"), (1e3, "kJ"), (1.0, "J"), (1e-3, "mJ"), (1e-6, "µJ"), (1e-9, "nJ")],
        )
    }

    /// The time unit (s .. ns) for `typical` nanoseconds.
    pub fn time(typical_ns: f64) -> Self {
        let s = Self::pick(typical_ns * 1e-9, &[(1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")]);
        Scale { factor: s.factor * 1e-9, unit: s.unit }
    }

    /// The unit (Tops/J .. ops/J) for `typical` operations per joule.
    pub fn ops_per_joule(typical: f64) -> Self {
        Self::pick(
            typical,
            &[(1e12, "Tops/J"), (1e9, "Gops/J"), (1e6, "Mops/J"), (1e3, "kops/J"), (1.0, "ops/J")],
        )
    }

    /// The watt-hour unit (MWh .. nWh) for `typical` watt-hours.
    pub fn watt_hours(typical: f64) -> Self {
        Self::pick(
            typical,
            &[(1e6, "MWh"), (1e3, "kWh"), (1.0, "Wh"), (1e-3, "mWh"), (1e-6, "µWh"), (1e-9, "nWh")],
        )
    }

    /// The power unit (kW .. nW) for `typical` watts.
    pub fn watts(typical: f64) -> Self {
        Self::pick(typical, &[(1e3, "kW"), (1.0, "W"), (1e-3, "mW"), (1e-6, "µW"), (1e-9, "nW")])
    }

    /// The mass unit (t .. ng) for `typical` grams (of CO2e).
    pub fn grams(typical: f64) -> Self {
        Self::pick(typical, &[(1e6, "t"), (1e3, "kg"), (1.0, "g"), (1e-3, "mg"), (1e-6, "µg"), (1e-9, "ng")])
    }

    /// The unit (T .. none) for a count of `typical` operations.
    pub fn ops(typical: f64) -> Self {
        Self::pick(typical, &[(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, "")])
    }

    /// A rate's point and its interval, which need not be symmetric (a rate per joule is the
    /// inverse of joules): `point (lo-hi)`, `point (≥ lo)` where the upper end is unbounded.
    pub fn interval(&self, e: &Estimate) -> String {
        self.bounds(e.point, e.lo, e.hi)
    }

    /// [`interval`](Self::interval) of a point and its bounds.
    pub fn bounds(&self, point: f64, lo: Option<f64>, hi: Option<f64>) -> String {
        let bare = |v: f64| self.format(v).trim_end_matches(self.unit).trim_end().to_owned();
        match (lo, hi) {
            (Some(lo), Some(hi)) => format!("{} ({}–{})", self.format(point), bare(lo), bare(hi)),
            (Some(lo), None) => format!("{} (≥ {})", self.format(point), bare(lo)),
            _ => format!("{} (1 sample)", self.format(point)),
        }
    }

    fn pick(typical: f64, units: &[(f64, &'static str)]) -> Self {
        let typical = typical.abs();
        let &(factor, unit) = units.iter().find(|(f, _)| typical >= *f).unwrap_or(&units[units.len() - 1]);
        Scale { factor: 1.0 / factor, unit }
    }

    /// What a value is multiplied by to be in this unit.
    pub fn factor(&self) -> f64 {
        self.factor
    }

    /// The unit's symbol.
    pub fn unit(&self) -> &'static str {
        self.unit
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
