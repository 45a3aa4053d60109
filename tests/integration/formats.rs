//! Golden tests of every output format of `bench` and `compare`, rendered from fixed reports
//! (no hardware, no clock), so a change in any renderer shows up as a snapshot diff.

use joules::compare::{CompareConfig, compare};
use joules::host::Host;
use joules::render::{self, Format};
use joules::report::{BenchReport, DomainReport, Flag, Report, SCHEMA, SampleInfo, SpanEnergy, SpanReport};
use joules::source::{Domain, DomainKind, SourceKind};
use joules::stats::Estimate;
use joules::{Joules, Nanos, SourceInfo, Unavailable};

/// Samples around `mean` with a fixed relative spread.
fn est(mean: f64) -> Estimate {
    let wiggle = [-0.010, 0.004, 0.008, -0.006, 0.002, 0.0, -0.004, 0.006, -0.002, 0.002];
    Estimate::from_samples(wiggle.iter().map(|w| mean * (1.0 + w)).collect())
}

/// The MLP's report on a machine with powercap, with `dense2` costing `dense2_factor` times
/// its usual energy.
pub(crate) fn fixture(dense2_factor: f64) -> Report {
    let domain = |id: &str, kind, part_of: Option<&str>| Domain {
        id: id.into(),
        kind,
        part_of: part_of.map(Into::into),
        resolution: Joules(1e-6),
        update_period: Nanos(976_000),
        update_period_measured: true,
    };
    let span = |path: &str, depth, time_ns: f64, pkg: f64, calls: f64| SpanReport {
        path: path.into(),
        depth,
        calls: est(calls),
        exclusive_ns: est(time_ns),
        inclusive_ns: est(time_ns),
        energy: vec![SpanEnergy {
            domain: "package-0".into(),
            exclusive_j: est(pkg),
            inclusive_j: est(pkg),
            exclusive_above_idle_j: Some(est(pkg * 0.8)),
            method: if time_ns < 976_000.0 * 50.0 { "regression" } else { "time-share" }.into(),
            ops_per_j: None,
        }],
        flags: if time_ns < 976_000.0 {
            vec![Flag::BelowResolution {
                domain: "package-0".into(),
                call_ns: time_ns as u64,
                update_period_ns: 976_000,
            }]
        } else {
            vec![]
        },
        site: None,
        ops: None,
    };
    let mut spans = vec![
        span("forward", 0, 400.0, 4e-6, 1.0),
        span("forward/dense1", 1, 2_460_000.0, 0.0490, 1.0),
        span("forward/relu", 1, 1_800.0, 3.4e-5, 2.0),
        span("forward/dense2", 1, 1_420_000.0, 0.0085 * dense2_factor, 1.0),
        span("forward/softmax", 1, 2_800.0, 5.3e-5, 1.0),
    ];
    // The parent's inclusive energy includes its children's.
    let children: f64 = spans[1..].iter().map(|s| s.energy[0].exclusive_j.point).sum();
    spans[0].energy[0].inclusive_j = est(4e-6 + children);
    spans[0].inclusive_ns = est(3_885_000.0);
    let total = 4e-6 + children + 2e-4;
    let mut report = Report {
        schema: SCHEMA,
        tool: "joules 0.1.0".into(),
        created_unix_s: 1_795_600_000,
        runs: 1,
        host: Host {
            cpu_model: "Intel(R) Xeon(R) Gold 6330 CPU @ 2.00GHz".into(),
            logical_cpus: 56,
            kernel: "6.8.0".into(),
            os: "linux-x86_64".into(),
        },
        sources: vec![SourceInfo {
            kind: SourceKind::Powercap,
            provenance: "measured (RAPL powercap)".into(),
            description: "RAPL via powercap at /sys/class/powercap".into(),
            domains: vec![domain("package-0", DomainKind::Package, None)],
        }],
        unavailable: vec![Unavailable {
            source: "perf".into(),
            reason: "permission denied: /sys/bus/event_source/devices/power/events/energy-pkg".into(),
            fix: Some("`sudo sysctl kernel.perf_event_paranoid=0`".into()),
        }],
        benches: vec![BenchReport {
            name: "inference".into(),
            samples: (0..10).map(|_| SampleInfo { iterations: 76, duration_ns: 300_000_000 }).collect(),
            domains: vec![DomainReport {
                domain: "package-0".into(),
                kind: DomainKind::Package,
                part_of: None,
                source: SourceKind::Powercap,
                provenance: "measured (RAPL powercap)".into(),
                method: "regression (5 paths)".into(),
                step_uncertainty_ns: Some(1_800),
                precise_readings: Some(0.97),
                resolution_j: 1e-6,
                update_period_ns: 976_000,
                update_period_measured: true,
                total_j: est(total),
                unattributed_j: est(2e-4),
                idle_w: Some(est(11.5)),
                above_idle_j: Some(est(total - 11.5 * 0.003_95)),
                ended: None,
            }],
            spans,
            warnings: vec![],
            notes: vec!["accuracy 98.8% on 1000 test images".into()],
            inferences_per_iteration: 32,
            training: None,
        }],
    };
    report.benches[0].set_training(3.6e7, "a model card");
    report
}

