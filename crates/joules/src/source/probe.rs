//! Choosing sources: probe every way of reading energy in order of trust, read each package
//! through one reader only, measure each counter's update period, and keep the reason for
//! everything not used.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::perf::{self, Opener};
use super::select::{Only, Selection};
use super::{
    Domain, DomainKind, EstimateSource, Excluded, Msr, Perf, Powercap, ProbeError, ReadCtx, Roots, Source,
    SourceKind,
};
use crate::units::{Joules, Nanos};

/// What became of a probed source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum ProbeStatus {
    /// It is read.
    InUse,
    /// It works, but a more trusted reader already reads the same packages.
    Superseded {
        /// The reader used instead.
        by: SourceKind,
    },
    /// It works but is not needed: energy counters are read instead (the estimate).
    Standby,
    /// It was not chosen (`--source` / `JOULES_SOURCES`), or none of its domains was
    /// (`--domain` / `JOULES_DOMAINS`).
    NotSelected,
    /// It could not be opened.
    Unavailable {
        /// Why.
        reason: String,
        /// How to make it available, if there is a way.
        fix: Option<String>,
    },
}

/// One probed source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Which way of reading.
    pub kind: SourceKind,
    /// What became of it.
    #[serde(flatten)]
    pub status: ProbeStatus,
    /// Its setup, when it opened.
    pub description: Option<String>,
    /// Its counters, when it opened.
    pub domains: Vec<Domain>,
    /// Domains it leaves out, and why.
    pub excluded: Vec<Excluded>,
}

/// The sources chosen, and the outcome of every probe.
pub struct Probe {
    /// The sources to read, most trusted first.
    pub sources: Vec<Box<dyn Source>>,
    /// Every source probed, in order of trust.
    pub outcomes: Vec<Outcome>,
    /// What is wrong with the choice of sources and domains (an unknown name, a domain no
    /// source offers): a profile refuses to start on such a probe.
    pub selection_errors: Vec<String>,
    /// Every hwmon device, with what it offers and what is read from it.
    pub hwmon: Vec<super::hwmon::HwmonDevice>,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe").field("outcomes", &self.outcomes).finish_non_exhaustive()
    }
}

/// How long to watch a counter for its update period.
const PERIOD_BUDGET: Duration = Duration::from_millis(40);
/// NVML's counter steps every 10-100 ms: three steps take longer to see.
const NVML_PERIOD_BUDGET: Duration = Duration::from_millis(300);

impl Probe {
    /// Probes the real machine (roots overridable from the environment).
    /// Probes the real machine (roots overridable from the environment), reading the sources
    /// and domains `JOULES_SOURCES` and `JOULES_DOMAINS` choose.
    pub fn from_env() -> Self {
        let (selection, error) = match Selection::from_env() {
            Ok(s) => (s, None),
            Err(e) => (Selection::default(), Some(e)),
        };
        let mut probe = Self::selected(&selection);
        probe.selection_errors.extend(error);
        probe
    }

    /// Probes the real machine (roots overridable from the environment), reading what
    /// `selection` chooses.
    pub fn selected(selection: &Selection) -> Self {
        Self::run_with(&Roots::from_env(), &(Arc::new(perf::open_event) as Opener), selection)
    }

    /// Probes, in order of trust: perf `power` PMU, powercap, MSR; then the estimate, used
    /// only where no counter could be read.
    pub fn run(roots: &Roots, perf_open: &Opener) -> Self {
        Self::run_with(roots, perf_open, &Selection::default())
    }

