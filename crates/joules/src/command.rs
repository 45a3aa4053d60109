//! The energy of a whole command, Rust or not, as `perf stat` gives its counts: what
//! `cargo joules run -- CMD ARGS` does.
//!
//! The profiler starts first, then a [`Window`](crate::Window) labelled `command`, then the
//! command; when it exits, the window ends while the command is still a zombie (so the
//! CPU-time estimate can read its final times), and only then is it reaped. Energy counters
//! (RAPL, NVML) measure their whole domain over that time: every process on the package or
//! GPU, not the command alone, and the figures say so. Where no counter can be read, the
//! estimate counts the command's process tree's CPU time, not this process's.

use std::process::{Command, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::AtomicI32;

use crate::report::Report;
use crate::source::{EstimateSource, Probe, SourceKind};
use crate::window::{WindowEnergy, WindowError};
use crate::{ProfileError, Profiler, Recording};

/// What a measured command did and used.
#[derive(Debug)]
pub struct CommandRun {
    /// How it exited.
    pub status: ExitStatus,
    /// Its energy per domain, with bounds.
    pub energy: Result<WindowEnergy, WindowError>,
    /// Everything the profiler recorded, for a report.
    pub recording: Recording,
}

/// Why a command could not be measured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The profiler did not start.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The command could not be started.
    #[error("could not start {program:?}: {error}")]
    Spawn {
        /// The program.
        program: String,
        /// What the system said.
        error: std::io::Error,
    },
    /// Waiting for the command failed.
    #[error("could not wait for the command: {0}")]
    Wait(std::io::Error),
}

/// Runs `command` under a profiler reading what `probe` chose, the estimate (if it is among
/// them) counting the command's process tree instead of this process, and measures it. `pid`
/// receives the command's process id. The command inherits this process's standard streams.
pub fn run(mut command: Command, mut probe: Probe, pid: &Arc<AtomicI32>) -> Result<CommandRun, CommandError> {
    for s in &mut probe.sources {
        if s.kind() == SourceKind::Estimate {
            // Probed again with the same power model: a trait object cannot be turned back
            // into the estimate it was.
            let estimate = EstimateSource::probe().map_err(|e| ProfileError::NoSource(e.to_string()))?;
            *s = Box::new(estimate.for_command(pid.clone()));
        }
    }
    let profiler = Profiler::builder().probed_from(probe).start()?;
    let program = command.get_program().to_string_lossy().into_owned();
    // Before the spawn: a ^C at once reaches the command, not only this process. A handler
    // is reset to the default by exec, so the command sees the signals as usual.
    let _interrupts = ForwardInterrupts::install();
    let window = profiler.window("command");
    let mut child = command.spawn().map_err(|error| CommandError::Spawn { program, error })?;
    pid.store(child.id() as i32, std::sync::atomic::Ordering::Release);
    wait_leaving_zombie(child.id() as i32).map_err(CommandError::Wait)?;
    let energy = window.end();
    let status = child.wait().map_err(CommandError::Wait)?;
    Ok(CommandRun { status, energy, recording: profiler.stop() })
}

impl CommandRun {
    /// A report with one bench, `name`, of one sample: the command's run. Its domain totals
    /// cover the command's time, from start to exit.
    pub fn report(&self, name: &str) -> Report {
        let rec = &self.recording;
        let (start, end) = match &self.energy {
            Ok(e) => (e.start, e.end),
            Err(_) => (rec.start(), rec.end()),
        };
        let mut warnings = Vec::new();
        if rec.sources.iter().any(|s| s.kind.is_measured()) {
            warnings.push(
                "energy counters measure their whole domain (package, GPU): every process that ran while the \
                 command did is in these figures, not the command alone"
                    .to_owned(),
            );
        }
        rec.report_within(name, crate::attribute::Window { start, end }, warnings)
    }
}

/// Waits for `pid` to exit without reaping it: its `/proc` entry stays, with its final times.
fn wait_leaving_zombie(pid: i32) -> std::io::Result<()> {
    loop {
        // SAFETY: an all-zero siginfo_t is a valid value for waitid to fill in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, writable siginfo_t; the flags are waitid's own.
        let rc =
            unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if rc == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// While it lives, SIGINT and SIGQUIT do not end this process: the terminal sends them to
/// the command too, which decides, and the measurement of its end is still reported (as
/// `perf stat` and `time` do). A handler, not SIG_IGN, so that the command does not inherit
/// the signals ignored.
struct ForwardInterrupts {
    old: [(libc::c_int, libc::sigaction); 2],
}

extern "C" fn ignore(_: libc::c_int) {}

impl ForwardInterrupts {
    fn install() -> Self {
        let mut old = [(libc::SIGINT, zeroed_action()), (libc::SIGQUIT, zeroed_action())];
        for (sig, prev) in &mut old {
            // SAFETY: a null new action only reads the current one into `prev`, a valid value.
            unsafe { libc::sigaction(*sig, std::ptr::null(), prev) };
            if prev.sa_sigaction == libc::SIG_IGN {
                // Ignored already (nohup, a background job): the command inherits that, as
                // it would without joules.
                continue;
            }
            let mut action = zeroed_action();
            action.sa_sigaction = ignore as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            // SAFETY: both pointers are to valid sigaction values; the handler is async-signal-safe
            // (it does nothing).
            unsafe { libc::sigaction(*sig, &action, std::ptr::null_mut()) };
        }
        ForwardInterrupts { old }
    }
}

impl Drop for ForwardInterrupts {
    fn drop(&mut self) {
        for (sig, prev) in &self.old {
            // SAFETY: `prev` is what sigaction returned for this signal.
            unsafe { libc::sigaction(*sig, prev, std::ptr::null_mut()) };
        }
    }
}

fn zeroed_action() -> libc::sigaction {
    // SAFETY: an all-zero sigaction is a valid value (SIG_DFL, empty mask, no flags).
    unsafe { std::mem::zeroed() }
}
