use std::time::Duration;

use joules::Profiler;
use joules::source::{DomainKind, Perf, ProbeError, Source};

use crate::watts;
use joules_tests::machine::{Cpu, FakeMachine};
use joules_tests::perf::{Event, FakePerf, failing_opener};

fn events() -> Vec<Event> {
    vec![
        Event { name: "energy-pkg", config: 2, watts: 45.0 },
        Event { name: "energy-cores", config: 1, watts: 25.0 },
        Event { name: "energy-ram", config: 3, watts: 8.0 },
        Event { name: "energy-psys", config: 5, watts: 90.0 },
    ]
}

fn two_packages() -> FakeMachine {
    FakeMachine::new(Cpu::Intel(0x55), &[(0, 0), (0, 1), (1, 0), (1, 1)])
}

#[test]
fn one_event_per_package_and_domain_at_known_power() {
    let machine = two_packages();
    let fake = FakePerf::start(&machine.roots().sysfs, "0,2", &events(), "2.3283064365386962890625e-10");
    let perf = Perf::probe_with(&machine.roots(), &fake.opener()).expect("fake PMU probes");
    let ids: Vec<_> = perf.domains().iter().map(|d| (d.id.as_str(), d.kind)).collect();
    assert_eq!(
        ids,
        vec![
            ("package-0/core", DomainKind::Core),
            ("package-1/core", DomainKind::Core),
            ("package-0", DomainKind::Package),
            ("package-1", DomainKind::Package),
            ("package-0/dram", DomainKind::Dram),
            ("package-1/dram", DomainKind::Dram),
        ]
    );
    assert_eq!(perf.excluded()[0].domain, "psys", "psys is never read beside packages");
    let _lock = joules_tests::profiler_lock();
    let profiler = Profiler::builder().source(perf).start().unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let rec = profiler.stop();
    for (id, truth) in
        [("package-0", 45.0), ("package-1", 45.0), ("package-0/core", 25.0), ("package-1/dram", 8.0)]
    {
        let w = watts(&rec, id);
        assert!((w - truth).abs() / truth < 0.01, "{id}: {w:.3} W, truth {truth} W");
    }
    assert!(fake.elapsed() > 0.4);
}

#[test]
fn paranoid_perf_names_the_setting_and_the_fixes() {
    let machine = two_packages();
    machine.paranoid(2);
    let _fake = FakePerf::start(&machine.roots().sysfs, "0,2", &events(), "2.3283064365386962890625e-10");
    let err = Perf::probe_with(&machine.roots(), &failing_opener(libc::EACCES)).unwrap_err();
    assert!(matches!(err, ProbeError::PermissionDenied { .. }), "{err:?}");
    let fix = err.fix().unwrap().to_string();
    assert!(fix.contains("perf_event_paranoid is 2"), "{fix}");
    assert!(fix.contains("sysctl kernel.perf_event_paranoid=0") && fix.contains("cap_perfmon"), "{fix}");
}

#[test]
fn a_bad_scale_names_its_file() {
    let machine = two_packages();
    let fake = FakePerf::start(&machine.roots().sysfs, "0", &events()[..1], "lots");
    let err = Perf::probe_with(&machine.roots(), &fake.opener()).unwrap_err();
    assert!(matches!(err, ProbeError::Malformed { .. }), "{err:?}");
    assert!(err.to_string().contains("energy-pkg.scale"), "{err}");
}

#[test]
fn no_pmu_is_not_present() {
    let machine = two_packages();
    let err = Perf::probe_with(&machine.roots(), &failing_opener(libc::ENOENT)).unwrap_err();
    assert!(matches!(err, ProbeError::NotPresent { .. }), "{err:?}");
}

#[test]
fn amd_power_events_are_modelled_not_measured() {
    for (cpu, modelled) in [(Cpu::Amd(25), true), (Cpu::Intel(0x55), false)] {
        let machine = FakeMachine::new(cpu, &[(0, 0), (0, 1)]);
        let fake =
            FakePerf::start(&machine.roots().sysfs, "0", &events()[..1], "2.3283064365386962890625e-10");
        let perf = Perf::probe_with(&machine.roots(), &fake.opener()).expect("fake PMU probes");
        assert_eq!(perf.modelled(), modelled, "{cpu:?}");
        let label = perf.kind().label(perf.modelled());
        let want =
            if modelled { "modelled by the CPU (AMD RAPL perf_event)" } else { "measured (RAPL perf_event)" };
        assert_eq!(label, want);
    }
}
