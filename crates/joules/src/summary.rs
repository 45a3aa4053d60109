//! From a recording and its sample windows to a [`BenchReport`]: attribution per sample,
//! then per-iteration estimates over samples.

use crate::attribute::{self, PathId, SpanTree, Window};
use crate::profiler::Recording;
use crate::report::{BenchReport, DomainReport, Flag, Report, SampleInfo, SpanEnergy, SpanReport};
use crate::stats::Estimate;
use crate::timeline::Timeline;

/// One sample of a benchmark: a stretch of the profile and the iterations run in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleWindow {
    /// When.
    pub window: Window,
    /// How many iterations.
    pub iterations: u64,
}

/// Attributes each sample and estimates every figure per iteration.
pub fn summarize(
    name: &str,
    tl: &Timeline,
    tree: &SpanTree,
    samples: &[SampleWindow],
    idle: Option<&[Estimate]>,
    mut warnings: Vec<String>,
) -> BenchReport {
    let parts: Vec<_> = samples.iter().map(|s| attribute::time_share(tl, tree, s.window)).collect();
    let per_iter = |f: &dyn Fn(usize) -> f64| -> Estimate {
        Estimate::from_samples(
            (0..samples.len()).map(|i| f(i) / samples[i].iterations.max(1) as f64).collect(),
        )
    };
    let domains: Vec<DomainReport> = tl
        .domains
        .iter()
        .enumerate()
        .map(|(d, td)| DomainReport {
            domain: td.domain.id.clone(),
            kind: td.domain.kind,
            part_of: td.domain.part_of.clone(),
            source: td.source,
            provenance: td.source.provenance().to_owned(),
            method: "time-share".into(),
            resolution_j: td.domain.resolution.0,
            update_period_ns: td.domain.update_period.0,
            update_period_measured: td.domain.update_period_measured,
            total_j: per_iter(&|i| parts[i].domains[d].total.0),
            unattributed_j: per_iter(&|i| parts[i].domains[d].unattributed.0),
            idle_w: idle.map(|w| w[d].clone()),
            above_idle_j: idle.map(|w| {
                per_iter(&|i| {
                    let secs = parts[i].window.map_or(0.0, |w| (w.end - w.start).as_secs_f64());
                    parts[i].domains[d].total.0 - w[d].point * secs
                })
            }),
            ended: td.ended.as_ref().map(|(t, why)| format!("at {} ms: {why}", t.0 / 1_000_000)),
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

    let mut spans = Vec::new();
    for p in dfs_order(tree) {
        let pi = p as usize;
        if parts.iter().all(|a| a.time[pi].calls == 0 && a.time[pi].inclusive.0 == 0) {
            continue;
        }
        let node = &tree.paths[pi];
        let calls = per_iter(&|i| parts[i].time[pi].calls as f64);
        let exclusive_ns = per_iter(&|i| parts[i].time[pi].exclusive.0 as f64);
        let mut flags = Vec::new();
        if calls.point > 0.0 {
            let call_ns = (exclusive_ns.point / calls.point) as u64;
            for td in &tl.domains {
                let period = td.domain.update_period.0;
                if period > 0 && call_ns < period {
                    flags.push(Flag::BelowResolution {
                        domain: td.domain.id.clone(),
                        call_ns,
                        update_period_ns: period,
                    });
                }
            }
        }
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
                .map(|(d, td)| SpanEnergy {
                    domain: td.domain.id.clone(),
                    exclusive_j: Estimate {
                        // Energy in reading intervals the span shared is placed by assuming
                        // even power; with neighbours within +/-50% of its power, a quarter of
                        // it is a typical misplacement (see attribute::DomainShare::edge).
                        systematic: Some(per_iter(&|i| parts[i].domains[d].edge[pi].0).point / 4.0),
                        ..per_iter(&|i| parts[i].domains[d].exclusive[pi].0)
                    },
                    inclusive_j: per_iter(&|i| parts[i].domains[d].inclusive[pi].0),
                    exclusive_above_idle_j: idle.map(|w| {
                        per_iter(&|i| {
                            let secs = parts[i].time[pi].exclusive.as_secs_f64();
                            parts[i].domains[d].exclusive[pi].0 - w[d].point * secs
                        })
                    }),
                })
                .collect(),
            flags,
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
    }
}

/// Each domain's power in `windows` (taken while nothing ran), one sample per window.
pub fn idle_power(tl: &Timeline, tree: &SpanTree, windows: &[Window]) -> Vec<Estimate> {
    let parts: Vec<_> = windows.iter().map(|w| attribute::time_share(tl, tree, *w)).collect();
    (0..tl.domains.len())
        .map(|d| {
            Estimate::from_samples(
                parts
                    .iter()
                    .filter_map(|a| {
                        let w = a.window?;
                        Some(a.domains[d].total.0 / (w.end - w.start).as_secs_f64())
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
    let dropped = rec.spans.dropped();
    if dropped > 0 {
        w.push(format!(
            "{dropped} span events were dropped (buffers full): spans in very tight loops; \
             their energy shows as their parent's or unattributed"
        ));
    }
    if tree.unmatched_exits > 0 {
        w.push(format!("{} span exits matched no open span", tree.unmatched_exits));
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
        let tree = SpanTree::build(&self.spans, self.end());
        let window = Window { start: self.start(), end: self.end() };
        let warnings = recording_warnings(self, &tree);
        let bench =
            summarize(name, &self.timeline, &tree, &[SampleWindow { window, iterations: 1 }], None, warnings);
        Report::new(self.sources.clone(), self.unavailable.clone(), vec![bench])
    }
}
