//! Comparing two reports: is a change real, and is it a regression?
//!
//! The rule is criterion's: a change counts only when it is statistically significant
//! (Welch's t-test, p below the significance level) AND its whole 95% interval lies beyond the
//! noise threshold: above `+noise` a regression, below `-noise` an improvement. Anything else
//! is no change. Figures from the regression estimator carry its standard error, which their
//! samples (all scaled from one fit) do not show; they are tested against both sides'
//! standard errors instead of by Welch's test on the samples (they carry no systematic
//! allowance: the regression places no energy by assumption). An estimate's systematic uncertainty (see [`Estimate::systematic`]) widens
//! the interval on both sides. [`verdict`] is the one place that rule lives; tables, Markdown and exit codes
//! all call it. Reports from different machines or sources are refused unless allowed.

use serde::{Deserialize, Serialize};

use crate::report::{BenchReport, Report};
use crate::stats::{Estimate, RelativeChange, welch, z_change};

/// Thresholds of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct CompareConfig {
    /// Relative changes inside +/- this are noise (default 0.02).
    pub noise: f64,
    /// p-values below this are significant (default 0.05).
    pub significance: f64,
    /// Compare reports whose fingerprints differ (the mismatch is still reported).
    pub allow_mismatch: bool,
}

impl Default for CompareConfig {
    fn default() -> Self {
        CompareConfig { noise: 0.02, significance: 0.05, allow_mismatch: false }
    }
}

/// What a change amounts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Significantly costlier, beyond the noise threshold.
    Regressed,
    /// Significantly cheaper, beyond the noise threshold.
    Improved,
    /// Within noise, or not significant.
    NoChange,
    /// Only in the new report.
    Added,
    /// Only in the old report.
    Removed,
    /// Too few samples to tell.
    Unknown,
}

/// The rule, applied to one relative change.
pub fn verdict(change: &RelativeChange, cfg: &CompareConfig) -> Verdict {
    if change.p_value >= cfg.significance {
        Verdict::NoChange
    } else if change.lo > cfg.noise {
        Verdict::Regressed
    } else if change.hi < -cfg.noise {
        Verdict::Improved
    } else {
        Verdict::NoChange
    }
}

/// One figure compared.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The benchmark.
    pub bench: String,
    /// The span path, or `(total)` for the domain's whole energy.
    pub path: String,
    /// The energy domain.
    pub domain: String,
    /// Mean joules per iteration before.
    pub old_j: Option<f64>,
    /// Mean joules per iteration after.
    pub new_j: Option<f64>,
    /// The relative change, its interval and p-value, where both sides have samples.
    pub change: Option<RelativeChange>,
    /// What it amounts to.
    pub verdict: Verdict,
}

/// A whole comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Noise threshold used.
    pub noise: f64,
    /// Significance level used.
    pub significance: f64,
    /// How the two reports' fingerprints differ (compared anyway only if allowed).
    pub mismatches: Vec<String>,
    /// Every figure: each domain's total, and each span path's exclusive energy.
    pub changes: Vec<Change>,
}

impl Comparison {
    /// The regressions.
    pub fn regressions(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.verdict == Verdict::Regressed)
    }

    /// True if any figure regressed.
    pub fn regressed(&self) -> bool {
        self.regressions().next().is_some()
    }
}

/// Why two reports cannot be compared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompareError {
    /// Different machines or sources.
    #[error("reports are not comparable: {}; pass --allow-mismatch to compare anyway", .0.join("; "))]
    Incomparable(Vec<String>),
}

/// How `new`'s fingerprint differs from `old`'s: machine, kernel and energy sources.
pub fn mismatches(old: &Report, new: &Report) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |what: &str, a: String, b: String| {
        if a != b {
            out.push(format!("{what} differs ({a} vs {b})"));
        }
    };
    check("CPU model", old.host.cpu_model.clone(), new.host.cpu_model.clone());
    check("logical CPUs", old.host.logical_cpus.to_string(), new.host.logical_cpus.to_string());
    check("kernel", old.host.kernel.clone(), new.host.kernel.clone());
    let sources = |r: &Report| r.sources.iter().map(|s| s.provenance.clone()).collect::<Vec<_>>().join(" + ");
    check("energy sources", sources(old), sources(new));
    let domains = |r: &Report| {
        let mut d: Vec<String> =
            r.sources.iter().flat_map(|s| s.domains.iter().map(|d| d.id.clone())).collect();
        d.sort();
        d.join(",")
    };
    check("energy domains", domains(old), domains(new));
    // A domain that stopped being read mid-run has short figures: compared, it would read
    // as an improvement (or, as the baseline, hide a regression).
    for (which, r) in [("old", old), ("new", new)] {
        for b in &r.benches {
            for d in b.domains.iter().filter(|d| d.ended.is_some()) {
                out.push(format!(
                    "{} stopped early in the {which} report ({}: {})",
                    d.domain,
                    b.name,
                    d.ended.as_deref().unwrap_or_default()
                ));
            }
        }
    }
    out
}

