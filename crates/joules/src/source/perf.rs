//! RAPL through the perf_event `power` PMU: one event per energy domain, opened once per CPU
//! in the PMU's `cpumask` (one per package), with pid -1. The kernel widens the counters to
//! 64 bits; a count times the event's `.scale` is joules.
//!
//! The PMU rejects every `exclude_*` bit and any sample period (EINVAL), so perf-event2's
//! default `exclude_kernel(true)` is turned off. Opening needs `kernel.perf_event_paranoid`
//! <= 0, or CAP_PERFMON (or CAP_SYS_ADMIN).

use std::fs::File;
use std::io::{ErrorKind, Read};
#[cfg(feature = "perf")]
use std::os::fd::{FromRawFd, IntoRawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::cpu::{CpuId, Topology, Vendor};
use super::roots::Roots;
use super::{Domain, DomainKind, Excluded, Fix, ProbeError, ReadCtx, ReadError, Source, SourceKind};
use crate::counter::WrappingCounter;
use crate::units::{Joules, Nanos};

/// One event to open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventSpec {
    /// The PMU's dynamic type, from `<pmu>/type`.
    pub pmu_type: u32,
    /// The event's config, from `<pmu>/events/<name>`.
    pub config: u64,
    /// The CPU to count on.
    pub cpu: u32,
}

/// Opens an event and returns its counter as a file to read 8 bytes from. The real one is
/// [`open_event`]; tests pass their own, as the syscall is the one thing a test cannot fake
/// with files.
pub type Opener = Arc<dyn Fn(EventSpec) -> std::io::Result<File> + Send + Sync>;

#[cfg(feature = "perf")]
struct PowerEvent(EventSpec);

#[cfg(feature = "perf")]
impl perf_event::events::Event for PowerEvent {
    fn update_attrs(self, attr: &mut perf_event_open_sys::bindings::perf_event_attr) {
        attr.type_ = self.0.pmu_type;
        attr.config = self.0.config;
    }
}

/// `perf_event_open` for a `power` PMU event, system-wide on one CPU.
#[cfg(feature = "perf")]
pub fn open_event(spec: EventSpec) -> std::io::Result<File> {
    let mut counter = perf_event::Builder::new(PowerEvent(spec))
        .any_pid()
        .one_cpu(spec.cpu as usize)
        .exclude_kernel(false)
        .exclude_hv(false)
        .read_format(perf_event::ReadFormat::empty())
        .build()?;
    counter.enable()?;
    // SAFETY: `into_raw_fd` hands over sole ownership of a valid, open fd.
    Ok(unsafe { File::from_raw_fd(counter.into_raw_fd()) })
}

/// Without the `perf` feature there is no `perf_event_open` to call: every open fails, saying
/// how to get it.
#[cfg(not(feature = "perf"))]
pub fn open_event(_spec: EventSpec) -> std::io::Result<File> {
    Err(std::io::Error::new(
        ErrorKind::Unsupported,
        "joules was built without its `perf` feature (enable it to read RAPL through perf_event)",
    ))
}

struct Counter {
    file: File,
    path: PathBuf,
    scale: f64,
    counter: WrappingCounter,
}

/// The perf source.
pub struct Perf {
    pmu: PathBuf,
    /// An AMD CPU's: modelled, not measured.
    modelled: bool,
    domains: Vec<Domain>,
    counters: Vec<Counter>,
    excluded: Vec<Excluded>,
}

impl std::fmt::Debug for Perf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Perf").field("pmu", &self.pmu).field("domains", &self.domains).finish()
    }
}

fn read_file(path: &Path) -> Result<String, ProbeError> {
    std::fs::read_to_string(path).map(|s| s.trim().to_owned()).map_err(|source| match source.kind() {
        ErrorKind::NotFound => ProbeError::Malformed { path: path.to_owned(), reason: "missing".into() },
        _ => ProbeError::Io { path: path.to_owned(), source },
    })
}

/// `0`, `0,18`, `0-3,8` -> CPUs.
fn parse_cpumask(path: &Path, text: &str) -> Result<Vec<u32>, ProbeError> {
    let bad = || ProbeError::Malformed { path: path.to_owned(), reason: format!("not a CPU list: {text:?}") };
    let mut cpus = Vec::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().map_err(|_| bad())?),
        }
    }
    if cpus.is_empty() { Err(bad()) } else { Ok(cpus) }
}

