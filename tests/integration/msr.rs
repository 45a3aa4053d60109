use std::time::Duration;

use joules::source::msr::{amd, intel};
use joules::source::{DomainKind, Msr, ProbeError, Source};
use joules::{Profiler, Recording};

use crate::watts;
use joules_tests::machine::{Cpu, FakeMachine};
use joules_tests::msr::{Counter, FakeMsr, write_register};

/// Starting 1 J of units below the wrap, so every counter wraps early.
const NEAR_WRAP: u32 = u32::MAX - (1 << 30);
/// ESU 30: ~0.93 nJ units, so the 32-bit field wraps every 4 J (the usual ESU is 14 or 16).
const ESU: u32 = 30;

fn measure(msr: Msr) -> Recording {
    let _lock = joules_tests::profiler_lock();
    let profiler = Profiler::builder().source(msr).start().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    profiler.stop()
}

fn check(rec: &Recording, truths: &[(&str, f64)]) {
    for &(id, truth) in truths {
        let w = watts(rec, id);
        eprintln!("{id}: {w:.4} W (truth {truth} W)");
        assert!((w - truth).abs() / truth < 0.01, "{id}: measured {w:.3} W, truth {truth} W");
    }
}

#[test]
fn intel_layout_within_one_percent_across_wraps() {
    let machine = FakeMachine::new(Cpu::Intel(0x9E), &[(0, 0), (0, 1)]);
    let dir = machine.roots().msr;
    let c = |reg, watts| Counter { cpu: 0, reg, watts, start: NEAR_WRAP };
    let fake = FakeMsr::start(
        &dir,
        &[0, 1],
        intel::POWER_UNIT,
        ESU,
        vec![c(intel::PKG, 60.0), c(intel::PP0, 35.0), c(intel::DRAM, 30.0)],
    );
    let msr = Msr::probe_with(&machine.roots()).expect("fake Intel MSRs probe");
    let ids: Vec<_> = msr.domains().iter().map(|d| (d.id.clone(), d.kind, d.part_of.clone())).collect();
    assert_eq!(
        ids,
        vec![
            ("package-0".into(), DomainKind::Package, None),
            ("package-0/core".into(), DomainKind::Core, Some("package-0".into())),
            ("package-0/dram".into(), DomainKind::Dram, None),
        ],
        "PP1 and PSYS read 0 (absent) and are not domains"
    );
    assert_eq!(msr.domains()[0].resolution.0, 1.0 / f64::from(1u32 << ESU));
    let rec = measure(msr);
    for reg in [intel::PKG, intel::PP0, intel::DRAM] {
        assert!(fake.wraps(0, reg) >= 3, "register {reg:#x} wrapped {} times", fake.wraps(0, reg));
    }
    check(&rec, &[("package-0", 60.0), ("package-0/core", 35.0), ("package-0/dram", 30.0)]);
}

#[test]
fn amd_layout_sums_per_core_registers() {
    // Two packages of two cores with two threads each (Linux numbers the second threads
    // last); the core domain of a package sums its cores' registers.
    let cpus = [(0, 0), (0, 1), (1, 0), (1, 1), (0, 0), (0, 1), (1, 0), (1, 1)];
    let machine = FakeMachine::new(Cpu::Amd(25), &cpus);
    let dir = machine.roots().msr;
    let c = |cpu, reg, watts| Counter { cpu, reg, watts, start: NEAR_WRAP };
    let fake = FakeMsr::start(
        &dir,
        &[0, 1, 2, 3, 4, 5, 6, 7],
        amd::POWER_UNIT,
        ESU,
        vec![
            c(0, amd::PKG, 50.0),
            c(4, amd::CORE, 20.0),
            c(5, amd::CORE, 15.0),
            c(2, amd::PKG, 40.0),
            c(6, amd::CORE, 10.0),
            c(7, amd::CORE, 12.0),
        ],
    );
    let msr = Msr::probe_with(&machine.roots()).expect("fake AMD MSRs probe");
    assert!(msr.describe().contains("not a measurement"), "AMD's RAPL is modelled: {}", msr.describe());
    assert!(msr.modelled());
    let rec = measure(msr);
    // Every figure from it says so, in the sources and in each domain's timeline.
    assert_eq!(rec.sources[0].provenance, "modelled by the CPU (AMD RAPL MSR)");
    assert!(rec.timeline.domains.iter().all(|d| d.modelled));
    assert!(fake.wraps(0, amd::PKG) >= 3 && fake.wraps(4, amd::CORE) >= 3);
    check(
        &rec,
        &[("package-0", 50.0), ("package-0/core", 35.0), ("package-1", 40.0), ("package-1/core", 22.0)],
    );
}

#[test]
fn fixed_dram_unit_on_haswell_ep() {
    let machine = FakeMachine::new(Cpu::Intel(0x3F), &[(0, 0)]);
    let dir = machine.roots().msr;
    write_register(&dir, 0, intel::POWER_UNIT, 0x000A_0E03); // ESU 14
    write_register(&dir, 0, intel::PKG, 123);
    write_register(&dir, 0, intel::DRAM, 456);
    let msr = Msr::probe_with(&machine.roots()).unwrap();
    let unit = |id: &str| msr.domains().iter().find(|d| d.id == id).unwrap().resolution.0;
    assert_eq!(unit("package-0"), 1.0 / 16384.0);
    assert_eq!(unit("package-0/dram"), 1.0 / 65536.0, "Haswell-EP DRAM counts in 2^-16 J");
}

#[test]
fn no_msr_module_says_modprobe() {
    let machine = FakeMachine::new(Cpu::Intel(0x9E), &[(0, 0)]);
    let err = Msr::probe_with(&machine.roots()).unwrap_err();
    assert!(matches!(err, ProbeError::NotPresent { .. }), "{err:?}");
    assert!(err.fix().unwrap().to_string().contains("modprobe msr"), "{err}");
}

#[test]
fn a_unit_register_that_does_not_exist_means_no_rapl() {
    let machine = FakeMachine::new(Cpu::Amd(25), &[(0, 0)]);
    // An empty msr file: reading any register fails, as EIO does on a VM.
    std::fs::write(machine.roots().msr.join("0/msr"), b"").unwrap();
    let err = Msr::probe_with(&machine.roots()).unwrap_err();
    assert!(err.to_string().contains("does not expose RAPL"), "{err}");
}
