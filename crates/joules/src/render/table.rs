//! Terminal tables. Every energy column names its domain and where the figure came from;
//! every figure shows its 95% interval.

use std::fmt::Write;

use comfy_table::{Cell, CellAlignment, Color, ContentArrangement, Table, presets};

use super::{Scale, change_text, summary_line};
use crate::compare::{Comparison, Verdict};
use crate::report::{BenchReport, Flag, Report, SpanReport};
use crate::stats::Estimate;

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
    let secs: f64 = bench.samples.iter().map(|s| s.duration_ns as f64 * 1e-9).sum();
    let _ = writeln!(
        out,
        "{}: {}{} samples, {} iterations in {:.2} s; figures per iteration, ± 95% interval{}",
        bench.name,
        super::runs_text(bench),
        bench.samples.len(),
        iters,
        secs,
        if super::run_count(bench) > 1 { " between runs" } else { "" }
    );
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Disabled);
    let with_ops = bench.spans.iter().any(|s| s.ops.is_some());
    let mut header = vec![Cell::new("span"), Cell::new("calls"), Cell::new("time (excl)")];
    if with_ops {
        header.push(Cell::new("ops/call"));
    }
    for d in &bench.domains {
        let label = match &d.part_of {
            Some(p) => format!("{} ⊂ {p}", d.domain),
            None => d.domain.clone(),
        };
        let tag = short_provenance(&d.provenance);
        header.push(Cell::new(format!("{label} excl [{tag}]")));
        header.push(Cell::new(format!("{label} incl [{tag}]")));
        header.push(Cell::new("share"));
        if with_ops {
            header.push(Cell::new("ops/J (incl)"));
        }
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
        if with_ops {
            row.push(Cell::new(ops_per_call(s)).set_alignment(CellAlignment::Right));
        }
        for (d, e) in bench.domains.iter().zip(&s.energy) {
            row.push(Cell::new(energy(&e.exclusive_j)).set_alignment(CellAlignment::Right));
            row.push(Cell::new(energy(&e.inclusive_j)).set_alignment(CellAlignment::Right));
            row.push(
                Cell::new(percent(e.inclusive_j.point, d.total_j.point)).set_alignment(CellAlignment::Right),
            );
            if with_ops {
                row.push(Cell::new(ops_per_joule(e)).set_alignment(CellAlignment::Right));
            }
        }
        row.push(Cell::new(notes(s)));
        table.add_row(row);
    }
    let mut unattributed = vec![Cell::new("(unattributed)"), Cell::new(""), Cell::new("")];
    let mut total = vec![Cell::new("total"), Cell::new(""), Cell::new("")];
    if with_ops {
        unattributed.push(Cell::new(""));
        total.push(Cell::new(""));
    }
    for d in &bench.domains {
        unattributed.push(Cell::new(energy(&d.unattributed_j)).set_alignment(CellAlignment::Right));
        unattributed.push(Cell::new(""));
        unattributed.push(
            Cell::new(percent(d.unattributed_j.point, d.total_j.point)).set_alignment(CellAlignment::Right),
        );
        total.push(Cell::new(""));
        total.push(Cell::new(energy(&d.total_j)).set_alignment(CellAlignment::Right));
        total.push(Cell::new("100%").set_alignment(CellAlignment::Right));
        if with_ops {
            unattributed.push(Cell::new(""));
            total.push(Cell::new(""));
        }
    }
    unattributed.push(Cell::new(""));
    total.push(Cell::new(""));
    table.add_row(unattributed);
    table.add_row(total);
    let _ = writeln!(out, "{table}");
    for d in &bench.domains {
        let _ = write!(out, "  {}: {}, attributed by {}", d.domain, d.provenance, d.method);
        if let (Some(u), Some(p), true) = (d.step_uncertainty_ns, d.precise_readings, d.update_period_ns > 0)
        {
            let _ = write!(out, "; steps placed to ±{:.1} µs ({:.0}% precise)", u as f64 / 1000.0, 100.0 * p);
        }
        if let (Some(w), Some(above)) = (&d.idle_w, &d.above_idle_j) {
            let watts = Scale::energy(w.point).format(w.point).replace('J', "W");
            let _ = write!(out, "; idle {watts}, above idle {} per iteration", energy(above));
        }
        out.push('\n');
        if let Some(why) = &d.ended {
            let _ = writeln!(out, "  {}: readings ended early {why}", d.domain);
        }
    }
    let marks: Vec<String> = bench.spans.iter().map(notes).collect();
    if marks.iter().any(|m| m.contains('~')) {
        let _ =
            writeln!(out, "  ~ energy from per-path power solved by regression over many counter intervals");
    }
    if marks.iter().any(|m| m.contains('*')) {
        let _ = writeln!(
            out,
            "  * shorter than the counter's update period and attributed by time-share: energy inferred from how power was shared, not seen directly"
        );
    }
    for line in bench_facts(bench) {
        let _ = writeln!(out, "  {line}");
    }
    for w in &bench.warnings {
        let _ = writeln!(out, "  warning: {w}");
    }
    out
}

