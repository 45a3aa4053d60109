//! The CPU: vendor and model from `cpuinfo`, packages and cores from sysfs topology.

use std::collections::BTreeMap;
use std::path::Path;

use super::ProbeError;

/// Whose RAPL registers to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Vendor {
    /// GenuineIntel.
    Intel,
    /// AuthenticAMD or HygonGenuine.
    Amd,
    /// Anything else: no RAPL registers known.
    Other,
}

/// What `cpuinfo` says about the CPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuId {
    /// The vendor.
    pub vendor: Vendor,
    /// `cpu family`.
    pub family: u32,
    /// `model`.
    pub model: u32,
}

impl CpuId {
    /// Reads `<procfs>/cpuinfo`.
    pub fn read(procfs: &Path) -> Result<Self, ProbeError> {
        let path = procfs.join("cpuinfo");
        let text =
            std::fs::read_to_string(&path).map_err(|source| ProbeError::Io { path: path.clone(), source })?;
        let field = |name: &str| {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == name).then(|| v.trim().to_owned())
            })
        };
        let vendor = match field("vendor_id").as_deref() {
            Some("GenuineIntel") => Vendor::Intel,
            Some("AuthenticAMD" | "HygonGenuine") => Vendor::Amd,
            _ => Vendor::Other,
        };
        let num = |name: &str| field(name).and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok(CpuId { vendor, family: num("cpu family"), model: num("model") })
    }
}

/// Which logical CPUs belong to which package and core.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Topology {
    /// Package id -> its logical CPUs, ascending.
    pub packages: BTreeMap<u32, Vec<u32>>,
    /// Logical CPU -> (package, core id).
    pub cpus: BTreeMap<u32, (u32, u32)>,
}

impl Topology {
    /// Reads `<sysfs>/devices/system/cpu/cpuN/topology/{physical_package_id,core_id}`.
    pub fn read(sysfs: &Path) -> Result<Self, ProbeError> {
        let dir = sysfs.join("devices/system/cpu");
        let entries =
            std::fs::read_dir(&dir).map_err(|source| ProbeError::Io { path: dir.clone(), source })?;
        let mut topo = Topology::default();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(cpu) = name.strip_prefix("cpu").and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let read_id = |file: &str| -> Result<Option<u32>, ProbeError> {
                let path = entry.path().join("topology").join(file);
                match std::fs::read_to_string(&path) {
                    Ok(t) => t.trim().parse().map(Some).map_err(|_| ProbeError::Malformed {
                        path,
                        reason: format!("expected a number, found {:?}", t.trim()),
                    }),
                    // An offline CPU has no topology directory.
                    Err(_) => Ok(None),
                }
            };
            let Some(package) = read_id("physical_package_id")? else {
                continue;
            };
            let core = read_id("core_id")?.unwrap_or(cpu);
            topo.cpus.insert(cpu, (package, core));
            topo.packages.entry(package).or_default().push(cpu);
        }
        for cpus in topo.packages.values_mut() {
            cpus.sort_unstable();
        }
        Ok(topo)
    }

    /// The package of a logical CPU.
    pub fn package_of(&self, cpu: u32) -> Option<u32> {
        self.cpus.get(&cpu).map(|&(p, _)| p)
    }

    /// One logical CPU per physical core of `package`: the core's last hardware thread.
    ///
    /// Any thread of a core reads the same core registers. The last one is taken so that, on
    /// cores with two threads, per-core registers are read through another CPU's file than the
    /// package registers (read through the package's first CPU). AMD's core and package
    /// registers are adjacent (0xC001029A, 0xC001029B), and a sparse-file fake, where a
    /// register is 8 bytes at its own byte offset, can only hold both in separate files.
    pub fn cores_of(&self, package: u32) -> Vec<u32> {
        let mut seen = BTreeMap::new();
        for (&cpu, &(p, core)) in &self.cpus {
            if p == package {
                seen.insert(core, cpu);
            }
        }
        seen.into_values().collect()
    }
}
