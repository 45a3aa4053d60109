//! `cargo joules doctor`.

use joules::doctor::Doctor;
use joules::exit::ExitCodes;
use joules::source::Probe;

use crate::cli::{DoctorArgs, Format};

pub(crate) fn run(args: &DoctorArgs) -> u8 {
    let doctor = Doctor::from_probe(&Probe::from_env());
    match args.format {
        Format::Table => print!("{}", doctor.render()),
        Format::Json => println!("{}", serde_json::to_string_pretty(&doctor).expect("serializes")),
    }
    if doctor.measured { ExitCodes::OK } else { ExitCodes::NO_COUNTER }
}
