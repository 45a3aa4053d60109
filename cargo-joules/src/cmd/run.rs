//! `cargo joules run -- CMD ARGS`.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicI32;

use anyhow::{Context, anyhow};
use joules::exit::ExitCodes;

use super::{Failure, WithCode};
use crate::cli::{Format, RunArgs};

pub(crate) fn run(args: &RunArgs) -> Result<u8, Failure> {
    let (program, rest) = args.command.split_first().context("no command given").code(ExitCodes::USAGE)?;
    let mut command = Command::new(program);
    command.args(rest);
    let pid = Arc::new(AtomicI32::new(0));
    let selection = args.select.selection().map_err(|e| anyhow!(e)).code(ExitCodes::USAGE)?;
    let probe = joules::source::Probe::selected(&selection);
    if !probe.selection_errors.is_empty() {
        return Err(anyhow!(probe.selection_errors.join("; "))).code(ExitCodes::USAGE);
    }
    let run = joules::command::run(command, probe, &pid).map_err(|e| {
        let code = match e {
            joules::command::CommandError::Profile(joules::ProfileError::Selection(_)) => ExitCodes::USAGE,
            joules::command::CommandError::Profile(_) => ExitCodes::NO_SOURCE,
            _ => ExitCodes::USAGE,
        };
        Failure { code, error: e.into() }
    })?;
    let code = match (run.status.code(), run.status.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(sig)) => 128u8.saturating_add(sig as u8),
        (None, None) => 1,
    };
    let name = args.command.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ");
    let failed = run.recording.failure.clone().or_else(|| {
        run.recording
            .timeline
            .domains
            .iter()
            .find_map(|d| d.ended.as_ref().map(|(_, why)| format!("{}: {why}", d.domain.id)))
    });
    let report = run.report(&name);
    if let Some(path) = &args.output {
        report
            .write_atomic(path)
            .with_context(|| format!("writing {}", path.display()))
            .code(ExitCodes::USAGE)?;
    }
    match (&run.energy, args.format) {
        (Ok(energy), Format::Table) => {
            for s in &report.sources {
                eprintln!("source: {} — {}", s.provenance, s.description);
            }
            eprint!("{}", joules::render::window_table(energy));
            for w in &report.benches[0].warnings {
                eprintln!("warning: {w}");
            }
            eprintln!("{name}: {}", exit_text(&run.status));
        }
        (Ok(energy), Format::Json) => {
            eprintln!("{}", serde_json::to_string_pretty(energy).expect("window figures serialize"));
        }
        (Err(e), _) => eprintln!("error: the command ran, but its energy could not be measured: {e}"),
    }
    if let Some(why) = failed {
        eprintln!("error: an energy source failed during the run: {why}");
        return Ok(ExitCodes::SOURCE_FAILED);
    }
    if run.energy.is_err() {
        return Ok(ExitCodes::SOURCE_FAILED);
    }
    Ok(code)
}

fn exit_text(status: &std::process::ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with {c}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "ended".to_owned(),
    }
}
