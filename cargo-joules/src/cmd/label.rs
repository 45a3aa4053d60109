//! `cargo joules label [REPORT]`: the energy label of a benchmark, as SVG and JSON files and
//! on the terminal.

use anyhow::{Context, anyhow};
use joules::compare;
use joules::exit::ExitCodes;
use joules::label::{self, Device, Grid, LabelOptions};
use joules::report::Report;
use sha2::{Digest, Sha256};

use super::output::{joules_dir, load_bytes, pick_bench, report_arg, use_color, write_atomic};
use super::{Failure, WithCode};
use crate::cli::{Format, LabelArgs};

pub(crate) fn run(args: &LabelArgs) -> Result<u8, Failure> {
    let manifest = args.manifest_path.as_deref();
    let path = report_arg(args.report.as_deref(), manifest)?;
    let (report, sha) = read_hashed(&path, "report", " (run `cargo joules bench` first)")?;
    let bench = pick_bench(&report, args.bench.as_deref())?;

    let reference_report = match &args.reference {
        Some(r) => Some(read_hashed(&report_arg(Some(r), manifest)?, "reference report", "")?.0),
        None => None,
    };
    let mismatches = match &reference_report {
        Some(r) => compare::mismatches(r, &report),
        None => Vec::new(),
    };
    if !mismatches.is_empty() && !args.allow_mismatch {
        return Err(anyhow!(
            "the reference is not like for like: {} (--allow-mismatch grades against it anyway)",
            mismatches.join("; ")
        ))
        .code(ExitCodes::INCOMPARABLE);
    }
    let reference = match (&reference_report, &args.reference_bench) {
        (None, None) => None,
        (Some(r), name) => {
            let name = name.as_deref().unwrap_or(&bench.name);
            let b = pick_bench(r, Some(name))?;
            Some((b, format!("{} in {}", b.name, args.reference.as_deref().unwrap_or_default())))
        }
        (None, Some(name)) => {
            let b = pick_bench(&report, Some(name))?;
            if std::ptr::eq(b, bench) {
                return Err(anyhow!("--reference-bench {name} is the labelled benchmark itself"))
                    .code(ExitCodes::USAGE);
            }
            Some((b, b.name.clone()))
        }
    };

    let mut opts =
        LabelOptions { report_sha256: sha, ops_per_declared: args.ops_per_declared, ..Default::default() };
    if let (Some(g), Some(source)) = (args.grid_intensity, &args.grid_source) {
        opts.grid = Grid { g_per_kwh: g, source: source.clone() };
    }
    opts.devices.extend(args.device.iter().map(|(name, tops)| Device {
        name: name.clone(),
        tops_per_w: *tops,
        source: "given with --device".into(),
    }));
    let mut label = label::label(&report, bench, reference.as_ref().map(|(b, n)| (*b, n.as_str())), &opts)
        .context("cannot make the label")
        .code(ExitCodes::USAGE)?;
    label.warnings.extend(mismatches.iter().map(|m| format!("the reference is not like for like: {m}")));

    let svg_path = match &args.output {
        Some(p) => p.clone(),
        None => joules_dir(manifest)?.join("label.svg"),
    };
    let json_path = svg_path.with_extension("json");
    if json_path == svg_path {
        return Err(anyhow!(
            "-o {}: the label's JSON goes beside the SVG as .json; name the SVG with .svg",
            svg_path.display()
        ))
        .code(ExitCodes::USAGE);
    }
    let json = serde_json::to_string_pretty(&label).expect("labels serialize") + "\n";
    write_atomic(&svg_path, joules::render::label::svg(&label).as_bytes()).code(ExitCodes::USAGE)?;
    write_atomic(&json_path, json.as_bytes()).code(ExitCodes::USAGE)?;
    match args.format {
        Format::Table => print!("{}", joules::render::label::text(&label, use_color(args.color))),
        Format::Json => print!("{json}"),
    }
    eprintln!("joules: label written to {} and {}", svg_path.display(), json_path.display());
    Ok(ExitCodes::OK)
}

/// Reads a report and the SHA-256 of its bytes, which the label carries so that a figure can
/// be traced to the very file it came from.
pub(crate) fn read_hashed(
    path: &std::path::Path,
    what: &str,
    hint: &str,
) -> Result<(Report, String), Failure> {
    let (report, bytes) = load_bytes(path, what, hint)?;
    let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    Ok((report, sha))
}
