//! RAPL through model-specific registers: `<dir>/<cpu>/msr` read with `pread` at the
//! register's offset, one CPU per package (one per core for AMD's per-core register).
//!
//! Energy fields are the low 32 bits of each register, in units of 1/2^ESU J where ESU is
//! bits 12:8 of the power-unit register, and wrap at 2^32 units (65,536 J at the usual
//! 15.3 uJ unit: about 11 minutes at 100 W). Needs the `msr` module and CAP_SYS_RAWIO.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::cpu::{CpuId, Topology, Vendor};
use super::roots::Roots;
use super::{Domain, DomainKind, Fix, ProbeError, ReadCtx, ReadError, Source, SourceKind};
use crate::counter::WrappingCounter;
use crate::units::{Joules, Nanos};

/// Intel's registers.
pub mod intel {
    /// `MSR_RAPL_POWER_UNIT`.
    pub const POWER_UNIT: u64 = 0x606;
    /// `MSR_PKG_ENERGY_STATUS`.
    pub const PKG: u64 = 0x611;
    /// `MSR_PP0_ENERGY_STATUS`: the cores.
    pub const PP0: u64 = 0x639;
    /// `MSR_PP1_ENERGY_STATUS`: the integrated GPU / uncore.
    pub const PP1: u64 = 0x641;
    /// `MSR_DRAM_ENERGY_STATUS`.
    pub const DRAM: u64 = 0x619;
    /// `MSR_PLATFORM_ENERGY_STATUS`: the whole platform.
    pub const PSYS: u64 = 0x64D;
}

/// AMD's registers (Zen and later).
pub mod amd {
    /// `MSR_AMD_RAPL_POWER_UNIT`.
    pub const POWER_UNIT: u64 = 0xC001_0299;
    /// `MSR_AMD_CORE_ENERGY_STATUS`, one per core.
    pub const CORE: u64 = 0xC001_029A;
    /// `MSR_AMD_PKG_ENERGY_STATUS`.
    pub const PKG: u64 = 0xC001_029B;
}

/// Intel server parts whose DRAM domain counts in a fixed 2^-16 J, whatever the unit register
/// says (Haswell-EP and later Xeons, Xeon Phi), as Linux's intel_rapl driver knows them.
const FIXED_DRAM_UNIT_MODELS: [u32; 10] = [0x3F, 0x4F, 0x56, 0x55, 0x6A, 0x6C, 0x8F, 0xCF, 0x57, 0x85];

/// A domain's register, read on one CPU (or, for AMD's per-core register, summed over one CPU
/// per core).
struct Reg {
    /// Indices into `Msr::files`.
    cpus: Vec<usize>,
    offset: u64,
    unit: f64,
    counters: Vec<WrappingCounter>,
}

/// The MSR source.
pub struct Msr {
    vendor: Vendor,
    dir: PathBuf,
    /// One open file per CPU read, shared by its registers.
    files: Vec<(u32, (File, PathBuf))>,
    domains: Vec<Domain>,
    regs: Vec<Reg>,
    excluded: Vec<super::Excluded>,
}

impl std::fmt::Debug for Msr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Msr").field("dir", &self.dir).field("domains", &self.domains).finish()
    }
}

