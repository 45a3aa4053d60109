//! Every energy and power sensor the kernel offers through hwmon: `<sysfs>/class/hwmon/hwmon*/`.
//!
//! Drivers are recognised by their `name` file:
//! - `amdgpu` (AMD Radeon and Instinct GPUs): an `energyN_input` where a kernel has one (none
//!   in mainline today: its accumulator is in `gpu_metrics`), else `power1_input` (instant)
//!   or `power1_average` (a second or more), integrated. One domain, `amdgpu:N`, a GPU. An
//!   APU's power (labelled `slowPPT`/`fastPPT`) is the whole socket's: it is marked part of
//!   the package RAPL reads, never added to it.
//! - `xe`, `i915` (Intel Arc and Data Center GPUs): `energyN_input`, one domain per channel,
//!   `intel-gpu:N` for the first (the card) and `intel-gpu:N/<label>` for the others, part of
//!   the card.
//! - `amd_energy` (AMD Zen servers; out of the mainline kernel since 5.13, packaged by AMD):
//!   `energyN_input` labelled `EcoreN` (logical CPU N) or `EsocketN` (one per NUMA node,
//!   each reading its node's package). Sockets become `package-P`, P from the CPU topology,
//!   one per package (nodes of one package are the same energy): where a RAPL reader already
//!   reads `package-P`, the socket is left out (named in `excluded`) and only the cores are
//!   read, as parts of that package. Cores are `package-P/coreNNN`.
//! - `ina3221` (the Jetson boards' rail monitors): per channel, `powerN_input` or, as most
//!   Jetson kernels have it, `inN_input` (mV) times `currN_input` (mA), integrated. Rails are
//!   `rail:<label>` (`railK:<label>` on the K-th such device); unconnected (`NC`) and disabled
//!   channels are skipped; where one is the board's input (`VDD_IN`), the others are part of it.
//!
//! Energy counters are preferred to power. They are monotonic microjoules, 64 bits wide: a
//! smaller value is a reset, not a wrap: the shared [`WrappingCounter`] takes it as its new
//! baseline ([`WrappingCounter::rebase`]), and the interval it fell in is given the energy of
//! the power before it (flat power across the gap, as the reader cannot see when in the
//! interval the reset came), or what the counter shows since, if more. A value more than
//! 1 kW could have reached since the last read is an accumulated one the counter restarted
//! from, and only a baseline. Power is integrated between reads (the trapezoid rule), as
//! NVML power is, and labelled "integrated".
//!
//! A read refused for a moment (EPERM, EBUSY, EAGAIN, ENODATA: amdgpu while runtime-suspended
//! or resetting) keeps the channel's last value, and power integration starts afresh after
//! it. A channel that fails otherwise (its device gone) ends its own domain only.
//!
//! Every other hwmon device (temperatures, fans, NVMe) is listed by [`devices`] with what it
//! offers, so `doctor` can say why it is not read.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::integral::PowerIntegral;
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
    Energy {
        file: Opened,
        counter: WrappingCounter,
        /// The last raw value that differed from the one before, and when it was read: the
        /// counter's latest step (reads between steps show the same value).
        last: Option<(u64, Nanos)>,
        /// Its power over the last [`RATE_SPAN`] or more, watts, and where that span started.
        rate: Option<f64>,
        anchor: Option<(u64, Nanos)>,
        /// Energy added across resets, joules (the counter restarts under them).
        across_resets: f64,
        value: Joules,
    },
    /// `powerN_input` or `powerN_average`, microwatts, integrated.
    Power { file: Opened, integral: PowerIntegral },
    /// `inN_input` (mV) times `currN_input` (mA): microwatts, integrated.
    VoltAmp { volts: Opened, amps: Opened, integral: PowerIntegral },
}

/// A reset's interval is given the power measured over at least this long before it: two
/// steps' read times are too close and too jittery to make a power of.
const RATE_SPAN: Nanos = Nanos(20_000_000);

/// More than a hwmon channel draws: a reset whose first value implies more is a new baseline.
const MAX_PLAUSIBLE_W: f64 = 1000.0;

struct Opened {
    path: PathBuf,
    file: File,
    /// Negative readings (a current's noise around zero) count as 0; an energy's may not.
    clamp_negative: bool,
}

/// Errors that mean "not now" (a suspended or resetting device), not "gone".
fn transient(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM | libc::EBUSY | libc::EAGAIN | libc::ENODATA))
}

