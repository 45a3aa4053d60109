//! From a recording and its sample windows to a [`BenchReport`]: attribution per sample,
//! then per-iteration estimates over samples.

use crate::attribute::{self, Attribution, Choice, Method, PathId, SpanTree, Window};
use crate::profiler::Recording;
use crate::report::{
    BenchReport, DomainReport, Flag, Report, SampleInfo, SpanEnergy, SpanOps, SpanReport, SpanSite,
};
use crate::spanlog::SpanLog;
use crate::stats::Estimate;
use crate::timeline::{Series, Timeline};

/// One sample of a benchmark: a stretch of the profile and the iterations run in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleWindow {
    /// When.
    pub window: Window,
    /// How many iterations.
    pub iterations: u64,
}

/// Attributes each sample and estimates every figure per iteration.
///
/// Time-share figures are attributed per sample, and the spread between samples is their
/// uncertainty. Regression figures come from one fit per domain over every sample's
/// intervals: each sample's joules are those powers times its own times, and the figure's
/// standard error combines the samples' spread (how the time per iteration varied) with the
/// fit's.
pub fn summarize(
    name: &str,
    tl: &Timeline,
    tree: &SpanTree,
    log: &SpanLog,
    samples: &[SampleWindow],
    idle: Option<&[Estimate]>,
    mut warnings: Vec<String>,
) -> BenchReport {
    let windows: Vec<Window> = samples.iter().map(|s| s.window).collect();
    let parts = attribute::attribute(tl, tree, log, &windows);
    let iters = |i: usize| samples[i].iterations.max(1) as f64;
    let per_iter = |f: &dyn Fn(usize) -> f64| -> Estimate {
        Estimate::from_samples((0..samples.len()).map(|i| f(i) / iters(i)).collect())
    };
    // A figure with a model error (the regression's): the samples' spread (how the time per
    // iteration varied) and the model's standard error, the same in every sample since one
    // fit serves them all.
    let modelled = |f: &dyn Fn(usize) -> f64, se: &dyn Fn(usize) -> f64, dof: &dyn Fn(usize) -> f64| {
        let model_se =
            (0..samples.len()).map(|i| se(i) / iters(i)).sum::<f64>() / samples.len().max(1) as f64;
        if model_se <= 0.0 {
            per_iter(f)
        } else if samples.len() == 1 {
            Estimate::from_model(f(0) / iters(0), model_se, dof(0))
        } else {
            Estimate::from_samples_and_model((0..samples.len()).map(|i| f(i) / iters(i)).collect(), model_se)
        }
    };
    let domains: Vec<DomainReport> = tl
        .domains
        .iter()
        .enumerate()
        .map(|(d, td)| {
            let quality = td.series.stamp_quality(Series::precise_limit(td.domain.update_period));
            DomainReport {
                domain: td.domain.id.clone(),
                kind: td.domain.kind,
                part_of: td.domain.part_of.clone(),
                source: td.source,
                provenance: td.source.label(td.modelled),
                method: methods_used(&parts, d),
                step_uncertainty_ns: quality.map(|q| q.0.0),
                precise_readings: quality.map(|q| q.1),
                resolution_j: td.domain.resolution.0,
                update_period_ns: td.domain.update_period.0,
                update_period_measured: td.domain.update_period_measured,
                total_j: per_iter(&|i| parts[i].domains[d].total.0),
                unattributed_j: per_iter(&|i| parts[i].domains[d].unattributed.0),
                idle_w: idle.map(|w| w[d].clone()),
                // Idle over the time this domain was read: less than the window where it
                // ended early.
                above_idle_j: idle.map(|w| {
                    per_iter(&|i| {
                        let share = &parts[i].domains[d];
                        share.total.0 - w[d].point * share.covered.as_secs_f64()
                    })
                }),
                ended: td.ended.as_ref().map(|(t, why)| format!("at {} ms: {why}", t.0 / 1_000_000)),
            }
        })
        .collect();
    for td in &tl.domains {
        if let Some((t, why)) = &td.ended {
            warnings.push(format!(
                "{} stopped being read at {} ms ({why}): its figures are partial, covering only the time before",
                td.domain.id,
                t.0 / 1_000_000
            ));
        }
    }
    for (i, (s, a)) in samples.iter().zip(&parts).enumerate() {
        match a.window {
            None => warnings.push(format!("sample {i} has no energy readings")),
            Some(w) if w != s.window => warnings.push(format!(
                "sample {i} is only partly covered by energy readings ({} of {} us)",
                (w.end - w.start).0 / 1000,
                (s.window.end - s.window.start).0 / 1000
            )),
            Some(_) => {}
        }
    }

    // Per sample, each path's operations with its descendants' (children follow parents).
    let inclusive_ops: Vec<Vec<u64>> = parts
        .iter()
        .map(|a| {
            let mut ops: Vec<u64> =
                (0..tree.paths.len()).map(|p| a.time.get(p).map_or(0, |t| t.ops)).collect();
            for p in (0..tree.paths.len()).rev() {
                if let Some(q) = tree.paths[p].parent {
                    ops[q as usize] = ops[q as usize].saturating_add(ops[p]);
                }
            }
            ops
        })
        .collect();
    let mut spans = Vec::new();
    for p in dfs_order(tree) {
        let pi = p as usize;
        if parts.iter().all(|a| a.time.get(pi).is_none_or(|t| t.calls == 0 && t.inclusive.0 == 0)) {
            continue;
        }
        let node = &tree.paths[pi];
        let calls = per_iter(&|i| parts[i].time[pi].calls as f64);
        let exclusive_ns = per_iter(&|i| parts[i].time[pi].exclusive.0 as f64);
        let mut flags = Vec::new();
        if tree.held_dropped[pi] {
            flags.push(Flag::SpansDropped);
        }
        if tree.not_left[pi] {
            flags.push(Flag::NotLeft);
        }
        if tree.holds_forgotten[pi] {
            flags.push(Flag::ForgottenInside);
        }
        if calls.point > 0.0 {
            let call_ns = (exclusive_ns.point / calls.point) as u64;
            for td in &tl.domains {
                let period = td.reading_period().0;
                if period > 0 && call_ns < period {
                    flags.push(Flag::BelowResolution {
                        domain: td.domain.id.clone(),
                        call_ns,
                        update_period_ns: period,
                    });
                }
            }
        }
        for (d, td) in tl.domains.iter().enumerate() {
            let mut with: Vec<String> = Vec::new();
            for a in &parts {
                let Some(share) = a.domains.get(d) else { continue };
                let Some(g) = share.merged_with.get(pi).copied().flatten() else { continue };
                for (q, other) in share.merged_with.iter().enumerate() {
                    if q != pi && (*other == Some(g) || (g != PathId::MAX && q == g as usize)) {
                        with.push(tree.paths[q].name.clone());
                    }
                }
                if g == PathId::MAX {
                    with.push("(outside spans)".into());
                }
            }
            with.sort();
            with.dedup();
            if !with.is_empty() {
                flags.push(Flag::Merged { domain: td.domain.id.clone(), with });
            }
        }
        let at = log.site(node.site);
        let site = Some(SpanSite { module: at.module.clone(), file: at.file.clone(), line: at.line });
        let ops = inclusive_ops.iter().any(|o| o[pi] > 0).then(|| {
            let exclusive = per_iter(&|i| parts[i].time[pi].ops as f64);
            let total_calls: u64 = parts.iter().map(|a| a.time[pi].calls).sum();
            let total_ops: u64 = parts.iter().map(|a| a.time[pi].ops).sum();
            SpanOps {
                exclusive,
                inclusive: per_iter(&|i| inclusive_ops[i][pi] as f64),
                per_call: if total_calls > 0 { total_ops as f64 / total_calls as f64 } else { 0.0 },
            }
        });
        spans.push(SpanReport {
            path: node.name.clone(),
            depth: node.depth,
            inclusive_ns: per_iter(&|i| parts[i].time[pi].inclusive.0 as f64),
            exclusive_ns,
            calls,
            energy: tl
                .domains
                .iter()
                .enumerate()
                .map(|(d, td)| {
                    let share = |i: usize| &parts[i].domains[d];
                    let regression =
                        (0..parts.len()).any(|i| share(i).method.get(pi) == Some(&Method::Regression));
                    let dof = |i: usize| share(i).fit.as_ref().map_or(1.0, |f| f.dof);
                    let mut exclusive_j =
                        modelled(&|i| share(i).exclusive[pi].0, &|i| share(i).exclusive_se[pi], &dof);
                    if !regression {
                        // Energy in reading intervals the span shared is placed by assuming
                        // even power; with neighbours within +/-50% of its power, a quarter
                        // of it is a typical misplacement (see attribute::DomainShare::edge).
                        // The regression has no such bias to allow for: its error is in the
                        // samples (or its standard error).
                        exclusive_j.systematic = Some(per_iter(&|i| share(i).edge[pi].0).point / 4.0);
                    }
                    let inclusive_j =
                        modelled(&|i| share(i).inclusive[pi].0, &|i| share(i).inclusive_se[pi], &dof);
                    SpanEnergy {
                        domain: td.domain.id.clone(),
                        exclusive_j,
                        ops_per_j: ops.as_ref().and_then(|o| inclusive_j.per_unit(o.inclusive.point)),
                        inclusive_j,
                        // Idle once per unit of wall time: over the span's share of it (two
                        // threads in one span share each instant), not its thread-time.
                        exclusive_above_idle_j: idle.map(|w| {
                            per_iter(&|i| {
                                let secs = share(i).wall_s.get(pi).copied().unwrap_or(0.0);
                                share(i).exclusive[pi].0 - w[d].point * secs
                            })
                        }),
                        method: if regression { Method::Regression } else { Method::TimeShare }
                            .name()
                            .to_owned(),
                    }
                })
                .collect(),
            flags,
            site,
            ops,
        });
    }
    BenchReport {
        name: name.to_owned(),
        samples: samples
            .iter()
            .map(|s| SampleInfo { iterations: s.iterations, duration_ns: (s.window.end - s.window.start).0 })
            .collect(),
        domains,
        spans,
        warnings,
        notes: Vec::new(),
        inferences_per_iteration: 1,
        training: None,
    }
}

