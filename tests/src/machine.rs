//! A fake machine under one temp dir, laid out as [`joules::source::Roots::under`] expects:
//! `proc/cpuinfo`, `proc/sys/kernel/perf_event_paranoid`, `sys/devices/system/cpu/cpuN/topology`.
//! The RAPL fakes ([`crate::powercap`], [`crate::msr`], [`crate::perf`]) are added into it.

use std::fs;
use std::path::Path;

use joules::source::Roots;

/// A CPU vendor as cpuinfo spells it, with a family and model.
#[derive(Clone, Copy, Debug)]
pub enum Cpu {
    /// GenuineIntel, family 6, this model.
    Intel(u32),
    /// AuthenticAMD, this family.
    Amd(u32),
    /// An Arm core (a Jetson's Cortex-A78AE): no vendor_id line, no RAPL.
    Arm,
}

/// The fake machine's directory.
#[derive(Debug)]
pub struct FakeMachine {
    dir: tempfile::TempDir,
}

impl FakeMachine {
    /// A machine with `cpu` and logical CPUs given as `(package, core)`, indexed by CPU number.
    pub fn new(cpu: Cpu, cpus: &[(u32, u32)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        let mut cpuinfo = String::new();
        for (n, _) in cpus.iter().enumerate() {
            cpuinfo += &match cpu {
                Cpu::Intel(model) => {
                    format!(
                        "processor\t: {n}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: {model}\n\n"
                    )
                }
                Cpu::Amd(family) => {
                    format!(
                        "processor\t: {n}\nvendor_id\t: AuthenticAMD\ncpu family\t: {family}\nmodel\t\t: 1\n\n"
                    )
                }
                Cpu::Arm => format!("processor\t: {n}\nCPU implementer\t: 0x41\nCPU part\t: 0xd42\n\n"),
            };
        }
        write(root, "proc/cpuinfo", &cpuinfo);
        write(root, "proc/sys/kernel/perf_event_paranoid", "2\n");
        for (n, (package, core)) in cpus.iter().enumerate() {
            write(
                root,
                &format!("sys/devices/system/cpu/cpu{n}/topology/physical_package_id"),
                &format!("{package}\n"),
            );
            write(root, &format!("sys/devices/system/cpu/cpu{n}/topology/core_id"), &format!("{core}\n"));
            fs::create_dir_all(root.join(format!("dev/cpu/{n}"))).unwrap();
        }
        fs::create_dir_all(root.join("sys/class/powercap")).unwrap();
        FakeMachine { dir }
    }

    /// Sets `kernel.perf_event_paranoid`.
    pub fn paranoid(&self, level: i32) {
        write(self.path(), "proc/sys/kernel/perf_event_paranoid", &format!("{level}\n"));
    }

    /// The machine's directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Roots pointing into the machine.
    pub fn roots(&self) -> Roots {
        Roots::under(self.path())
    }
}

pub(crate) fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}