fn read_reg(file: &File, path: &Path, offset: u64) -> std::io::Result<u64> {
    let mut buf = [0u8; 8];
    file.read_exact_at(&mut buf, offset)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{} at {offset:#x}: {e}", path.display())))?;
    Ok(u64::from_le_bytes(buf))
}

/// Energy unit in joules from a power-unit register value.
pub fn energy_unit(power_unit: u64) -> f64 {
    1.0 / f64::from(1u32 << ((power_unit >> 8) & 0x1f))
}

impl Msr {
    /// Probes with the roots from the environment.
    pub fn probe() -> Result<Self, ProbeError> {
        Self::probe_with(&Roots::from_env())
    }

    /// Probes `roots.msr` for the packages in `roots.sysfs`' topology.
    pub fn probe_with(roots: &Roots) -> Result<Self, ProbeError> {
        let cpu = CpuId::read(&roots.procfs)?;
        let unit_reg = match cpu.vendor {
            Vendor::Intel => intel::POWER_UNIT,
            Vendor::Amd => amd::POWER_UNIT,
            Vendor::Other => {
                return Err(ProbeError::NotPresent {
                    path: roots.procfs.join("cpuinfo"),
                    what: "RAPL registers".into(),
                    hint: "only Intel and AMD CPUs have them".into(),
                    fix: None,
                });
            }
        };
        let topo = Topology::read(&roots.sysfs)?;
        let open = |cpu: u32| -> Result<(File, PathBuf), ProbeError> {
            let path = roots.msr.join(cpu.to_string()).join("msr");
            File::open(&path).map(|f| (f, path.clone())).map_err(|source| match source.kind() {
                ErrorKind::NotFound => ProbeError::NotPresent {
                    path: path.clone(),
                    what: "MSR device".into(),
                    hint: "the msr module is not loaded".into(),
                    fix: Some(Fix::LoadMsrModule),
                },
                ErrorKind::PermissionDenied => ProbeError::PermissionDenied {
                    path: path.clone(),
                    fix: Fix::MsrAccess { binary: current_binary() },
                },
                _ => ProbeError::Io { path: path.clone(), source },
            })
        };
        let mut msr = Msr {
            vendor: cpu.vendor,
            dir: roots.msr.clone(),
            files: Vec::new(),
            domains: Vec::new(),
            regs: Vec::new(),
            excluded: Vec::new(),
        };
        for (&package, cpus) in &topo.packages {
            let first = msr.file_for(cpus[0], &open)?;
            let (file, path) = &msr.files[first].1;
            let units = read_reg(file, path, unit_reg).map_err(|e| {
                if e.raw_os_error() == Some(libc::EIO) || e.kind() == ErrorKind::UnexpectedEof {
                    ProbeError::NotPresent {
                        path: path.clone(),
                        what: format!("RAPL power-unit register {unit_reg:#x}"),
                        hint: "the CPU or the hypervisor does not expose RAPL".into(),
                        fix: None,
                    }
                } else {
                    ProbeError::Io { path: path.clone(), source: e }
                }
            })?;
            let unit = energy_unit(units);
            // A register that cannot be read, or reads 0 (no counter runs from 0 after
            // boot), is absent on this part.
            let present = |offset| read_reg(file, path, offset).is_ok_and(|v| v & 0xffff_ffff != 0);
            let pkg = format!("package-{package}");
            let sub = |name: &str| format!("{pkg}/{name}");
            match cpu.vendor {
                Vendor::Intel => {
                    let [pp0, pp1, dram, psys] =
                        [intel::PP0, intel::PP1, intel::DRAM, intel::PSYS].map(present);
                    msr.add(domain(&pkg, DomainKind::Package, None, unit), vec![first], intel::PKG);
                    if pp0 {
                        let d = domain(&sub("core"), DomainKind::Core, Some(&pkg), unit);
                        msr.add(d, vec![first], intel::PP0);
                    }
                    if pp1 {
                        let d = domain(&sub("uncore"), DomainKind::Uncore, Some(&pkg), unit);
                        msr.add(d, vec![first], intel::PP1);
                    }
                    if dram {
                        let fixed = cpu.family == 6 && FIXED_DRAM_UNIT_MODELS.contains(&cpu.model);
                        let dram_unit = if fixed { 1.0 / 65536.0 } else { unit };
                        let d = domain(&sub("dram"), DomainKind::Dram, None, dram_unit);
                        msr.add(d, vec![first], intel::DRAM);
                    }
                    if psys && msr.excluded.is_empty() {
                        msr.excluded.push(super::Excluded {
                            domain: "psys".into(),
                            why: "the platform domain contains the packages; it is not read \
                                  beside them"
                                .into(),
                        });
                    }
                }
                Vendor::Amd => {
                    msr.add(domain(&pkg, DomainKind::Package, None, unit), vec![first], amd::PKG);
                    let cores = topo
                        .cores_of(package)
                        .into_iter()
                        .map(|c| msr.file_for(c, &open))
                        .collect::<Result<Vec<_>, _>>()?;
                    if !cores.is_empty() {
                        let d = domain(&sub("core"), DomainKind::Core, Some(&pkg), unit);
                        msr.add(d, cores, amd::CORE);
                    }
                }
                Vendor::Other => unreachable!("rejected above"),
            }
        }
        if msr.domains.is_empty() {
            return Err(ProbeError::NotPresent {
                path: roots.sysfs.join("devices/system/cpu"),
                what: "CPU packages".into(),
                hint: "no CPU topology found".into(),
                fix: None,
            });
        }
        let mut zero = vec![Joules(0.0); msr.domains.len()];
        msr.read(&ReadCtx { now: Nanos(0) }, &mut zero).map_err(ProbeError::from)?;
        Ok(msr)
    }

    /// The index of `cpu`'s msr file, opened on first use.
    fn file_for(
        &mut self,
        cpu: u32,
        open: &impl Fn(u32) -> Result<(File, PathBuf), ProbeError>,
    ) -> Result<usize, ProbeError> {
        if let Some(i) = self.files.iter().position(|(c, _)| *c == cpu) {
            return Ok(i);
        }
        self.files.push((cpu, open(cpu)?));
        Ok(self.files.len() - 1)
    }

    fn add(&mut self, domain: Domain, cpus: Vec<usize>, offset: u64) {
        let counters = vec![WrappingCounter::with_bits(32); cpus.len()];
        self.regs.push(Reg { counters, cpus, offset, unit: domain.resolution.0 });
        self.domains.push(domain);
    }

    /// The CPU vendor whose registers are read.
    pub fn vendor(&self) -> Vendor {
        self.vendor
    }
}

fn domain(id: &str, kind: DomainKind, part_of: Option<&str>, unit: f64) -> Domain {
    Domain {
        id: id.to_owned(),
        kind,
        part_of: part_of.map(str::to_owned),
        resolution: Joules(unit),
        update_period: Nanos(1_000_000),
        update_period_measured: false,
    }
}

pub(crate) fn current_binary() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("<your binary>"))
}

