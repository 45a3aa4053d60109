//! hwmon: AMD and Intel GPUs, AMD Zen cores and sockets, Jetson rails, against fake trees
//! advanced at known powers; energy counters across resets, power integrated.

use std::time::Duration;

use joules::source::{DomainKind, Probe, ProbeStatus, SourceKind};
use joules::{Profiler, Recording};
use joules_tests::hwmon::{Channel, Device, FakeHwmon};
use joules_tests::machine::{Cpu, FakeMachine};
use joules_tests::perf::failing_opener;
use joules_tests::powercap::{FakePowercap, Zone};

use crate::watts;

/// Resets every 200 ms: a 700 ms run sees 3.
const RESET: Option<Duration> = Some(Duration::from_millis(200));

fn measure(machine: &FakeMachine) -> (Recording, Probe) {
    let probe = Probe::run(&machine.roots(), &failing_opener(libc::ENOENT));
    let kept = Probe::run(&machine.roots(), &failing_opener(libc::ENOENT));
    let profiler = Profiler::builder().probed_from(probe).start().unwrap();
    // A span runs meanwhile, as while a model is profiled: the sampler reads at its working
    // pace (power every 5 ms), not its resting one (every 20 ms, where a power that changes
    // every 10 ms would alias and a reset would lose up to 20 ms of energy).
    {
        let _work = joules::span!("work");
        let t = std::time::Instant::now();
        while t.elapsed() < Duration::from_millis(700) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    (profiler.stop(), kept)
}

/// Checks each `(domain, kind, source, truth W, tolerance)`.
fn check(rec: &Recording, expect: &[(&str, DomainKind, SourceKind, f64, f64)]) {
    for &(id, kind, source, truth, tolerance) in expect {
        let d = rec.timeline.domains.iter().find(|d| d.domain.id == id).unwrap_or_else(|| {
            let ids: Vec<&str> = rec.timeline.domains.iter().map(|d| d.domain.id.as_str()).collect();
            panic!("no domain {id} among {ids:?}")
        });
        assert_eq!((d.domain.kind, d.source), (kind, source), "{id}");
        assert!(d.ended.is_none(), "{id} ended: {:?}", d.ended);
        let w = watts(rec, id);
        eprintln!("{id}: {w:.3} W (truth {truth} W, {:+.2}%)", 100.0 * (w - truth) / truth);
        assert!((w - truth).abs() / truth < tolerance, "{id}: measured {w:.3} W, truth {truth} W");
    }
    for s in &rec.sources {
        let want = if s.kind == SourceKind::Hwmon {
            "measured (hwmon energy counter)"
        } else {
            "integrated (hwmon power"
        };
        if matches!(s.kind, SourceKind::Hwmon | SourceKind::HwmonPower) {
            assert!(s.provenance.starts_with(want), "{:?}: {}", s.kind, s.provenance);
        }
    }
}

fn amdgpu_power() -> Device {
    Device {
        name: "amdgpu",
        channels: vec![
            Channel::Power { file: "power1_average", watts: 140.0 },
            Channel::Power { file: "power1_input", watts: 150.0 },
            Channel::Fixed { file: "temp1_input", text: "45000\n" },
        ],
    }
}

#[test]
fn amdgpu_power_is_integrated_within_three_percent() {
    let _lock = joules_tests::profiler_lock();
    let machine = FakeMachine::new(Cpu::Amd(0x19), &[(0, 0)]);
    let _hw = FakeHwmon::start_in(&machine.roots().sysfs, 0, vec![amdgpu_power()]);
    let (rec, _) = measure(&machine);
    // The instant reading, not the 1 s average (whose fake differs on purpose).
    check(&rec, &[("amdgpu:0", DomainKind::Gpu, SourceKind::HwmonPower, 150.0, 0.03)]);
}

#[test]
fn amdgpu_energy_counter_within_one_percent_across_resets() {
    let _lock = joules_tests::profiler_lock();
    let machine = FakeMachine::new(Cpu::Amd(0x19), &[(0, 0)]);
    let device = Device {
        name: "amdgpu",
        channels: vec![
            Channel::Energy { n: 1, label: None, watts: 200.0, reset_every: RESET },
            Channel::Power { file: "power1_average", watts: 180.0 },
        ],
    };
    let hw = FakeHwmon::start_in(&machine.roots().sysfs, 0, vec![device]);
    let (rec, _) = measure(&machine);
    assert!(hw.resets(0, 1) >= 3, "{} resets", hw.resets(0, 1));
    check(&rec, &[("amdgpu:0", DomainKind::Gpu, SourceKind::Hwmon, 200.0, 0.01)]);
}

#[test]
fn xe_energy_counters_within_one_percent_across_resets() {
    let _lock = joules_tests::profiler_lock();
    let machine = FakeMachine::new(Cpu::Intel(0x9E), &[(0, 0)]);
    let device = Device {
        name: "xe",
        channels: vec![
            Channel::Energy { n: 1, label: Some("card"), watts: 60.0, reset_every: RESET },
            Channel::Energy { n: 2, label: Some("pkg"), watts: 45.0, reset_every: RESET },
        ],
    };
    let hw = FakeHwmon::start_in(&machine.roots().sysfs, 2, vec![device]);
    let (rec, _) = measure(&machine);
    assert!(hw.resets(0, 2) >= 3);
    check(
        &rec,
        &[
            ("intel-gpu:0", DomainKind::Gpu, SourceKind::Hwmon, 60.0, 0.01),
            ("intel-gpu:0/pkg", DomainKind::Gpu, SourceKind::Hwmon, 45.0, 0.01),
        ],
    );
    let pkg = rec.timeline.domains.iter().find(|d| d.domain.id == "intel-gpu:0/pkg").unwrap();
    assert_eq!(pkg.domain.part_of.as_deref(), Some("intel-gpu:0"));
}

fn amd_energy() -> Device {
    let core = |n, label, watts| Channel::Energy { n, label: Some(label), watts, reset_every: RESET };
    Device {
        name: "amd_energy",
        channels: vec![
            core(1, "Ecore000", 4.0),
            core(2, "Ecore001", 5.0),
            core(3, "Ecore002", 6.0),
            core(4, "Ecore003", 7.0),
            core(5, "Esocket0", 30.0),
            core(6, "Esocket1", 35.0),
        ],
    }
}

#[test]
fn amd_energy_cores_and_sockets_within_one_percent_across_resets() {
    let _lock = joules_tests::profiler_lock();
    let machine = FakeMachine::new(Cpu::Amd(0x19), &[(0, 0), (0, 1), (1, 0), (1, 1)]);
    let hw = FakeHwmon::start_in(&machine.roots().sysfs, 1, vec![amd_energy()]);
    let (rec, probe) = measure(&machine);
    assert!(hw.resets(0, 5) >= 3);
    let e = |id, kind, w| (id, kind, SourceKind::Hwmon, w, 0.01);
    check(
        &rec,
        &[
            e("package-0", DomainKind::Package, 30.0),
            e("package-1", DomainKind::Package, 35.0),
            e("package-0/core000", DomainKind::Core, 4.0),
            e("package-0/core001", DomainKind::Core, 5.0),
            e("package-1/core002", DomainKind::Core, 6.0),
            e("package-1/core003", DomainKind::Core, 7.0),
        ],
    );
    let core = rec.timeline.domains.iter().find(|d| d.domain.id == "package-1/core003").unwrap();
    assert_eq!(core.domain.part_of.as_deref(), Some("package-1"));
    // Its sockets measure the CPU: the estimate is not read beside them.
    let estimate = probe.outcomes.iter().find(|o| o.kind == SourceKind::Estimate).unwrap();
    assert_eq!(estimate.status, ProbeStatus::Standby);
}

#[test]
fn jetson_rails_are_integrated_within_three_percent() {
    let _lock = joules_tests::profiler_lock();
    let machine = FakeMachine::new(Cpu::Intel(0x9E), &[(0, 0)]);
    let rail = |n, label, watts| Channel::Rail { n, label, volts: 5.0, watts };
    let device = Device {
        name: "ina3221",
        channels: vec![rail(1, "VDD_IN", 10.0), rail(2, "VDD_CPU_GPU_CV", 4.0), rail(3, "VDD_SOC", 2.5)],
    };
    let _hw = FakeHwmon::start_in(&machine.roots().sysfs, 0, vec![device]);
    let (rec, _) = measure(&machine);
    let r = |id, w| (id, DomainKind::Rail, SourceKind::HwmonPower, w, 0.03);
    check(&rec, &[r("rail:vdd_in", 10.0), r("rail:vdd_cpu_gpu_cv", 4.0), r("rail:vdd_soc", 2.5)]);
    let soc = rec.timeline.domains.iter().find(|d| d.domain.id == "rail:vdd_soc").unwrap();
    assert_eq!(soc.domain.part_of.as_deref(), Some("rail:vdd_in"), "rails are part of the board's input");
}

/// Acceptance 2: RAPL's package and amd_energy's socket are the same energy: read once, by
/// RAPL; amd_energy's cores are still read, as parts of that package.
#[test]
fn a_package_read_by_rapl_is_not_read_again_from_amd_energy() {
    let _lock = joules_tests::profiler_lock();
    let machine = FakeMachine::new(Cpu::Amd(0x19), &[(0, 0), (0, 1)]);
    let zone = Zone {
        id: "intel-rapl:0",
        name: "package-0",
        watts: 30.0,
        max_energy_range_uj: 65_532_610_987,
        start_uj: 1_000,
    };
    let _pc = FakePowercap::start_in(&machine.roots().powercap, vec![zone], Duration::from_millis(1));
    let core = |n, label, watts| Channel::Energy { n, label: Some(label), watts, reset_every: None };
    let device = Device {
        name: "amd_energy",
        channels: vec![core(1, "Ecore000", 4.0), core(2, "Ecore001", 5.0), core(3, "Esocket0", 30.0)],
    };
    let _hw = FakeHwmon::start_in(&machine.roots().sysfs, 0, vec![device]);
    let (rec, probe) = measure(&machine);
    let package: Vec<(SourceKind, String)> = rec
        .timeline
        .domains
        .iter()
        .filter(|d| d.domain.id == "package-0")
        .map(|d| (d.source, d.domain.id.clone()))
        .collect();
    assert_eq!(package, [(SourceKind::Powercap, "package-0".to_owned())], "package-0 is read once, by RAPL");
    check(&rec, &[("package-0/core001", DomainKind::Core, SourceKind::Hwmon, 5.0, 0.01)]);
    let hwmon = probe.outcomes.iter().find(|o| o.kind == SourceKind::Hwmon).unwrap();
    assert!(
        hwmon.excluded.iter().any(|x| x.domain.starts_with("package-0") && x.why.contains("read by RAPL")),
        "{:?}",
        hwmon.excluded
    );
    let device = &probe.hwmon[0];
    assert!(device.not_read.iter().any(|n| n.contains("energy3_input") && n.contains("RAPL")), "{device:?}");
}

/// An EPYC in NPS2 mode: amd_energy has a socket per NUMA node, two on one package; an APU's
/// GPU power is the socket's; a Jetson's unconnected channel is skipped; one channel that
/// breaks mid-run ends its own domain only.
#[test]
fn numa_sockets_apus_nc_rails_and_a_broken_channel() {
    let _lock = joules_tests::profiler_lock();
    let machine = FakeMachine::new(Cpu::Amd(0x19), &[(0, 0), (0, 1), (0, 2), (0, 3)]);
    let sys = machine.roots().sysfs;
    for (node, cpus) in [(0, "0-1"), (1, "2-3")] {
        let d = sys.join(format!("devices/system/node/node{node}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("cpulist"), format!("{cpus}\n")).unwrap();
    }
    let zone = Zone {
        id: "intel-rapl:0",
        name: "package-0",
        watts: 60.0,
        max_energy_range_uj: 65_532_610_987,
        start_uj: 0,
    };
    let _pc = FakePowercap::start_in(&machine.roots().powercap, vec![zone], Duration::from_millis(1));
    let energy = |n, label, watts| Channel::Energy { n, label: Some(label), watts, reset_every: None };
    let rail = |n, label, watts| Channel::Rail { n, label, volts: 5.0, watts };
    let hw = FakeHwmon::start_in(
        &sys,
        0,
        vec![
            Device {
                name: "amd_energy",
                channels: vec![
                    energy(1, "Ecore000", 4.0),
                    energy(2, "Ecore003", 6.0),
                    energy(3, "Esocket0", 60.0),
                    energy(4, "Esocket1", 60.0),
                ],
            },
            Device {
                name: "amdgpu",
                channels: vec![
                    Channel::Power { file: "power1_average", watts: 20.0 },
                    Channel::Fixed { file: "power1_label", text: "slowPPT\n" },
                ],
            },
            Device {
                name: "ina3221",
                channels: vec![rail(1, "VDD_IN", 9.0), rail(2, "NC", 1.0), rail(3, "VDD_SOC", 2.0)],
            },
            Device { name: "xe", channels: vec![energy(1, "card", 30.0)] },
        ],
    );
    let probe = Probe::run(&machine.roots(), &failing_opener(libc::ENOENT));
    let ids: Vec<(String, Option<String>)> = probe
        .sources
        .iter()
        .flat_map(|s| s.domains().iter().map(|d| (d.id.clone(), d.part_of.clone())))
        .collect();
    let has = |id: &str| ids.iter().any(|(i, _)| i == id);
    // Both nodes' sockets are package 0, which RAPL reads: neither is read again.
    assert_eq!(ids.iter().filter(|(i, _)| i == "package-0").count(), 1, "{ids:?}");
    assert!(!has("package-1"), "node 1 is not a package of its own: {ids:?}");
    assert!(ids.contains(&("package-0/core003".into(), Some("package-0".into()))), "{ids:?}");
    // The APU's power is part of the package.
    assert!(ids.contains(&("amdgpu:0".into(), Some("package-0".into()))), "{ids:?}");
    assert!(has("rail:vdd_in") && has("rail:vdd_soc") && !has("rail:nc"), "{ids:?}");
    // Break the Intel GPU's counter mid-run: it ends, the rest read on.
    let profiler = Profiler::builder().probed_from(probe).start().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(hw);
    std::fs::write(sys.join("class/hwmon/hwmon3/energy1_input"), "garbage\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let rec = profiler.stop();
    let ended = |id: &str| rec.timeline.domains.iter().find(|d| d.domain.id == id).unwrap().ended.clone();
    assert!(
        ended("intel-gpu:0").is_some_and(|(_, why)| why.contains("garbage")),
        "{:?}",
        ended("intel-gpu:0")
    );
    assert!(
        ended("package-0/core000").is_none()
            && ended("rail:vdd_in").is_none()
            && ended("package-0").is_none()
    );
}

const MACHINE_ENV: &str = "JOULES_TEST_HWMON_MACHINE";

/// Root-only amd_energy files (as the driver makes them), probed by an ordinary user (a child
/// that dropped its capabilities): hwmon is unavailable with the reason and the fix, and
/// doctor's device list says which file and why.
#[test]
fn root_only_amd_energy_says_why_and_how() {
    use std::os::unix::fs::PermissionsExt;
    let _lock = joules_tests::profiler_lock();
    if joules_tests::caps::in_child() {
        let machine = std::path::PathBuf::from(std::env::var_os(MACHINE_ENV).unwrap());
        joules_tests::caps::drop_all_capabilities();
        let probe = Probe::run(&joules::source::Roots::under(&machine), &failing_opener(libc::ENOENT));
        let hwmon = probe.outcomes.iter().find(|o| o.kind == SourceKind::Hwmon).unwrap();
        match &hwmon.status {
            ProbeStatus::Unavailable { reason, fix } => {
                assert!(reason.contains("permission denied") && reason.contains("energy1_input"), "{reason}");
                assert!(fix.as_deref().is_some_and(|f| f.contains("cargo joules doctor --fix")), "{fix:?}");
            }
            other => panic!("hwmon: {other:?}"),
        }
        let device = &probe.hwmon[0];
        assert!(
            device.not_read.iter().any(|n| n.contains("energy1_input") && n.contains("permission denied")),
            "{device:?}"
        );
        return;
    }
    let machine = FakeMachine::new(Cpu::Amd(0x19), &[(0, 0)]);
    let energy = |n, label| Channel::Energy { n, label: Some(label), watts: 5.0, reset_every: None };
    let hw = FakeHwmon::start_in(
        &machine.roots().sysfs,
        0,
        vec![Device { name: "amd_energy", channels: vec![energy(1, "Ecore000"), energy(2, "Esocket0")] }],
    );
    for n in [1, 2] {
        std::fs::set_permissions(
            hw.dir(0).join(format!("energy{n}_input")),
            std::fs::Permissions::from_mode(0o000),
        )
        .unwrap();
    }
    joules_tests::caps::run_in_child(
        "hwmon::root_only_amd_energy_says_why_and_how",
        &[(MACHINE_ENV, machine.path())],
    );
}