    /// [`run`](Self::run), reading only the sources and domains `selection` chooses (the
    /// estimate too, beside counters, when it names it).
    pub fn run_with(roots: &Roots, perf_open: &Opener, selection: &Selection) -> Self {
        let mut probe = Probe {
            sources: Vec::new(),
            outcomes: Vec::new(),
            selection_errors: Vec::new(),
            hwmon: Vec::new(),
        };
        // Every domain id a source offered, for domain patterns that match none.
        let mut offered: Vec<String> = Vec::new();
        // Package-level domains already read, and by whom: a package is read once.
        let mut covered: Vec<(String, SourceKind)> = Vec::new();
        for kind in [SourceKind::Perf, SourceKind::Powercap, SourceKind::Msr] {
            if !selection.allows(kind) {
                probe.outcomes.push(not_selected(kind));
                continue;
            }
            let source = match open_rapl(kind, roots, perf_open) {
                Ok(s) => s,
                Err(e) => {
                    probe.outcomes.push(unavailable(kind, &e));
                    continue;
                }
            };
            offered.extend(source.domains().iter().map(|d| d.id.clone()));
            // The packages it reads, whatever of them is selected: a reader that reads a
            // package another already reads stays out entirely, so no domain of a package
            // (its DRAM, its cores) is ever read twice.
            let packages: BTreeSet<String> = source
                .domains()
                .iter()
                .filter(|d| matches!(d.kind, DomainKind::Package | DomainKind::Psys))
                .map(|d| d.id.clone())
                .collect();
            if let Some(by) = covered.iter().find(|(id, _)| packages.contains(id)).map(|&(_, by)| by) {
                probe.outcomes.push(opened(source.as_ref(), ProbeStatus::Superseded { by }));
                continue;
            }
            // A reader none of whose domains is selected claims no package: the next may
            // offer what was asked for.
            let Some(mut source) = Only::wrap(source, selection) else {
                probe.outcomes.push(not_selected(kind));
                continue;
            };
            measure_update_period(source.as_mut(), PERIOD_BUDGET);
            covered.extend(packages.into_iter().map(|id| (id, kind)));
            probe.outcomes.push(opened(source.as_ref(), ProbeStatus::InUse));
            probe.sources.push(source);
        }
        // GPUs come on top of whatever reads the CPU.
        match super::nvml::probe(&roots.nvml_lib) {
            _ if !selection.allows(SourceKind::Nvml) => probe.outcomes.push(not_selected(SourceKind::Nvml)),
            Ok(sources) => {
                for s in sources {
                    let kind = s.kind();
                    offered.extend(s.domains().iter().map(|d| d.id.clone()));
                    let Some(mut s) = Only::wrap(Box::new(s), selection) else {
                        probe.outcomes.push(not_selected(kind));
                        continue;
                    };
                    if s.domains().iter().any(|d| d.update_period.0 > 0) {
                        measure_update_period(s.as_mut(), NVML_PERIOD_BUDGET);
                    }
                    probe.outcomes.push(opened(s.as_ref(), ProbeStatus::InUse));
                    probe.sources.push(s);
                }
            }
            Err(e) => probe.outcomes.push(unavailable(SourceKind::Nvml, &e)),
        }
        // Every other sensor the kernel offers: AMD and Intel GPUs, AMD Zen cores and
        // sockets (those RAPL reads are left out), Jetson rails.
        let rapl_packages: Vec<String> = covered.iter().map(|(id, _)| id.clone()).collect();
        if selection.allows(SourceKind::Hwmon) {
            let found = super::hwmon::probe(&roots.sysfs, &rapl_packages);
            probe.hwmon = found.devices;
            if let Some(e) = found.failure {
                probe.outcomes.push(unavailable(SourceKind::Hwmon, &e));
            }
            for s in found.sources {
                let kind = s.kind();
                offered.extend(s.domains().iter().map(|d| d.id.clone()));
                // A CPU package or a board's rails read here mean the CPU is measured:
                // the estimate stays out.
                let cpu = |d: &Domain| matches!(d.kind, DomainKind::Package | DomainKind::Rail);
                let cpu_ids: Vec<String> =
                    s.domains().iter().filter(|d| cpu(d)).map(|d| d.id.clone()).collect();
                let Some(mut s) = Only::wrap(Box::new(s), selection) else {
                    probe.outcomes.push(not_selected(kind));
                    continue;
                };
                if s.domains().iter().any(|d| d.update_period.0 > 0) {
                    measure_update_period(s.as_mut(), PERIOD_BUDGET);
                }
                covered.extend(cpu_ids.into_iter().map(|id| (id, kind)));
                probe.outcomes.push(opened(s.as_ref(), ProbeStatus::InUse));
                probe.sources.push(s);
            }
        } else {
            probe.hwmon = super::hwmon::devices(&roots.sysfs);
            probe.outcomes.push(not_selected(SourceKind::Hwmon));
        }
        match EstimateSource::probe() {
            _ if !selection.allows(SourceKind::Estimate) => {
                probe.outcomes.push(not_selected(SourceKind::Estimate))
            }
            Ok(e) if covered.is_empty() || selection.names_estimate() => {
                offered.extend(e.domains().iter().map(|d| d.id.clone()));
                // Beside counters (named on purpose, to compare) it models energy they
                // measure: part of the first package read, so no total adds it twice.
                let e = match covered.first() {
                    Some((package, _)) => e.beside(package),
                    None => e,
                };
                match Only::wrap(Box::new(e), selection) {
                    Some(e) => {
                        probe.outcomes.push(opened(e.as_ref(), ProbeStatus::InUse));
                        probe.sources.push(e);
                    }
                    None => probe.outcomes.push(not_selected(SourceKind::Estimate)),
                }
            }
            Ok(e) => probe.outcomes.push(opened(&e, ProbeStatus::Standby)),
            Err(e) => probe.outcomes.push(unavailable(SourceKind::Estimate, &e)),
        }
        let ids: Vec<&str> = offered.iter().map(String::as_str).collect();
        for pattern in selection.unmatched(&ids) {
            probe.selection_errors.push(format!(
                "no source offers a domain {pattern:?} (offered here: {})",
                if ids.is_empty() { "none".to_owned() } else { ids.join(", ") }
            ));
        }
        probe
    }

