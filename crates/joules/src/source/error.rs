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
    },
    /// It is there but this process may not read it.
    #[error("permission denied reading {}; fix: {fix}", path.display())]
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
}

impl fmt::Display for Fix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fix::PowercapReadable { root } => {
                let root = root.display();
                write!(
                    f,
                    "energy_uj is readable by root only (CVE-2020-8694). For this boot: \
                     `sudo chmod a+r {root}/intel-rapl:*/energy_uj {root}/intel-rapl:*/intel-rapl:*/energy_uj`; \
                     to keep it, a udev rule in /etc/udev/rules.d/90-joules-rapl.rules: \
                     `SUBSYSTEM==\"powercap\", ACTION==\"add\", RUN+=\"/bin/chmod a+r /sys%p/energy_uj\"`. \
                     Readable energy counters let other local users infer secrets through power side \
                     channels: grant this on machines you trust"
                )
            }
        }
    }
}
