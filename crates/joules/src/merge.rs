//! Reports merged: the bench targets of one `cargo joules bench` into one report, and its
//! process runs (`--runs N`) into one whose figures keep every run's value.

use crate::report::{BenchReport, DomainReport, Flag, Report, SpanEnergy, SpanOps, SpanReport};
use crate::stats::Estimate;

/// One report of several bench targets' reports, run on this machine one after another:
/// every target's benches, and every source and unavailable source any of them saw. A target
/// that saw another machine (it cannot, run by one command; a report merged by hand could)
/// says so in its benches' warnings.
pub fn targets(parts: Vec<Report>) -> Option<Report> {
    let mut parts = parts.into_iter();
    let mut out = parts.next()?;
    for part in parts {
        for s in part.sources {
            if !out.sources.contains(&s) {
                out.sources.push(s);
            }
        }
        for u in part.unavailable {
            if !out.unavailable.contains(&u) {
                out.unavailable.push(u);
            }
        }
        let other_host = (part.host != out.host).then(|| {
            format!(
                "ran on another machine than the report's first bench ({}, {} CPUs, kernel {})",
                part.host.cpu_model, part.host.logical_cpus, part.host.kernel
            )
        });
        for mut b in part.benches {
            b.warnings.extend(other_host.clone());
            out.benches.push(b);
        }
        out.created_unix_s = out.created_unix_s.max(part.created_unix_s);
    }
    Some(out)
}

/// Why runs could not be merged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError {
    /// No runs.
    #[error("no runs to merge")]
    Empty,
    /// The runs did not measure the same things.
    #[error("run {run} differs from run 1: {what}")]
    Differs {
        /// The run, from 1.
        run: usize,
        /// How.
        what: String,
    },
}

/// One report of the same benchmarks run in several fresh processes. Every figure is
/// [`Estimate::from_runs`] of the runs' figures: their mean, an interval from their spread,
/// and each run's value. Benches, domains and sources must match across runs; a span path
/// seen in only some runs is kept, from those runs, with a warning.
pub fn runs(reports: Vec<Report>) -> Result<Report, MergeError> {
    let n = reports.len();
    let first = reports.first().ok_or(MergeError::Empty)?;
    if n == 1 {
        return Ok(reports.into_iter().next().expect("one"));
    }
    for (i, r) in reports.iter().enumerate().skip(1) {
        let differs = |what: String| MergeError::Differs { run: i + 1, what };
        if r.host != first.host {
            return Err(differs("another machine".into()));
        }
        let provenance = |r: &Report| r.sources.iter().map(|s| s.provenance.clone()).collect::<Vec<_>>();
        if provenance(r) != provenance(first) {
            return Err(differs(format!(
                "energy sources {} vs {}",
                provenance(r).join(" + "),
                provenance(first).join(" + ")
            )));
        }
        let names = |r: &Report| r.benches.iter().map(|b| b.name.clone()).collect::<Vec<_>>();
        if names(r) != names(first) {
            return Err(differs(format!("benches {:?} vs {:?}", names(r), names(first))));
        }
    }
    let mut out = first.clone();
    out.runs = reports.iter().map(|r| r.runs).sum();
    out.created_unix_s = reports.iter().map(|r| r.created_unix_s).max().unwrap_or(out.created_unix_s);
    for u in reports.iter().flat_map(|r| &r.unavailable) {
        if !out.unavailable.contains(u) {
            out.unavailable.push(u.clone());
        }
    }
    for (bi, bench) in out.benches.iter_mut().enumerate() {
        let all: Vec<&BenchReport> = reports.iter().map(|r| &r.benches[bi]).collect();
        *bench = merge_bench(&all).map_err(|(run, what)| MergeError::Differs { run, what })?;
    }
    Ok(out)
}

