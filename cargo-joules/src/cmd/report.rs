//! `cargo joules report [REPORT]`: a report for the terminal, or with `--html` as one
//! self-contained page.

use anyhow::anyhow;
use joules::compare;
use joules::exit::ExitCodes;
use joules::label::LabelOptions;
use joules::render::folded::{self, Domains};

use super::flamegraph::{differential, plain, render};
use super::label::read_hashed;
use super::output::{config, format, joules_dir, report_arg, write_atomic};
use super::{Failure, WithCode};
use crate::cli::ReportArgs;
use crate::html::{BenchPage, ComparisonPage, page};

pub(crate) fn run(args: &ReportArgs) -> Result<u8, Failure> {
    let manifest = args.manifest_path.as_deref();
    let path = report_arg(args.report.as_deref(), manifest)?;
    let (report, sha) = read_hashed(&path, "report", " (run `cargo joules bench` first)")?;
    if !args.html {
        print!("{}", joules::render::report(&report, format(&args.output_args)));
        return Ok(ExitCodes::OK);
    }
    let cfg = config(&args.gate)?;
    let old = match &args.against {
        Some(a) => Some(read_hashed(&report_arg(Some(a), manifest)?, "old report", "")?.0),
        None => None,
    };

    let comparison = if let Some(old) = &old {
        let cmp = compare::compare(old, &report, &cfg).code(ExitCodes::INCOMPARABLE)?;
        let first = report
            .benches
            .first()
            .ok_or_else(|| anyhow!("the report has no benchmark"))
            .code(ExitCodes::USAGE)?;
        let title =
            format!("Change from {} to {}", args.against.as_deref().unwrap_or_default(), path.display());
        let graph = differential(first, &first.name, &cmp, None, Some(&title))?;
        Some(ComparisonPage { title, flamegraph: render(&graph).ok(), cmp })
    } else if let Some(pair) = &args.benches {
        let cmp = compare::variants(&report, &pair[0], &pair[1], &cfg).code(ExitCodes::USAGE)?;
        let o = compare::find_bench(&report, &pair[0]).code(ExitCodes::USAGE)?;
        let n = compare::find_bench(&report, &pair[1]).code(ExitCodes::USAGE)?;
        let title = compare::variants_label(o, n);
        let graph = differential(n, &title, &cmp, None, None)?;
        Some(ComparisonPage { title: format!("Change: {title}"), flamegraph: render(&graph).ok(), cmp })
    } else {
        None
    };

    let opts = LabelOptions { report_sha256: sha, ..Default::default() };
    let mut benches = Vec::new();
    for bench in &report.benches {
        let stacks = folded::stacks(bench, &Domains::Top).unwrap_or_default();
        let flamegraph = plain(bench, None).ok().and_then(|g| render(&g).ok());
        // The index scale: the older bench of --benches for the newer, the same bench of
        // --against for each.
        let reference = match (&args.benches, &old) {
            (Some(pair), _) => compare::find_bench(&report, &pair[1])
                .ok()
                .filter(|n| std::ptr::eq(*n, bench))
                .and_then(|_| compare::find_bench(&report, &pair[0]).ok())
                .map(|b| (b, b.name.clone())),
            (None, Some(old)) => old
                .benches
                .iter()
                .find(|b| b.name == bench.name)
                .map(|b| (b, format!("{} in {}", b.name, args.against.as_deref().unwrap_or_default()))),
            _ => None,
        };
        let label =
            joules::label::label(&report, bench, reference.as_ref().map(|(b, n)| (*b, n.as_str())), &opts)
                .ok();
        benches.push(BenchPage { bench, stacks, flamegraph, label });
    }
    let html =
        page(&report, &path.display().to_string(), &benches, comparison.as_ref()).code(ExitCodes::USAGE)?;
    let out = match &args.output {
        Some(p) => p.clone(),
        None => joules_dir(manifest)?.join("report.html"),
    };
    write_atomic(&out, html.as_bytes()).code(ExitCodes::USAGE)?;
    eprintln!("joules: HTML report written to {}", out.display());
    Ok(ExitCodes::OK)
}