impl Source for Msr {
    fn kind(&self) -> SourceKind {
        SourceKind::Msr
    }

    fn describe(&self) -> String {
        let note = match self.vendor {
            Vendor::Amd => "; AMD's RAPL is a model of power, not a measurement, and reads below wall power",
            _ => "",
        };
        format!("RAPL via MSR at {}{note}", self.dir.display())
    }

    fn modelled(&self) -> bool {
        self.vendor == Vendor::Amd
    }

    fn domains(&self) -> &[Domain] {
        &self.domains
    }

    fn set_update_period(&mut self, index: usize, period: Nanos) {
        super::set_period(&mut self.domains, index, period);
    }

    fn excluded(&self) -> &[super::Excluded] {
        &self.excluded
    }

    fn longest_gap(&self) -> Nanos {
        // 32-bit energy fields, in each domain's unit.
        let unit = self.domains().iter().map(|d| d.resolution.0).fold(f64::INFINITY, f64::min);
        super::wrap_gap(Joules(unit * 4_294_967_296.0))
    }

    fn read(&mut self, _ctx: &ReadCtx, out: &mut [Joules]) -> Result<(), ReadError> {
        for (reg, slot) in self.regs.iter_mut().zip(out) {
            let mut total = 0u64;
            for (&cpu, counter) in reg.cpus.iter().zip(&mut reg.counters) {
                let (_, (file, path)) = &self.files[cpu];
                let raw = read_reg(file, path, reg.offset)
                    .map_err(|source| ReadError::Io { path: path.clone(), source })?;
                total += counter.update(raw & 0xffff_ffff);
            }
            *slot = Joules(total as f64 * reg.unit);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn energy_unit_is_two_to_the_minus_esu() {
        assert_eq!(super::energy_unit(0x000A_0E03), 1.0 / 16384.0); // ESU 14
        assert_eq!(super::energy_unit(0x0000_1000), 1.0 / 65536.0); // ESU 16
    }
}
