//! Ways of reading energy, behind one small trait.
//!
//! A source is probed once ([`Powercap::probe`], ...), which is the only step that walks
//! directories or opens files; after that [`Source::read`] fills a caller-owned slice and
//! allocates nothing. A failed probe keeps its reason and, where there is one, the fix.

mod error;
pub mod estimate;
pub mod powercap;
pub mod sim;

use serde::{Deserialize, Serialize};

pub use error::{Fix, ProbeError, ReadError};
pub use estimate::Estimate as EstimateSource;
pub use powercap::Powercap;
pub use sim::{Sim, SimScript, SimTruth};

use crate::spanlog::SpanLog;
use crate::units::{Joules, Nanos};

/// How a source gets its figures. Every figure in a report carries one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum SourceKind {
    /// RAPL through the powercap sysfs tree.
    Powercap,
    /// Process CPU time times a power model: no counter was read.
    Estimate,
    /// A simulated counter with known ground truth.
    Sim,
}

impl SourceKind {
    /// How figures from this source were obtained, as a report or table says it.
    pub fn provenance(self) -> &'static str {
        match self {
            SourceKind::Powercap => "measured (RAPL powercap)",
            SourceKind::Estimate => "estimated from CPU time",
            SourceKind::Sim => "simulated",
        }
    }

    /// True if the figures come from an energy counter of real hardware.
    pub fn is_measured(self) -> bool {
        matches!(self, SourceKind::Powercap)
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
    pub resolution: Joules,
    /// How often the counter is expected to change.
    pub update_period: Nanos,
}

/// What a source may look at when read: the time, and the spans seen so far (the simulated
/// source draws its power from them; hardware sources ignore them).
#[derive(Debug)]
pub struct ReadCtx<'a> {
    /// When this read happens, since the profiler started.
    pub now: Nanos,
    /// Spans drained up to now.
    pub spans: &'a SpanLog,
}

/// A way of reading energy.
pub trait Source: Send {
    /// How this source gets its figures.
    fn kind(&self) -> SourceKind;
    /// A short description of this source's setup (root path, power model, ...).
    fn describe(&self) -> String;
    /// The counters it reads.
    fn domains(&self) -> &[Domain];
    /// Writes the energy of each domain since this source was opened, in `domains()` order.
    fn read(&mut self, ctx: &ReadCtx<'_>, out: &mut [Joules]) -> Result<(), ReadError>;
}
