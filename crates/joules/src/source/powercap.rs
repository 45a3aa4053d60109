//! RAPL through the powercap sysfs tree: `<root>/intel-rapl:N` zones (packages, psys) and
//! their `intel-rapl:N:M` subzones (core, uncore, dram). AMD Zen also appears here.
//!
//! Each zone's `energy_uj` is opened once and re-read with `pread` at offset 0; the counter
//! wraps at the zone's `max_energy_range_uj`. A subzone's energy is reported on its own and,
//! for core and uncore, marked as part of its package, never added to it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{Domain, DomainKind, Excluded, Fix, ProbeError, ReadCtx, ReadError, Source, SourceKind};
use crate::counter::WrappingCounter;
use crate::units::{Joules, Nanos};

/// The environment variable that overrides the powercap root.
pub const ROOT_ENV: &str = "JOULES_POWERCAP_ROOT";
/// Where the kernel puts it.
pub const DEFAULT_ROOT: &str = "/sys/class/powercap";

/// A zone found by [`discover`], not yet opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PowerZone {
    /// The directory, e.g. `<root>/intel-rapl:0/intel-rapl:0:0`.
    pub path: PathBuf,
    /// The kernel's zone id, e.g. `intel-rapl:0:0`.
    pub zone: String,
    /// Contents of its `name` file, e.g. `core`.
    pub name: String,
    /// The zone id of its parent, for subzones.
    pub parent: Option<String>,
    /// Contents of `max_energy_range_uj`: the counter wraps there.
    pub max_energy_range_uj: u64,
}

struct OpenedZone {
    path: PathBuf,
    file: File,
    counter: WrappingCounter,
    last: Option<u64>,
}

/// The powercap source.
pub struct Powercap {
    root: PathBuf,
    /// An AMD CPU's: modelled, not measured.
    modelled: bool,
    domains: Vec<Domain>,
    zones: Vec<OpenedZone>,
    excluded: Vec<Excluded>,
}

impl std::fmt::Debug for Powercap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Powercap").field("root", &self.root).field("domains", &self.domains).finish()
    }
}

/// Lists the RAPL zones under `root`, each once (the kernel shows subzones both at the top of
/// `/sys/class/powercap` and inside their parent).
pub fn discover(root: &Path) -> Result<Vec<PowerZone>, ProbeError> {
    let entries = std::fs::read_dir(root).map_err(|source| match source.kind() {
        ErrorKind::NotFound => not_present(root),
        _ => ProbeError::Io { path: root.to_owned(), source },
    })?;
    let mut found = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|source| ProbeError::Io { path: root.to_owned(), source })?;
        let zone = entry.file_name().to_string_lossy().into_owned();
        if zone_parts(&zone).is_none() {
            continue;
        }
        let path = entry.path();
        if let Ok(children) = std::fs::read_dir(&path) {
            for child in children.flatten() {
                let sub = child.file_name().to_string_lossy().into_owned();
                if sub.starts_with(&format!("{zone}:")) && zone_parts(&sub).is_some() {
                    found.entry(sub).or_insert_with(|| child.path());
                }
            }
        }
        found.entry(zone).or_insert(path);
    }
    if found.is_empty() {
        return Err(not_present(root));
    }
    found.into_iter().map(|(zone, path)| read_zone(zone, path)).collect()
}

fn not_present(root: &Path) -> ProbeError {
    ProbeError::NotPresent {
        path: root.to_owned(),
        what: "RAPL powercap zones (intel-rapl:N)".into(),
        hint: "a VM, a CPU without RAPL, or the intel_rapl module not loaded: \
               `sudo modprobe intel_rapl_common`"
            .into(),
        fix: None,
    }
}

