//! Every energy and power sensor the kernel offers through hwmon: `<sysfs>/class/hwmon/hwmon*/`.
//!
//! Drivers are recognised by their `name` file:
//! - `amdgpu` (AMD Radeon and Instinct GPUs): `energy1_input` where the kernel has it, else
//!   `power1_input` (instant) or `power1_average`, integrated. One domain, `amdgpu:N`, a GPU.
//! - `xe`, `i915` (Intel Arc and Data Center GPUs): `energyN_input`, one domain per channel,
//!   `intel-gpu:N` for the first (the card) and `intel-gpu:N/<label>` for the others, part of
//!   the card.
//! - `amd_energy` (AMD Zen servers): `energyN_input` labelled `EcoreNNN` (a core) or
//!   `EsocketN` (a socket). Sockets become `package-N`, the same domain RAPL reads: where a
//!   RAPL reader already reads `package-N`, the socket is left out (named in `excluded`) and
//!   only the cores are read, as parts of that package. Cores are `package-S/coreNNN`, their
//!   socket from the CPU topology.
//! - `ina3221` (the Jetson boards' rail monitors): per channel, `powerN_input` or, as most
//!   Jetson kernels have it, `inN_input` (mV) times `currN_input` (mA), integrated. Rails are
//!   `rail:<label>`; where one is the board's input (`VDD_IN`), the others are part of it.
//!
//! Energy counters are preferred to power. They are monotonic microjoules, 64 bits wide: a
//! smaller value is a reset (a driver reload, a GPU reset), not a wrap, and the shared
//! [`WrappingCounter`] counts from it ([`WrappingCounter::resetting`]). Power is integrated
//! between reads (the trapezoid rule), as NVML power is, and labelled "integrated".
//!
//! Every other hwmon device (temperatures, fans, NVMe) is listed by [`devices`] with what it
//! offers, so `doctor` can say why it is not read.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Domain, DomainKind, Excluded, Fix, ProbeError, ReadCtx, ReadError, Source, SourceKind};
use crate::counter::WrappingCounter;
use crate::units::{Joules, Nanos};

/// A hwmon device, as `doctor` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HwmonDevice {
    /// Its directory's name, e.g. `hwmon3`.
    pub hwmon: String,
    /// Its driver, from its `name` file.
    pub driver: String,
    /// What it is, where the driver is known: "AMD GPU", "Intel GPU", "AMD Zen cores and
    /// sockets", "Jetson board rails".
    pub what: Option<String>,
    /// Its energy and power channels (`energy1_input`, `power1_average`, `in1_input` with
    /// `curr1_input`), by file name.
    pub offers: Vec<String>,
    /// What is read from it, by domain id.
    pub read: Vec<String>,
    /// Why the rest is not.
    pub not_read: Vec<String>,
}

/// Known drivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Driver {
    AmdGpu,
    IntelGpu,
    AmdEnergy,
    Ina3221,
}

impl Driver {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "amdgpu" => Some(Driver::AmdGpu),
            "xe" | "i915" => Some(Driver::IntelGpu),
            "amd_energy" => Some(Driver::AmdEnergy),
            "ina3221" => Some(Driver::Ina3221),
            _ => None,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Driver::AmdGpu => "AMD GPU",
            Driver::IntelGpu => "Intel GPU",
            Driver::AmdEnergy => "AMD Zen cores and sockets",
            Driver::Ina3221 => "Jetson board rails",
        }
    }
}

/// How a channel is read.
enum Reader {
    /// `energyN_input`, microjoules.
    Energy { file: Opened, counter: WrappingCounter, last: Option<u64> },
    /// `powerN_input` or `powerN_average`, microwatts, integrated.
    Power { file: Opened, integral: Integral },
    /// `inN_input` (mV) times `currN_input` (mA): microwatts, integrated.
    VoltAmp { volts: Opened, amps: Opened, integral: Integral },
}

struct Opened {
    path: PathBuf,
    file: File,
}

#[derive(Default)]
struct Integral {
    /// The last power read and when, in watts and ns.
    last: Option<(f64, Nanos)>,
    joules: f64,
}

impl Integral {
    fn add(&mut self, watts: f64, now: Nanos) -> Joules {
        if let Some((w, t)) = self.last
            && now > t
        {
            self.joules += (w + watts) / 2.0 * (now - t).as_secs_f64();
        }
        self.last = Some((watts, now));
        Joules(self.joules)
    }
}