/// What a bench says beyond its spans: energy per inference where an iteration does several,
/// when inference overtakes a declared training energy, and the bench's own notes.
pub(super) fn bench_facts(bench: &BenchReport) -> Vec<String> {
    let mut lines = Vec::new();
    let per_inference = bench.energy_per_inference();
    if bench.inferences_per_iteration > 1
        && let Some(e) = &per_inference
    {
        lines.push(format!(
            "per inference: {} (an iteration does {} inferences)",
            energy(e),
            bench.inferences_per_iteration
        ));
    }
    if let Some(t) = &bench.training {
        // Training energy is mostly quoted in watt-hours.
        let wh = if t.energy_j >= 3.6e6 {
            format!("{:.1} kWh", t.energy_j / 3.6e6)
        } else {
            format!("{:.2} Wh", t.energy_j / 3.6e3)
        };
        let declared = format!(
            "training: {} ({wh}), declared: {}",
            Scale::energy(t.energy_j).format(t.energy_j),
            t.source
        );
        lines.push(match &t.break_even_inferences {
            Some(n) => {
                let count = Scale::ops(n.point).interval(n);
                format!("{declared}; inference has used more after {} inferences", count.replace("  ", " "))
            }
            None => format!("{declared}; no energy measured to set it against"),
        });
    }
    lines.extend(bench.notes.iter().map(|n| format!("note: {n}")));
    lines
}

/// Operations declared per call (its own), or "-" where it declares none.
pub(super) fn ops_per_call(s: &SpanReport) -> String {
    match &s.ops {
        Some(o) if o.per_call > 0.0 => Scale::ops(o.per_call).format(o.per_call).trim_end().to_owned(),
        _ => "-".into(),
    }
}

/// Inclusive operations per inclusive joule with its interval, or "-".
pub(super) fn ops_per_joule(e: &crate::report::SpanEnergy) -> String {
    e.ops_per_j.as_ref().map_or_else(|| "-".into(), |r| Scale::ops_per_joule(r.point).interval(r))
}

/// Its unit picked from the point, or the interval where that is wider (a point near 0
/// with an interval in nanojoules would print as millions).
pub(super) fn energy(e: &Estimate) -> String {
    Scale::energy(e.point.abs().max(e.half_width().unwrap_or(0.0))).estimate(e)
}

pub(super) fn time(e: &Estimate) -> String {
    Scale::time(e.point).estimate(e)
}

pub(super) fn short_provenance(p: &str) -> &str {
    p.split_whitespace().next().unwrap_or(p)
}

pub(super) fn percent(part: f64, whole: f64) -> String {
    if whole > 0.0 { format!("{:.1}%", 100.0 * part / whole) } else { "-".into() }
}

/// A span's notes: `~ domain` where the regression attributed it, `* domain` where
/// time-share did below the counter's resolution, and merged groups.
pub(super) fn notes(span: &SpanReport) -> String {
    let mut out: Vec<String> = Vec::new();
    for e in &span.energy {
        if e.method == "regression" {
            out.push(format!("~ {}", e.domain));
        } else if span
            .flags
            .iter()
            .any(|f| matches!(f, Flag::BelowResolution { domain, .. } if *domain == e.domain))
        {
            out.push(format!("* {}", e.domain));
        }
    }
    for f in &span.flags {
        if matches!(f, Flag::SpansDropped) {
            out.push("spans dropped inside".to_owned());
        }
        if matches!(f, Flag::NotLeft) {
            out.push("not left".to_owned());
        }
        if matches!(f, Flag::ForgottenInside) {
            out.push("a forgotten guard inside".to_owned());
        }
        if let Flag::Merged { domain, with } = f {
            out.push(format!("merged with {} ({domain})", with.join(", ")));
        }
    }
    out.join(", ")
}

/// A comparison as a table; with `color`, regressions red and improvements green.
pub(super) fn comparison(cmp: &Comparison, color: bool) -> String {
    let mut out = String::new();
    for m in &cmp.mismatches {
        let _ = writeln!(out, "warning: compared although {m}");
    }
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Disabled);
    if color {
        table.enforce_styling();
    } else {
        table.force_no_tty();
    }
    table.set_header([
        "bench",
        "span",
        "domain",
        "old",
        "new",
        "change [95% interval]",
        "p (Holm)",
        "detectable",
        "verdict",
    ]);
    for c in &cmp.changes {
        let j = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| Scale::energy(v).format(v));
        let mut verdict = Cell::new(verdict_name(c.verdict));
        if color {
            verdict = match c.verdict {
                Verdict::Regressed => verdict.fg(Color::Red),
                Verdict::Improved => verdict.fg(Color::Green),
                _ => verdict,
            };
        }
        table.add_row(vec![
            Cell::new(&c.bench),
            Cell::new(&c.path),
            Cell::new(&c.domain),
            Cell::new(j(c.old_j)).set_alignment(CellAlignment::Right),
            Cell::new(j(c.new_j)).set_alignment(CellAlignment::Right),
            Cell::new(change_text(c)).set_alignment(CellAlignment::Right),
            Cell::new(super::p_text(c)).set_alignment(CellAlignment::Right),
            Cell::new(super::detectable_text(c)).set_alignment(CellAlignment::Right),
            verdict,
        ]);
    }
    let _ = writeln!(out, "{table}");
    let _ = writeln!(out, "{}", summary_line(cmp));
    let rows = super::ops_rows(cmp);
    if !rows.is_empty() {
        let mut ops = Table::new();
        ops.load_preset(presets::UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Disabled);
        ops.force_no_tty();
        ops.set_header(["span", "domain", "joules change", "operations", "ops change", "J/ops"]);
        for row in rows {
            ops.add_row(row.into_iter().enumerate().map(|(i, v)| {
                let cell = Cell::new(v);
                if i >= 2 { cell.set_alignment(CellAlignment::Right) } else { cell }
            }));
        }
        let _ = writeln!(out, "{ops}\n{}", super::OPS_LEGEND);
    }
    for note in &cmp.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

pub(super) fn verdict_name(v: Verdict) -> &'static str {
    v.name()
}
