use std::time::Duration;

use joules::Profiler;
use joules::source::{DomainKind, Powercap, ProbeError, Source, powercap};

use crate::watts;
use joules_tests::powercap::{FakePowercap, Zone, static_tree};

fn zones() -> Vec<Zone> {
    vec![
        Zone {
            id: "intel-rapl:0",
            name: "package-0",
            watts: 20.0,
            max_energy_range_uj: 1_000_000,
            start_uj: 900_000,
        },
        Zone { id: "intel-rapl:0:0", name: "core", watts: 12.0, max_energy_range_uj: 1_000_000, start_uj: 0 },
        Zone {
            id: "intel-rapl:0:1",
            name: "dram",
            watts: 5.0,
            max_energy_range_uj: 300_000,
            start_uj: 250_000,
        },
    ]
}

/// The parent runs the fake tree and re-runs this test in a child process whose environment
/// points `JOULES_POWERCAP_ROOT` at it: the reader finds the tree exactly as it finds /sys.
#[test]
fn measures_known_power_across_many_wraps() {
    if joules_tests::caps::in_child() {
        return measure_in_child();
    }
    let fake = FakePowercap::start(zones(), Duration::from_millis(1));
    let text = joules_tests::caps::run_in_child(
        "powercap::measures_known_power_across_many_wraps",
        &[(powercap::ROOT_ENV, fake.root())],
    );
    text.lines().filter(|l| l.contains("(truth")).for_each(|l| eprintln!("{l}"));
    assert!(fake.wraps("intel-rapl:0") >= 3, "package wrapped {} times", fake.wraps("intel-rapl:0"));
    assert!(fake.wraps("intel-rapl:0:1") >= 3, "dram wrapped {} times", fake.wraps("intel-rapl:0:1"));
}

fn measure_in_child() {
    let _lock = joules_tests::profiler_lock();
    let source = Powercap::probe().expect("the fake tree probes");
    let profiler = Profiler::builder().source(source).start().unwrap();
    std::thread::sleep(Duration::from_millis(450));
    let rec = profiler.stop();
    for (id, truth) in [("package-0", 20.0), ("package-0/dram", 5.0), ("package-0/core", 12.0)] {
        let w = watts(&rec, id);
        eprintln!("{id}: {w:.4} W (truth {truth} W)");
        assert!((w - truth).abs() / truth < 0.02, "{id}: measured {w:.3} W, truth {truth} W");
    }
    let domains = &rec.sources[0].domains;
    let core = domains.iter().find(|d| d.id == "package-0/core").unwrap();
    assert_eq!((core.kind, core.part_of.as_deref()), (DomainKind::Core, Some("package-0")));
    let dram = domains.iter().find(|d| d.id == "package-0/dram").unwrap();
    assert_eq!((dram.kind, dram.part_of.as_deref()), (DomainKind::Dram, None));
    // Each zone once, although subzones are reachable twice (inside the parent and linked at the top).
    assert_eq!(domains.len(), 3);
}

#[test]
fn missing_root_says_what_is_missing() {
    let err = Powercap::probe_at("/nonexistent/powercap".as_ref()).unwrap_err();
    assert!(matches!(err, ProbeError::NotPresent { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/powercap"), "{err}");
}

fn probe_static(files: &[(&str, &str)]) -> ProbeError {
    let dir = static_tree(files);
    Powercap::probe_at(dir.path()).expect_err("a malformed tree must not probe")
}

#[test]
fn malformed_trees_name_the_file() {
    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[("intel-rapl:0/max_energy_range_uj", "100\n"), ("intel-rapl:0/energy_uj", "1\n")],
            "intel-rapl:0/name",
        ),
        (
            &[
                ("intel-rapl:0/name", "package-0\n"),
                ("intel-rapl:0/max_energy_range_uj", "100\n"),
                ("intel-rapl:0/energy_uj", "lots\n"),
            ],
            "intel-rapl:0/energy_uj",
        ),
        (
            &[
                ("intel-rapl:0/name", "package-0\n"),
                ("intel-rapl:0/max_energy_range_uj", "0\n"),
                ("intel-rapl:0/energy_uj", "1\n"),
            ],
            "intel-rapl:0/max_energy_range_uj",
        ),
        (
            &[("intel-rapl:0/name", "package-0\n"), ("intel-rapl:0/max_energy_range_uj", "100\n")],
            "intel-rapl:0/energy_uj",
        ),
    ];
    for (files, culprit) in cases {
        let err = probe_static(files);
        assert!(matches!(err, ProbeError::Malformed { .. }), "{err:?}");
        assert!(err.to_string().contains(culprit), "{err} should name {culprit}");
    }
}

#[test]
fn a_read_after_probe_reports_energy_since_open() {
    let dir = static_tree(&[
        ("intel-rapl:0/name", "package-0\n"),
        ("intel-rapl:0/max_energy_range_uj", "1000\n"),
        ("intel-rapl:0/energy_uj", "990\n"),
    ]);
    let mut p = Powercap::probe_at(dir.path()).unwrap();
    let ctx = joules::source::ReadCtx { now: joules::Nanos(0) };
    let mut out = [joules::Joules(0.0)];
    p.read(&ctx, &mut out).unwrap();
    assert_eq!(out[0].0, 0.0);
    // In place, as sysfs changes: the open file sees it; 990 -> 20 is one wrap of 1000 uJ.
    std::fs::write(dir.path().join("intel-rapl:0/energy_uj"), "20\n").unwrap();
    p.read(&ctx, &mut out).unwrap();
    assert!((out[0].0 - 30e-6).abs() < 1e-12, "{}", out[0].0);
}
