//! Flame graph stacks: one per span path, with its frames and its exclusive energy, as
//! `cargo joules flamegraph` draws them (with inferno) and as folded-stack tools read them.

use crate::compare::{Comparison, Verdict};
use crate::report::BenchReport;
use crate::stats::Estimate;

use super::table::energy;

/// Which energy domains a flame graph shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Domains {
    /// Every domain no other domain contains, summed (package and GPU; not package and its
    /// cores, which would count the cores twice).
    Top,
    /// One domain, by id (`package-0`, `cpu`, `gpu-0`).
    One(String),
}

/// A span path as a flame graph draws it.
#[derive(Clone, Debug, PartialEq)]
pub struct Stack {
    /// The span path.
    pub path: String,
    /// Its frames, outermost first: the span names along the path.
    pub frames: Vec<String>,
    /// Exclusive joules per iteration over the domains shown: the frame's own width.
    pub exclusive_j: Estimate,
    /// Inclusive joules per iteration over the domains shown.
    pub inclusive_j: Estimate,
    /// In a differential graph, the old exclusive joules as the graph is to colour them:
    /// equal to the new where the change is not significant, so that only significant
    /// changes are coloured.
    pub old_j: Option<f64>,
    /// In a differential graph, the change's verdict.
    pub verdict: Option<Verdict>,
    /// What the frame's tooltip says: the path, its joules with their interval, and where
    /// they came from.
    pub title: String,
}

/// Nanojoules per joule: folded stacks count whole units, and a span's exclusive energy is
/// often microjoules.
pub const NJ: f64 = 1e9;

/// The indexes of the domains a choice covers.
fn chosen(bench: &BenchReport, domains: &Domains) -> Result<Vec<usize>, String> {
    let ids: Vec<usize> = match domains {
        Domains::Top => (0..bench.domains.len()).filter(|&i| bench.domains[i].part_of.is_none()).collect(),
        Domains::One(id) => bench.domains.iter().position(|d| &d.domain == id).into_iter().collect(),
    };
    if ids.is_empty() {
        let known: Vec<&str> = bench.domains.iter().map(|d| d.domain.as_str()).collect();
        return Err(match domains {
            Domains::One(id) => {
                format!("bench `{}` has no domain `{id}` (it has: {})", bench.name, known.join(", "))
            }
            Domains::Top => format!("bench `{}` measured no energy domain", bench.name),
        });
    }
    Ok(ids)
}

/// What the domains shown are and where their figures came from, for a graph's subtitle.
pub fn provenance(bench: &BenchReport, domains: &Domains) -> Result<String, String> {
    let ids = chosen(bench, domains)?;
    let parts: Vec<String> = ids
        .iter()
        .map(|&i| format!("{}: {}", bench.domains[i].domain, bench.domains[i].provenance))
        .collect();
    Ok(parts.join("; "))
}

/// Energy per iteration outside every span in the domains shown: a flame graph of span paths
/// does not draw it, so it says how much that is.
pub fn unattributed(bench: &BenchReport, domains: &Domains) -> Result<Estimate, String> {
    let ids = chosen(bench, domains)?;
    let parts: Vec<&Estimate> = ids.iter().map(|&i| &bench.domains[i].unattributed_j).collect();
    Estimate::sum(&parts).ok_or_else(|| "no domain".to_owned())
}

fn title(path: &str, exclusive: &Estimate, inclusive: &Estimate, provenance: &str) -> String {
    format!(
        "{path} · {} exclusive, {} inclusive per iteration (± 95% interval) · {provenance}",
        energy(exclusive),
        energy(inclusive)
    )
}

/// Every span path of `bench` as a stack over `domains`.
pub fn stacks(bench: &BenchReport, domains: &Domains) -> Result<Vec<Stack>, String> {
    let ids = chosen(bench, domains)?;
    let provenance = provenance(bench, domains)?;
    bench
        .spans
        .iter()
        .map(|span| {
            let pick = |f: fn(&crate::report::SpanEnergy) -> &Estimate| -> Result<Estimate, String> {
                let parts: Vec<&Estimate> =
                    ids.iter().map(|&i| span.energy.get(i).map(f)).collect::<Option<_>>().ok_or_else(
                        || format!("span `{}` lacks a domain's figures: a corrupt report", span.path),
                    )?;
                Estimate::sum(&parts).ok_or_else(|| "no domain".to_owned())
            };
            let (exclusive_j, inclusive_j) = (pick(|e| &e.exclusive_j)?, pick(|e| &e.inclusive_j)?);
            let frames = span.path.split('/').map(str::to_owned).collect();
            Ok(Stack {
                path: span.path.clone(),
                frames,
                title: title(&span.path, &exclusive_j, &inclusive_j, &provenance),
                exclusive_j,
                inclusive_j,
                old_j: None,
                verdict: None,
            })
        })
        .collect()
}

