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
    /// A bias the samples cannot show: it repeats within a run and may differ between runs
    /// (e.g. time-share's placement of energy at span edges). Comparisons widen their
    /// intervals by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systematic: Option<f64>,
    /// The part of `stderr` that comes from a model (the regression's standard error, the
    /// same in every sample), not from the spread of the samples. Comparisons of such
    /// figures test the difference against both sides' `stderr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_stderr: Option<f64>,
    /// Per process run (`cargo joules bench --runs N`), that run's figure, where there was
    /// more than one: `point` is then their mean and the interval is between runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<f64>,
}

impl Estimate {
    /// Mean and 95% confidence interval of `samples`.
    pub fn from_samples(samples: Vec<f64>) -> Self {
        let n = samples.len();
        let point = if n == 0 { 0.0 } else { samples.iter().sum::<f64>() / n as f64 };
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
            systematic: None,
            model_stderr: None,
            runs: Vec::new(),
        }
    }

    /// One figure over several process runs: the mean of the runs' figures, with a Student-t
    /// interval from their spread (on real hardware most variation is between runs: thermal
    /// state, turbo, neighbours), every run's samples, and each run's figure in `runs`. A
    /// time-share bias ([`Estimate::systematic`]) differs between runs and so is in that
    /// spread; its mean is kept for reference. With one run, that run's figure as it is.
    pub fn from_runs(parts: &[&Estimate]) -> Self {
        match parts {
            [] => Estimate::from_samples(Vec::new()),
            [one] => (*one).clone(),
            _ => {
                let points: Vec<f64> = parts.iter().map(|e| e.point).collect();
                let mut e = Estimate::from_samples(points.clone());
                e.samples = parts.iter().flat_map(|p| p.samples.iter().copied()).collect();
                let sys: Vec<f64> = parts.iter().filter_map(|p| p.systematic).collect();
                e.systematic = (!sys.is_empty()).then(|| sys.iter().sum::<f64>() / sys.len() as f64);
                e.runs = points;
                e
            }
        }
    }

    /// The number of process runs behind this figure (1 unless merged by [`Estimate::from_runs`]).
    pub fn run_count(&self) -> usize {
        self.runs.len().max(1)
    }

    /// Samples of a figure whose every sample also carries a model error `model_se` (the
    /// same in each, so it does not average out): the standard error combines the spread of
    /// the samples with the model's, and the interval uses Student's t over the samples.
    pub fn from_samples_and_model(samples: Vec<f64>, model_se: f64) -> Self {
        let n = samples.len();
        let mut e = Estimate::from_samples(samples);
        let spread = e.stderr.unwrap_or(0.0);
        let se = (spread * spread + model_se * model_se).sqrt();
        let t = StudentsT::new(0.0, 1.0, (n.max(2) - 1) as f64)
            .map(|d| d.inverse_cdf(0.5 + CONFIDENCE / 2.0))
            .unwrap_or(f64::INFINITY);
        let t = if n >= 2 { t } else { 1.96 };
        e.lo = Some(e.point - t * se);
        e.hi = Some(e.point + t * se);
        e.stderr = Some(se);
        e.model_stderr = Some(model_se);
        e
    }

    /// One sample whose standard error comes from a model (the regression), with `dof` degrees
    /// of freedom: a Student-t interval around `point`.
    pub fn from_model(point: f64, stderr: f64, dof: f64) -> Self {
        let t = StudentsT::new(0.0, 1.0, dof.max(1.0))
            .map(|d| d.inverse_cdf(0.5 + CONFIDENCE / 2.0))
            .unwrap_or(f64::INFINITY);
        Estimate {
            point,
            lo: Some(point - t * stderr),
            hi: Some(point + t * stderr),
            stderr: Some(stderr),
            level: CONFIDENCE,
            samples: vec![point],
            systematic: None,
            model_stderr: Some(stderr),
            runs: Vec::new(),
        }
    }

    /// `amount` (taken as known exactly, e.g. declared operations) per unit of this figure
    /// (e.g. joules): its interval is this one's, inverted and widened by this figure's
    /// `systematic` allowance where it has one. None when this figure is not above 0. The
    /// upper bound is None where this figure's interval reaches 0 (any rate above the lower
    /// bound is then possible). It keeps no per-sample values: the amount is a mean.
    pub fn per_unit(&self, amount: f64) -> Option<Estimate> {
        if !(amount > 0.0 && self.point > 0.0 && amount.is_finite()) {
            return None;
        }
        let bias = self.systematic.unwrap_or(0.0);
        let point = amount / self.point;
        let rel = |se: f64| point * se / self.point;
        Some(Estimate {
            point,
            lo: self.hi.map(|h| amount / (h + bias)),
            hi: self.lo.map(|l| l - bias).filter(|&l| l > 0.0).map(|l| amount / l),
            stderr: self.stderr.map(rel),
            level: self.level,
            samples: Vec::new(),
            systematic: None,
            model_stderr: self.model_stderr.map(rel),
            runs: Vec::new(),
        })
    }

    /// The sum of figures measured over the same samples (energy domains of one bench, or
    /// of one span path): per sample, or per run where they were merged from runs, so the
    /// interval is the sum's own. Where nothing pairs up, the points and the bounds add up
    /// (wider than the sum's own interval would be, never narrower). Biases the samples
    /// cannot show add up; model errors add in quadrature and widen the interval. None for no
    /// figures.
    pub fn sum(parts: &[&Estimate]) -> Option<Estimate> {
        fn runs(e: &Estimate) -> &[f64] {
            &e.runs
        }
        fn samples(e: &Estimate) -> &[f64] {
            &e.samples
        }
        let aligned = |pick: fn(&Estimate) -> &[f64]| {
            let n = pick(parts[0]).len();
            (n > 0 && parts.iter().all(|e| pick(e).len() == n)).then_some(n)
        };
        let sum_at = |pick: fn(&Estimate) -> &[f64], i: usize| parts.iter().map(|e| pick(e)[i]).sum::<f64>();
        let mut sum = match parts {
            [] => return None,
            [one] => return Some((*one).clone()),
            _ if aligned(runs).is_some() => {
                let n = aligned(runs).unwrap_or(0);
                let per_run: Vec<f64> = (0..n).map(|i| sum_at(runs, i)).collect();
                let mut e = Estimate::from_samples(per_run.clone());
                e.samples = Vec::new();
                e.runs = per_run;
                e
            }
            _ if parts.iter().all(|e| e.runs.is_empty()) && aligned(samples).is_some() => {
                let n = aligned(samples).unwrap_or(0);
                Estimate::from_samples((0..n).map(|i| sum_at(samples, i)).collect())
            }
            _ => {
                let mut e = Estimate::from_samples(Vec::new());
                e.point = parts.iter().map(|e| e.point).sum();
                e.lo = parts.iter().map(|e| e.lo).sum();
                e.hi = parts.iter().map(|e| e.hi).sum();
                e
            }
        };
        let sys: f64 = parts.iter().filter_map(|e| e.systematic).sum();
        sum.systematic = (sys > 0.0).then_some(sys);
        // The parts' model errors (the same in every sample, so the samples' spread does not
        // hold them) widen the sum's interval, in quadrature with its spread.
        let model: f64 = parts.iter().filter_map(|e| e.model_stderr).map(|s| s * s).sum::<f64>().sqrt();
        if model > 0.0 {
            let z = 1.96;
            let spread = sum.stderr.unwrap_or(0.0);
            let half = match sum.half_width() {
                Some(h) => (h * h + (z * model).powi(2)).sqrt(),
                None => z * model,
            };
            sum.stderr = Some((spread * spread + model * model).sqrt());
            sum.lo = Some(sum.point - half);
            sum.hi = Some(sum.point + half);
            sum.model_stderr = Some(model);
        }
        Some(sum)
    }

    /// This figure in other units: every value times `factor` (above 0).
    pub fn scaled(&self, factor: f64) -> Estimate {
        let by = |x: f64| x * factor;
        Estimate {
            point: by(self.point),
            lo: self.lo.map(by),
            hi: self.hi.map(by),
            stderr: self.stderr.map(by),
            level: self.level,
            samples: self.samples.iter().copied().map(by).collect(),
            systematic: self.systematic.map(by),
            model_stderr: self.model_stderr.map(by),
            runs: self.runs.iter().copied().map(by).collect(),
        }
    }

    /// Sample standard deviation, with at least two samples.
    pub fn sd(&self) -> Option<f64> {
        let n = self.samples.len();
        (n >= 2).then(|| {
            let var = self.samples.iter().map(|x| (x - self.point).powi(2)).sum::<f64>() / (n - 1) as f64;
            var.sqrt()
        })
    }

    /// Half the interval's width, if there is one.
    pub fn half_width(&self) -> Option<f64> {
        Some((self.hi? - self.lo?) / 2.0)
    }
}