/// `event=0x02` (optionally `,umask=0x..`) -> config.
fn parse_config(path: &Path, text: &str) -> Result<u64, ProbeError> {
    let mut config = 0u64;
    for term in text.split(',') {
        let (key, value) = term.split_once('=').unwrap_or((term, "1"));
        let value = value.trim();
        let v = value
            .strip_prefix("0x")
            .map_or_else(|| value.parse(), |hex| u64::from_str_radix(hex, 16))
            .map_err(|_| ProbeError::Malformed {
                path: path.to_owned(),
                reason: format!("bad term {term:?}"),
            })?;
        match key.trim() {
            "event" => config |= v & 0xff,
            "umask" => config |= (v & 0xff) << 8,
            other => {
                return Err(ProbeError::Malformed {
                    path: path.to_owned(),
                    reason: format!("unknown term {other:?}"),
                });
            }
        }
    }
    Ok(config)
}

pub(crate) fn paranoid(procfs: &Path) -> Option<i32> {
    std::fs::read_to_string(procfs.join("sys/kernel/perf_event_paranoid")).ok()?.trim().parse().ok()
}

impl Perf {
    /// Probes with the roots from the environment and the real `perf_event_open`.
    pub fn probe() -> Result<Self, ProbeError> {
        Self::probe_with(&Roots::from_env(), &(Arc::new(open_event) as Opener))
    }

    /// Probes the `power` PMU under `roots.sysfs`, opening events with `open`.
    pub fn probe_with(roots: &Roots, open: &Opener) -> Result<Self, ProbeError> {
        let pmu = roots.sysfs.join("bus/event_source/devices/power");
        if !pmu.is_dir() {
            return Err(ProbeError::NotPresent {
                path: pmu,
                what: "perf `power` PMU".into(),
                hint: "a VM, a CPU without RAPL, or a kernel without perf RAPL events".into(),
                fix: None,
            });
        }
        let type_path = pmu.join("type");
        let pmu_type: u32 = read_file(&type_path)?.parse().map_err(|_| ProbeError::Malformed {
            path: type_path.clone(),
            reason: "not a PMU type number".into(),
        })?;
        let mask_path = pmu.join("cpumask");
        let cpus = parse_cpumask(&mask_path, &read_file(&mask_path)?)?;
        let topo = Topology::read(&roots.sysfs)?;
        let modelled = CpuId::read(&roots.procfs).is_ok_and(|c| c.vendor == Vendor::Amd);
        let events_dir = pmu.join("events");
        let mut names: Vec<String> = std::fs::read_dir(&events_dir)
            .map_err(|source| ProbeError::Io { path: events_dir.clone(), source })?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("energy-") && !n.contains('.'))
            .collect();
        names.sort();
        let has_pkg = names.iter().any(|n| n == "energy-pkg");
        let mut perf = Perf {
            pmu: pmu.clone(),
            modelled,
            domains: Vec::new(),
            counters: Vec::new(),
            excluded: Vec::new(),
        };
        for name in names {
            let (suffix, kind) = match name.as_str() {
                "energy-pkg" => ("", DomainKind::Package),
                "energy-cores" => ("/core", DomainKind::Core),
                "energy-gpu" => ("/uncore", DomainKind::Uncore),
                "energy-ram" => ("/dram", DomainKind::Dram),
                "energy-psys" if has_pkg => {
                    perf.excluded.push(Excluded {
                        domain: "psys".into(),
                        why: "the platform domain contains the packages; it is not read beside them".into(),
                    });
                    continue;
                }
                "energy-psys" => ("", DomainKind::Psys),
                _ => ("", DomainKind::Other),
            };
            let path = events_dir.join(&name);
            let config = parse_config(&path, &read_file(&path)?)?;
            let scale_path = events_dir.join(format!("{name}.scale"));
            let scale_text = read_file(&scale_path)?;
            let scale: f64 =
                scale_text.parse().ok().filter(|s: &f64| s.is_finite() && *s > 0.0).ok_or_else(|| {
                    ProbeError::Malformed {
                        path: scale_path.clone(),
                        reason: format!("not a positive scale: {scale_text:?}"),
                    }
                })?;
            let unit_path = events_dir.join(format!("{name}.unit"));
            if let Ok(unit) = std::fs::read_to_string(&unit_path)
                && unit.trim() != "Joules"
            {
                return Err(ProbeError::Malformed {
                    path: unit_path,
                    reason: format!("unit {:?}, expected Joules", unit.trim()),
                });
            }
            let mask: &[u32] = if kind == DomainKind::Psys { &cpus[..1] } else { &cpus };
            for &cpu in mask {
                let file = open(EventSpec { pmu_type, config, cpu })
                    .map_err(|e| open_error(&path, cpu, e, roots))?;
                let package = topo.package_of(cpu).unwrap_or(cpu);
                let base = format!("package-{package}");
                let (id, part_of) = match kind {
                    DomainKind::Psys => ("psys".to_owned(), None),
                    DomainKind::Other => (format!("{base}/{}", name.trim_start_matches("energy-")), None),
                    DomainKind::Core | DomainKind::Uncore => (format!("{base}{suffix}"), Some(base.clone())),
                    _ => (format!("{base}{suffix}"), None),
                };
                perf.domains.push(Domain {
                    id,
                    kind,
                    part_of,
                    resolution: Joules(scale),
                    update_period: Nanos(1_000_000),
                    update_period_measured: false,
                });
                perf.counters.push(Counter {
                    file,
                    path: path.clone(),
                    scale,
                    counter: WrappingCounter::with_bits(64),
                });
            }
        }
        if perf.domains.is_empty() {
            return Err(ProbeError::NotPresent {
                path: events_dir,
                what: "energy-* events".into(),
                hint: "the power PMU lists no energy events".into(),
                fix: None,
            });
        }
        Ok(perf)
    }
}