fn snap(name: &str, text: String) {
    crate::golden_base().bind(|| insta::assert_snapshot!(name, text));
}

const FORMATS: [(&str, Format); 5] = [
    ("table", Format::Table),
    ("markdown", Format::Markdown),
    ("json", Format::Json),
    ("bmf", Format::Bmf),
    ("csv", Format::Csv),
];

#[test]
fn bench_in_every_format() {
    let report = fixture(1.0);
    for (name, format) in FORMATS {
        snap(&format!("bench_{name}"), render::report(&report, format));
    }
}

#[test]
fn compare_in_every_format() {
    let old = fixture(1.0);
    let new = fixture(1.10);
    let cmp = compare(&old, &new, &CompareConfig::default()).unwrap();
    assert!(cmp.regressions().any(|c| c.path == "forward/dense2"));
    for (name, format) in FORMATS {
        snap(&format!("compare_{name}"), render::comparison(&cmp, &new, format, false));
    }
    // Colour only when asked for (a terminal): ANSI escapes around the verdict.
    assert!(render::comparison(&cmp, &new, Format::Table, true).contains("\u{1b}["));
    assert!(!render::comparison(&cmp, &new, Format::Table, false).contains("\u{1b}["));
}

#[test]
fn json_round_trips() {
    let report = fixture(1.0);
    let text = render::report(&report, Format::Json);
    assert_eq!(Report::from_slice("fixture".as_ref(), text.as_bytes()).unwrap(), report);
}

#[test]
fn unlike_machines_are_refused_unless_allowed() {
    let old = fixture(1.0);
    let mut new = fixture(1.0);
    new.host.cpu_model = "AMD EPYC 7B13".into();
    new.sources[0].provenance = "estimated from CPU time".into();
    let err = compare(&old, &new, &CompareConfig::default()).unwrap_err().to_string();
    assert!(err.contains("CPU model differs") && err.contains("energy sources differ"), "{err}");
    let allowed = compare(&old, &new, &CompareConfig { allow_mismatch: true, ..Default::default() }).unwrap();
    assert_eq!(allowed.mismatches.len(), 2);
    assert!(
        render::comparison(&allowed, &new, Format::Table, false)
            .contains("compared although CPU model differs")
    );
}

/// Energy per inference sums the domains no other contains (a core domain inside the
/// package is not added twice) over the inferences of an iteration, and the break-even
/// with a declared training energy follows it.
#[test]
fn energy_per_inference_sums_top_domains_and_sets_the_break_even() {
    let mut report = fixture(1.0);
    let bench = &mut report.benches[0];
    let package = bench.domains[0].total_j.point;
    let mut cores = bench.domains[0].clone();
    cores.domain = "core-0".into();
    cores.part_of = Some("package-0".into());
    let mut gpu = bench.domains[0].clone();
    gpu.domain = "gpu-0".into();
    gpu.total_j = est(2.0 * package);
    bench.domains.extend([cores, gpu]);
    let per = bench.energy_per_inference().unwrap();
    assert!((per.point - 3.0 * package / 32.0).abs() < 1e-12 * package, "{per:?}");
    assert!(per.lo.unwrap() < per.point && per.point < per.hi.unwrap());
    bench.set_training(3.6e7, "a model card");
    let n = bench.training.as_ref().unwrap().break_even_inferences.clone().unwrap();
    assert!((n.point - 3.6e7 / per.point).abs() < 1e-9 * n.point);
    // Fewer joules per inference is more inferences before inference passes training.
    assert!((n.lo.unwrap() - 3.6e7 / per.hi.unwrap()).abs() < 1e-9 * n.point);
    // Merged runs: the sum is taken run by run, and its interval is between runs.
    for (d, k) in bench.domains.iter_mut().zip([1.0, 1.0, 2.0]) {
        d.total_j.runs = vec![0.9 * k * package, 1.0 * k * package, 1.1 * k * package];
    }
    let merged = bench.energy_per_iteration().unwrap();
    assert_eq!(merged.runs.len(), 3);
    assert!((merged.runs[0] - 0.9 * 3.0 * package).abs() < 1e-12 * package, "{merged:?}");
    assert!(merged.half_width().unwrap() > 0.1 * 3.0 * package, "between runs: {merged:?}");
    // Nothing measured, nothing to set against.
    bench.domains.clear();
    bench.set_training(3.6e7, "a model card");
    assert!(bench.training.as_ref().unwrap().break_even_inferences.is_none());
    assert!(render::report(&report, Format::Table).contains("no energy measured to set it against"));
}

/// A report is written through a private temporary file, then made readable by all, as a
/// file created in place would be (CI steps and other users read it).
#[cfg(unix)]
#[test]
fn written_reports_are_readable_by_all() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    fixture(1.0).write_atomic(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "{mode:o}");
}
