//! Reports and comparisons for people and machines: a terminal table, Markdown (for
//! `$GITHUB_STEP_SUMMARY`), JSON, the Bencher Metric Format and CSV, and the stacks of an
//! energy flame graph ([`folded`]). JSON is always in joules
//! and nanoseconds; people get a unit per figure.

mod bmf;
mod csv;
pub mod folded;
pub mod label;
mod markdown;
mod scale;
mod table;
mod window;

pub use scale::Scale;
pub use table::{bench_table, table};
pub use window::window_table;

use crate::compare::{Change, Comparison};
use crate::report::Report;

/// `text` safe in XML and HTML text and attribute values (the label's SVG, the HTML page).
pub fn escape_xml(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A table for a terminal.
    Table,
    /// GitHub-flavoured Markdown.
    Markdown,
    /// The report or comparison as JSON.
    Json,
    /// Bencher Metric Format (JSON), for bencher.dev.
    Bmf,
    /// Comma-separated values, one figure per row.
    Csv,
}

/// `report` in `format`.
pub fn report(report: &Report, format: Format) -> String {
    match format {
        Format::Table => table(report),
        Format::Markdown => markdown::report(report),
        Format::Json => serde_json::to_string_pretty(report).expect("reports serialize") + "\n",
        Format::Bmf => bmf::report(report),
        Format::Csv => csv::report(report),
    }
}

/// `cmp` in `format`. Bencher does its own comparison, so the BMF of a comparison is the new
/// report's figures. `color` applies to the table only.
pub fn comparison(cmp: &Comparison, new: &Report, format: Format, color: bool) -> String {
    match format {
        Format::Table => table::comparison(cmp, color),
        Format::Markdown => markdown::comparison(cmp),
        Format::Json => serde_json::to_string_pretty(cmp).expect("comparisons serialize") + "\n",
        Format::Bmf => bmf::report(new),
        Format::Csv => csv::comparison(cmp),
    }
}

/// `+10.1% [+9.5%, +10.7%]`, or `-` without samples on both sides.
fn change_text(c: &Change) -> String {
    match &c.change {
        Some(r) => format!("{:+.1}% [{:+.1}%, {:+.1}%]", r.point * 100.0, r.lo * 100.0, r.hi * 100.0),
        None => "-".to_owned(),
    }
}

/// `2 regressed, 1 improved, 1 within noise, 8 no change (...)`, and what the intervals hold.
fn summary_line(cmp: &Comparison) -> String {
    use crate::compare::Verdict;
    let count = |v: Verdict| cmp.changes.iter().filter(|c| c.verdict == v).count();
    let tested: Vec<&Change> = cmp.changes.iter().filter(|c| c.change.is_some()).collect();
    let (old, new) = tested.iter().fold((0, 0), |(o, n), c| (o.max(c.runs.0), n.max(c.runs.1)));
    let basis = if cmp.single_runs() {
        "one run on each side: the intervals hold the variation within that run only, not \
         between runs (thermal state, turbo, neighbours); gate with `--runs N` for that"
            .to_owned()
    } else {
        format!("tested against the variation between runs ({old} old, {new} new)")
    };
    format!(
        "{} regressed, {} improved, {} within noise, {} no change (a change counts when p < {}, \
         Holm-adjusted over {} figures, and its whole 95% interval is beyond ±{}%; {basis})",
        count(Verdict::Regressed),
        count(Verdict::Improved),
        count(Verdict::WithinNoise),
        count(Verdict::NoChange),
        cmp.significance,
        cmp.tested,
        cmp.noise * 100.0
    )
}

/// Per figure whose span declared operations on both sides: span, domain, the joules'
/// change, the operations before and after, their change, and the ratio of the two changes.
fn ops_rows(cmp: &Comparison) -> Vec<[String; 6]> {
    let count = |v: f64| Scale::ops(v).format(v).trim_end().to_owned();
    cmp.changes
        .iter()
        .filter_map(|c| {
            let ops = c.ops_change()?;
            Some([
                c.path.clone(),
                c.domain.clone(),
                change_text(c),
                format!("{} → {}", count(c.old_ops?), count(c.new_ops?)),
                format!("{:+.1}%", ops * 100.0),
                c.joules_per_ops().map_or_else(|| "-".to_owned(), |r| format!("{r:.2}")),
            ])
        })
        .collect()
}

/// What a table of [`ops_rows`] says, under it.
const OPS_LEGEND: &str = "J/ops: the joules' relative change per the operations' (1.00: energy fell as \
                          much as the operations; below 1: memory traffic and fixed costs ate part of \
                          the saving)";

/// The process runs behind a bench's figures.
fn run_count(bench: &crate::report::BenchReport) -> usize {
    bench.domains.first().map_or(1, |d| d.total_j.run_count())
}

/// `5 runs, ` where there were several.
fn runs_text(bench: &crate::report::BenchReport) -> String {
    match run_count(bench) {
        1 => String::new(),
        n => format!("{n} runs, "),
    }
}

/// `p (Holm)` as the tables show it.
fn p_text(c: &Change) -> String {
    match (&c.change, c.p_adjusted) {
        (Some(r), Some(pa)) => format!("{:.3} ({:.3})", r.p_value, pa),
        _ => "-".to_owned(),
    }
}

/// `±3.1%`: the smallest change the gate would flag for this figure (80% power).
fn detectable_text(c: &Change) -> String {
    c.detectable.map_or_else(
        || "-".to_owned(),
        |d| if d.is_finite() { format!("±{:.1}%", d * 100.0) } else { "-".to_owned() },
    )
}
