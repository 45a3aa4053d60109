//! Ways of reading energy, behind one small trait.
//!
//! A source is probed once ([`Powercap::probe`], ...), which is the only step that walks
//! directories or opens files; after that [`Source::read`] fills a caller-owned slice and
//! allocates nothing. A failed probe keeps its reason and, where there is one, the fix.

pub mod cpu;
mod error;
pub mod estimate;
pub mod hwmon;
mod integral;
pub mod msr;
pub mod nvml;
pub mod perf;
pub mod powercap;
mod probe;
mod roots;
pub mod select;
pub mod sim;

use serde::{Deserialize, Serialize};

pub use error::{Fix, ProbeError, ReadError};
pub use estimate::Estimate as EstimateSource;
pub use msr::Msr;
pub use perf::Perf;
pub use powercap::Powercap;
pub use probe::{Outcome, Probe, ProbeStatus, measure_update_period};
pub use roots::Roots;
pub use select::Selection;
pub use sim::{Sim, SimScript, SimTruth};

use crate::units::{Joules, Nanos};

/// How a source gets its figures. Every figure in a report carries one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum SourceKind {
    /// RAPL through the perf_event `power` PMU.
    Perf,
    /// RAPL through the powercap sysfs tree.
    Powercap,
    /// RAPL through model-specific registers.
    Msr,
    /// NVIDIA GPUs through NVML's energy counter.
    Nvml,
    /// NVIDIA GPUs through NVML power readings, integrated over time.
    NvmlPower,
    /// A hwmon energy counter (amdgpu, xe, i915, amd_energy).
    Hwmon,
    /// hwmon power readings (amdgpu, INA3221 rails), integrated over time.
    HwmonPower,
    /// Process CPU time times a power model: no counter was read.
    Estimate,
    /// A simulated counter with known ground truth.
    Sim,
}

impl SourceKind {
    /// How figures from this source were obtained, as a report or table says it.
    pub fn provenance(self) -> &'static str {
        match self {
            SourceKind::Perf => "measured (RAPL perf_event)",
            SourceKind::Powercap => "measured (RAPL powercap)",
            SourceKind::Msr => "measured (RAPL MSR)",
            SourceKind::Nvml => "measured (NVML energy counter)",
            SourceKind::NvmlPower => "integrated (NVML power readings; sampled, not an energy counter)",
            SourceKind::Hwmon => "measured (hwmon energy counter)",
            SourceKind::HwmonPower => "integrated (hwmon power readings; sampled, not an energy counter)",
            SourceKind::Estimate => "estimated from CPU time",
            SourceKind::Sim => "simulated",
        }
    }

    /// The provenance of figures from this kind of source, or, where the CPU models the
    /// energy ([`Source::modelled`]), "modelled by the CPU" with how it was read.
    pub fn label(self, modelled: bool) -> String {
        match self.provenance().strip_prefix("measured (") {
            Some(how) if modelled => format!("modelled by the CPU (AMD {how}"),
            _ => self.provenance().to_owned(),
        }
    }

    /// True if the figures come from an energy counter of real hardware.
    pub fn is_measured(self) -> bool {
        matches!(
            self,
            SourceKind::Perf | SourceKind::Powercap | SourceKind::Msr | SourceKind::Nvml | SourceKind::Hwmon
        )
    }

    /// The short name used on the command line and in `doctor`.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Perf => "perf",
            SourceKind::Powercap => "powercap",
            SourceKind::Msr => "msr",
            SourceKind::Nvml => "nvml",
            SourceKind::NvmlPower => "nvml-power",
            SourceKind::Hwmon => "hwmon",
            SourceKind::HwmonPower => "hwmon-power",
            SourceKind::Estimate => "estimate",
            SourceKind::Sim => "sim",
        }
    }
}

/// What part of the machine a domain covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum DomainKind {
    /// A CPU package (socket): cores, caches, uncore.
    Package,
    /// The cores of a package (part of it).
    Core,
    /// The uncore or integrated GPU of a package (part of it).
    Uncore,
    /// Memory attached to a package (not part of the package figure).
    Dram,
    /// The whole platform (includes packages; never added to them).
    Psys,
    /// The CPU as a whole, as the estimate models it.
    Cpu,
    /// A GPU board.
    Gpu,
    /// A power rail of a board (Jetson's INA3221 channels), measured where it enters.
    Rail,
    /// Anything else a source reports.
    Other,
}

/// One energy counter of a source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Domain {
    /// Stable id, e.g. `package-0`, `package-0/core`, `cpu`.
    pub id: String,
    /// What it covers.
    pub kind: DomainKind,
    /// The domain it is part of, if any: its energy is already inside that one.
    pub part_of: Option<String>,
    /// The smallest energy step the counter shows.
    #[serde(rename = "resolution_j")]
    pub resolution: Joules,
    /// How often the counter changes: measured at start where `update_period_measured`,
    /// else the hardware's nominal period (0: continuously).
    #[serde(rename = "update_period_ns")]
    pub update_period: Nanos,
    /// Whether `update_period` was measured on this machine.
    #[serde(default)]
    pub update_period_measured: bool,
}

/// A domain a source could read but leaves out, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Excluded {
    /// The domain id.
    pub domain: String,
    /// Why it is not read.
    pub why: String,
}

/// What a source may look at when read: the time.
#[derive(Clone, Copy, Debug)]
pub struct ReadCtx {
    /// When this read happens, since the profiler started.
    pub now: Nanos,
}

/// A way of reading energy.
pub trait Source: Send {
    /// How this source gets its figures.
    fn kind(&self) -> SourceKind;
    /// A short description of this source's setup (root path, power model, ...).
    fn describe(&self) -> String;

    /// True where the hardware models this energy rather than measuring it (AMD's RAPL, read
    /// any way): reports then say "modelled by the CPU" beside every figure from it.
    fn modelled(&self) -> bool {
        false
    }
    /// The counters it reads.
    fn domains(&self) -> &[Domain];
    /// Domains it could read but leaves out (e.g. psys beside packages).
    fn excluded(&self) -> &[Excluded] {
        &[]
    }
    /// Records a measured update period for domain `index`.
    fn set_update_period(&mut self, index: usize, period: Nanos);
    /// The sampler reads this source at most this often (0: every poll).
    fn min_interval(&self) -> Nanos {
        Nanos(0)
    }
    /// True if a read returns the counter exactly as of [`ReadCtx::now`] (the simulator);
    /// hardware latches somewhere inside the read, which the sampler takes as its middle.
    fn latches_at_start(&self) -> bool {
        false
    }
    /// The longest the sampler may leave this source unread: its counters must not wrap
    /// twice in between, which no correction could see (default: never a concern).
    fn longest_gap(&self) -> Nanos {
        Nanos(u64::MAX)
    }
    /// Writes the energy of each domain since this source was opened, in `domains()` order.
    fn read(&mut self, ctx: &ReadCtx, out: &mut [Joules]) -> Result<(), ReadError>;
}

/// Half the time a counter wrapping at `range` joules takes to wrap at [`MAX_PLAUSIBLE`].
pub(crate) fn wrap_gap(range: Joules) -> Nanos {
    Nanos((range.0 / MAX_PLAUSIBLE.0 * 0.5 * 1e9) as u64)
}

/// More than any one RAPL domain draws: the power a wrap-safe read interval allows for.
const MAX_PLAUSIBLE: crate::units::Watts = crate::units::Watts(1000.0);

fn set_period(domains: &mut [Domain], index: usize, period: Nanos) {
    if let Some(d) = domains.get_mut(index) {
        d.update_period = period;
        d.update_period_measured = true;
    }
}
