//! Comparing two reports: is a change real, and is it a regression?
//!
//! The rule is criterion's: a change counts only when it is statistically significant
//! AND its whole 95% interval lies beyond the noise threshold: above `+noise` a regression,
//! below `-noise` an improvement. A significant change whose interval reaches into the band is
//! *within noise*; one that is not significant is *no change* (how large a change could have
//! hidden there is each figure's *detectable* change). [`verdict`] is the one place that rule
//! lives; tables, Markdown and exit codes all call it.
//!
//! What a change is tested against depends on what the reports hold:
//! - *Between runs* (`cargo joules bench --runs N`): the runs' figures, by Welch's test; where
//!   one side has a single run, it is taken to vary as the other side's runs do. On real
//!   hardware most variation is between runs (thermal state, turbo, neighbours), so this is
//!   the honest test for a gate.
//! - *Within one run* (one run on each side): the samples, by Welch's test, or, for figures
//!   from the regression estimator, both sides' standard errors (their samples, all scaled
//!   from one fit, do not show it). A time-share estimate's systematic uncertainty (see
//!   [`Estimate::systematic`]) widens the interval on both sides. Variation between runs is
//!   not in these intervals, and the comparison says so.
//!
//! Many figures are tested at once, so p-values are adjusted by Holm's method over every
//! figure compared: the chance that an unchanged program fails the gate anywhere stays at
//! the significance level. Reports from different machines or sources are refused unless
//! allowed.

use serde::{Deserialize, Serialize};

use crate::report::{BenchReport, Report};
use crate::stats::{Estimate, RelativeChange, against_runs, welch, z_change};

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
    /// Significant, but the interval reaches into the noise threshold.
    WithinNoise,
    /// Not significant.
    NoChange,
    /// Only in the new report.
    Added,
    /// Only in the old report.
    Removed,
    /// Too few samples to tell.
    Unknown,
}

/// The rule, applied to one relative change and its p-value (adjusted for the figures
/// tested with it).
pub fn verdict(change: &RelativeChange, p: f64, cfg: &CompareConfig) -> Verdict {
    if p.is_nan() || p >= cfg.significance {
        Verdict::NoChange
    } else if change.lo > cfg.noise {
        Verdict::Regressed
    } else if change.hi < -cfg.noise {
        Verdict::Improved
    } else {
        Verdict::WithinNoise
    }
}

impl Verdict {
    /// The verdict in words, as tables print it.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Regressed => "regressed",
            Verdict::Improved => "improved",
            Verdict::WithinNoise => "within noise",
            Verdict::NoChange => "no change",
            Verdict::Added => "new",
            Verdict::Removed => "removed",
            Verdict::Unknown => "too few samples",
        }
    }
}

/// What a change was tested against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Basis {
    /// The spread between process runs (at least one side had several).
    BetweenRuns,
    /// The spread within one run per side (or the regression's standard errors).
    WithinRun,
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
    /// The p-value adjusted by Holm's method over every figure compared (the verdict's).
    #[serde(default)]
    pub p_adjusted: Option<f64>,
    /// The smallest relative change this figure would show as a regression four times in
    /// five (80% power), given its uncertainty, the noise threshold and the adjusted level.
    #[serde(default)]
    pub detectable: Option<f64>,
    /// Process runs behind the old and the new figure.
    #[serde(default)]
    pub runs: (usize, usize),
    /// What the change was tested against.
    #[serde(default = "within_run")]
    pub basis: Basis,
    /// What it amounts to.
    pub verdict: Verdict,
    /// Operations declared in the span per iteration before (its own; for `(total)`, every
    /// span's), where any were declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_ops: Option<f64>,
    /// The same after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_ops: Option<f64>,
    /// The systematic allowance added to each side of the interval (relative).
    #[serde(skip)]
    widened: f64,
}

impl Change {
    /// The relative change in declared operations, where both sides declared some.
    pub fn ops_change(&self) -> Option<f64> {
        match (self.old_ops, self.new_ops) {
            (Some(o), Some(n)) if o > 0.0 => Some(n / o - 1.0),
            _ => None,
        }
    }

    /// The relative change in joules per relative change in operations (0.5: the joules fell
    /// half as much as the operations), where both moved.
    pub fn joules_per_ops(&self) -> Option<f64> {
        let ops = self.ops_change().filter(|o| o.abs() > 1e-9)?;
        Some(self.change.as_ref()?.point / ops)
    }
}