/// "regression (5 paths), time-share (1 path)": the methods used in domain `d`.
fn methods_used(parts: &[Attribution], d: usize) -> String {
    let mut count = [0usize; 2];
    let n = parts.iter().map(|a| a.time.len()).max().unwrap_or(0);
    for p in 0..n {
        let seen = parts.iter().any(|a| a.time.get(p).is_some_and(|t| t.exclusive.0 > 0));
        if !seen {
            continue;
        }
        let reg =
            parts.iter().any(|a| a.domains.get(d).and_then(|s| s.method.get(p)) == Some(&Method::Regression));
        count[usize::from(!reg)] += 1;
    }
    let plural = |n: usize| if n == 1 { "path" } else { "paths" };
    let flat = parts.iter().any(|a| a.domains.get(d).is_some_and(|s| s.flat));
    match count {
        [0, _] if flat => {
            "time-share (one power for every path: by the source's model, or as the regression finds)"
                .to_owned()
        }
        [0, _] => "time-share".to_owned(),
        [r, 0] => format!("regression ({r} {})", plural(r)),
        [r, t] => format!("regression ({r} {}), time-share ({t} {})", plural(r), plural(t)),
    }
}

/// Each domain's power in `windows` (taken while nothing ran), one sample per window.
pub fn idle_power(tl: &Timeline, tree: &SpanTree, log: &SpanLog, windows: &[Window]) -> Vec<Estimate> {
    let parts = attribute::attribute_with(tl, tree, log, windows, Choice::Only(Method::TimeShare));
    (0..tl.domains.len())
        .map(|d| {
            Estimate::from_samples(
                parts
                    .iter()
                    .filter_map(|a| {
                        let w = a.window?;
                        Some(a.domains.get(d)?.total.0 / (w.end - w.start).as_secs_f64())
                    })
                    .collect(),
            )
        })
        .collect()
}

