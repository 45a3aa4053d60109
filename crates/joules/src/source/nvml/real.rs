//! The NVML source proper (feature `nvml`).

use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::Arc;

use nvml_wrapper::Nvml as Lib;
use nvml_wrapper::enums::device::SampleValue;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::structs::device::FieldId;

use super::super::integral::PowerIntegral;
use super::super::{Domain, DomainKind, Fix, ProbeError, ReadCtx, ReadError, Source, SourceKind};
use super::LIB_ENV;
use crate::units::{Joules, Nanos};

/// `NVML_FI_DEV_POWER_INSTANT`.
const POWER_INSTANT: FieldId = FieldId(186);
/// NVML is polled at 100 Hz at most: its counters change every 10-100 ms and a call costs
/// far more than a RAPL read.
const MIN_INTERVAL: Nanos = Nanos(10_000_000);

/// How a GPU's power is read when it has no energy counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PowerReading {
    /// The instantaneous power field.
    Instant,
    /// `nvmlDeviceGetPowerUsage`: a one-second average on Ampere and newer.
    Average,
}

struct Gpu {
    index: u32,
    origin_mj: Option<u64>,
    power: Option<PowerReading>,
    /// For integration of power readings.
    integral: PowerIntegral,
    value: Joules,
    lost: bool,
}

/// NVML-read GPUs that share one reading method (so one provenance).
pub struct Nvml {
    lib: Arc<Lib>,
    kind: SourceKind,
    description: String,
    gpus: Vec<Gpu>,
    domains: Vec<Domain>,
}

impl std::fmt::Debug for Nvml {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nvml")
            .field("kind", &self.kind)
            .field("domains", &self.domains)
            .finish_non_exhaustive()
    }
}

fn probe_error(lib: &OsStr, e: NvmlError) -> ProbeError {
    let path = PathBuf::from(lib);
    match e {
        NvmlError::LibloadingError(err) => ProbeError::NotPresent {
            path,
            what: "NVML library".into(),
            hint: format!("no NVIDIA driver installed, or set {LIB_ENV} ({err})"),
            fix: None,
        },
        NvmlError::DriverNotLoaded => ProbeError::NotPresent {
            path,
            what: "loaded NVIDIA driver".into(),
            hint: "the library is there but the kernel driver is not loaded (`nvidia-smi` says more)".into(),
            fix: None,
        },
        NvmlError::NoPermission => ProbeError::PermissionDenied { path, fix: Fix::NvmlAccess },
        other => ProbeError::Config(format!("NVML at {}: {other}", path.display())),
    }
}