/// `intel-rapl:0` -> `[0]`, `intel-rapl:0:1` -> `[0, 1]`; anything else -> `None`.
fn zone_parts(zone: &str) -> Option<Vec<u32>> {
    let rest = zone.strip_prefix("intel-rapl:")?;
    let parts: Option<Vec<u32>> = rest.split(':').map(|p| p.parse().ok()).collect();
    parts.filter(|p| (1..=2).contains(&p.len()))
}

fn read_zone(zone: String, path: PathBuf) -> Result<PowerZone, ProbeError> {
    let name_path = path.join("name");
    let name = read_text(&name_path)?.trim().to_owned();
    if name.is_empty() {
        return Err(ProbeError::Malformed { path: name_path, reason: "empty zone name".into() });
    }
    let range_path = path.join("max_energy_range_uj");
    let max_energy_range_uj = parse_uj(&range_path, &read_text(&range_path)?)
        .map_err(|reason| ProbeError::Malformed { path: range_path.clone(), reason })?;
    if max_energy_range_uj == 0 {
        return Err(ProbeError::Malformed {
            path: range_path,
            reason: "max_energy_range_uj is 0: the counter's wrap point is unknown".into(),
        });
    }
    let parent = zone.rsplit_once(':').filter(|_| zone_parts(&zone).is_some_and(|p| p.len() == 2));
    let parent = parent.map(|(p, _)| p.to_owned());
    Ok(PowerZone { path, zone, name, parent, max_energy_range_uj })
}

fn read_text(path: &Path) -> Result<String, ProbeError> {
    std::fs::read_to_string(path).map_err(|source| match source.kind() {
        ErrorKind::NotFound => ProbeError::Malformed {
            path: path.to_owned(),
            reason: "missing: a powercap zone must have this file".into(),
        },
        _ => ProbeError::Io { path: path.to_owned(), source },
    })
}

fn parse_uj(path: &Path, text: &str) -> Result<u64, String> {
    let t = text.trim();
    t.parse::<u64>()
        .map_err(|_| format!("expected a whole number of microjoules in {}, found {t:?}", path.display()))
}

impl Powercap {
    /// Probes the root from `JOULES_POWERCAP_ROOT`, else `/sys/class/powercap`.
    pub fn probe() -> Result<Self, ProbeError> {
        Self::probe_at(&super::Roots::from_env().powercap)
    }

    /// Probes the tree at `root` and opens every zone's counter (the CPU's vendor, which
    /// says whether its figures are measured or modelled, from `JOULES_PROCFS_ROOT`, else
    /// `/proc`).
    pub fn probe_at(root: &Path) -> Result<Self, ProbeError> {
        Self::probe_in(root, &super::Roots::from_env().procfs)
    }

