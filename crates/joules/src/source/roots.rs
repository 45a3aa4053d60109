//! Where the readers look. Every root falls back to an environment variable, then to the
//! kernel's path, in every build: tests and `cargo joules doctor` point them at fakes the
//! same way a user would.

use std::path::PathBuf;

/// The paths the RAPL and CPU readers read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Roots {
    /// `JOULES_POWERCAP_ROOT`, else `/sys/class/powercap`.
    pub powercap: PathBuf,
    /// `JOULES_MSR_DIR`, else `/dev/cpu` (holding `<cpu>/msr`).
    pub msr: PathBuf,
    /// `JOULES_SYSFS_ROOT`, else `/sys` (CPU topology, the perf `power` PMU).
    pub sysfs: PathBuf,
    /// `JOULES_PROCFS_ROOT`, else `/proc` (`cpuinfo`, `sys/kernel/perf_event_paranoid`).
    pub procfs: PathBuf,
    /// `JOULES_NVML_LIB`, else `libnvidia-ml.so.1` wherever the dynamic loader finds it.
    pub nvml_lib: PathBuf,
}

fn env_or(key: &str, default: &str) -> PathBuf {
    std::env::var_os(key).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

impl Roots {
    /// The real kernel paths, each overridable from the environment.
    pub fn from_env() -> Self {
        Roots {
            powercap: env_or(super::powercap::ROOT_ENV, super::powercap::DEFAULT_ROOT),
            msr: env_or("JOULES_MSR_DIR", "/dev/cpu"),
            sysfs: env_or("JOULES_SYSFS_ROOT", "/sys"),
            procfs: env_or("JOULES_PROCFS_ROOT", "/proc"),
            nvml_lib: env_or(super::nvml::LIB_ENV, super::nvml::DEFAULT_LIB),
        }
    }

    /// All of them under one directory, laid out like a machine's: `<dir>/sys/class/powercap`,
    /// `<dir>/dev/cpu`, `<dir>/sys`, `<dir>/proc`, `<dir>/usr/lib/libnvidia-ml.so.1`.
    pub fn under(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        Roots {
            powercap: dir.join("sys/class/powercap"),
            msr: dir.join("dev/cpu"),
            sysfs: dir.join("sys"),
            procfs: dir.join("proc"),
            nvml_lib: dir.join("usr/lib").join(super::nvml::DEFAULT_LIB),
        }
    }
}