    /// True when at least one energy counter (not the estimate) is read.
    pub fn has_counter(&self) -> bool {
        self.sources.iter().any(|s| s.kind().is_measured())
    }
}

fn open_rapl(kind: SourceKind, roots: &Roots, perf_open: &Opener) -> Result<Box<dyn Source>, ProbeError> {
    Ok(match kind {
        SourceKind::Perf => Box::new(Perf::probe_with(roots, perf_open)?),
        SourceKind::Powercap => Box::new(Powercap::probe_in(&roots.powercap, &roots.procfs)?),
        SourceKind::Msr => Box::new(Msr::probe_with(roots)?),
        other => unreachable!("{other:?} is not a RAPL reader"),
    })
}

fn unavailable(kind: SourceKind, e: &ProbeError) -> Outcome {
    Outcome {
        kind,
        status: ProbeStatus::Unavailable { reason: e.to_string(), fix: e.fix().map(ToString::to_string) },
        description: None,
        domains: Vec::new(),
        excluded: Vec::new(),
    }
}

fn not_selected(kind: SourceKind) -> Outcome {
    Outcome {
        kind,
        status: ProbeStatus::NotSelected,
        description: None,
        domains: Vec::new(),
        excluded: Vec::new(),
    }
}

fn opened(s: &dyn Source, status: ProbeStatus) -> Outcome {
    Outcome {
        kind: s.kind(),
        status,
        description: Some(s.describe()),
        domains: s.domains().to_vec(),
        excluded: s.excluded().to_vec(),
    }
}

/// Watches `source` for up to `budget`, timing the edges at which each domain's value changes,
/// and records the median interval between edges as the domain's update period. Domains that
/// change fewer than three times keep their nominal period.
pub fn measure_update_period(source: &mut dyn Source, budget: Duration) {
    let n = source.domains().len();
    let mut last = vec![Joules(f64::NAN); n];
    let mut now = vec![Joules(0.0); n];
    let mut edges: Vec<Vec<Instant>> = vec![Vec::new(); n];
    let start = Instant::now();
    let pause = Duration::from_nanos(source.min_interval().0 / 10);
    while start.elapsed() < budget && edges.iter().any(|e| e.len() < 8) {
        // A source with a minimum interval is read ten times as often, not in a tight loop.
        std::thread::sleep(pause);
        let ctx = ReadCtx { now: Nanos::from(start.elapsed()) };
        if source.read(&ctx, &mut now).is_err() {
            return;
        }
        let t = Instant::now();
        for d in 0..n {
            if !last[d].0.is_nan() && now[d] != last[d] {
                edges[d].push(t);
            }
            last[d] = now[d];
        }
    }
    for (d, e) in edges.iter().enumerate() {
        if e.len() >= 3 {
            let mut gaps: Vec<u64> = e.windows(2).map(|w| Nanos::from(w[1] - w[0]).0).collect();
            gaps.sort_unstable();
            source.set_update_period(d, Nanos(gaps[gaps.len() / 2]));
        }
    }
}