fn open_error(event: &Path, cpu: u32, e: std::io::Error, roots: &Roots) -> ProbeError {
    let path = event.to_owned();
    match e.raw_os_error() {
        Some(libc::EACCES | libc::EPERM) => ProbeError::PermissionDenied {
            path,
            fix: Fix::PerfParanoid { current: paranoid(&roots.procfs), binary: super::msr::current_binary() },
        },
        Some(libc::ENOENT | libc::ENODEV | libc::EOPNOTSUPP) => ProbeError::NotPresent {
            path,
            what: format!("perf power event on CPU {cpu}"),
            hint: format!("perf_event_open: {e}"),
            fix: None,
        },
        Some(libc::EINVAL) => ProbeError::Malformed {
            path,
            reason: format!("perf_event_open on CPU {cpu} rejected the event (EINVAL): {e}"),
        },
        _ => ProbeError::Io { path, source: e },
    }
}

impl Source for Perf {
    fn kind(&self) -> SourceKind {
        SourceKind::Perf
    }

    fn describe(&self) -> String {
        format!("RAPL via perf_event power PMU at {}", self.pmu.display())
    }

    fn modelled(&self) -> bool {
        self.modelled
    }

    fn domains(&self) -> &[Domain] {
        &self.domains
    }

    fn set_update_period(&mut self, index: usize, period: Nanos) {
        super::set_period(&mut self.domains, index, period);
    }

    fn excluded(&self) -> &[Excluded] {
        &self.excluded
    }

    fn read(&mut self, _ctx: &ReadCtx, out: &mut [Joules]) -> Result<(), ReadError> {
        for (c, slot) in self.counters.iter_mut().zip(out) {
            // A perf fd cannot seek (pread gives ESPIPE): each read of 8 bytes at the cursor
            // returns the current count.
            let mut buf = [0u8; 8];
            (&c.file)
                .read_exact(&mut buf)
                .map_err(|source| ReadError::Io { path: c.path.clone(), source })?;
            let count = c.counter.update(u64::from_le_bytes(buf));
            *slot = Joules(count as f64 * c.scale);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpumasks_and_configs() {
        let p = Path::new("x");
        assert_eq!(parse_cpumask(p, "0").unwrap(), vec![0]);
        assert_eq!(parse_cpumask(p, "0,18").unwrap(), vec![0, 18]);
        assert_eq!(parse_cpumask(p, "0-2,8").unwrap(), vec![0, 1, 2, 8]);
        assert!(parse_cpumask(p, "zero").is_err());
        assert_eq!(parse_config(p, "event=0x02").unwrap(), 2);
        assert_eq!(parse_config(p, "event=0x01,umask=0x3").unwrap(), 0x301);
        assert!(parse_config(p, "event=zz").is_err());
    }
}
