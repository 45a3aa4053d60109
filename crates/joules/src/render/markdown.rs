//! GitHub-flavoured Markdown, for pull requests and `$GITHUB_STEP_SUMMARY`.

use std::fmt::Write;

use super::table::{energy, percent, short_provenance, time, verdict_name};
use super::{Scale, change_text, summary_line};
use crate::compare::{Comparison, Verdict};
use crate::report::Report;

/// A report: one table per bench.
pub(super) fn report(report: &Report) -> String {
    let mut out = String::new();
    for bench in &report.benches {
        let iters: u64 = bench.samples.iter().map(|s| s.iterations).sum();
        let _ = writeln!(out, "### joules: `{}`\n", bench.name);
        let _ = writeln!(
            out,
            "{}{} samples, {iters} iterations; figures per iteration with their 95% interval{}.\n",
            super::runs_text(bench),
            bench.samples.len(),
            if super::run_count(bench) > 1 { " between runs" } else { "" }
        );
        let with_ops = bench.spans.iter().any(|s| s.ops.is_some());
        let mut header = "| span | calls | time (excl) |".to_owned();
        let mut rule = "|---|---:|---:|".to_owned();
        if with_ops {
            header.push_str(" ops/call |");
            rule.push_str("---:|");
        }
        for d in &bench.domains {
            let tag = short_provenance(&d.provenance);
            let _ = write!(header, " {} excl ({tag}) | {} incl ({tag}) | share |", d.domain, d.domain);
            rule.push_str("---:|---:|---:|");
            if with_ops {
                header.push_str(" ops/J (incl) |");
                rule.push_str("---:|");
            }
        }
        let _ = writeln!(out, "{header}\n{rule}");
        for s in &bench.spans {
            let name = s.path.rsplit('/').next().unwrap_or(&s.path);
            let _ = write!(
                out,
                "| {}{name} | {:.2} | {} |",
                "&nbsp;&nbsp;".repeat(s.depth as usize),
                s.calls.point,
                time(&s.exclusive_ns)
            );
            if with_ops {
                let _ = write!(out, " {} |", super::table::ops_per_call(s));
            }
            for (d, e) in bench.domains.iter().zip(&s.energy) {
                let _ = write!(
                    out,
                    " {} | {} | {} |",
                    energy(&e.exclusive_j),
                    energy(&e.inclusive_j),
                    percent(e.inclusive_j.point, d.total_j.point)
                );
                if with_ops {
                    let _ = write!(out, " {} |", super::table::ops_per_joule(e));
                }
            }
            out.push('\n');
        }
        let gap = if with_ops { " |" } else { "" };
        let _ = write!(out, "| (unattributed) | | |{gap}");
        for d in &bench.domains {
            let _ = write!(
                out,
                " {} | | {} |{gap}",
                energy(&d.unattributed_j),
                percent(d.unattributed_j.point, d.total_j.point)
            );
        }
        let _ = write!(out, "\n| **total** | | |{gap}");
        for d in &bench.domains {
            let _ = write!(out, " | **{}** | 100% |{gap}", energy(&d.total_j));
        }
        out.push_str("\n\n");
        for d in &bench.domains {
            let _ = write!(out, "- `{}`: {}, attributed by {}", d.domain, d.provenance, d.method);
            if let (Some(u), Some(p), true) =
                (d.step_uncertainty_ns, d.precise_readings, d.update_period_ns > 0)
            {
                let _ =
                    write!(out, "; steps placed to ±{:.1} µs ({:.0}% precise)", u as f64 / 1000.0, 100.0 * p);
            }
            if let Some(w) = &d.idle_w {
                let _ = write!(out, "; idle {}", Scale::energy(w.point).format(w.point).replace('J', "W"));
            }
            out.push('\n');
        }
        for line in super::table::bench_facts(bench) {
            let _ = writeln!(out, "- {line}");
        }
        for w in &bench.warnings {
            let _ = writeln!(out, "- warning: {w}");
        }
        out.push('\n');
    }
    out
}

/// A comparison: the verdict first, then every figure that changed or could not be compared.
pub(super) fn comparison(cmp: &Comparison) -> String {
    let mut out = "### joules: energy comparison\n\n".to_owned();
    let regressions = cmp.regressions().count();
    if regressions > 0 {
        let _ = writeln!(out, "**{regressions} energy regression(s)**\n");
    }
    let _ = writeln!(out, "{}\n", summary_line(cmp));
    for m in &cmp.mismatches {
        let _ = writeln!(out, "> compared although {m}\n");
    }
    out.push_str(
        "| bench | span | domain | old | new | change [95% interval] | p (Holm) | detectable | verdict |\n",
    );
    out.push_str("|---|---|---|---:|---:|---:|---:|---:|---|\n");
    for c in &cmp.changes {
        let j = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| Scale::energy(v).format(v));
        let verdict = match c.verdict {
            Verdict::Regressed => "**regressed**".to_owned(),
            v => verdict_name(v).to_owned(),
        };
        let (p, detectable) = (super::p_text(c), super::detectable_text(c));
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {} | {} | {} | {p} | {detectable} | {verdict} |",
            c.bench,
            c.path,
            c.domain,
            j(c.old_j),
            j(c.new_j),
            change_text(c)
        );
    }
    let rows = super::ops_rows(cmp);
    if !rows.is_empty() {
        out.push_str("\n| span | domain | joules change | operations | ops change | J/ops |\n");
        out.push_str("|---|---|---:|---:|---:|---:|\n");
        for [path, domain, joules, ops, change, ratio] in rows {
            let _ = writeln!(out, "| `{path}` | {domain} | {joules} | {ops} | {change} | {ratio} |");
        }
        let _ = writeln!(out, "\n{}", super::OPS_LEGEND);
    }
    for note in &cmp.notes {
        let _ = writeln!(out, "\n- {note}");
    }
    out
}