    /// As [`Powercap::probe_at`], reading the CPU's vendor from `<procfs>/cpuinfo`.
    pub fn probe_in(root: &Path, procfs: &Path) -> Result<Self, ProbeError> {
        let modelled = super::cpu::CpuId::read(procfs).is_ok_and(|c| c.vendor == super::cpu::Vendor::Amd);
        let zones = discover(root)?;
        let mut ids = BTreeMap::new();
        for z in zones.iter().filter(|z| z.parent.is_none()) {
            ids.insert(z.zone.clone(), z.name.clone());
        }
        let mut domains = Vec::new();
        let mut opened = Vec::new();
        let mut excluded = Vec::new();
        let has_package = zones.iter().any(|z| z.parent.is_none() && z.name.starts_with("package"));
        for z in zones {
            if z.parent.is_none() && z.name == "psys" && has_package {
                excluded.push(Excluded {
                    domain: "psys".into(),
                    why: "the platform domain contains the packages; it is not read beside them".into(),
                });
                continue;
            }
            let energy_path = z.path.join("energy_uj");
            let file = File::open(&energy_path).map_err(|source| match source.kind() {
                ErrorKind::PermissionDenied => ProbeError::PermissionDenied {
                    path: energy_path.clone(),
                    fix: Fix::PowercapReadable { root: root.to_owned() },
                },
                ErrorKind::NotFound => ProbeError::Malformed {
                    path: energy_path.clone(),
                    reason: "missing: a powercap zone must have this file".into(),
                },
                _ => ProbeError::Io { path: energy_path.clone(), source },
            })?;
            let mut zone = OpenedZone {
                path: energy_path,
                file,
                counter: WrappingCounter::new(z.max_energy_range_uj),
                last: None,
            };
            // One read now, so an unreadable or garbled counter fails the probe, not the run.
            zone.read_raw().map_err(|e| match e {
                ReadError::Io { path, source } if source.kind() == ErrorKind::PermissionDenied => {
                    ProbeError::PermissionDenied {
                        path,
                        fix: Fix::PowercapReadable { root: root.to_owned() },
                    }
                }
                other => ProbeError::from(other),
            })?;
            let parent_name = z.parent.as_ref().and_then(|p| ids.get(p)).cloned();
            let kind = match (z.name.as_str(), &parent_name) {
                (n, None) if n.starts_with("package") => DomainKind::Package,
                ("psys", None) => DomainKind::Psys,
                ("core", Some(_)) => DomainKind::Core,
                ("uncore", Some(_)) => DomainKind::Uncore,
                ("dram", _) => DomainKind::Dram,
                _ => DomainKind::Other,
            };
            let id = match &parent_name {
                Some(p) => format!("{p}/{}", z.name),
                None => z.name.clone(),
            };
            // DRAM sits under its package in sysfs but is not part of the package's energy.
            let part_of = parent_name.filter(|_| kind != DomainKind::Dram);
            domains.push(Domain {
                id,
                kind,
                part_of,
                resolution: Joules(1e-6),
                update_period: Nanos(1_000_000),
                update_period_measured: false,
            });
            opened.push(zone);
        }
        Ok(Powercap { root: root.to_owned(), modelled, domains, zones: opened, excluded })
    }
}

impl OpenedZone {
    fn read_raw(&mut self) -> Result<u64, ReadError> {
        let mut buf = [0u8; 32];
        let n = self
            .file
            .read_at(&mut buf, 0)
            .map_err(|source| ReadError::Io { path: self.path.clone(), source })?;
        let text = std::str::from_utf8(&buf[..n]).unwrap_or("");
        parse_uj(&self.path, text).map_err(|reason| ReadError::Malformed { path: self.path.clone(), reason })
    }

    fn read_joules(&mut self) -> Result<Joules, ReadError> {
        let mut raw = self.read_raw()?;
        if self.last.is_some_and(|last| raw < last) {
            // An apparent wrap is read once more before it is believed: counting a wrap
            // that did not happen would add a whole `max_energy_range_uj` to the total.
            raw = self.read_raw()?;
        }
        self.last = Some(raw);
        Ok(Joules(self.counter.update(raw) as f64 * 1e-6))
    }
}

impl Source for Powercap {
    fn kind(&self) -> SourceKind {
        SourceKind::Powercap
    }

    fn describe(&self) -> String {
        format!("RAPL via powercap at {}", self.root.display())
    }

    fn modelled(&self) -> bool {
        self.modelled
    }

    fn domains(&self) -> &[Domain] {
        &self.domains
    }

    fn excluded(&self) -> &[Excluded] {
        &self.excluded
    }

    fn set_update_period(&mut self, index: usize, period: Nanos) {
        super::set_period(&mut self.domains, index, period);
    }

    fn longest_gap(&self) -> Nanos {
        let range = self.zones.iter().map(|z| z.counter.modulus()).min().unwrap_or(u64::MAX);
        super::wrap_gap(Joules(range as f64 * 1e-6))
    }

    fn read(&mut self, _ctx: &ReadCtx, out: &mut [Joules]) -> Result<(), ReadError> {
        for (zone, slot) in self.zones.iter_mut().zip(out) {
            *slot = zone.read_joules()?;
        }
        Ok(())
    }
}
