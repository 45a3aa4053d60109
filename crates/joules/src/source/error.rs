//! Why a source is unavailable or failed, and how to fix it.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A source could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// The hardware or kernel interface is not there.
    #[error("no {what} at {} ({hint})", path.display())]
    NotPresent {
        /// Where it was looked for.
        path: PathBuf,
        /// What was looked for.
        what: String,
        /// The likely reasons it is missing.
        hint: String,
        /// How to make it appear, where there is a way.
        fix: Option<Fix>,
    },
    /// It is there but this process may not read it.
    #[error("permission denied: {}", path.display())]
    PermissionDenied {
        /// The file that could not be read.
        path: PathBuf,
        /// How to grant access.
        fix: Fix,
    },
    /// It is there but does not look like it should.
    #[error("{}: {reason}", path.display())]
    Malformed {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Any other I/O failure.
    #[error("reading {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A setting is invalid.
    #[error("{0}")]
    Config(String),
}

impl ProbeError {
    /// The fix for this failure, if there is one.
    pub fn fix(&self) -> Option<&Fix> {
        match self {
            ProbeError::NotPresent { fix, .. } => fix.as_ref(),
            ProbeError::PermissionDenied { fix, .. } => Some(fix),
            _ => None,
        }
    }
}

impl From<ReadError> for ProbeError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Io { path, source } => ProbeError::Io { path, source },
            ReadError::Malformed { path, reason } => ProbeError::Malformed { path, reason },
            lost @ ReadError::Lost { .. } => ProbeError::Config(lost.to_string()),
            e @ ReadError::Panicked { .. } => ProbeError::Config(e.to_string()),
        }
    }
}

/// A read of an opened source failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// I/O on an opened counter file failed.
    #[error("reading {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Domains that can no longer be read (GPUs that fell off the bus), each with why; the
    /// source has written the others' values and goes on without them.
    #[error("{}", .lost.iter().map(|(d, why)| format!("domain {d}: {why}")).collect::<Vec<_>>().join("; "))]
    Lost {
        /// Each lost domain's index in `Source::domains`, and why it was lost.
        lost: Vec<(usize, String)>,
    },
    /// The source's `read` panicked: the source is not read again.
    #[error("reading panicked: {reason}")]
    Panicked {
        /// The panic's message.
        reason: String,
    },
    /// A counter file held something other than a number.
    #[error("{}: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What it held.
        reason: String,
    },
}

/// How to make an unavailable source available: exact commands for the paths in use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fix", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Fix {
    /// `energy_uj` is root-only (since the PLATYPUS fix, CVE-2020-8694).
    PowercapReadable {
        /// The powercap root in use.
        root: PathBuf,
    },
    /// The msr module is not loaded.
    LoadMsrModule,
    /// Raw MSR access needs CAP_SYS_RAWIO and a readable device.
    MsrAccess {
        /// The program that needs it.
        binary: PathBuf,
    },
    /// NVML refused this user.
    NvmlAccess,
    /// A hwmon energy or power file is not readable by this user.
    HwmonReadable {
        /// The file.
        file: PathBuf,
    },
    /// perf_event_paranoid forbids system-wide events to unprivileged users.
    PerfParanoid {
        /// The current setting, if it could be read.
        current: Option<i32>,
        /// The program that needs it.
        binary: PathBuf,
    },
}

impl fmt::Display for Fix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fix::PowercapReadable { root } => {
                let root = root.display();
                write!(
                    f,
                    "energy_uj is readable by root only (CVE-2020-8694: energy readings are a side channel \
                     on what other code computes). `cargo joules doctor --fix` prints a plan that makes it \
                     readable by a `power` group rather than by everyone: a udev rule to keep it, and for \
                     this boot `sudo chgrp power {root}/intel-rapl:*/energy_uj {root}/intel-rapl:*/intel-rapl:*/energy_uj \
                     && sudo chmod g+r` on the same files"
                )
            }
            Fix::HwmonReadable { file } => write!(
                f,
                "{} is not readable by this user: `cargo joules doctor --fix` prints the udev rule and \
                 commands that make energy files readable by a `power` group (for this boot: \
                 `sudo chgrp power {0} && sudo chmod g+r {0}`)",
                file.display()
            ),
            Fix::NvmlAccess => write!(
                f,
                "NVML refused this user: check that /dev/nvidia* are readable by it (usually the \
                 `video` group: `sudo usermod -aG video $USER`, then log in again)"
            ),
            Fix::LoadMsrModule => write!(
                f,
                "`sudo modprobe msr` (to keep it: `echo msr | sudo tee /etc/modules-load.d/msr.conf`)"
            ),
            Fix::MsrAccess { binary } => write!(
                f,
                "run as root, or `sudo setcap cap_sys_rawio=ep {}` and `sudo chmod a+r /dev/cpu/*/msr`; \
                 raw MSR access is powerful: prefer powercap or perf where they work",
                binary.display()
            ),
            Fix::PerfParanoid { current, binary } => {
                let now = current.map_or_else(|| "unknown".to_owned(), |c| c.to_string());
                write!(
                    f,
                    "kernel.perf_event_paranoid is {now}; system-wide energy events need <= 0: \
                     `sudo sysctl kernel.perf_event_paranoid=0` (to keep it: \
                     `echo kernel.perf_event_paranoid=0 | sudo tee /etc/sysctl.d/99-joules.conf`), \
                     or grant this program alone: `sudo setcap cap_perfmon=ep {}`",
                    binary.display()
                )
            }
        }
    }
}