/// The difference between two sets of samples, relative to the old mean, by Welch's t-test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RelativeChange {
    /// (new mean - old mean) / old mean.
    pub point: f64,
    /// Lower bound of its 95% interval.
    pub lo: f64,
    /// Upper bound of its 95% interval.
    pub hi: f64,
    /// Two-sided p-value of "the means are equal".
    pub p_value: f64,
    /// The standard error of `point`.
    #[serde(default)]
    pub stderr: f64,
    /// The degrees of freedom of its test (infinite for a z-test).
    #[serde(default = "infinite")]
    pub dof: f64,
}

fn infinite() -> f64 {
    f64::INFINITY
}

impl RelativeChange {
    /// The smallest relative change that a gate at `noise` and two-sided level `alpha` flags
    /// four times in five (80% power) with this figure's standard error: its whole 95%
    /// interval must clear the noise threshold, and its test the level.
    pub fn detectable(&self, noise: f64, alpha: f64) -> f64 {
        let q = |p: f64| {
            if self.dof.is_finite() {
                StudentsT::new(0.0, 1.0, self.dof.max(1.0)).map_or(f64::INFINITY, |d| d.inverse_cdf(p))
            } else {
                statrs::distribution::Normal::new(0.0, 1.0).map_or(f64::INFINITY, |d| d.inverse_cdf(p))
            }
        };
        let power = q(0.8);
        let beyond_noise = noise + (q(0.5 + CONFIDENCE / 2.0) + power) * self.stderr;
        let significant = (q(1.0 - alpha / 2.0) + power) * self.stderr;
        beyond_noise.max(significant)
    }
}