/// Paths depth-first, children in the order first seen.
fn dfs_order(tree: &SpanTree) -> Vec<PathId> {
    let n = tree.paths.len();
    let mut children: Vec<Vec<PathId>> = vec![Vec::new(); n];
    let mut roots = Vec::new();
    for (i, node) in tree.paths.iter().enumerate() {
        match node.parent {
            Some(p) => children[p as usize].push(i as PathId),
            None => roots.push(i as PathId),
        }
    }
    let mut order = Vec::with_capacity(n);
    let mut stack: Vec<PathId> = roots.into_iter().rev().collect();
    while let Some(p) = stack.pop() {
        order.push(p);
        stack.extend(children[p as usize].iter().rev());
    }
    order
}

/// Warnings every report of `rec` should carry.
pub(crate) fn recording_warnings(rec: &Recording, tree: &SpanTree) -> Vec<String> {
    let mut w = Vec::new();
    if let Some(why) = &rec.failure {
        // The timeline and spans are empty: every figure below is zero, not a measurement.
        w.push(format!(
            "the profile failed ({why}): nothing was recorded, so these figures are empty, not zero joules"
        ));
    }
    let dropped = rec.spans.dropped();
    if dropped > 0 {
        let by_thread: Vec<String> = rec
            .spans
            .threads
            .iter()
            .filter(|t| t.dropped > 0)
            .map(|t| {
                format!(
                    "{} on thread {}",
                    t.dropped,
                    t.name.clone().unwrap_or_else(|| format!("#{}", t.index))
                )
            })
            .collect();
        let warm = rec.spans.dropped_in_warm_up();
        let warm = if warm > 0 {
            format!(", {warm} of them before the samples (set-up and warm-up)")
        } else {
            String::new()
        };
        w.push(format!(
            "{dropped} span edges were dropped, whole spans at a time ({}{warm}): the thread's span ring \
             (65536 edges by default, between two looks of the sampler) or the log (16M edges; \
             a benchmark run gives each bench an even share of the room left, and keeps no \
             warm-up) was full. A dropped span's time and energy show in the span around it (flagged \
             `spans dropped`: {}){}; what was recorded nests as it ran. Operations declared there \
             (`ops = ...`, `joules::add_ops`) may be lost with the edges, so ops/J of those spans \
             reads low. Fewer, coarser spans in \
             tight loops (one per layer, not per element) avoid it; so does dropping every guard \
             (guards forgotten in a loop inside a long span pile up, and each span entered there \
             needs room for all their exits)",
            by_thread.join(", "),
            {
                let held: Vec<&str> = (0..tree.paths.len())
                    .filter(|&p| tree.held_dropped[p])
                    .map(|p| tree.paths[p].name.as_str())
                    .collect();
                if held.is_empty() { "none".to_owned() } else { held.join(", ") }
            },
            if tree.dropped_outside { ", or as unattributed where no span was open" } else { "" }
        ));
    }
    let not_left: Vec<&str> =
        (0..tree.paths.len()).filter(|&p| tree.not_left[p]).map(|p| tree.paths[p].name.as_str()).collect();
    if !not_left.is_empty() {
        w.push(format!(
            "{} not left by its own guard (flagged `not left`): ended by an enclosing span's \
             exit (its guard dropped after the enclosing one's), by the bench harness at the \
             end of the iteration that entered it (its guard kept past the iteration, and \
             dropped later), or still open when the profile stopped (a guard still alive, or \
             forgotten outside every span); spans its thread entered meanwhile nested under \
             it. Let guards drop in the order they were made, within their iteration, before \
             the profile stops",
            not_left.join(", ")
        ));
    }
    if !tree.forgotten.is_empty() {
        let what: Vec<String> = tree
            .forgotten
            .iter()
            .map(|(&(inside, site), n)| {
                let name = &rec.spans.site(site).name;
                match inside {
                    Some(p) => format!("{n} of `{name}` inside {}", tree.paths[p as usize].name),
                    None => format!("{n} of `{name}` outside any span"),
                }
            })
            .collect();
        w.push(format!(
            "spans whose guard was never dropped (forgotten with mem::forget, or leaked) were \
             left out, so that later spans nest where they ran: {}. Their time and energy are \
             in the enclosing span's figures (flagged `a forgotten guard inside`), or \
             unattributed outside spans. Let every guard drop",
            what.join(", ")
        ));
    }
    if tree.unmatched_exits > 0 {
        w.push(format!(
            "{} span exits matched no open span: their guards were dropped after their spans had ended (by an enclosing span's guard dropped first, or by the bench harness at the end of their iteration); they tell only that those spans were not forgotten",
            tree.unmatched_exits
        ));
    }
    w
}

impl Recording {
    /// The start of the recording (its first reading).
    pub fn start(&self) -> crate::units::Nanos {
        self.timeline.first_poll.unwrap_or_default()
    }

    /// The end of the recording (its last reading).
    pub fn end(&self) -> crate::units::Nanos {
        self.timeline.last_poll
    }

    /// A report of the whole recording as one sample of one iteration. With one sample
    /// there is no confidence interval; benchmarks ([`crate::bench`]) take many.
    pub fn report(&self, name: &str) -> Report {
        self.report_within(name, Window { start: self.start(), end: self.end() }, Vec::new())
    }

    /// As [`report`](Self::report), of `window` only (a command's run within its profile),
    /// with `warnings` added to the recording's own.
    pub fn report_within(&self, name: &str, window: Window, warnings: Vec<String>) -> Report {
        let tree = SpanTree::build(&self.spans, window.end);
        let mut all = recording_warnings(self, &tree);
        all.extend(warnings);
        let bench = summarize(
            name,
            &self.timeline,
            &tree,
            &self.spans,
            &[SampleWindow { window, iterations: 1 }],
            None,
            all,
        );
        Report::new(self.sources.clone(), self.unavailable.clone(), vec![bench])
    }
}
