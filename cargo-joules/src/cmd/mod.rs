//! One module per subcommand; each maps its failures to an exit code.

mod bench;
mod compare;
mod doctor;
mod flamegraph;
mod label;
mod output;
mod report;
mod run;

use crate::cli::{Command, JoulesArgs};

/// An error and the exit code it ends the process with.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) error: anyhow::Error,
}

pub(crate) trait WithCode<T> {
    fn code(self, code: u8) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> WithCode<T> for Result<T, E> {
    fn code(self, code: u8) -> Result<T, Failure> {
        self.map_err(|e| Failure { code, error: e.into() })
    }
}

pub(crate) fn run(args: JoulesArgs) -> Result<u8, Failure> {
    match args.command {
        Command::Bench(b) => bench::run(&b),
        Command::Compare(c) => compare::run(&c),
        Command::Doctor(d) => Ok(doctor::run(&d)),
        Command::Flamegraph(f) => flamegraph::run(&f),
        Command::Label(l) => label::run(&l),
        Command::Report(r) => report::run(&r),
        Command::Run(r) => run::run(&r),
    }
}