/// `new`'s stacks in `domain`, each with the old exclusive joules and the verdict of `cmp`
/// (a comparison of `bench`, named as `cmp` names it, in that domain). A change that is not
/// significant keeps its old joules equal to the new, so only significant ones are coloured;
/// a path gone from the new report is not drawn (its width would be 0) and is returned in the
/// second list.
pub fn diff_stacks(
    new: &BenchReport,
    cmp: &Comparison,
    bench: &str,
    domain: &str,
) -> Result<(Vec<Stack>, Vec<String>), String> {
    if !cmp.changes.iter().any(|c| c.bench == bench && c.domain == domain && c.old_j.is_some()) {
        return Err(format!(
            "the old report has no figures for bench `{bench}` in domain `{domain}`: nothing to compare"
        ));
    }
    let mut out = stacks(new, &Domains::One(domain.to_owned()))?;
    for stack in &mut out {
        let change =
            cmp.changes.iter().find(|c| c.bench == bench && c.domain == domain && c.path == stack.path);
        let verdict = change.map_or(Verdict::Added, |c| c.verdict);
        let significant = matches!(verdict, Verdict::Regressed | Verdict::Improved);
        stack.old_j = Some(match change.and_then(|c| c.old_j) {
            Some(old) if significant => old,
            _ => stack.exclusive_j.point,
        });
        stack.verdict = Some(verdict);
        if let Some(c) = change
            && let Some(rel) = &c.change
        {
            stack.title = format!(
                "{} · change {:+.1}% [{:+.1}%, {:+.1}%]: {}",
                stack.title,
                100.0 * rel.point,
                100.0 * rel.lo,
                100.0 * rel.hi,
                super::table::verdict_name(verdict)
            );
        } else {
            stack.title = format!("{} · {}", stack.title, super::table::verdict_name(verdict));
        }
    }
    let removed = cmp
        .changes
        .iter()
        .filter(|c| c.bench == bench && c.domain == domain && c.verdict == Verdict::Removed)
        .map(|c| c.path.clone())
        .collect();
    Ok((out, removed))
}

/// A width in folded stacks: whole nanojoules, 0 for a negative or missing figure.
pub fn nanojoules(j: f64) -> u64 {
    if j.is_finite() && j > 0.0 { (j * NJ).round() as u64 } else { 0 }
}

/// A stack's frame names as folded lines hold them: a `;` (the frame separator) becomes a
/// comma, and a space a no-break space, since a line ends in space-separated counts (`block
/// 3` would read as a frame `block` and a count).
pub fn frame_names(stack: &Stack) -> Vec<String> {
    stack.frames.iter().map(|f| f.replace(';', ",").replace(' ', "\u{a0}")).collect()
}

/// `stacks` in the order of [`folded`]'s lines: frame by frame.
pub fn in_order(stacks: &[Stack]) -> Vec<&Stack> {
    let mut order: Vec<&Stack> = stacks.iter().collect();
    order.sort_by_cached_key(|s| frame_names(s));
    order
}

/// Folded-stack lines, `frame;frame;frame count` in nanojoules (a negative or missing
/// exclusive figure counts 0), or `... old new` for a differential graph. They are sorted
/// frame by frame, so that every path's lines are together (sorted as strings, `m;layer.0`
/// would fall between `m;layer` and `m;layer;x`: `.` sorts before `;`), and names are
/// written as [`frame_names`] gives them. A tool that sorts the lines again as strings may
/// split such a frame.
pub fn folded(stacks: &[Stack]) -> Vec<String> {
    let nj = nanojoules;
    in_order(stacks)
        .into_iter()
        .map(|s| {
            let frames = frame_names(s).join(";");
            match s.old_j {
                Some(old) => format!("{frames} {} {}", nj(old), nj(s.exclusive_j.point)),
                None => format!("{frames} {}", nj(s.exclusive_j.point)),
            }
        })
        .collect()
}