impl Opened {
    fn open(path: PathBuf) -> Result<Self, ProbeError> {
        let file = File::open(&path).map_err(|source| match source.kind() {
            ErrorKind::PermissionDenied => ProbeError::PermissionDenied {
                path: path.clone(),
                fix: Fix::HwmonReadable { file: path.clone() },
            },
            _ => ProbeError::Io { path: path.clone(), source },
        })?;
        let mut opened = Opened { path, file };
        // One read now, so an unreadable or garbled file fails the probe, not the run.
        opened.read().map_err(|e| match e {
            ReadError::Io { path, source } if source.kind() == ErrorKind::PermissionDenied => {
                ProbeError::PermissionDenied { fix: Fix::HwmonReadable { file: path.clone() }, path }
            }
            other => ProbeError::from(other),
        })?;
        Ok(opened)
    }

    /// The file's whole number (hwmon values are decimal integers).
    fn read(&mut self) -> Result<u64, ReadError> {
        let mut buf = [0u8; 32];
        let n = self
            .file
            .read_at(&mut buf, 0)
            .map_err(|source| ReadError::Io { path: self.path.clone(), source })?;
        let text = std::str::from_utf8(&buf[..n]).unwrap_or("").trim();
        // Some sensors report a negative current for a moment (noise around zero): none.
        if let Some(neg) = text.strip_prefix('-') {
            return neg.parse::<u64>().map(|_| 0).map_err(|_| self.malformed(text));
        }
        text.parse::<u64>().map_err(|_| self.malformed(text))
    }

    fn malformed(&self, text: &str) -> ReadError {
        ReadError::Malformed {
            path: self.path.clone(),
            reason: format!("expected a whole number, found {text:?}"),
        }
    }
}

impl Reader {
    fn read(&mut self, now: Nanos) -> Result<Joules, ReadError> {
        match self {
            Reader::Energy { file, counter, last } => {
                let mut raw = file.read()?;
                if last.is_some_and(|l| raw < l) {
                    // A reset is read once more before it is believed.
                    raw = file.read()?;
                }
                *last = Some(raw);
                Ok(Joules(counter.update(raw) as f64 * 1e-6))
            }
            Reader::Power { file, integral } => {
                let microwatts = file.read()?;
                Ok(integral.add(microwatts as f64 * 1e-6, now))
            }
            Reader::VoltAmp { volts, amps, integral } => {
                let (mv, ma) = (volts.read()?, amps.read()?);
                Ok(integral.add(mv as f64 * ma as f64 * 1e-6, now))
            }
        }
    }
}

/// The hwmon energy counters (kind [`SourceKind::Hwmon`]) or integrated power readings
/// ([`SourceKind::HwmonPower`]).
pub struct Hwmon {
    kind: SourceKind,
    root: PathBuf,
    domains: Vec<Domain>,
    readers: Vec<Reader>,
    excluded: Vec<Excluded>,
}

impl std::fmt::Debug for Hwmon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hwmon")
            .field("kind", &self.kind)
            .field("domains", &self.domains)
            .finish_non_exhaustive()
    }
}

impl Source for Hwmon {
    fn kind(&self) -> SourceKind {
        self.kind
    }

