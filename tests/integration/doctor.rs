//! Golden tests of `doctor` on typical machines, built from fakes.

use std::path::Path;
use std::time::Duration;

use joules::doctor::Doctor;
use joules::source::{Probe, Roots};
use joules_tests::caps;
use joules_tests::machine::{Cpu, FakeMachine};
use joules_tests::perf::{Event, FakePerf, failing_opener};
use joules_tests::powercap::FakePowercap;

use crate::probe::{intel_msr, package_zone};

fn snapshot(name: &str, machine: &Path, doctor: &Doctor) {
    let bin = std::env::current_exe().unwrap();
    crate::golden_settings(&[(machine, "[MACHINE]"), (&bin, "[BIN]")]).bind(|| {
        insta::assert_snapshot!(format!("doctor_{name}_table"), doctor.render());
        insta::assert_snapshot!(format!("doctor_{name}_json"), serde_json::to_string_pretty(doctor).unwrap());
    });
}

fn pmu_events() -> Vec<Event> {
    vec![
        Event { name: "energy-pkg", config: 2, watts: 20.0 },
        Event { name: "energy-cores", config: 1, watts: 12.0 },
    ]
}

#[test]
fn all_sources_present() {
    let _lock = joules_tests::profiler_lock();
    let machine = FakeMachine::new(Cpu::Intel(0x9E), &[(0, 0), (0, 1)]);
    let _pc = FakePowercap::start_in(&machine.roots().powercap, package_zone(), Duration::from_millis(1));
    let _msr = intel_msr(&machine);
    let perf = FakePerf::start(&machine.roots().sysfs, "0", &pmu_events(), "2.3283064365386962890625e-10");
    let doctor = Doctor::from_probe(&Probe::run(&machine.roots(), &perf.opener()));
    assert!(doctor.measured);
    snapshot("all_sources", machine.path(), &doctor);
}

#[test]
fn perf_event_paranoid_2() {
    let _lock = joules_tests::profiler_lock();
    let machine = FakeMachine::new(Cpu::Intel(0x9E), &[(0, 0), (0, 1)]);
    machine.paranoid(2);
    let _pc = FakePowercap::start_in(&machine.roots().powercap, package_zone(), Duration::from_millis(1));
    let _perf = FakePerf::start(&machine.roots().sysfs, "0", &pmu_events(), "2.3283064365386962890625e-10");
    let doctor = Doctor::from_probe(&Probe::run(&machine.roots(), &failing_opener(libc::EACCES)));
    snapshot("perf_paranoid", machine.path(), &doctor);
}

#[test]
fn no_msr_module() {
    let _lock = joules_tests::profiler_lock();
    let machine = FakeMachine::new(Cpu::Intel(0x9E), &[(0, 0), (0, 1)]);
    let _pc = FakePowercap::start_in(&machine.roots().powercap, package_zone(), Duration::from_millis(1));
    let doctor = Doctor::from_probe(&Probe::run(&machine.roots(), &failing_opener(libc::ENOENT)));
    snapshot("no_msr_module", machine.path(), &doctor);
}

#[test]
fn no_rapl_at_all() {
    let _lock = joules_tests::profiler_lock();
    // This VM: an AMD guest with no powercap zones, no power PMU and no msr device.
    let machine = FakeMachine::new(Cpu::Amd(25), &[(0, 0), (0, 1)]);
    let doctor = Doctor::from_probe(&Probe::run(&machine.roots(), &failing_opener(libc::ENOENT)));
    assert!(!doctor.measured);
    snapshot("no_rapl", machine.path(), &doctor);
}

const MACHINE_ENV: &str = "JOULES_TEST_MACHINE";

