//! `cargo joules compare OLD [NEW]`.

use std::path::{Path, PathBuf};

use joules::exit::ExitCodes;

use super::output::{baseline_path, gate, load, variants};
use super::{Failure, WithCode};
use crate::cargo;
use crate::cli::CompareArgs;

pub(crate) fn run(args: &CompareArgs) -> Result<u8, Failure> {
    let joules_dir = || -> Result<PathBuf, Failure> {
        let meta = cargo::metadata(args.manifest_path.as_deref()).code(ExitCodes::METADATA_FAILED)?;
        Ok(meta.target_directory.as_std_path().join("joules"))
    };
    // A path if it looks like one (or exists), else a baseline name.
    let resolve = |arg: &str| -> Result<PathBuf, Failure> {
        if arg.ends_with(".json") || arg.contains('/') || Path::new(arg).exists() {
            Ok(PathBuf::from(arg))
        } else {
            baseline_path(&joules_dir()?, arg)
        }
    };
    if let Some(benches) = &args.benches {
        let path = match &args.old {
            Some(r) => resolve(r)?,
            None => joules_dir()?.join("report.json"),
        };
        let report = load(&path, "report", " (run `cargo joules bench` first)")?;
        return variants(&report, &benches[0], &benches[1], &args.gate, &args.output);
    }
    let old_path = resolve(args.old.as_deref().expect("required without --benches"))?;
    let new_path = match &args.new {
        Some(n) => resolve(n)?,
        None => joules_dir()?.join("report.json"),
    };
    let old = load(&old_path, "old report", "")?;
    let new = load(&new_path, "new report", " (run `cargo joules bench` first)")?;
    gate(&old, &new, &args.gate, &args.output)
}