    fn describe(&self) -> String {
        let how =
            if self.kind == SourceKind::Hwmon { "energy counters" } else { "power readings, integrated" };
        format!("hwmon {how} at {}", self.root.display())
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

    fn min_interval(&self) -> Nanos {
        // Power sensors refresh every few milliseconds at best (INA3221's conversion time,
        // amdgpu's SMU): reading them every poll only costs.
        if self.kind == SourceKind::HwmonPower { Nanos(5_000_000) } else { Nanos(0) }
    }

    fn read(&mut self, ctx: &ReadCtx, out: &mut [Joules]) -> Result<(), ReadError> {
        for (reader, slot) in self.readers.iter_mut().zip(out) {
            *slot = reader.read(ctx.now)?;
        }
        Ok(())
    }
}

/// What a probe of hwmon found: up to two sources (counters, integrated power), every
/// device, and the domains left out.
#[derive(Debug, Default)]
pub struct HwmonProbe {
    /// Sources to read: energy counters first, then integrated power.
    pub sources: Vec<Hwmon>,
    /// Every device, with what it offers and what is read.
    pub devices: Vec<HwmonDevice>,
}

/// A channel found on a device, before opening.
struct Channel {
    /// The domain it would be.
    domain: Domain,
    /// The file(s): one for energy and power, two for volts and amps.
    files: Vec<PathBuf>,
    how: How,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum How {
    Energy,
    Power,
    VoltAmp,
}

/// The directory hwmon devices live in under `sysfs`.
pub fn root(sysfs: &Path) -> PathBuf {
    sysfs.join("class/hwmon")
}

/// Probes `<sysfs>/class/hwmon`. `rapl_packages`: package domains a RAPL reader already
/// reads (an `amd_energy` socket there is the same energy, and is not read again).
pub fn probe(sysfs: &Path, rapl_packages: &[String]) -> Result<HwmonProbe, ProbeError> {
    let dir = root(sysfs);
    let entries = std::fs::read_dir(&dir).map_err(|source| match source.kind() {
        ErrorKind::NotFound => not_present(&dir),
        _ => ProbeError::Io { path: dir.clone(), source },
    })?;
    let mut hwmons: Vec<(u32, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            Some((name.strip_prefix("hwmon")?.parse().ok()?, e.path()))
        })
        .collect();
    hwmons.sort();
    let mut probe = HwmonProbe::default();
    let mut counters: Vec<(Domain, Reader)> = Vec::new();
    let mut integrated: Vec<(Domain, Reader)> = Vec::new();
    let mut excluded: Vec<Excluded> = Vec::new();
    let mut seen: BTreeMap<Driver, u32> = BTreeMap::new();
    for (index, path) in hwmons {
        let driver_name = std::fs::read_to_string(path.join("name")).unwrap_or_default().trim().to_owned();
        let driver = Driver::from_name(&driver_name);
        let offers = offered(&path);
        let mut device = HwmonDevice {
            hwmon: format!("hwmon{index}"),
            driver: driver_name.clone(),
            what: driver.map(|d| d.what().to_owned()),
            offers: offers.clone(),
            read: Vec::new(),
            not_read: Vec::new(),
        };
        let Some(driver) = driver else {
            if !offers.is_empty() {
                device
                    .not_read
                    .push(format!("driver {driver_name:?} is not one joules knows the meaning of"));
            }
            probe.devices.push(device);
            continue;
        };
        let n = *seen.entry(driver).and_modify(|n| *n += 1).or_insert(0);
        let channels = channels(driver, n, &path);
        if channels.is_empty() {
            device.not_read.push("no energy or power channel".into());
        }
        // What a read channel stands in for: the others of the same quantity.
        let chosen: Vec<String> = channels
            .iter()
            .flat_map(|c| c.files.iter())
            .map(|f| file_names(std::slice::from_ref(f)))
            .collect();
        if driver == Driver::AmdGpu {
            for f in offers.iter().filter(|f| f.starts_with("power") || f.starts_with("energy")) {
                if !chosen.contains(f) {
                    let instead = chosen.join(", ");
                    let why = if instead.starts_with("energy") {
                        "the energy counter is read instead"
                    } else {
                        "the instant reading is integrated instead (an average spans a second or more)"
                    };
                    device.not_read.push(format!("{f}: {why}"));
                }
            }
        }
        for ch in channels {
            if driver == Driver::AmdEnergy
                && ch.domain.kind == DomainKind::Package
                && rapl_packages.contains(&ch.domain.id)
            {
                let why = format!("{} is read by RAPL already: the same energy, read once", ch.domain.id);
                device.not_read.push(format!("{}: {why}", file_names(&ch.files)));
                excluded.push(Excluded { domain: format!("{} ({})", ch.domain.id, device.hwmon), why });
                continue;
            }
            let opened: Result<Vec<Opened>, ProbeError> =
                ch.files.iter().cloned().map(Opened::open).collect();
            let mut opened = match opened {
                Ok(o) => o,
                Err(e) => {
                    device.not_read.push(format!("{}: {e}", file_names(&ch.files)));
                    excluded.push(Excluded { domain: ch.domain.id.clone(), why: e.to_string() });
                    continue;
                }
            };
            device.read.push(format!("{} ({})", ch.domain.id, file_names(&ch.files)));
            match ch.how {
                How::Energy => {
                    let file = opened.remove(0);
                    counters.push((
                        ch.domain,
                        Reader::Energy { file, counter: WrappingCounter::resetting(), last: None },
                    ));
                }
                How::Power => {
                    let file = opened.remove(0);
                    integrated.push((ch.domain, Reader::Power { file, integral: Integral::default() }));
                }
                How::VoltAmp => {
                    let amps = opened.remove(1);
                    let volts = opened.remove(0);
                    integrated
                        .push((ch.domain, Reader::VoltAmp { volts, amps, integral: Integral::default() }));
                }
            }
        }
        probe.devices.push(device);
    }
    for (kind, list) in [(SourceKind::Hwmon, counters), (SourceKind::HwmonPower, integrated)] {
        if list.is_empty() {
            continue;
        }
        let (domains, readers): (Vec<Domain>, Vec<Reader>) = list.into_iter().unzip();
        let excluded = if kind == SourceKind::Hwmon { std::mem::take(&mut excluded) } else { Vec::new() };
        probe.sources.push(Hwmon { kind, root: dir.clone(), domains, readers, excluded });
    }
    if probe.sources.is_empty() {
        let known = probe.devices.iter().filter(|d| d.what.is_some()).count();
        return Err(if known == 0 {
            ProbeError::NotPresent {
                path: dir,
                what:
                    "hwmon energy or power sensors of a known driver (amdgpu, xe, i915, amd_energy, ina3221)"
                        .into(),
                hint: format!(
                    "{} other hwmon device(s): temperatures, fans and the like",
                    probe.devices.len()
                ),
                fix: None,
            }
        } else {
            let why: Vec<String> = probe.devices.iter().flat_map(|d| d.not_read.clone()).collect();
            ProbeError::Config(format!("no hwmon channel could be read: {}", why.join("; ")))
        });
    }
    Ok(probe)
}

/// Lists every hwmon device and what it offers, without opening any counter (for `doctor`
/// where the probe failed).
pub fn devices(sysfs: &Path) -> Vec<HwmonDevice> {
    let Ok(entries) = std::fs::read_dir(root(sysfs)) else { return Vec::new() };
    let mut list: Vec<(u32, HwmonDevice)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let index: u32 = name.strip_prefix("hwmon")?.parse().ok()?;
            let driver = std::fs::read_to_string(e.path().join("name")).unwrap_or_default().trim().to_owned();
            let what = Driver::from_name(&driver).map(|d| d.what().to_owned());
            let offers = offered(&e.path());
            Some((
                index,
                HwmonDevice { hwmon: name, driver, what, offers, read: Vec::new(), not_read: Vec::new() },
            ))
        })
        .collect();
    list.sort_by_key(|(i, _)| *i);
    list.into_iter().map(|(_, d)| d).collect()
}