/// The change from `old` to `new` tested against their standard errors (a z-test), for
/// figures with a model error ([`Estimate::model_stderr`]), whose samples alone understate
/// their uncertainty. Needs both standard errors and a nonzero old mean.
pub fn z_change(old: &Estimate, new: &Estimate) -> Option<RelativeChange> {
    let (so, sn) = (old.stderr?, new.stderr?);
    if old.point == 0.0 {
        return None;
    }
    let diff = new.point - old.point;
    let se = (so * so + sn * sn).sqrt();
    let m1 = old.point;
    if se == 0.0 {
        return Some(no_spread(diff, m1, f64::INFINITY));
    }
    let normal = statrs::distribution::Normal::new(0.0, 1.0).ok()?;
    let p_value = 2.0 * (1.0 - normal.cdf((diff / se).abs()));
    let half = normal.inverse_cdf(0.5 + CONFIDENCE / 2.0) * se;
    Some(RelativeChange {
        point: diff / m1,
        lo: (diff - half) / m1,
        hi: (diff + half) / m1,
        p_value,
        stderr: se / m1.abs(),
        dof: f64::INFINITY,
    })
}

/// Welch's t-test of `new` against `old` (each needs two samples or more, and a nonzero old
/// mean). Intervals treat the old mean as exact when scaling to a relative change.
pub fn welch(old: &[f64], new: &[f64]) -> Option<RelativeChange> {
    let stats = |xs: &[f64]| {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
        (n, m, v)
    };
    if old.len() < 2 || new.len() < 2 {
        return None;
    }
    let (n1, m1, v1) = stats(old);
    let (n2, m2, v2) = stats(new);
    if m1 == 0.0 {
        return None;
    }
    let (a, b) = (v1 / n1, v2 / n2);
    let se = (a + b).sqrt();
    let diff = m2 - m1;
    if se == 0.0 {
        return Some(no_spread(diff, m1, n1 + n2 - 2.0));
    }
    let df = (a + b).powi(2) / (a * a / (n1 - 1.0) + b * b / (n2 - 1.0));
    t_change(diff, se, df, m1)
}

