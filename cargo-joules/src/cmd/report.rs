//! `cargo joules report [REPORT]`: a report for the terminal, or with `--html` as one
//! self-contained page.

use joules::compare;
use joules::exit::ExitCodes;
use joules::label::LabelOptions;
use joules::render::folded::{self, Domains};

use super::flamegraph::{Graph, differential, plain, render};
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

    // What could not be drawn is said on the page and here, never dropped.
    let mut problems: Vec<String> = Vec::new();
    let comparison = if let Some(old) = &old {
        let cmp = compare::compare(old, &report, &cfg).code(ExitCodes::INCOMPARABLE)?;
        let title =
            format!("Change from {} to {}", args.against.as_deref().unwrap_or_default(), path.display());
        // The first bench both reports hold.
        let flamegraph = match report.benches.iter().find(|b| old.benches.iter().any(|o| o.name == b.name)) {
            Some(b) => drawn(
                differential(b, &b.name, &cmp, None, Some(&title)),
                "differential flame graph",
                &mut problems,
            ),
            None => {
                problems.push("no differential flame graph: the two reports share no benchmark".into());
                None
            }
        };
        Some(ComparisonPage { title, flamegraph, cmp, problems: std::mem::take(&mut problems) })
    } else if let Some(pair) = &args.benches {
        let cmp = compare::variants(&report, &pair[0], &pair[1], &cfg).code(ExitCodes::USAGE)?;
        let o = compare::find_bench(&report, &pair[0]).code(ExitCodes::USAGE)?;
        let n = compare::find_bench(&report, &pair[1]).code(ExitCodes::USAGE)?;
        let title = compare::variants_label(o, n);
        let flamegraph =
            drawn(differential(n, &title, &cmp, None, None), "differential flame graph", &mut problems);
        Some(ComparisonPage {
            title: format!("Change: {title}"),
            flamegraph,
            cmp,
            problems: std::mem::take(&mut problems),
        })
    } else {
        None
    };
    for p in comparison.iter().flat_map(|c| &c.problems) {
        eprintln!("joules: comparison: {p}");
    }

    let opts = LabelOptions { report_sha256: sha, ..Default::default() };
    let mut benches = Vec::new();
    for bench in &report.benches {
        let mut problems = Vec::new();
        let stacks = folded::stacks(bench, &Domains::Top).unwrap_or_else(|e| {
            problems.push(format!("no bar chart: {e}"));
            Vec::new()
        });
        let flamegraph = drawn(plain(bench, None), "flame graph", &mut problems);
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
        let label = match joules::label::label(
            &report,
            bench,
            reference.as_ref().map(|(b, n)| (*b, n.as_str())),
            &opts,
        ) {
            Ok(l) => Some(l),
            Err(e) => {
                problems.push(format!("no label: {e}"));
                None
            }
        };
        for p in &problems {
            eprintln!("joules: {}: {p}", bench.name);
        }
        benches.push(BenchPage { bench, stacks, flamegraph, label, problems });
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

/// A flame graph's SVG, or None with why in `problems`.
fn drawn(graph: Result<Graph, Failure>, what: &str, problems: &mut Vec<String>) -> Option<Vec<u8>> {
    match graph.map_err(|f| f.error).and_then(|g| render(&g)) {
        Ok(svg) => Some(svg),
        Err(e) => {
            problems.push(format!("no {what}: {e:#}"));
            None
        }
    }
}