/// Compares every bench, domain total and span path of `new` with `old`.
pub fn compare(old: &Report, new: &Report, cfg: &CompareConfig) -> Result<Comparison, CompareError> {
    let mismatches = mismatches(old, new);
    if !mismatches.is_empty() && !cfg.allow_mismatch {
        return Err(CompareError::Incomparable(mismatches));
    }
    let mut changes = Vec::new();
    let same = |a: &Figure<'_>, b: &Figure<'_>| a.0 == b.0 && a.1 == b.1;
    for nb in &new.benches {
        let before = in_bench(&old.benches, &nb.name);
        for figure in figures(nb) {
            let old_e = before.iter().find(|f| same(f, &figure)).map(|f| f.2);
            changes.push(change(&nb.name, old_e, Some(figure.2), &figure.0, &figure.1, cfg));
        }
    }
    for ob in &old.benches {
        let after = in_bench(&new.benches, &ob.name);
        for figure in figures(ob).into_iter().filter(|f| !after.iter().any(|a| same(a, f))) {
            changes.push(change(&ob.name, Some(figure.2), None, &figure.0, &figure.1, cfg));
        }
    }
    Ok(Comparison { noise: cfg.noise, significance: cfg.significance, mismatches, changes })
}

/// (path, domain, estimate).
type Figure<'a> = (String, String, &'a Estimate);

/// The figures of the bench called `name`, none if there is no such bench.
fn in_bench<'a>(benches: &'a [BenchReport], name: &str) -> Vec<Figure<'a>> {
    benches.iter().find(|b| b.name == name).map(figures).unwrap_or_default()
}

/// Each domain's total, then each path's exclusive energy.
fn figures(b: &BenchReport) -> Vec<Figure<'_>> {
    let mut out: Vec<_> =
        b.domains.iter().map(|d| ("(total)".to_owned(), d.domain.clone(), &d.total_j)).collect();
    for s in &b.spans {
        for e in &s.energy {
            out.push((s.path.clone(), e.domain.clone(), &e.exclusive_j));
        }
    }
    out
}

fn change(
    bench: &str,
    old: Option<&Estimate>,
    new: Option<&Estimate>,
    path: &str,
    domain: &str,
    cfg: &CompareConfig,
) -> Change {
    let rel = match (old, new) {
        (Some(o), Some(n)) if o.model_stderr.is_some() || n.model_stderr.is_some() => {
            z_change(o, n).map(|r| widen(r, o, n))
        }
        (Some(o), Some(n)) => welch(&o.samples, &n.samples).map(|r| widen(r, o, n)),
        _ => None,
    };
    let verdict = match (old, new, &rel) {
        (None, Some(_), _) => Verdict::Added,
        (Some(_), None, _) => Verdict::Removed,
        (_, _, Some(r)) => verdict(r, cfg),
        _ => Verdict::Unknown,
    };
    Change {
        bench: bench.to_owned(),
        path: path.to_owned(),
        domain: domain.to_owned(),
        old_j: old.map(|e| e.point),
        new_j: new.map(|e| e.point),
        change: rel,
        verdict,
    }
}

/// Widens a change's interval by both sides' systematic error (time-share's placement of
/// energy at span edges, which can differ between the two runs).
fn widen(mut r: RelativeChange, old: &Estimate, new: &Estimate) -> RelativeChange {
    let sys = (old.systematic.unwrap_or(0.0) + new.systematic.unwrap_or(0.0))
        / old.point.abs().max(f64::MIN_POSITIVE);
    r.lo -= sys;
    r.hi += sys;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(point: f64, lo: f64, hi: f64, p_value: f64) -> RelativeChange {
        RelativeChange { point, lo, hi, p_value }
    }

    #[test]
    fn the_rule_needs_significance_and_the_whole_interval_beyond_noise() {
        let cfg = CompareConfig::default();
        assert_eq!(verdict(&rel(0.10, 0.05, 0.15, 0.001), &cfg), Verdict::Regressed);
        assert_eq!(verdict(&rel(-0.10, -0.15, -0.05, 0.001), &cfg), Verdict::Improved);
        assert_eq!(
            verdict(&rel(0.10, 0.01, 0.19, 0.001), &cfg),
            Verdict::NoChange,
            "interval reaches into noise"
        );
        assert_eq!(verdict(&rel(0.10, 0.05, 0.15, 0.2), &cfg), Verdict::NoChange, "not significant");
        assert_eq!(verdict(&rel(0.015, 0.012, 0.018, 0.0), &cfg), Verdict::NoChange, "below threshold");
    }
}
