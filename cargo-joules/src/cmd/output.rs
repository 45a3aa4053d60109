//! Shared by `bench` and `compare`: formats, colour, baselines, the CI step summary.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use joules::compare::{CompareConfig, Comparison};
use joules::exit::ExitCodes;
use joules::render::{self, Format};
use joules::report::{BenchReport, Report};

use super::{Failure, WithCode};
use crate::cli::{Color, GateArgs, OutputArgs, OutputFormat};

pub(crate) fn format(args: &OutputArgs) -> Format {
    match args.format {
        OutputFormat::Table => Format::Table,
        OutputFormat::Markdown => Format::Markdown,
        OutputFormat::Json => Format::Json,
        OutputFormat::Bmf => Format::Bmf,
        OutputFormat::Csv => Format::Csv,
    }
}

pub(crate) fn color(args: &OutputArgs) -> bool {
    use_color(args.color)
}

pub(crate) fn use_color(color: Color) -> bool {
    match color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}

pub(crate) fn config(gate: &GateArgs) -> Result<CompareConfig, Failure> {
    if !(gate.noise_threshold >= 0.0 && gate.noise_threshold < 1.0) {
        return Err(anyhow!("--noise-threshold {} must be a fraction in [0, 1)", gate.noise_threshold))
            .code(ExitCodes::USAGE);
    }
    Ok(CompareConfig {
        noise: gate.noise_threshold,
        allow_mismatch: gate.allow_mismatch,
        ..Default::default()
    })
}

/// Where `cargo joules bench` writes: `<target-dir>/joules` of the workspace.
pub(crate) fn joules_dir(manifest_path: Option<&Path>) -> Result<PathBuf, Failure> {
    let meta = crate::cargo::metadata(manifest_path).code(ExitCodes::METADATA_FAILED)?;
    Ok(meta.target_directory.as_std_path().join("joules"))
}

/// A report named on the command line: a path if it looks like one (or exists), else the
/// name of a saved baseline; none is the last `cargo joules bench`'s report.
pub(crate) fn report_arg(arg: Option<&str>, manifest_path: Option<&Path>) -> Result<PathBuf, Failure> {
    match arg {
        Some(a) if a.ends_with(".json") || a.contains('/') || Path::new(a).exists() => Ok(PathBuf::from(a)),
        Some(name) => baseline_path(&joules_dir(manifest_path)?, name),
        None => Ok(joules_dir(manifest_path)?.join("report.json")),
    }
}

/// Writes `bytes` to `path` whole or not at all (a temporary file beside it, then a rename).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).with_context(|| format!("writing in {}", dir.display()))?;
    tmp.write_all(bytes).with_context(|| format!("writing {}", path.display()))?;
    joules::report::readable(tmp.as_file()).with_context(|| format!("writing {}", path.display()))?;
    tmp.as_file().sync_all().with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// `<target>/joules/baselines/<name>.json`; names are plain words so they stay in that folder.
pub(crate) fn baseline_path(joules_dir: &Path, name: &str) -> Result<PathBuf, Failure> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !ok {
        return Err(anyhow!("baseline name {name:?}: use letters, digits, `-`, `_` and `.`"))
            .code(ExitCodes::USAGE);
    }
    Ok(joules_dir.join("baselines").join(format!("{name}.json")))
}

/// Reads a baseline or report, refusing a missing, damaged or foreign one with a one-line
/// reason; the file is never touched.
pub(crate) fn load(path: &Path, what: &str, hint: &str) -> Result<Report, Failure> {
    load_bytes(path, what, hint).map(|(report, _)| report)
}

/// [`load`], and the file's bytes (what a label hashes).
pub(crate) fn load_bytes(path: &Path, what: &str, hint: &str) -> Result<(Report, Vec<u8>), Failure> {
    if !path.exists() {
        return Err(anyhow!("{what} {} does not exist{hint}", path.display())).code(ExitCodes::USAGE);
    }
    let bytes =
        std::fs::read(path).with_context(|| format!("reading {}", path.display())).code(ExitCodes::USAGE)?;
    let report = Report::from_slice(path, &bytes)
        .with_context(|| format!("refusing {what}"))
        .code(ExitCodes::USAGE)?;
    Ok((report, bytes))
}

/// Compares, prints in the chosen format, appends Markdown to `$GITHUB_STEP_SUMMARY`, and
/// returns the exit code: 4 on a regression, 5 if the reports are not comparable.
pub(crate) fn gate(old: &Report, new: &Report, gate: &GateArgs, out: &OutputArgs) -> Result<u8, Failure> {
    let cmp: Comparison = joules::compare::compare(old, new, &config(gate)?).code(ExitCodes::INCOMPARABLE)?;
    print!("{}", render::comparison(&cmp, new, format(out), color(out)));
    step_summary(&render::comparison(&cmp, new, Format::Markdown, false));
    Ok(if cmp.regressed() { ExitCodes::REGRESSION } else { ExitCodes::OK })
}

/// Compares two benchmarks of one report and prints it; exit 2 if either is not there, 4 if
/// the new one regressed.
pub(crate) fn variants(
    report: &Report,
    old: &str,
    new: &str,
    gate: &GateArgs,
    out: &OutputArgs,
) -> Result<u8, Failure> {
    let cmp = joules::compare::variants(report, old, new, &config(gate)?).code(ExitCodes::USAGE)?;
    print!("{}", render::comparison(&cmp, report, format(out), color(out)));
    step_summary(&render::comparison(&cmp, report, Format::Markdown, false));
    Ok(if cmp.regressed() { ExitCodes::REGRESSION } else { ExitCodes::OK })
}

/// Appends to the GitHub Actions job summary, when there is one.
pub(crate) fn step_summary(markdown: &str) {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") else { return };
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(markdown.as_bytes()));
    if let Err(e) = appended {
        eprintln!(
            "warning: could not append to $GITHUB_STEP_SUMMARY ({}): {e}",
            PathBuf::from(path).display()
        );
    }
}

/// The benchmark `name` (or its last part) of `report`, or its first.
pub(crate) fn pick_bench<'a>(report: &'a Report, name: Option<&str>) -> Result<&'a BenchReport, Failure> {
    match name {
        Some(n) => joules::compare::find_bench(report, n).code(ExitCodes::USAGE),
        None => report
            .benches
            .first()
            .ok_or_else(|| anyhow!("the report has no benchmark"))
            .code(ExitCodes::USAGE),
    }
}