/// A change `diff` in a figure whose old mean is `m1` measured with no spread at all: exact,
/// and certain unless it is nothing.
fn no_spread(diff: f64, m1: f64, dof: f64) -> RelativeChange {
    let point = diff / m1;
    RelativeChange {
        point,
        lo: point,
        hi: point,
        p_value: if diff == 0.0 { 1.0 } else { 0.0 },
        stderr: 0.0,
        dof,
    }
}

/// A change `diff` in a figure whose old mean is `m1`, with standard error `se` and `dof`
/// degrees of freedom: Student's t.
fn t_change(diff: f64, se: f64, dof: f64, m1: f64) -> Option<RelativeChange> {
    let t_dist = StudentsT::new(0.0, 1.0, dof).ok()?;
    let p_value = 2.0 * (1.0 - t_dist.cdf((diff / se).abs()));
    let half = t_dist.inverse_cdf(0.5 + CONFIDENCE / 2.0) * se;
    Some(RelativeChange {
        point: diff / m1,
        lo: (diff - half) / m1,
        hi: (diff + half) / m1,
        p_value,
        stderr: se / m1.abs(),
        dof,
    })
}

/// Two figures over process runs, one side with a single run: that run's deviation from its
/// own mean is taken to vary as much as the other side's runs do (the same program on the
/// same machine), so the difference's variance is `s² (1/n + 1)` with `n - 1` degrees of
/// freedom, `s` the spread of the `n` runs.
pub fn against_runs(runs: &[f64], single: f64, single_is_new: bool) -> Option<RelativeChange> {
    let n = runs.len();
    if n < 2 {
        return None;
    }
    let nf = n as f64;
    let m = runs.iter().sum::<f64>() / nf;
    let var = runs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (nf - 1.0);
    let (m1, diff) = if single_is_new { (m, single - m) } else { (single, m - single) };
    if m1 == 0.0 {
        return None;
    }
    let se = (var * (1.0 / nf + 1.0)).sqrt();
    if se == 0.0 {
        return Some(no_spread(diff, m1, nf - 1.0));
    }
    t_change(diff, se, nf - 1.0, m1)
}

#[cfg(test)]
mod tests {

    #[test]
    fn sums_pair_samples_and_widen_by_model_errors() {
        let a = Estimate::from_samples(vec![1.0, 2.0, 3.0]);
        let b = Estimate::from_samples(vec![3.0, 2.0, 1.0]);
        // Paired by sample, the two spreads cancel: the sum is exactly 4 each time.
        let sum = Estimate::sum(&[&a, &b]).unwrap();
        assert_eq!(sum.point, 4.0);
        assert_eq!(sum.half_width(), Some(0.0));
        // A model error the samples cannot show widens the interval.
        let mut m = Estimate::from_samples(vec![1.0, 1.0, 1.0]);
        m.model_stderr = Some(0.5);
        let sum = Estimate::sum(&[&a, &b, &m]).unwrap();
        assert_eq!(sum.point, 5.0);
        assert!((sum.half_width().unwrap() - 1.96 * 0.5).abs() < 1e-12, "{sum:?}");
        // Nothing to pair: points and bounds add.
        let lone = Estimate::from_samples(vec![10.0, 12.0]);
        let sum = Estimate::sum(&[&a, &lone]).unwrap();
        assert_eq!(sum.point, 13.0);
        assert_eq!(sum.lo, Some(a.lo.unwrap() + lone.lo.unwrap()));
        assert!(Estimate::sum(&[]).is_none());
    }

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
    fn welch_finds_a_clear_shift_and_not_noise() {
        let old = [10.0, 10.2, 9.9, 10.1, 9.8, 10.0];
        let up: Vec<f64> = old.iter().map(|x| x * 1.1).collect();
        let c = welch(&old, &up).unwrap();
        assert!((c.point - 0.1).abs() < 1e-9 && c.p_value < 1e-6 && c.lo > 0.05, "{c:?}");
        let same = welch(&old, &[10.1, 9.9, 10.0, 10.2, 9.8, 10.0]).unwrap();
        assert!(same.p_value > 0.5 && same.lo < 0.0 && same.hi > 0.0, "{same:?}");
        assert!(welch(&[1.0], &[2.0, 3.0]).is_none());
    }

    #[test]
    fn one_sample_has_no_interval() {
        let e = Estimate::from_samples(vec![5.0]);
        assert_eq!((e.point, e.lo, e.hi), (5.0, None, None));
    }
}
