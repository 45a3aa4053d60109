use std::time::Duration;

use joules::report::{Report, ReportError};
use joules::source::{Sim, SimScript};
use joules::{Profiler, Watts};

fn sample_report() -> Report {
    let _lock = joules_tests::profiler_lock();
    let profiler = Profiler::builder().source(Sim::new(SimScript::new(Watts(3.0)))).start().unwrap();
    {
        let _s = joules::span!("work");
        std::thread::sleep(Duration::from_millis(5));
    }
    profiler.stop().report("sample")
}

#[test]
fn round_trips_through_an_atomic_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/report.json");
    let report = sample_report();
    report.write_atomic(&path).unwrap();
    assert_eq!(Report::read(&path).unwrap(), report);
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(json["schema"], 1);
    assert_eq!(json["benches"][0]["domains"][0]["provenance"], "simulated");
}

#[test]
fn refuses_damaged_and_foreign_reports() {
    let dir = tempfile::tempdir().unwrap();
    let good = serde_json::to_string(&sample_report()).unwrap();
    let cases = [
        ("truncated", good[..good.len() / 2].to_owned()),
        ("newer", good.replacen("\"schema\":1", "\"schema\":99", 1)),
        ("foreign", r#"{"name": "not a joules report"}"#.to_owned()),
    ];
    for (name, text) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, &text).unwrap();
        let err = Report::read(&path).unwrap_err();
        match name {
            "newer" => assert!(matches!(err, ReportError::Schema { found: 99, .. }), "{err}"),
            _ => assert!(matches!(err, ReportError::Corrupt { .. }), "{name}: {err}"),
        }
        assert!(err.to_string().contains(name), "the error names the file: {err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "reading never changes the file");
    }
}

/// A report whose domain stopped being read mid-run is not compared as if whole: its short
/// figures would read as an improvement.
#[test]
fn a_report_with_a_domain_that_stopped_early_is_not_compared() {
    use joules::compare::{CompareConfig, CompareError, compare};
    let old = sample_report();
    let mut broken = old.clone();
    broken.benches[0].domains[0].ended = Some("at 12 ms: reading panicked: driver bug".into());
    let cfg = CompareConfig::default();
    compare(&old, &old, &cfg).expect("whole reports compare");
    for (a, b) in [(&old, &broken), (&broken, &old)] {
        match compare(a, b, &cfg) {
            Err(CompareError::Incomparable(why)) => {
                assert!(
                    why.iter().any(|w| w.contains("stopped early") && w.contains("driver bug")),
                    "{why:?}"
                )
            }
            other => panic!("compared a broken report: {other:?}"),
        }
    }
}