fn not_present(dir: &Path) -> ProbeError {
    ProbeError::NotPresent {
        path: dir.to_owned(),
        what: "hwmon devices".into(),
        hint: "no hardware monitoring driver is loaded: a VM, or a container without /sys".into(),
        fix: None,
    }
}

fn file_names(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| f.file_name().unwrap_or_default().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" x ")
}

/// The energy and power channel files of a device, sorted.
fn offered(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| {
            let channel = |prefix: &str, suffix: &str| {
                f.strip_prefix(prefix)
                    .and_then(|r| r.strip_suffix(suffix))
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            };
            channel("energy", "_input")
                || channel("power", "_input")
                || channel("power", "_average")
                || channel("curr", "_input")
                || channel("in", "_input")
        })
        .collect();
    files.sort();
    files
}

/// The channel numbers `prefix<N><suffix>` present in `dir`, ascending.
fn numbered(dir: &Path, prefix: &str, suffix: &str) -> Vec<u32> {
    let mut n: Vec<u32> = offered(dir)
        .iter()
        .filter_map(|f| f.strip_prefix(prefix)?.strip_suffix(suffix)?.parse().ok())
        .collect();
    n.sort_unstable();
    n.dedup();
    n
}

fn label(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok().map(|l| l.trim().to_owned()).filter(|l| !l.is_empty())
}

fn domain(id: String, kind: DomainKind, part_of: Option<String>, how: How) -> Domain {
    Domain {
        id,
        kind,
        part_of,
        // Energy in microjoules; power in microwatts, integrated: no step of its own.
        resolution: Joules(1e-6),
        // Energy counters step at the driver's pace (measured at start); power is read
        // continuously and integrated.
        update_period: if how == How::Energy { Nanos(1_000_000) } else { Nanos(0) },
        update_period_measured: false,
    }
}