fn within_run() -> Basis {
    Basis::WithinRun
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
    /// Figures tested together (the Holm family).
    #[serde(default)]
    pub tested: usize,
    /// What the benchmarks said of themselves (e.g. a model variant's accuracy), old first:
    /// the quality side of what a change saved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
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

    /// True if every tested figure had one run on each side: intervals then hold no
    /// variation between runs.
    pub fn single_runs(&self) -> bool {
        let mut tested = self.changes.iter().filter(|c| c.change.is_some()).peekable();
        tested.peek().is_some() && tested.all(|c| c.basis == Basis::WithinRun)
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
            let old_f = before.iter().find(|f| same(f, &figure));
            let mut c = change(&nb.name, old_f.map(|f| f.2), Some(figure.2), &figure.0, &figure.1);
            (c.old_ops, c.new_ops) = (old_f.and_then(|f| f.3), figure.3);
            changes.push(c);
        }
    }
    for ob in &old.benches {
        let after = in_bench(&new.benches, &ob.name);
        for figure in figures(ob).into_iter().filter(|f| !after.iter().any(|a| same(a, f))) {
            let mut c = change(&ob.name, Some(figure.2), None, &figure.0, &figure.1);
            c.old_ops = figure.3;
            changes.push(c);
        }
    }
    let tested = adjust(&mut changes, cfg);
    Ok(Comparison {
        noise: cfg.noise,
        significance: cfg.significance,
        mismatches,
        changes,
        tested,
        notes: Vec::new(),
    })
}

/// Why two benchmarks of one report cannot be compared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VariantError {
    /// No benchmark has that name.
    #[error("no benchmark `{name}` in the report (it has: {})", .known.join(", "))]
    NotFound {
        /// The name asked for.
        name: String,
        /// The report's benchmarks.
        known: Vec<String>,
    },
    /// Several benchmarks end with that name.
    #[error("`{name}` names several benchmarks ({}): give the whole name", .matches.join(", "))]
    Ambiguous {
        /// The name asked for.
        name: String,
        /// The benchmarks it could be.
        matches: Vec<String>,
    },
}

/// The bench of `report` named `name`: its whole name, or its last part (`pruned` for
/// `mnist/pruned`) where only one bench ends so.
pub fn find_bench<'a>(report: &'a Report, name: &str) -> Result<&'a BenchReport, VariantError> {
    let all: Vec<String> = report.benches.iter().map(|b| b.name.clone()).collect();
    if let Some(b) = report.benches.iter().find(|b| b.name == name) {
        return Ok(b);
    }
    let hits: Vec<&BenchReport> =
        report.benches.iter().filter(|b| b.name.rsplit('/').next() == Some(name)).collect();
    match hits.as_slice() {
        [b] => Ok(b),
        [] => Err(VariantError::NotFound { name: name.to_owned(), known: all }),
        _ => Err(VariantError::Ambiguous {
            name: name.to_owned(),
            matches: hits.iter().map(|b| b.name.clone()).collect(),
        }),
    }
}

/// The bench name a [`variants`] comparison gives its figures: `old → new`.
pub fn variants_label(old: &BenchReport, new: &BenchReport) -> String {
    format!("{} → {}", old.name, new.name)
}

/// Two benchmarks of one report compared as old and new (a model and its pruned variant,
/// say): each span path against the same path, with their declared operations, and each
/// bench's notes. A name matches a bench's whole name, or its last part (`pruned` for
/// `mnist/pruned`).
pub fn variants(
    report: &Report,
    old: &str,
    new: &str,
    cfg: &CompareConfig,
) -> Result<Comparison, VariantError> {
    let (ob, nb) = (find_bench(report, old)?, find_bench(report, new)?);
    let label = variants_label(ob, nb);
    let side = |b: &BenchReport| {
        let mut r = report.clone();
        r.benches = vec![BenchReport { name: label.clone(), ..b.clone() }];
        r
    };
    let mut cmp = compare(&side(ob), &side(nb), &CompareConfig { allow_mismatch: true, ..cfg.clone() })
        .expect("one report matches itself");
    cmp.notes = ob
        .notes
        .iter()
        .map(|n| format!("{}: {n}", ob.name))
        .chain(nb.notes.iter().map(|n| format!("{}: {n}", nb.name)))
        .collect();
    Ok(cmp)
}

