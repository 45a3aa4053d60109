//! Figures with their uncertainty.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// The confidence level of every interval joules reports.
pub const CONFIDENCE: f64 = 0.95;

/// A figure estimated from repeated samples: the mean, a Student-t confidence interval, and the
/// samples themselves (so reports can be compared later). The unit is in the field's name
/// (`exclusive_j`, `time_ns`, ...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The mean over samples.
    pub point: f64,
    /// Lower bound of the interval; `None` with fewer than two samples.
    pub lo: Option<f64>,
    /// Upper bound of the interval; `None` with fewer than two samples.
    pub hi: Option<f64>,
    /// Standard error of the mean; `None` with fewer than two samples.
    pub stderr: Option<f64>,
    /// The interval's confidence level.
    pub level: f64,
    /// One value per sample.
    pub samples: Vec<f64>,
}

impl Estimate {
    /// Mean and 95% confidence interval of `samples`.
    pub fn from_samples(samples: Vec<f64>) -> Self {
        let n = samples.len();
        let point = if n == 0 {
            0.0
        } else {
            samples.iter().sum::<f64>() / n as f64
        };
        let (lo, hi, stderr) = if n >= 2 {
            let var = samples.iter().map(|x| (x - point).powi(2)).sum::<f64>() / (n - 1) as f64;
            let se = (var / n as f64).sqrt();
            let t = StudentsT::new(0.0, 1.0, (n - 1) as f64)
                .map(|d| d.inverse_cdf(0.5 + CONFIDENCE / 2.0))
                .unwrap_or(f64::INFINITY);
            (Some(point - t * se), Some(point + t * se), Some(se))
        } else {
            (None, None, None)
        };
        Estimate {
            point,
            lo,
            hi,
            stderr,
            level: CONFIDENCE,
            samples,
        }
    }

    /// Half the interval's width, if there is one.
    pub fn half_width(&self) -> Option<f64> {
        Some((self.hi? - self.lo?) / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_matches_student_t() {
        // n = 4: the half-width is t(0.975, 3) = 3.182 standard errors
        let e = Estimate::from_samples(vec![1.0, 2.0, 3.0, 2.0]);
        assert!((e.point - 2.0).abs() < 1e-12);
        let se = e.stderr.unwrap();
        let half = e.half_width().unwrap();
        assert!((half / se - 3.182).abs() < 1e-3, "t quantile {}", half / se);
    }

    #[test]
    fn one_sample_has_no_interval() {
        let e = Estimate::from_samples(vec![5.0]);
        assert_eq!((e.point, e.lo, e.hi), (5.0, None, None));
    }
}
