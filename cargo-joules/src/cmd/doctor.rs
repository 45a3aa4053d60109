//! `cargo joules doctor`.

use joules::doctor::Doctor;
use joules::exit::ExitCodes;
use joules::source::Probe;

use crate::cli::{DoctorArgs, Format};

/// `doctor --fix [--apply]`: the plan, printed; applied only when asked.
fn fix(args: &DoctorArgs) -> u8 {
    let roots = joules::source::Roots::from_env();
    let plan = joules::access::plan(
        &roots,
        &args.rules_dir,
        &args.group,
        args.msr,
        std::path::Path::new("<program>"),
    );
    if !args.apply {
        match args.format {
            Format::Table => print!("{}", plan.render()),
            Format::Json => println!("{}", serde_json::to_string_pretty(&plan).expect("serializes")),
        }
        return ExitCodes::OK;
    }
    // Root changes what the plan names: only the kernel's own paths, never ones an
    // environment variable pointed elsewhere.
    let moved: Vec<&str> = ["JOULES_POWERCAP_ROOT", "JOULES_SYSFS_ROOT", "JOULES_MSR_DIR"]
        .into_iter()
        .filter(|v| std::env::var_os(v).is_some())
        .collect();
    if !moved.is_empty() {
        eprintln!("error: --apply changes the kernel's own files only: unset {}", moved.join(", "));
        return ExitCodes::USAGE;
    }
    match joules::access::apply(&plan) {
        Ok(done) => {
            println!("wrote {}", done.rules_file.display());
            for f in &done.files {
                println!("{f}: group {g}, group-readable", f = f.display(), g = plan.group);
            }
            println!(
                "next: `sudo udevadm control --reload-rules`; members of {} read energy after logging in again",
                plan.group
            );
            ExitCodes::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCodes::USAGE
        }
    }
}

pub(crate) fn run(args: &DoctorArgs) -> u8 {
    if args.fix {
        return fix(args);
    }
    let selection = match args.select.selection() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCodes::USAGE;
        }
    };
    let probe = Probe::selected(&selection);
    let doctor = Doctor::from_probe(&probe);
    match args.format {
        Format::Table => print!("{}", doctor.render()),
        Format::Json => println!("{}", serde_json::to_string_pretty(&doctor).expect("serializes")),
    }
    if !probe.selection_errors.is_empty() {
        for e in &probe.selection_errors {
            eprintln!("error: {e}");
        }
        return ExitCodes::USAGE;
    }
    // Figures would be estimates where the estimate is read, or nothing is.
    let estimated = doctor.in_use.is_empty() || doctor.in_use.contains(&joules::source::SourceKind::Estimate);
    if estimated { ExitCodes::NO_COUNTER } else { ExitCodes::OK }
}