/// The channels of a known device, in the order they are read.
fn channels(driver: Driver, n: u32, dir: &Path) -> Vec<Channel> {
    let energy = numbered(dir, "energy", "_input");
    let file = |f: String| dir.join(f);
    match driver {
        Driver::AmdGpu => {
            let id = format!("amdgpu:{n}");
            if let Some(&e) = energy.first() {
                return vec![Channel {
                    domain: domain(id, DomainKind::Gpu, None, How::Energy),
                    files: vec![file(format!("energy{e}_input"))],
                    how: How::Energy,
                }];
            }
            // Instant power where the kernel has it: the average is over a second or more.
            let power = ["power1_input", "power1_average"].into_iter().find(|f| dir.join(f).exists());
            power
                .map(|p| Channel {
                    domain: domain(id, DomainKind::Gpu, None, How::Power),
                    files: vec![file(p.to_owned())],
                    how: How::Power,
                })
                .into_iter()
                .collect()
        }
        Driver::IntelGpu => {
            let card = format!("intel-gpu:{n}");
            energy
                .iter()
                .enumerate()
                .map(|(i, &e)| {
                    let (id, part_of) = if i == 0 {
                        (card.clone(), None)
                    } else {
                        let l =
                            label(dir, &format!("energy{e}_label")).unwrap_or_else(|| format!("energy{e}"));
                        (format!("{card}/{l}"), Some(card.clone()))
                    };
                    Channel {
                        domain: domain(id, DomainKind::Gpu, part_of, How::Energy),
                        files: vec![file(format!("energy{e}_input"))],
                        how: How::Energy,
                    }
                })
                .collect()
        }
        Driver::AmdEnergy => {
            // The driver numbers cores across sockets in order, so a core's socket is its
            // number over the cores per socket.
            let labels: Vec<String> =
                energy.iter().filter_map(|&e| label(dir, &format!("energy{e}_label"))).collect();
            let sockets = labels.iter().filter(|l| l.starts_with("Esocket")).count().max(1) as u32;
            let cores = labels.iter().filter(|l| l.starts_with("Ecore")).count() as u32;
            let per_socket = (cores / sockets).max(1);
            energy
                .iter()
                .filter_map(|&e| {
                    let l = label(dir, &format!("energy{e}_label"))?;
                    let f = vec![file(format!("energy{e}_input"))];
                    if let Some(socket) = l.strip_prefix("Esocket").and_then(|s| s.parse::<u32>().ok()) {
                        let id = format!("package-{socket}");
                        return Some(Channel {
                            domain: domain(id, DomainKind::Package, None, How::Energy),
                            files: f,
                            how: How::Energy,
                        });
                    }
                    let core: u32 = l.strip_prefix("Ecore")?.parse().ok()?;
                    let package = core / per_socket;
                    let parent = format!("package-{package}");
                    let id = format!("{parent}/core{core:03}");
                    Some(Channel {
                        domain: domain(id, DomainKind::Core, Some(parent), How::Energy),
                        files: f,
                        how: How::Energy,
                    })
                })
                .collect()
        }
        Driver::Ina3221 => {
            let rails: Vec<(u32, String)> = numbered(dir, "in", "_input")
                .into_iter()
                .chain(numbered(dir, "power", "_input"))
                .filter_map(|c| Some((c, label(dir, &format!("in{c}_label"))?)))
                .collect::<BTreeMap<u32, String>>()
                .into_iter()
                .collect();
            let input = rails.iter().find(|(_, l)| l.eq_ignore_ascii_case("VDD_IN")).map(|(_, l)| rail_id(l));
            rails
                .iter()
                .filter_map(|(c, l)| {
                    let id = rail_id(l);
                    let part_of = input.clone().filter(|i| *i != id);
                    if dir.join(format!("power{c}_input")).exists() {
                        return Some(Channel {
                            domain: domain(id, DomainKind::Rail, part_of, How::Power),
                            files: vec![file(format!("power{c}_input"))],
                            how: How::Power,
                        });
                    }
                    let (v, a) = (format!("in{c}_input"), format!("curr{c}_input"));
                    (dir.join(&v).exists() && dir.join(&a).exists()).then(|| Channel {
                        domain: domain(id, DomainKind::Rail, part_of, How::VoltAmp),
                        files: vec![file(v), file(a)],
                        how: How::VoltAmp,
                    })
                })
                .collect()
        }
    }
}

fn rail_id(label: &str) -> String {
    format!("rail:{}", label.to_ascii_lowercase())
}
