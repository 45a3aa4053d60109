//! Reports and comparisons for people and machines: a terminal table, Markdown (for
//! `$GITHUB_STEP_SUMMARY`), JSON, the Bencher Metric Format and CSV. JSON is always in joules
//! and nanoseconds; people get a unit per figure.

mod bmf;
mod csv;
mod markdown;
mod scale;
mod table;

pub use scale::Scale;
pub use table::{bench_table, table};

use crate::compare::{Change, Comparison};
use crate::report::Report;

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

/// `2 regressed, 1 improved, 9 unchanged (noise ±2%, p < 0.05)`.
fn summary_line(cmp: &Comparison) -> String {
    use crate::compare::Verdict;
    let count = |v: Verdict| cmp.changes.iter().filter(|c| c.verdict == v).count();
    format!(
        "{} regressed, {} improved, {} unchanged (a change counts when p < {} and its whole 95% interval is beyond ±{}%)",
        count(Verdict::Regressed),
        count(Verdict::Improved),
        count(Verdict::NoChange),
        cmp.significance,
        cmp.noise * 100.0
    )
}
