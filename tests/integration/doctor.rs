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
