//! `cargo joules doctor`.

use joules::doctor::Doctor;
use joules::exit::ExitCodes;
use joules::source::Probe;

use crate::cli::{DoctorArgs, Format};

pub(crate) fn run(args: &DoctorArgs) -> u8 {
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
    if doctor.measured { ExitCodes::OK } else { ExitCodes::NO_COUNTER }
}
