//! CSV: one figure per row, in joules and nanoseconds, for spreadsheets and scripts.

use std::fmt::Write;

use crate::compare::Comparison;
use crate::report::Report;
use crate::stats::Estimate;

fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(String::new, |v| format!("{v:e}"))
}

/// `bench,path,domain,provenance,figure,unit,mean,lo,hi,samples`.
pub(super) fn report(report: &Report) -> String {
    let mut out = "bench,path,domain,provenance,figure,unit,mean,lo,hi,samples\n".to_owned();
    let mut row =
        |bench: &str, path: &str, domain: &str, prov: &str, figure: &str, unit: &str, e: &Estimate| {
            let _ = writeln!(
                out,
                "{},{},{},{},{figure},{unit},{:e},{},{},{}",
                quote(bench),
                quote(path),
                quote(domain),
                quote(prov),
                e.point,
                opt(e.lo),
                opt(e.hi),
                e.samples.len()
            );
        };
    for b in &report.benches {
        for d in &b.domains {
            row(&b.name, "(total)", &d.domain, &d.provenance, "total", "J", &d.total_j);
            row(&b.name, "(unattributed)", &d.domain, &d.provenance, "unattributed", "J", &d.unattributed_j);
        }
        for s in &b.spans {
            row(&b.name, &s.path, "", "", "exclusive_time", "ns", &s.exclusive_ns);
            if let Some(o) = &s.ops {
                row(&b.name, &s.path, "", "", "exclusive_ops", "ops", &o.exclusive);
                row(&b.name, &s.path, "", "", "inclusive_ops", "ops", &o.inclusive);
            }
            for (d, e) in b.domains.iter().zip(&s.energy) {
                row(&b.name, &s.path, &d.domain, &d.provenance, "exclusive", "J", &e.exclusive_j);
                row(&b.name, &s.path, &d.domain, &d.provenance, "inclusive", "J", &e.inclusive_j);
                if let Some(r) = &e.ops_per_j {
                    row(&b.name, &s.path, &d.domain, &d.provenance, "ops_per_j", "ops/J", r);
                }
            }
        }
    }
    out
}

/// `bench,path,domain,old_j,new_j,change,change_lo,change_hi,p_value,p_holm,detectable,runs_old,runs_new,basis,verdict`.
pub(super) fn comparison(cmp: &Comparison) -> String {
    let mut out = "bench,path,domain,old_j,new_j,change,change_lo,change_hi,p_value,p_holm,detectable,\
                   runs_old,runs_new,basis,verdict\n"
        .to_owned();
    for c in &cmp.changes {
        let r = c.change.as_ref();
        let basis = match c.basis {
            crate::compare::Basis::BetweenRuns => "between-runs",
            crate::compare::Basis::WithinRun => "within-run",
        };
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            quote(&c.bench),
            quote(&c.path),
            quote(&c.domain),
            opt(c.old_j),
            opt(c.new_j),
            opt(r.map(|r| r.point)),
            opt(r.map(|r| r.lo)),
            opt(r.map(|r| r.hi)),
            opt(r.map(|r| r.p_value)),
            opt(c.p_adjusted),
            opt(c.detectable),
            c.runs.0,
            c.runs.1,
            basis,
            super::table::verdict_name(c.verdict)
        );
    }
    out
}
