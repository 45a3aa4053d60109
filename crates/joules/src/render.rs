//! The terminal table of a report. Every energy column names its domain and where the figure
//! came from; every figure shows its 95% interval.

use std::fmt::Write;

use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets};

use crate::report::{BenchReport, Flag, Report};
use crate::stats::Estimate;

/// A unit chosen for a column from its typical value, criterion-style.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale {
    factor: f64,
    unit: &'static str,
}

impl Scale {
    /// The energy unit (kJ .. nJ) that shows `typical` joules with 1 to 3 integer digits.
    pub fn energy(typical: f64) -> Self {
        Self::pick(
            typical,
            &[
                (1e3, "kJ"),
                (1.0, "J"),
                (1e-3, "mJ"),
                (1e-6, "µJ"),
                (1e-9, "nJ"),
            ],
        )
    }

    /// The time unit (s .. ns) for `typical` nanoseconds.
    pub fn time(typical_ns: f64) -> Self {
        let s = Self::pick(
            typical_ns * 1e-9,
            &[(1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")],
        );
        Scale {
            factor: s.factor * 1e-9,
            unit: s.unit,
        }
    }

    fn pick(typical: f64, units: &[(f64, &'static str)]) -> Self {
        let typical = typical.abs();
        let &(factor, unit) = units
            .iter()
            .find(|(f, _)| typical >= *f)
            .unwrap_or(&units[units.len() - 1]);
        Scale {
            factor: 1.0 / factor,
            unit,
        }
    }

    /// `value` in this unit, 4 significant digits at most.
    pub fn format(&self, value: f64) -> String {
        let v = value * self.factor;
        let digits = if v.abs() >= 100.0 {
            1
        } else if v.abs() >= 10.0 {
            2
        } else {
            3
        };
        format!("{v:.digits$} {}", self.unit)
    }

    /// `point ± half-width` in this unit, or the point and "(1 sample)".
    pub fn estimate(&self, e: &Estimate) -> String {
        match e.half_width() {
            Some(h) => format!(
                "{} ± {}",
                self.format(e.point),
                self.format(h).trim_end_matches(self.unit).trim_end()
            ),
            None => format!("{} (1 sample)", self.format(e.point)),
        }
    }
}

/// All benches of `report` as tables, with the sources above them.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    for s in &report.sources {
        let _ = writeln!(out, "source: {} — {}", s.provenance, s.description);
    }
    for u in &report.unavailable {
        let _ = writeln!(out, "not used: {}: {}", u.source, u.reason);
        if let Some(fix) = &u.fix {
            let _ = writeln!(out, "  fix: {fix}");
        }
    }
    for bench in &report.benches {
        out.push('\n');
        out.push_str(&bench_table(bench));
    }
    out
}

/// One bench as a table.
pub fn bench_table(bench: &BenchReport) -> String {
    let mut out = String::new();
    let iters: u64 = bench.samples.iter().map(|s| s.iterations).sum();
    let secs: f64 = bench
        .samples
        .iter()
        .map(|s| s.duration_ns as f64 * 1e-9)
        .sum();
    let _ = writeln!(
        out,
        "{}: {} samples, {} iterations in {:.2} s; figures per iteration, ± 95% interval",
        bench.name,
        bench.samples.len(),
        iters,
        secs
    );
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled);
    let mut header = vec![
        Cell::new("span"),
        Cell::new("calls"),
        Cell::new("time (excl)"),
    ];
    for d in &bench.domains {
        let label = match &d.part_of {
            Some(p) => format!("{} ⊂ {p}", d.domain),
            None => d.domain.clone(),
        };
        let tag = short_provenance(&d.provenance);
        header.push(Cell::new(format!("{label} excl [{tag}]")));
        header.push(Cell::new(format!("{label} incl [{tag}]")));
        header.push(Cell::new("share"));
    }
    header.push(Cell::new("notes"));
    table.set_header(header);
    for s in &bench.spans {
        let mut row = vec![
            Cell::new(format!(
                "{}{}",
                "  ".repeat(s.depth as usize),
                s.path.rsplit('/').next().unwrap_or(&s.path)
            )),
            Cell::new(format!("{:.2}", s.calls.point)).set_alignment(CellAlignment::Right),
            Cell::new(time(&s.exclusive_ns)).set_alignment(CellAlignment::Right),
        ];
        for (d, e) in bench.domains.iter().zip(&s.energy) {
            row.push(Cell::new(energy(&e.exclusive_j)).set_alignment(CellAlignment::Right));
            row.push(Cell::new(energy(&e.inclusive_j)).set_alignment(CellAlignment::Right));
            row.push(
                Cell::new(percent(e.inclusive_j.point, d.total_j.point))
                    .set_alignment(CellAlignment::Right),
            );
        }
        row.push(Cell::new(notes(&s.flags)));
        table.add_row(row);
    }
    let mut unattributed = vec![Cell::new("(unattributed)"), Cell::new(""), Cell::new("")];
    let mut total = vec![Cell::new("total"), Cell::new(""), Cell::new("")];
    for d in &bench.domains {
        unattributed.push(Cell::new(energy(&d.unattributed_j)).set_alignment(CellAlignment::Right));
        unattributed.push(Cell::new(""));
        unattributed.push(
            Cell::new(percent(d.unattributed_j.point, d.total_j.point))
                .set_alignment(CellAlignment::Right),
        );
        total.push(Cell::new(""));
        total.push(Cell::new(energy(&d.total_j)).set_alignment(CellAlignment::Right));
        total.push(Cell::new("100%").set_alignment(CellAlignment::Right));
    }
    unattributed.push(Cell::new(""));
    total.push(Cell::new(""));
    table.add_row(unattributed);
    table.add_row(total);
    let _ = writeln!(out, "{table}");
    for d in &bench.domains {
        let _ = writeln!(
            out,
            "  {}: {}, attributed by {}",
            d.domain, d.provenance, d.method
        );
        if let Some(why) = &d.ended {
            let _ = writeln!(out, "  {}: readings ended early {why}", d.domain);
        }
    }
    if bench.spans.iter().any(|s| !s.flags.is_empty()) {
        let _ = writeln!(
            out,
            "  * shorter than the counter's update period: energy inferred from how power was shared, not seen directly"
        );
    }
    for w in &bench.warnings {
        let _ = writeln!(out, "  warning: {w}");
    }
    out
}

fn energy(e: &Estimate) -> String {
    Scale::energy(e.point).estimate(e)
}

fn time(e: &Estimate) -> String {
    Scale::time(e.point).estimate(e)
}

fn short_provenance(p: &str) -> &str {
    p.split_whitespace().next().unwrap_or(p)
}

fn percent(part: f64, whole: f64) -> String {
    if whole > 0.0 {
        format!("{:.1}%", 100.0 * part / whole)
    } else {
        "-".into()
    }
}

fn notes(flags: &[Flag]) -> String {
    flags
        .iter()
        .map(|f| match f {
            Flag::BelowResolution { domain, .. } => format!("* {domain}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