/// `energy_uj` root-only (mode 0400 owned by root, as since CVE-2020-8694): files of mode 000
/// read in a child process that has dropped its capabilities, as an ordinary user would.
#[test]
fn energy_uj_root_only() {
    let _lock = joules_tests::profiler_lock();
    if caps::in_child() {
        let machine = Path::new(&std::env::var_os(MACHINE_ENV).unwrap()).to_owned();
        caps::drop_all_capabilities();
        let doctor = Doctor::from_probe(&Probe::run(&Roots::under(&machine), &failing_opener(libc::ENOENT)));
        snapshot("root_only", &machine, &doctor);
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let machine = FakeMachine::new(Cpu::Intel(0x9E), &[(0, 0), (0, 1)]);
    let pc = FakePowercap::start_in(&machine.roots().powercap, package_zone(), Duration::from_millis(1));
    for zone in ["intel-rapl:0", "intel-rapl:0/intel-rapl:0:0", "intel-rapl:1"] {
        let f = pc.root().join(zone).join("energy_uj");
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    caps::run_in_child("doctor::energy_uj_root_only", &[(MACHINE_ENV, machine.path())]);
}

/// A workstation with an AMD CPU (RAPL through powercap, modelled by the CPU) and a Radeon
/// GPU whose hwmon offers power only, beside a temperature sensor.
#[test]
fn amd_gpu_machine() {
    use joules_tests::hwmon::{Channel, Device, FakeHwmon};
    let _lock = joules_tests::profiler_lock();
    let machine = FakeMachine::new(Cpu::Amd(0x19), &[(0, 0), (0, 1)]);
    let zone = joules_tests::powercap::Zone {
        id: "intel-rapl:0",
        name: "package-0",
        watts: 45.0,
        max_energy_range_uj: 65_532_610_987,
        start_uj: 1_000,
    };
    let _pc = FakePowercap::start_in(&machine.roots().powercap, vec![zone], Duration::from_millis(1));
    let devices = vec![
        Device { name: "k10temp", channels: vec![Channel::Fixed { file: "temp1_input", text: "41000\n" }] },
        Device {
            name: "amdgpu",
            channels: vec![
                Channel::Power { file: "power1_average", watts: 120.0 },
                Channel::Power { file: "power1_input", watts: 125.0 },
                Channel::Fixed { file: "temp1_input", text: "52000\n" },
            ],
        },
    ];
    let _hw = FakeHwmon::start_in(&machine.roots().sysfs, 0, devices);
    let doctor = Doctor::from_probe(&Probe::run(&machine.roots(), &failing_opener(libc::ENOENT)));
    assert!(doctor.measured);
    assert!(doctor.in_use.contains(&joules::source::SourceKind::HwmonPower));
    snapshot("amd_gpu", machine.path(), &doctor);
}

/// A Jetson: Arm cores (no RAPL, no MSR, no perf PMU), the board's INA3221 rails, a thermal
/// zone; no NVML (the integrated GPU has none).
#[test]
fn jetson() {
    use joules_tests::hwmon::{Channel, Device, FakeHwmon};
    let _lock = joules_tests::profiler_lock();
    let machine = FakeMachine::new(Cpu::Arm, &[(0, 0), (0, 1), (0, 2), (0, 3)]);
    let rail = |n, label, watts| Channel::Rail { n, label, volts: 5.0, watts };
    let devices = vec![
        Device {
            name: "cpu_thermal",
            channels: vec![Channel::Fixed { file: "temp1_input", text: "38000\n" }],
        },
        Device {
            name: "ina3221",
            channels: vec![rail(1, "VDD_IN", 9.0), rail(2, "VDD_CPU_GPU_CV", 3.5), rail(3, "VDD_SOC", 2.0)],
        },
    ];
    let _hw = FakeHwmon::start_in(&machine.roots().sysfs, 0, devices);
    let doctor = Doctor::from_probe(&Probe::run(&machine.roots(), &failing_opener(libc::ENOENT)));
    // The rails are read (integrated): the board is measured, not estimated.
    assert!(doctor.in_use.contains(&joules::source::SourceKind::HwmonPower));
    assert!(!doctor.in_use.contains(&joules::source::SourceKind::Estimate));
    snapshot("jetson", machine.path(), &doctor);
}
