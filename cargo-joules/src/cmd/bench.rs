//! `cargo joules bench`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, anyhow};
use joules::exit::ExitCodes;
use joules::render::{self, Format};
use joules::report::Report;

use super::output::{baseline_path, format, gate, load, step_summary};
use super::{Failure, WithCode};
use crate::cargo::{self, BenchTarget};
use crate::cli::BenchArgs;

pub(crate) fn run(args: &BenchArgs) -> Result<u8, Failure> {
    // Checked here, before the build; each bench binary probes with the same choice.
    let selection = args.select.selection().map_err(|e| anyhow!(e)).code(ExitCodes::USAGE)?;
    let manifest = args.manifest_path.as_deref();
    let meta = cargo::metadata(manifest).code(ExitCodes::METADATA_FAILED)?;
    let out_dir = meta.target_directory.as_std_path().join("joules");
    // Check the baselines before spending minutes on benchmarks.
    let save_to = args.save_baseline.as_deref().map(|n| baseline_path(&out_dir, n)).transpose()?;
    let baseline = match args.baseline.as_deref() {
        Some(name) => {
            let path = baseline_path(&out_dir, name)?;
            let hint = format!("; save one first with `cargo joules bench --save-baseline {name}`");
            Some(load(&path, &format!("baseline `{name}`"), &hint)?)
        }
        None => None,
    };
    if let Some(path) = save_to.as_deref().filter(|p| p.exists()) {
        // A damaged file where the baseline would go is kept for a person to look at.
        load(path, "to overwrite the existing baseline", "")?;
    }
    let cargo::Targets { run: targets, skipped } = cargo::bench_targets(&meta, &args.package, &args.bench);
    for s in &skipped {
        eprintln!(
            "joules: not running bench {s}: it does not use the joules harness (`joules::bench_main!`); \
             name it with --bench, or list it in `[package.metadata.joules] benches`, to run it anyway"
        );
    }
    if targets.is_empty() {
        return Err(anyhow!(
            "no bench target uses joules here: add `joules` as a dependency and a \
             `[[bench]] harness = false` target ending in `joules::bench_main!(...)`"
        ))
        .code(ExitCodes::USAGE);
    }
    let exes = cargo::build(manifest, &targets).code(ExitCodes::BUILD_FAILED)?;
    let mut runs = Vec::new();
    for run in 1..=args.runs {
        if args.runs > 1 {
            eprintln!("joules: run {run} of {}", args.runs);
        }
        let mut parts = Vec::new();
        for (target, exe) in targets.iter().zip(&exes) {
            parts.push(run_one(args, &selection, target, exe, &out_dir)?);
        }
        runs.push(joules::merge::targets(parts).expect("at least one target ran"));
    }
    let report = joules::merge::runs(runs).code(ExitCodes::BENCH_FAILED)?;
    let path = args.output.clone().unwrap_or_else(|| out_dir.join("report.json"));
    report.write_atomic(&path).code(ExitCodes::BENCH_FAILED)?;
    eprintln!("joules: report written to {}", path.display());
    let code = match &baseline {
        Some(old) => gate(old, &report, &args.gate, &args.output_args)?,
        None => {
            print!("{}", render::report(&report, format(&args.output_args)));
            step_summary(&render::report(&report, Format::Markdown));
            ExitCodes::OK
        }
    };
    if let Some(path) = &save_to {
        if code == ExitCodes::REGRESSION && !args.force {
            eprintln!(
                "joules: not saving baseline {}: this run failed the gate (pass --force to save it anyway)",
                path.display()
            );
        } else {
            report.write_atomic(path).code(ExitCodes::BENCH_FAILED)?;
            eprintln!("joules: saved baseline {}", path.display());
        }
    }
    Ok(code)
}

fn run_one(
    args: &BenchArgs,
    selection: &joules::source::Selection,
    target: &BenchTarget,
    exe: &PathBuf,
    out_dir: &Path,
) -> Result<Report, Failure> {
    let part = out_dir.join("parts").join(format!("{}-{}.json", target.package, target.name));
    // A report left by an earlier run must not pass for this run's.
    let _ = std::fs::remove_file(&part);
    let mut cmd = Command::new(exe);
    cmd.arg("--bench")
        .args(&args.filters)
        .current_dir(&target.package_dir)
        .env(joules::bench::OUT_ENV, &part);
    // Set or cleared: a JOULES_SOURCES in this environment was already read by clap.
    cmd.env_remove(joules::source::select::SOURCES_ENV).env_remove(joules::source::select::DOMAINS_ENV);
    cmd.envs(selection.to_env());
    if let Some(n) = args.samples {
        cmd.env("JOULES_SAMPLES", n.to_string());
    }
    if let Some(ms) = args.sample_ms {
        cmd.env("JOULES_SAMPLE_MS", ms.to_string());
    }
    if let Some(ms) = args.warm_up_ms {
        cmd.env("JOULES_WARM_UP_MS", ms.to_string());
    }
    if let Some(ms) = args.idle_ms {
        cmd.env("JOULES_IDLE_MS", ms.to_string());
    }
    if let Some(joules) = args.training_energy {
        cmd.env("JOULES_TRAINING_J", joules.to_string());
        let source =
            args.training_source.clone().unwrap_or_else(|| "--training-energy (no source given)".into());
        cmd.env("JOULES_TRAINING_SOURCE", source);
    }
    eprintln!("joules: running bench `{}` of {}", target.name, target.package);
    let status =
        cmd.status().with_context(|| format!("starting {}", exe.display())).code(ExitCodes::BENCH_FAILED)?;
    if !status.success() {
        let code = match status.code().and_then(|c| u8::try_from(c).ok()) {
            // Its own message (one line, on stderr above) says why; no report is gated or
            // saved from it.
            Some(c @ (ExitCodes::NO_SOURCE | ExitCodes::USAGE | ExitCodes::SOURCE_FAILED)) => c,
            _ => ExitCodes::BENCH_FAILED,
        };
        return Err(anyhow!("bench `{}` failed ({status})", target.name)).code(code);
    }
    let mut report = Report::read(&part)
        .with_context(|| format!("bench `{}` wrote no usable report", target.name))
        .code(ExitCodes::BENCH_FAILED)?;
    for b in &mut report.benches {
        if b.name != target.name {
            b.name = format!("{}/{}", target.name, b.name);
        }
    }
    Ok(report)
}
