//! `cargo joules`: a thin command line over the `joules` library.

mod cargo;
mod cli;
mod cmd;
mod html;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli::Cargo::Joules(args) = cli::Cargo::parse();
    match cmd::run(*args) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("error: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}