/// Opens NVML from `lib` and returns one source per reading method in use: the energy
/// counter, and power integration.
pub fn probe(lib: &std::path::Path) -> Result<Vec<Nvml>, ProbeError> {
    let path = lib.as_os_str();
    let nvml = Arc::new(Lib::builder().lib_path(path).init().map_err(|e| probe_error(path, e))?);
    let driver = nvml.sys_driver_version().unwrap_or_else(|_| "unknown".into());
    let count = nvml.device_count().map_err(|e| probe_error(path, e))?;
    let mut counters = (Vec::new(), Vec::new(), Vec::new());
    let mut integrated = (Vec::new(), Vec::new(), Vec::new());
    for index in 0..count {
        let device = nvml.device_by_index(index).map_err(|e| probe_error(path, e))?;
        let name = device.name().unwrap_or_else(|_| "unknown GPU".into());
        let uuid = device.uuid().unwrap_or_else(|_| "no UUID".into());
        let domain = |resolution: f64, period: u64| Domain {
            id: format!("gpu:{index}"),
            kind: DomainKind::Gpu,
            part_of: None,
            resolution: Joules(resolution),
            update_period: Nanos(period),
            update_period_measured: false,
        };
        let mut gpu = Gpu {
            index,
            origin_mj: None,
            power: None,
            integral: PowerIntegral::default(),
            value: Joules(0.0),
            lost: false,
        };
        match device.total_energy_consumption() {
            Ok(_) => {
                counters.0.push(gpu);
                // Nominal: NVML's counter steps every 10-100 ms; measured at start.
                counters.1.push(domain(1e-3, 100_000_000));
                counters.2.push(format!("gpu:{index} {name} ({uuid}): energy counter"));
                continue;
            }
            Err(NvmlError::NotSupported) => {}
            Err(e) => return Err(probe_error(path, e)),
        }
        let instant = matches!(
            device.field_values_for(&[POWER_INSTANT]).map(|v| v.into_iter().next()),
            Ok(Some(Ok(ref s))) if s.value.is_ok()
        );
        let (reading, how) = if instant {
            (PowerReading::Instant, "instant power, integrated")
        } else {
            device.power_usage().map_err(|e| probe_error(path, e))?;
            (PowerReading::Average, "1 s average power, integrated (coarse)")
        };
        gpu.power = Some(reading);
        integrated.0.push(gpu);
        integrated.1.push(domain(1e-3, 0));
        integrated.2.push(format!("gpu:{index} {name} ({uuid}): {how}"));
    }
    let mut out = Vec::new();
    for (kind, (gpus, domains, lines)) in [(SourceKind::Nvml, counters), (SourceKind::NvmlPower, integrated)]
    {
        if gpus.is_empty() {
            continue;
        }
        let description =
            format!("NVML (driver {driver}) at {}: {}", PathBuf::from(path).display(), lines.join("; "));
        out.push(Nvml { lib: nvml.clone(), kind, description, gpus, domains });
    }
    if out.is_empty() {
        return Err(ProbeError::NotPresent {
            path: PathBuf::from(path),
            what: "NVIDIA GPUs".into(),
            hint: "NVML works but lists no GPU".into(),
            fix: None,
        });
    }
    Ok(out)
}

impl Gpu {
    fn read(&mut self, lib: &Lib, now: Nanos) -> Result<Joules, NvmlError> {
        let device = lib.device_by_index(self.index)?;
        match self.power {
            None => {
                let mj = device.total_energy_consumption()?;
                let origin = *self.origin_mj.get_or_insert(mj);
                Ok(Joules(mj.saturating_sub(origin) as f64 * 1e-3))
            }
            Some(reading) => {
                let watts = match reading {
                    PowerReading::Instant => {
                        let sample = device.field_values_for(&[POWER_INSTANT])?.into_iter().next();
                        match sample.map(|s| s.and_then(|s| s.value)) {
                            Some(Ok(SampleValue::U32(mw))) => f64::from(mw) * 1e-3,
                            Some(Ok(SampleValue::U64(mw))) => mw as f64 * 1e-3,
                            Some(Err(e)) => return Err(e),
                            _ => return Err(NvmlError::NotSupported),
                        }
                    }
                    PowerReading::Average => f64::from(device.power_usage()?) * 1e-3,
                };
                Ok(self.integral.add(watts, now))
            }
        }
    }
}

impl Source for Nvml {
    fn kind(&self) -> SourceKind {
        self.kind
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn domains(&self) -> &[Domain] {
        &self.domains
    }

    fn set_update_period(&mut self, index: usize, period: Nanos) {
        super::super::set_period(&mut self.domains, index, period);
    }

    fn min_interval(&self) -> Nanos {
        MIN_INTERVAL
    }

    fn read(&mut self, ctx: &ReadCtx, out: &mut [Joules]) -> Result<(), ReadError> {
        let mut lost = Vec::new();
        for (i, (gpu, slot)) in self.gpus.iter_mut().zip(out.iter_mut()).enumerate() {
            if !gpu.lost {
                match gpu.read(&self.lib, ctx.now) {
                    Ok(j) => gpu.value = j,
                    Err(e) => {
                        gpu.lost = true;
                        let why = match e {
                            NvmlError::GpuLost => "the GPU fell off the bus (GPU_IS_LOST)".to_owned(),
                            other => format!("NVML error: {other}"),
                        };
                        lost.push((i, why));
                    }
                }
            }
            *slot = gpu.value;
        }
        // Every GPU lost in this read ends on its own: one left out would read on at its
        // last value, as if it drew nothing.
        if lost.is_empty() { Ok(()) } else { Err(ReadError::Lost { lost }) }
    }
}