/// Holm's step-down adjustment over every tested figure, then each verdict and detectable
/// change at the adjusted level. Returns the number of figures tested.
fn adjust(changes: &mut [Change], cfg: &CompareConfig) -> usize {
    let mut tested: Vec<usize> = (0..changes.len()).filter(|&i| changes[i].change.is_some()).collect();
    let m = tested.len();
    let p = |c: &Change| c.change.as_ref().map_or(1.0, |r| if r.p_value.is_nan() { 1.0 } else { r.p_value });
    tested.sort_by(|&a, &b| p(&changes[a]).total_cmp(&p(&changes[b])));
    let mut running_max: f64 = 0.0;
    for (rank, &i) in tested.iter().enumerate() {
        running_max = running_max.max(((m - rank) as f64 * p(&changes[i])).min(1.0));
        changes[i].p_adjusted = Some(running_max);
    }
    for c in changes.iter_mut() {
        if let (Some(r), Some(pa)) = (&c.change, c.p_adjusted) {
            c.verdict = verdict(r, pa, cfg);
            // A single change among m figures meets the strictest step, the level over m.
            c.detectable = Some(r.detectable(cfg.noise, cfg.significance / m.max(1) as f64) + c.widened);
        }
    }
    m
}

/// (path, domain, estimate).
/// (path, domain, estimate, declared operations per iteration).
type Figure<'a> = (String, String, &'a Estimate, Option<f64>);

/// The figures of the bench called `name`, none if there is no such bench.
fn in_bench<'a>(benches: &'a [BenchReport], name: &str) -> Vec<Figure<'a>> {
    benches.iter().find(|b| b.name == name).map(figures).unwrap_or_default()
}

/// Each domain's total, then each path's exclusive energy.
fn figures(b: &BenchReport) -> Vec<Figure<'_>> {
    let declared: Vec<f64> =
        b.spans.iter().filter_map(|s| s.ops.as_ref().map(|o| o.exclusive.point)).collect();
    let total_ops = (!declared.is_empty()).then(|| declared.iter().sum());
    let mut out: Vec<_> =
        b.domains.iter().map(|d| ("(total)".to_owned(), d.domain.clone(), &d.total_j, total_ops)).collect();
    for s in &b.spans {
        for e in &s.energy {
            out.push((
                s.path.clone(),
                e.domain.clone(),
                &e.exclusive_j,
                s.ops.as_ref().map(|o| o.exclusive.point),
            ));
        }
    }
    out
}

fn change(bench: &str, old: Option<&Estimate>, new: Option<&Estimate>, path: &str, domain: &str) -> Change {
    let runs = (old.map_or(0, Estimate::run_count), new.map_or(0, Estimate::run_count));
    let (rel, basis, widened) = match (old, new) {
        (Some(o), Some(n)) => match relative_change(o, n) {
            Some((r, basis, widened)) => (Some(r), basis, widened),
            // Untestable: the basis it would have had.
            None if o.runs.len() >= 2 || n.runs.len() >= 2 => (None, Basis::BetweenRuns, 0.0),
            None => (None, Basis::WithinRun, 0.0),
        },
        _ => (None, Basis::WithinRun, 0.0),
    };
    let verdict = match (old, new, &rel) {
        (None, Some(_), _) => Verdict::Added,
        (Some(_), None, _) => Verdict::Removed,
        // Settled with the other figures' p-values (see `adjust`).
        (_, _, Some(_)) => Verdict::NoChange,
        _ => Verdict::Unknown,
    };
    Change {
        bench: bench.to_owned(),
        path: path.to_owned(),
        domain: domain.to_owned(),
        old_j: old.map(|e| e.point),
        new_j: new.map(|e| e.point),
        change: rel,
        p_adjusted: None,
        detectable: None,
        runs,
        basis,
        verdict,
        old_ops: None,
        new_ops: None,
        widened,
    }
}

/// The change from `old` to `new` as the gate judges it: between runs where either figure
/// kept several runs' values, else within the run (a z-test where a model error is known,
/// Welch's test on the samples otherwise, the interval widened by both sides' systematic
/// error). Returns the change, its basis, and the width the systematic error added on each
/// side; None where the figures cannot be tested (one sample, a zero old figure).
pub fn relative_change(old: &Estimate, new: &Estimate) -> Option<(RelativeChange, Basis, f64)> {
    if old.runs.len() >= 2 && new.runs.len() >= 2 {
        return welch(&old.runs, &new.runs).map(|r| (r, Basis::BetweenRuns, 0.0));
    }
    if old.runs.len() >= 2 {
        return against_runs(&old.runs, new.point, true).map(|r| (r, Basis::BetweenRuns, 0.0));
    }
    if new.runs.len() >= 2 {
        return against_runs(&new.runs, old.point, false).map(|r| (r, Basis::BetweenRuns, 0.0));
    }
    let r = if old.model_stderr.is_some() || new.model_stderr.is_some() {
        z_change(old, new)
    } else {
        welch(&old.samples, &new.samples)
    }?;
    let (r, by) = widen(r, old, new);
    Some((r, Basis::WithinRun, by))
}

