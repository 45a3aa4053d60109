use std::time::Duration;

use joules::source::{Probe, ProbeStatus, SourceKind};
use joules_tests::machine::{Cpu, FakeMachine};
use joules_tests::msr::{Counter, FakeMsr};
use joules_tests::perf::failing_opener;
use joules_tests::powercap::{FakePowercap, Zone};

pub(crate) fn package_zone() -> Vec<Zone> {
    vec![
        Zone {
            id: "intel-rapl:0",
            name: "package-0",
            watts: 20.0,
            max_energy_range_uj: 262_143_328_850,
            start_uj: 1_000,
        },
        Zone {
            id: "intel-rapl:0:0",
            name: "core",
            watts: 12.0,
            max_energy_range_uj: 262_143_328_850,
            start_uj: 1_000,
        },
        Zone {
            id: "intel-rapl:1",
            name: "psys",
            watts: 40.0,
            max_energy_range_uj: 262_143_328_850,
            start_uj: 1_000,
        },
    ]
}

pub(crate) fn intel_msr(machine: &FakeMachine) -> FakeMsr {
    use joules::source::msr::intel;
    let c = |reg, watts| Counter { cpu: 0, reg, watts, start: 1_000 };
    FakeMsr::start(
        &machine.roots().msr,
        &[0, 1],
        intel::POWER_UNIT,
        16,
        vec![c(intel::PKG, 20.0), c(intel::PP0, 12.0)],
    )
}

#[test]
fn a_package_exposed_by_powercap_and_msr_is_read_once() {
    let _lock = joules_tests::profiler_lock();
    let machine = FakeMachine::new(Cpu::Intel(0x9E), &[(0, 0), (0, 1)]);
    let _pc = FakePowercap::start_in(&machine.roots().powercap, package_zone(), Duration::from_millis(1));
    let _msr = intel_msr(&machine);
    let probe = Probe::run(&machine.roots(), &failing_opener(libc::ENOENT));
    let kinds: Vec<_> = probe.sources.iter().map(|s| s.kind()).collect();
    assert_eq!(kinds, vec![SourceKind::Powercap], "one reader for package 0");
    let msr = probe.outcomes.iter().find(|o| o.kind == SourceKind::Msr).unwrap();
    assert_eq!(msr.status, ProbeStatus::Superseded { by: SourceKind::Powercap });
    let estimate = probe.outcomes.iter().find(|o| o.kind == SourceKind::Estimate).unwrap();
    assert_eq!(estimate.status, ProbeStatus::Standby);
    let powercap = &probe.sources[0];
    assert!(powercap.domains().iter().all(|d| d.id != "psys"), "psys is not read beside the package");
    assert_eq!(powercap.excluded()[0].domain, "psys");
}

#[test]
fn update_periods_are_measured_at_start() {
    let _lock = joules_tests::profiler_lock();
    let machine = FakeMachine::new(Cpu::Intel(0x9E), &[(0, 0)]);
    let _pc = FakePowercap::start_in(&machine.roots().powercap, package_zone(), Duration::from_millis(2));
    let probe = Probe::run(&machine.roots(), &failing_opener(libc::ENOENT));
    let d = &probe.sources[0].domains()[0];
    assert!(d.update_period_measured, "{d:?}");
    let ms = d.update_period.0 as f64 / 1e6;
    assert!((1.5..3.5).contains(&ms), "the fake updates every 2 ms; measured {ms} ms");
}

#[test]
fn with_no_counter_the_estimate_is_used_and_every_reason_kept() {
    let _lock = joules_tests::profiler_lock();
    let machine = FakeMachine::new(Cpu::Amd(25), &[(0, 0)]);
    let probe = Probe::run(&machine.roots(), &failing_opener(libc::ENOENT));
    let kinds: Vec<_> = probe.sources.iter().map(|s| s.kind()).collect();
    assert_eq!(kinds, vec![SourceKind::Estimate]);
    assert!(!probe.has_counter());
    for kind in [SourceKind::Perf, SourceKind::Powercap, SourceKind::Msr] {
        let o = probe.outcomes.iter().find(|o| o.kind == kind).unwrap();
        assert!(matches!(o.status, ProbeStatus::Unavailable { .. }), "{kind:?}: {:?}", o.status);
    }
}

/// AMD's RAPL is a model of power, whichever way it is read: powercap (the kernel's
/// `intel-rapl` zones serve AMD too) says so in every report, as MSR and perf do.
#[test]
fn amd_powercap_is_modelled_by_the_cpu() {
    let _lock = joules_tests::profiler_lock();
    for (cpu, want) in [
        (Cpu::Amd(25), "modelled by the CPU (AMD RAPL powercap)"),
        (Cpu::Intel(0x9E), "measured (RAPL powercap)"),
    ] {
        let machine = FakeMachine::new(cpu, &[(0, 0), (0, 1)]);
        let _pc = FakePowercap::start_in(&machine.roots().powercap, package_zone(), Duration::from_millis(1));
        let probe = Probe::run(&machine.roots(), &failing_opener(libc::ENOENT));
        let source = &probe.sources[0];
        assert_eq!(source.kind(), SourceKind::Powercap);
        assert_eq!(source.kind().label(source.modelled()), want, "{cpu:?}");
    }
}