impl Opened {
    fn open(path: PathBuf, clamp_negative: bool) -> Result<Self, ProbeError> {
        let denied = |path: &Path| ProbeError::PermissionDenied {
            path: path.to_owned(),
            fix: Fix::HwmonReadable { file: path.to_owned() },
        };
        let file = File::open(&path).map_err(|source| match source.raw_os_error() {
            Some(libc::EACCES) => denied(&path),
            _ => ProbeError::Io { path: path.clone(), source },
        })?;
        let mut opened = Opened { path, file, clamp_negative };
        // One read now, so an unreadable or garbled file fails the probe, not the run; a
        // device refusing for a moment (suspended) is read later.
        match opened.read() {
            Ok(_) => Ok(opened),
            Err(ReadError::Io { path, source }) if source.raw_os_error() == Some(libc::EACCES) => {
                Err(denied(&path))
            }
            Err(other) => Err(ProbeError::from(other)),
        }
    }

    /// The file's whole number (hwmon values are decimal integers); None if the device
    /// refuses for a moment.
    fn read(&mut self) -> Result<Option<u64>, ReadError> {
        let mut buf = [0u8; 32];
        let n = match self.file.read_at(&mut buf, 0) {
            Ok(n) => n,
            Err(e) if transient(&e) => return Ok(None),
            Err(source) => return Err(ReadError::Io { path: self.path.clone(), source }),
        };
        let text = std::str::from_utf8(&buf[..n]).unwrap_or("").trim();
        if let Some(neg) = text.strip_prefix('-')
            && self.clamp_negative
        {
            return neg.parse::<u64>().map(|_| Some(0)).map_err(|_| self.malformed(text));
        }
        text.parse::<u64>().map(Some).map_err(|_| self.malformed(text))
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
            Reader::Energy { file, counter, last, rate, anchor, across_resets, value } => {
                let Some(mut raw) = file.read()? else { return Ok(*value) };
                if let Some((l, at)) = *last {
                    if raw < l {
                        // A reset is read once more before it is believed.
                        raw = file.read()?.unwrap_or(raw);
                    }
                    let since = (now - at).as_secs_f64();
                    if raw < l {
                        // The counter restarted somewhere in the interval: what it shows now
                        // is only the energy since. The interval's energy is taken at the
                        // power of the interval before (flat power across the gap), and at
                        // least what it shows; a value more than 1 kW could have reached is
                        // an accumulated one it restarted from, a new baseline only.
                        let shown = raw as f64 * 1e-6;
                        let flat = rate.map_or(0.0, |w| w * since);
                        let plausible = shown <= MAX_PLAUSIBLE_W * since;
                        *across_resets += if plausible { shown.max(flat) } else { flat };
                        counter.rebase(raw);
                        *last = Some((raw, now));
                        *anchor = Some((raw, now));
                        *value = Joules(counter.update(raw) as f64 * 1e-6 + *across_resets);
                        return Ok(*value);
                    }
                    if raw == l {
                        // No step since: nothing new, and the last step's time stands.
                        return Ok(*value);
                    }
                }
                match *anchor {
                    Some((a, t)) if now - t >= RATE_SPAN && raw >= a => {
                        *rate = Some((raw - a) as f64 * 1e-6 / (now - t).as_secs_f64());
                        *anchor = Some((raw, now));
                    }
                    Some(_) => {}
                    None => *anchor = Some((raw, now)),
                }
                *last = Some((raw, now));
                *value = Joules(counter.update(raw) as f64 * 1e-6 + *across_resets);
                Ok(*value)
            }
            Reader::Power { file, integral } => match file.read()? {
                Some(microwatts) => Ok(integral.add(microwatts as f64 * 1e-6, now)),
                None => Ok(integral.pause()),
            },
            Reader::VoltAmp { volts, amps, integral } => match (volts.read()?, amps.read()?) {
                (Some(mv), Some(ma)) => Ok(integral.add(mv as f64 * ma as f64 * 1e-6, now)),
                _ => Ok(integral.pause()),
            },
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
    /// Per reader, whether it failed (its domain ended): it is not read again.
    dead: Vec<bool>,
    /// Reads every this often at most (amd_energy's reads interrupt each core).
    min_interval: Nanos,
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
        self.min_interval
    }