/// Every estimate of `pick` over the runs where it is present.
fn over<'a, T: 'a>(
    items: &[Option<&'a T>],
    pick: impl Fn(&'a T) -> Option<&'a Estimate>,
) -> Option<Estimate> {
    let es: Vec<&Estimate> = items.iter().flatten().filter_map(|&t| pick(t)).collect();
    (!es.is_empty()).then(|| Estimate::from_runs(&es))
}

fn merge_bench(all: &[&BenchReport]) -> Result<BenchReport, (usize, String)> {
    let first = all[0];
    let mut out = first.clone();
    out.samples = all.iter().flat_map(|b| b.samples.iter().cloned()).collect();
    for (i, b) in all.iter().enumerate().skip(1) {
        let ids = |b: &BenchReport| b.domains.iter().map(|d| d.domain.clone()).collect::<Vec<_>>();
        if ids(b) != ids(first) {
            return Err((i + 1, format!("bench `{}` has domains {:?} vs {:?}", b.name, ids(b), ids(first))));
        }
    }
    out.domains = (0..first.domains.len()).map(|di| merge_domain(all, di)).collect();
    // Paths in order of first appearance (a parent always precedes its children in each run,
    // so it does here).
    let mut paths: Vec<&str> = Vec::new();
    for b in all {
        for s in &b.spans {
            if !paths.contains(&s.path.as_str()) {
                paths.push(&s.path);
            }
        }
    }
    out.spans = paths.iter().map(|p| merge_span(all, p, &first.domains)).collect();
    let mut warnings: Vec<String> = Vec::new();
    for (i, b) in all.iter().enumerate() {
        for w in &b.warnings {
            let w = if all.iter().all(|o| o.warnings.contains(w)) {
                w.clone()
            } else {
                format!("run {}: {w}", i + 1)
            };
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
    }
    for p in &paths {
        let seen = all.iter().filter(|b| b.spans.iter().any(|s| s.path == *p)).count();
        if seen < all.len() {
            warnings.push(format!(
                "span `{p}` ran in {seen} of {} runs: its figures come from those runs only",
                all.len()
            ));
        }
    }
    for s in &out.spans {
        for e in &s.energy {
            let methods: Vec<&str> = all
                .iter()
                .filter_map(|b| b.spans.iter().find(|o| o.path == s.path))
                .filter_map(|o| o.energy.iter().find(|x| x.domain == e.domain))
                .map(|x| x.method.as_str())
                .collect();
            if methods.iter().any(|m| *m != methods[0]) {
                warnings.push(format!(
                    "span `{}` on {}: attributed by {} in some runs, {} in others (the first is named)",
                    s.path,
                    e.domain,
                    methods[0],
                    methods.iter().find(|m| **m != methods[0]).copied().unwrap_or_default()
                ));
            }
        }
    }
    for (di, d) in first.domains.iter().enumerate() {
        let methods: Vec<&str> = all.iter().map(|b| b.domains[di].method.as_str()).collect();
        if methods.iter().any(|m| *m != methods[0]) {
            warnings.push(format!(
                "{}: attributed differently between runs ({})",
                d.domain,
                methods.join("; ")
            ));
        }
    }
    out.warnings = warnings;
    if let Some(t) = first.training.clone() {
        out.set_training(t.energy_j, t.source);
    }
    Ok(out)
}

fn merge_domain(all: &[&BenchReport], di: usize) -> DomainReport {
    let ds: Vec<Option<&DomainReport>> = all.iter().map(|b| b.domains.get(di)).collect();
    let mut out = all[0].domains[di].clone();
    let req = |pick: fn(&DomainReport) -> &Estimate| over(&ds, |d| Some(pick(d))).expect("every run has it");
    out.total_j = req(|d| &d.total_j);
    out.unattributed_j = req(|d| &d.unattributed_j);
    out.idle_w = over(&ds, |d| d.idle_w.as_ref());
    out.above_idle_j = over(&ds, |d| d.above_idle_j.as_ref());
    out.step_uncertainty_ns = ds.iter().flatten().filter_map(|d| d.step_uncertainty_ns).max();
    out.precise_readings = ds.iter().flatten().filter_map(|d| d.precise_readings).reduce(f64::min);
    let ended: Vec<String> = ds
        .iter()
        .enumerate()
        .filter_map(|(i, d)| d.and_then(|d| d.ended.as_ref()).map(|e| format!("run {}: {e}", i + 1)))
        .collect();
    out.ended = (!ended.is_empty()).then(|| ended.join("; "));
    out
}

fn merge_span(all: &[&BenchReport], path: &str, domains: &[DomainReport]) -> SpanReport {
    let ss: Vec<Option<&SpanReport>> = all.iter().map(|b| b.spans.iter().find(|s| s.path == path)).collect();
    let mut out = ss.iter().flatten().next().copied().expect("the path is in some run").clone();
    let req = |pick: fn(&SpanReport) -> &Estimate| over(&ss, |s| Some(pick(s))).expect("some run has it");
    out.calls = req(|s| &s.calls);
    out.exclusive_ns = req(|s| &s.exclusive_ns);
    out.inclusive_ns = req(|s| &s.inclusive_ns);
    // Runs whose span declared none count as none, so that the mean is over the same runs
    // as the joules'.
    let none = SpanOps {
        exclusive: Estimate::from_samples(vec![0.0]),
        inclusive: Estimate::from_samples(vec![0.0]),
        per_call: 0.0,
    };
    out.ops = ss.iter().flatten().any(|s| s.ops.is_some()).then(|| {
        let ops: Vec<Option<&SpanOps>> =
            ss.iter().map(|s| s.map(|s| s.ops.as_ref().unwrap_or(&none))).collect();
        let exclusive = over(&ops, |o| Some(&o.exclusive)).expect("some run has it");
        let inclusive = over(&ops, |o| Some(&o.inclusive)).expect("some run has it");
        let per_call = if out.calls.point > 0.0 { exclusive.point / out.calls.point } else { 0.0 };
        SpanOps { exclusive, inclusive, per_call }
    });
    let inclusive_ops = out.ops.as_ref().map(|o| o.inclusive.point);
    out.energy = domains
        .iter()
        .filter_map(|d| {
            let es: Vec<Option<&SpanEnergy>> =
                ss.iter().map(|s| s.and_then(|s| s.energy.iter().find(|e| e.domain == d.domain))).collect();
            let first = es.iter().flatten().next()?;
            let inclusive_j = over(&es, |e| Some(&e.inclusive_j))?;
            Some(SpanEnergy {
                domain: d.domain.clone(),
                exclusive_j: over(&es, |e| Some(&e.exclusive_j))?,
                ops_per_j: inclusive_ops.and_then(|ops| inclusive_j.per_unit(ops)),
                inclusive_j,
                exclusive_above_idle_j: over(&es, |e| e.exclusive_above_idle_j.as_ref()),
                method: first.method.clone(),
            })
        })
        .collect();
    // One of each kind per domain (a call's length differs a little from run to run).
    out.flags = Vec::new();
    for f in ss.iter().flatten().flat_map(|s| &s.flags) {
        if !out.flags.iter().any(|g| flag_key(g) == flag_key(f)) {
            out.flags.push(f.clone());
        }
    }
    out
}

fn flag_key(f: &Flag) -> (std::mem::Discriminant<Flag>, &str) {
    let domain = match f {
        Flag::BelowResolution { domain, .. } | Flag::Merged { domain, .. } => domain.as_str(),
        Flag::SpansDropped | Flag::NotLeft | Flag::ForgottenInside => "",
    };
    (std::mem::discriminant(f), domain)
}