/// `--source` / `--domain`: a named source is read even where a more trusted one would be,
/// a named estimate beside counters, and only the domains named; a name nothing offers is an
/// error that stops a profile from starting.
#[test]
fn a_selection_reads_only_what_it_names() {
    use joules::source::Selection;
    let _lock = joules_tests::profiler_lock();
    let machine = FakeMachine::new(Cpu::Intel(0x9E), &[(0, 0), (0, 1)]);
    let _pc = FakePowercap::start_in(&machine.roots().powercap, package_zone(), Duration::from_millis(1));
    let _msr = intel_msr(&machine);
    let opener = failing_opener(libc::ENOENT);

    // MSR alone: powercap, which would supersede it, is not read at all.
    let msr_only = Selection::parse(Some("msr"), None).unwrap();
    let probe = Probe::run_with(&machine.roots(), &opener, &msr_only);
    let kinds: Vec<_> = probe.sources.iter().map(|s| s.kind()).collect();
    assert_eq!(kinds, [SourceKind::Msr]);
    for kind in [SourceKind::Perf, SourceKind::Powercap, SourceKind::Nvml, SourceKind::Estimate] {
        let o = probe.outcomes.iter().find(|o| o.kind == kind).unwrap();
        assert_eq!(o.status, ProbeStatus::NotSelected, "{kind:?}");
    }

    // Powercap's package only, and the estimate beside it.
    let chosen = Selection::parse(Some("powercap,estimate"), Some("package-0,cpu")).unwrap();
    let probe = Probe::run_with(&machine.roots(), &opener, &chosen);
    assert!(probe.selection_errors.is_empty(), "{:?}", probe.selection_errors);
    let read: Vec<(SourceKind, Vec<String>)> = probe
        .sources
        .iter()
        .map(|s| (s.kind(), s.domains().iter().map(|d| d.id.clone()).collect()))
        .collect();
    assert_eq!(
        read,
        [
            (SourceKind::Powercap, vec!["package-0".to_owned()]),
            (SourceKind::Estimate, vec!["cpu".to_owned()])
        ]
    );
    // The estimate beside a counter models energy the counter measures: part of the package,
    // so totals over top-level domains leave it out.
    assert_eq!(probe.sources[1].domains()[0].part_of.as_deref(), Some("package-0"));
    let excluded: Vec<&str> = probe.sources[0].excluded().iter().map(|x| x.domain.as_str()).collect();
    assert!(excluded.contains(&"package-0/core"), "the core domain is said not read: {excluded:?}");
    // The kept domain still reads its counter (the fake's 20 W), through the selection.
    let profiler = joules::Profiler::builder().probed_from(probe).start().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let rec = profiler.stop();
    let ids: Vec<&str> = rec.timeline.domains.iter().map(|d| d.domain.id.as_str()).collect();
    assert_eq!(ids, ["package-0", "cpu"]);
    let w = crate::watts(&rec, "package-0");
    assert!((w - 20.0).abs() < 0.4, "package-0 read through the selection: {w} W");

    // A package's sub-domain alone: still read by one reader only (powercap, MSR
    // superseded), and counted on its own, its package not being read.
    let core_only = Selection::parse(None, Some("package-0/core")).unwrap();
    let probe = Probe::run_with(&machine.roots(), &opener, &core_only);
    let kinds: Vec<SourceKind> = probe.sources.iter().map(|s| s.kind()).collect();
    assert_eq!(kinds, [SourceKind::Powercap]);
    let domains = probe.sources[0].domains();
    assert_eq!(
        (domains.len(), domains[0].id.as_str(), domains[0].part_of.as_deref()),
        (1, "package-0/core", None)
    );
    let msr = probe.outcomes.iter().find(|o| o.kind == SourceKind::Msr).unwrap();
    assert_eq!(msr.status, ProbeStatus::Superseded { by: SourceKind::Powercap });

    // A domain nothing offers: an error naming what is offered, and no profile.
    let wrong = Selection::parse(None, Some("gpu:0")).unwrap();
    let probe = Probe::run_with(&machine.roots(), &opener, &wrong);
    assert_eq!(probe.selection_errors.len(), 1);
    assert!(
        probe.selection_errors[0].contains("\"gpu:0\"") && probe.selection_errors[0].contains("package-0")
    );
    let err = joules::Profiler::builder().probed_from(probe).start().unwrap_err();
    assert!(matches!(err, joules::ProfileError::Selection(_)), "{err}");
}
