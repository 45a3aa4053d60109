//! `cargo joules compare OLD [NEW]`.

use super::Failure;
use super::output::{gate, load, report_arg, variants};
use crate::cli::CompareArgs;

pub(crate) fn run(args: &CompareArgs) -> Result<u8, Failure> {
    let manifest = args.manifest_path.as_deref();
    if let Some(benches) = &args.benches {
        let path = report_arg(args.old.as_deref(), manifest)?;
        let report = load(&path, "report", " (run `cargo joules bench` first)")?;
        return variants(&report, &benches[0], &benches[1], &args.gate, &args.output);
    }
    let old_path = report_arg(Some(args.old.as_deref().expect("required without --benches")), manifest)?;
    let new_path = report_arg(args.new.as_deref(), manifest)?;
    let old = load(&old_path, "old report", "")?;
    let new = load(&new_path, "new report", " (run `cargo joules bench` first)")?;
    gate(&old, &new, &args.gate, &args.output)
}
