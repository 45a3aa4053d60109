//! Finding and building the bench targets with cargo.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use cargo_metadata::{Message, Metadata, MetadataCommand, Package, TargetKind};

/// A bench target that runs under the joules harness.
#[derive(Debug, Clone)]
pub(crate) struct BenchTarget {
    pub(crate) package: String,
    pub(crate) name: String,
    pub(crate) package_dir: PathBuf,
}

/// `$CARGO` when run by cargo, else `cargo`.
pub(crate) fn cargo_path() -> PathBuf {
    std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from)
}

pub(crate) fn metadata(manifest_path: Option<&Path>) -> Result<Metadata> {
    let mut cmd = MetadataCommand::new();
    cmd.cargo_path(cargo_path()).no_deps();
    if let Some(path) = manifest_path {
        cmd.manifest_path(path);
    }
    cmd.exec().context("running `cargo metadata`")
}

/// Bench targets of the workspace's packages that use joules. A package may list the ones to
/// run in `[package.metadata.joules] benches = [...]` (its other benches, e.g. criterion's,
/// are then left alone).
pub(crate) fn bench_targets(meta: &Metadata, packages: &[String], benches: &[String]) -> Targets {
    let mut out = Targets::default();
    for pkg in meta.workspace_packages() {
        if !packages.is_empty() && !packages.iter().any(|p| *p == *pkg.name) {
            continue;
        }
        if !uses_joules(pkg) {
            continue;
        }
        let listed = listed_benches(pkg);
        for target in pkg.targets.iter().filter(|t| t.kind.contains(&TargetKind::Bench)) {
            let wanted_here = listed.as_ref().is_none_or(|l| l.contains(&target.name));
            let wanted_by_flag = benches.is_empty() || benches.contains(&target.name);
            // A bench with another harness (criterion's) writes no joules report: run only
            // those that use the joules harness, unless listed or named.
            let asked = listed.is_some() || !benches.is_empty();
            if wanted_here && wanted_by_flag && !asked && !uses_harness(target.src_path.as_std_path()) {
                out.skipped.push(format!("`{}` of {}", target.name, pkg.name));
                continue;
            }
            if wanted_here && wanted_by_flag {
                out.run.push(BenchTarget {
                    package: pkg.name.to_string(),
                    name: target.name.clone(),
                    package_dir: pkg
                        .manifest_path
                        .parent()
                        .map(|p| p.as_std_path().to_owned())
                        .unwrap_or_default(),
                });
            }
        }
    }
    out
}

/// Bench targets to run, and those left alone because they use another harness.
#[derive(Debug, Default)]
pub(crate) struct Targets {
    pub(crate) run: Vec<BenchTarget>,
    pub(crate) skipped: Vec<String>,
}

/// Whether a bench's source hands `main` to the joules harness (`joules::bench_main!`, or
/// `joules::bench::run` / `run_with` from a main of its own).
fn uses_harness(src: &Path) -> bool {
    std::fs::read_to_string(src).is_ok_and(|s| s.contains("bench_main!") || s.contains("bench::run"))
}

fn uses_joules(pkg: &Package) -> bool {
    pkg.dependencies.iter().any(|d| d.name == "joules")
}

fn listed_benches(pkg: &Package) -> Option<Vec<String>> {
    let list = pkg.metadata.get("joules")?.get("benches")?.as_array()?;
    Some(list.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
}

/// Builds `targets` with the bench profile; returns each one's executable.
pub(crate) fn build(manifest_path: Option<&Path>, targets: &[BenchTarget]) -> Result<Vec<PathBuf>> {
    let mut cmd = Command::new(cargo_path());
    cmd.args(["build", "--profile", "bench", "--message-format", "json-render-diagnostics"]);
    if let Some(path) = manifest_path {
        cmd.arg("--manifest-path").arg(path);
    }
    for t in targets {
        cmd.args(["--package", &t.package, "--bench", &t.name]);
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let shown = format!("{cmd:?}");
    let mut child = cmd.spawn().with_context(|| format!("starting {shown}"))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut exes: Vec<Option<PathBuf>> = vec![None; targets.len()];
    for message in Message::parse_stream(BufReader::new(stdout)) {
        if let Message::CompilerArtifact(art) = message.context("reading cargo's build messages")? {
            let Some(exe) = art.executable else { continue };
            if !art.target.kind.contains(&TargetKind::Bench) {
                continue;
            }
            let pkg_name = art.package_id.repr.as_str();
            for (i, t) in targets.iter().enumerate() {
                if t.name == art.target.name && pkg_name.contains(&t.package) {
                    exes[i] = Some(exe.clone().into_std_path_buf());
                }
            }
        }
    }
    let status = child.wait().with_context(|| format!("waiting for {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    targets
        .iter()
        .zip(exes)
        .map(|(t, exe)| exe.with_context(|| format!("cargo built no executable for bench `{}`", t.name)))
        .collect()
}