/// Widens a change's interval by both sides' systematic error (time-share's placement of
/// energy at span edges, which can differ between the two runs); returns it and the width
/// added on each side.
fn widen(mut r: RelativeChange, old: &Estimate, new: &Estimate) -> (RelativeChange, f64) {
    let sys = (old.systematic.unwrap_or(0.0) + new.systematic.unwrap_or(0.0))
        / old.point.abs().max(f64::MIN_POSITIVE);
    r.lo -= sys;
    r.hi += sys;
    (r, sys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(point: f64, lo: f64, hi: f64, p_value: f64) -> RelativeChange {
        RelativeChange { point, lo, hi, p_value, stderr: (hi - lo) / 3.92, dof: f64::INFINITY }
    }

    fn v(r: RelativeChange, cfg: &CompareConfig) -> Verdict {
        verdict(&r, r.p_value, cfg)
    }

    #[test]
    fn the_rule_needs_significance_and_the_whole_interval_beyond_noise() {
        let cfg = CompareConfig::default();
        assert_eq!(v(rel(0.10, 0.05, 0.15, 0.001), &cfg), Verdict::Regressed);
        assert_eq!(v(rel(-0.10, -0.15, -0.05, 0.001), &cfg), Verdict::Improved);
        assert_eq!(
            v(rel(0.10, 0.01, 0.19, 0.001), &cfg),
            Verdict::WithinNoise,
            "interval reaches into noise"
        );
        assert_eq!(v(rel(0.10, 0.05, 0.15, 0.2), &cfg), Verdict::NoChange, "not significant");
        assert_eq!(v(rel(0.015, 0.012, 0.018, 0.0), &cfg), Verdict::WithinNoise, "below threshold");
        assert_eq!(verdict(&rel(0.10, 0.05, 0.15, 0.001), f64::NAN, &cfg), Verdict::NoChange);
    }

    fn est(points: &[f64]) -> Estimate {
        let runs: Vec<Estimate> =
            points.iter().map(|&p| Estimate::from_samples(vec![p * 0.999, p * 1.001])).collect();
        Estimate::from_runs(&runs.iter().collect::<Vec<_>>())
    }

    fn changes(ps: &[f64]) -> Vec<Change> {
        ps.iter()
            .map(|&p| {
                let mut c = change("b", Some(&est(&[1.0, 1.01])), Some(&est(&[1.2, 1.21])), "x", "d");
                c.change.as_mut().unwrap().p_value = p;
                c
            })
            .collect()
    }

    #[test]
    fn holm_adjusts_step_down_and_keeps_order() {
        let mut cs = changes(&[0.01, 0.04, 0.03, 0.005]);
        let m = adjust(&mut cs, &CompareConfig::default());
        assert_eq!(m, 4);
        let adj: Vec<f64> = cs.iter().map(|c| c.p_adjusted.unwrap()).collect();
        // Sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, max(0.06, 0.04*1) = 0.06.
        let want = [0.03, 0.06, 0.06, 0.02];
        for (a, w) in adj.iter().zip(want) {
            assert!((a - w).abs() < 1e-12, "{adj:?}");
        }
        // Significant alone (0.03 < 0.05), not once adjusted.
        assert_eq!(cs[2].verdict, Verdict::NoChange);
        assert_eq!(cs[3].verdict, Verdict::Regressed);
    }

    #[test]
    fn runs_are_compared_by_their_spread_and_say_so() {
        let (o, n) = (est(&[1.0, 1.02, 0.98, 1.01, 0.99]), est(&[1.03, 1.05, 1.01, 1.04, 1.02]));
        let c = change("b", Some(&o), Some(&n), "x", "d");
        assert_eq!((c.basis, c.runs), (Basis::BetweenRuns, (5, 5)));
        let r = c.change.unwrap();
        // The runs' means differ by 3%; their spread (sd 1.6%) makes that a wide interval.
        assert!((r.point - 0.03).abs() < 1e-9 && r.lo < 0.02 && r.hi > 0.04, "{r:?}");
        // One new run against five: the spread is borrowed, with 4 degrees of freedom.
        let one = Estimate::from_samples(vec![1.0299, 1.0301]);
        let c = change("b", Some(&o), Some(&one), "x", "d");
        let r = c.change.unwrap();
        assert_eq!((c.basis, c.runs, r.dof), (Basis::BetweenRuns, (5, 1), 4.0));
        let sd = Estimate::from_samples(o.runs.clone()).sd().unwrap();
        assert!((r.stderr - sd * (1.0f64 / 5.0 + 1.0).sqrt()).abs() < 1e-12, "{r:?}");
        // One run each: within the run, and the comparison says so.
        let c = change("b", Some(&Estimate::from_samples(vec![1.0, 1.01])), Some(&one), "x", "d");
        assert_eq!((c.basis, c.runs), (Basis::WithinRun, (1, 1)));
    }
}