    fn read(&mut self, ctx: &ReadCtx, out: &mut [Joules]) -> Result<(), ReadError> {
        // Each channel on its own: one device gone (a GPU unplugged, a driver unloaded)
        // ends its domain, not the others'.
        let mut lost = Vec::new();
        for (i, (reader, slot)) in self.readers.iter_mut().zip(out).enumerate() {
            if self.dead[i] {
                continue;
            }
            match reader.read(ctx.now) {
                Ok(j) => *slot = j,
                Err(e) => {
                    self.dead[i] = true;
                    lost.push((i, e.to_string()));
                }
            }
        }
        if lost.is_empty() { Ok(()) } else { Err(ReadError::Lost { lost }) }
    }
}

/// What a probe of hwmon found: up to two sources (counters, integrated power), every
/// device, and the domains left out.
#[derive(Debug)]
pub struct HwmonProbe {
    /// Sources to read: energy counters first, then integrated power.
    pub sources: Vec<Hwmon>,
    /// Every device, with what it offers and what is read.
    pub devices: Vec<HwmonDevice>,
    /// Why there is no source, where there is none.
    pub failure: Option<ProbeError>,
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
/// reads (an `amd_energy` socket there is the same energy, and is not read again; an APU's
/// GPU power is part of it).
pub fn probe(sysfs: &Path, rapl_packages: &[String]) -> HwmonProbe {
    let dir = root(sysfs);
    let mut probe = HwmonProbe { sources: Vec::new(), devices: Vec::new(), failure: None };
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(source) => {
            probe.failure = Some(match source.kind() {
                ErrorKind::NotFound => not_present(&dir),
                _ => ProbeError::Io { path: dir.clone(), source },
            });
            return probe;
        }
    };
    let mut hwmons: Vec<(u32, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            Some((name.strip_prefix("hwmon")?.parse().ok()?, e.path()))
        })
        .collect();
    hwmons.sort();
    let mut counters: Vec<(Domain, Reader)> = Vec::new();
    let mut integrated: Vec<(Domain, Reader)> = Vec::new();
    let mut excluded: Vec<Excluded> = Vec::new();
    let mut seen: BTreeMap<Driver, u32> = BTreeMap::new();
    let mut amd_energy = false;
    // The first error met opening a channel of a known driver: the reason (and fix) a probe
    // with nothing to read gives.
    let mut first_error: Option<ProbeError> = None;
    // Packages an amd_energy socket already reads here (nodes of one package repeat it).
    let mut sockets_read: Vec<String> = Vec::new();
    for (index, path) in hwmons {
        let driver_name = std::fs::read_to_string(path.join("name")).unwrap_or_default().trim().to_owned();
        let driver = Driver::from_name(&driver_name);
        let offers = offered(&path, driver);
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
        let (channels, notes) = channels(driver, n, &path, sysfs, rapl_packages);
        device.not_read.extend(notes);
        if channels.is_empty() && device.not_read.is_empty() {
            device.not_read.push("no energy or power channel".into());
        }
        // What a read channel stands in for: the others of the same quantity.
        let chosen: Vec<String> = channels
            .iter()
            .flat_map(|c| c.files.iter())
            .map(|f| file_names(std::slice::from_ref(f)))
            .collect();
        if driver == Driver::AmdGpu {
            for f in offers.iter().filter(|f| !chosen.contains(f)) {
                let why = if chosen.iter().any(|c| c.starts_with("energy")) {
                    "the energy counter is read instead"
                } else {
                    "the instant reading is integrated instead (an average spans a second or more)"
                };
                device.not_read.push(format!("{f}: {why}"));
            }
        }
        for ch in channels {
            if driver == Driver::AmdEnergy && ch.domain.kind == DomainKind::Package {
                let by = if rapl_packages.contains(&ch.domain.id) {
                    Some("RAPL")
                } else if sockets_read.contains(&ch.domain.id) {
                    Some("another of its NUMA nodes' sockets")
                } else {
                    None
                };
                if let Some(by) = by {
                    let why = format!("{} is read by {by} already: the same energy, read once", ch.domain.id);
                    device.not_read.push(format!("{}: {why}", file_names(&ch.files)));
                    excluded.push(Excluded { domain: format!("{} ({})", ch.domain.id, device.hwmon), why });
                    continue;
                }
            }
            let clamp = ch.how != How::Energy;
            let opened: Result<Vec<Opened>, ProbeError> =
                ch.files.iter().cloned().map(|f| Opened::open(f, clamp)).collect();
            let mut opened = match opened {
                Ok(o) => o,
                Err(e) => {
                    device.not_read.push(format!("{}: {e}", file_names(&ch.files)));
                    excluded.push(Excluded { domain: ch.domain.id.clone(), why: e.to_string() });
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            if driver == Driver::AmdEnergy {
                amd_energy = true;
                if ch.domain.kind == DomainKind::Package {
                    sockets_read.push(ch.domain.id.clone());
                }
            }
            device.read.push(format!("{} ({})", ch.domain.id, file_names(&ch.files)));
            match ch.how {
                How::Energy => {
                    let file = opened.remove(0);
                    let counter = WrappingCounter::resetting();
                    let reader = Reader::Energy {
                        file,
                        counter,
                        last: None,
                        rate: None,
                        anchor: None,
                        across_resets: 0.0,
                        value: Joules(0.0),
                    };
                    counters.push((ch.domain, reader));
                }
                How::Power => {
                    let file = opened.remove(0);
                    integrated.push((ch.domain, Reader::Power { file, integral: PowerIntegral::default() }));
                }
                How::VoltAmp => {
                    let amps = opened.remove(1);
                    let volts = opened.remove(0);
                    integrated.push((
                        ch.domain,
                        Reader::VoltAmp { volts, amps, integral: PowerIntegral::default() },
                    ));
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
        let min_interval = match kind {
            // Power sensors refresh every few milliseconds at best (INA3221's conversion
            // time, amdgpu's SMU): reading them every poll only costs.
            SourceKind::HwmonPower => Nanos(5_000_000),
            // amd_energy reads each core's register on that core: an interrupt per core per
            // read, which would wake idle cores (and raise what is measured) at 1 kHz.
            _ if amd_energy => Nanos(10_000_000),
            _ => Nanos(0),
        };
        let dead = vec![false; readers.len()];
        probe.sources.push(Hwmon { kind, root: dir.clone(), domains, readers, excluded, dead, min_interval });
    }
    if probe.sources.is_empty() {
        let known = probe.devices.iter().any(|d| d.what.is_some());
        probe.failure = Some(match first_error {
            // The reason a channel could not be opened (root-only amd_energy), with its fix.
            Some(e) => e,
            None if !known => ProbeError::NotPresent {
                path: dir,
                what:
                    "hwmon energy or power sensors of a known driver (amdgpu, xe, i915, amd_energy, ina3221)"
                        .into(),
                hint: format!(
                    "{} other hwmon device(s): temperatures, fans and the like",
                    probe.devices.len()
                ),
                fix: None,
            },
            None => {
                let why: Vec<String> = probe.devices.iter().flat_map(|d| d.not_read.clone()).collect();
                ProbeError::Config(format!("no hwmon channel can be read: {}", why.join("; ")))
            }
        });
    }
    probe
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
            let known = Driver::from_name(&driver);
            let what = known.map(|d| d.what().to_owned());
            let offers = offered(&e.path(), known);
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

/// The energy and power channel files of a device, sorted: voltages and currents too on a
/// rail monitor (INA3221), where they make its power; elsewhere they are other sensors.
fn offered(dir: &Path, driver: Option<Driver>) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let rails = driver == Some(Driver::Ina3221);
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
                || (rails && (channel("curr", "_input") || channel("in", "_input")))
        })
        .collect();
    files.sort();
    files
}

/// The channel numbers `prefix<N><suffix>` present in `dir`, ascending.
fn numbered(dir: &Path, prefix: &str, suffix: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut n: Vec<u32> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
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

/// The channels of a known device, in the order they are read, and notes on channels left
/// out.
fn channels(
    driver: Driver,
    n: u32,
    dir: &Path,
    sysfs: &Path,
    rapl_packages: &[String],
) -> (Vec<Channel>, Vec<String>) {
    let energy = numbered(dir, "energy", "_input");
    let file = |f: String| dir.join(f);
    let mut notes = Vec::new();
    let list = match driver {
        Driver::AmdGpu => {
            let id = format!("amdgpu:{n}");
            // An APU's power is its socket's (package power tracking), inside what RAPL reads
            // as the package: part of it, never added to it.
            let apu = numbered(dir, "power", "_label")
                .iter()
                .any(|&c| label(dir, &format!("power{c}_label")).is_some_and(|l| l.contains("PPT")));
            let part_of = if apu { rapl_packages.first().cloned() } else { None };
            if let Some(p) = &part_of {
                notes.push(format!("an APU: its power is the socket's, reported as part of {p}"));
            }
            if let Some(&e) = energy.first() {
                vec![Channel {
                    domain: domain(id, DomainKind::Gpu, part_of, How::Energy),
                    files: vec![file(format!("energy{e}_input"))],
                    how: How::Energy,
                }]
            } else {
                // Instant power where the kernel has it: the average is over a second or more.
                let power = ["power1_input", "power1_average"].into_iter().find(|f| dir.join(f).exists());
                power
                    .map(|p| Channel {
                        domain: domain(id, DomainKind::Gpu, part_of, How::Power),
                        files: vec![file(p.to_owned())],
                        how: How::Power,
                    })
                    .into_iter()
                    .collect()
            }
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
        Driver::AmdEnergy => energy
            .iter()
            .filter_map(|&e| {
                let l = label(dir, &format!("energy{e}_label"))?;
                let f = vec![file(format!("energy{e}_input"))];
                if let Some(node) = l.strip_prefix("Esocket").and_then(|s| s.parse::<u32>().ok()) {
                    let id = format!("package-{}", node_package(sysfs, node).unwrap_or(node));
                    return Some(Channel {
                        domain: domain(id, DomainKind::Package, None, How::Energy),
                        files: f,
                        how: How::Energy,
                    });
                }
                let cpu: u32 = l.strip_prefix("Ecore")?.parse().ok()?;
                let parent = format!("package-{}", cpu_package(sysfs, cpu).unwrap_or(0));
                let id = format!("{parent}/core{cpu:03}");
                Some(Channel {
                    domain: domain(id, DomainKind::Core, Some(parent), How::Energy),
                    files: f,
                    how: How::Energy,
                })
            })
            .collect(),
        Driver::Ina3221 => {
            let prefix = if n == 0 { "rail".to_owned() } else { format!("rail{n}") };
            let mut rails: Vec<(u32, String)> = Vec::new();
            for c in numbered(dir, "in", "_label") {
                let Some(l) = label(dir, &format!("in{c}_label")) else { continue };
                let disabled = label(dir, &format!("in{c}_enable")).is_some_and(|v| v == "0");
                if l.eq_ignore_ascii_case("NC") || disabled {
                    notes
                        .push(format!("in{c}: {}", if disabled { "disabled" } else { "not connected (NC)" }));
                    continue;
                }
                rails.push((c, l));
            }
            let id = |l: &str| format!("{prefix}:{}", l.to_ascii_lowercase());
            let input = rails.iter().find(|(_, l)| l.eq_ignore_ascii_case("VDD_IN")).map(|(_, l)| id(l));
            rails
                .iter()
                .filter_map(|(c, l)| {
                    let rail = id(l);
                    let part_of = input.clone().filter(|i| *i != rail);
                    if dir.join(format!("power{c}_input")).exists() {
                        return Some(Channel {
                            domain: domain(rail, DomainKind::Rail, part_of, How::Power),
                            files: vec![file(format!("power{c}_input"))],
                            how: How::Power,
                        });
                    }
                    let (v, a) = (format!("in{c}_input"), format!("curr{c}_input"));
                    (dir.join(&v).exists() && dir.join(&a).exists()).then(|| Channel {
                        domain: domain(rail, DomainKind::Rail, part_of, How::VoltAmp),
                        files: vec![file(v), file(a)],
                        how: How::VoltAmp,
                    })
                })
                .collect()
        }
    };
    (list, notes)
}

/// The package of logical CPU `cpu`, from the topology under `sysfs`.
fn cpu_package(sysfs: &Path, cpu: u32) -> Option<u32> {
    let p = sysfs.join(format!("devices/system/cpu/cpu{cpu}/topology/physical_package_id"));
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// The package of NUMA node `node`: its first CPU's (amd_energy has a socket per node).
/// Without node information, None (the node is taken for the package).
fn node_package(sysfs: &Path, node: u32) -> Option<u32> {
    let list = std::fs::read_to_string(sysfs.join(format!("devices/system/node/node{node}/cpulist"))).ok()?;
    let first: u32 = list.trim().split([',', '-']).next()?.parse().ok()?;
    cpu_package(sysfs, first)
}
