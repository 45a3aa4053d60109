//! `Window`: a region's joules at once, against the simulator's ground truth.

use std::time::{Duration, Instant};

use joules::source::{Sim, SimScript};
use joules::{Nanos, Profiler, Watts};

/// Keeps the thread busy for `d` (a span's sim power does not depend on it, but a real
/// region would be busy).
fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::black_box(0u64);
    }
}

fn region_truth(truth: &std::sync::Mutex<joules::source::SimTruth>) -> f64 {
    truth.lock().unwrap().exclusive.get("region").map_or(0.0, |j| j.0)
}

/// A 100 ms region: within 2% of the truth; a 1 ms region: the truth within the stated
/// bounds, every time, and the bounds no wider than a few counter steps' energy.
#[test]
fn window_matches_ground_truth() {
    let _lock = joules_tests::profiler_lock();
    // RAPL-like: 1 ms steps with jitter, 2^-16 J units, 3% noise per step.
    let script = SimScript::new(Watts(8.0))
        .span("region", Watts(45.0))
        .update_period(Nanos(1_000_000))
        .jitter(Nanos(50_000))
        .noise(0.03, 7);
    let sim = Sim::new(script);
    let truth = sim.truth();
    let profiler = Profiler::builder().source(sim).start().unwrap();

    for _ in 0..3 {
        let before = region_truth(&truth);
        let w = profiler.window("region");
        spin(Duration::from_millis(100));
        let e = w.end().expect("a window on a running profiler has figures");
        let want = region_truth(&truth) - before;
        let got = e.domain("sim-package").expect("the sim domain is read");
        let err = (got.point.0 - want).abs() / want;
        eprintln!(
            "100 ms: {:.5} J, truth {want:.5} J ({:.3}%), [{:.5}, {:.5}]",
            got.point.0,
            100.0 * err,
            got.lo.0,
            got.hi.0
        );
        assert!(err < 0.02, "100 ms window: {} J, truth {want} J", got.point.0);
        assert!(got.lo.0 <= want && want <= got.hi.0, "truth {want} outside [{}, {}]", got.lo.0, got.hi.0);
        assert!(!e.domains[0].shorter_than_step);
        assert!(e.domains[0].provenance.contains("simulated"), "{}", e.domains[0].provenance);
        std::thread::sleep(Duration::from_millis(5));
    }

    let mut widths = Vec::new();
    for _ in 0..40 {
        let before = region_truth(&truth);
        let (_, e) = profiler.measure("region", || spin(Duration::from_millis(1)));
        let e = e.unwrap();
        let want = region_truth(&truth) - before;
        let got = e.total().unwrap();
        assert!(
            got.lo.0 <= want && want <= got.hi.0,
            "1 ms window: truth {want} J outside [{}, {}]",
            got.lo.0,
            got.hi.0
        );
        assert!(got.lo.0 <= got.point.0 && got.point.0 <= got.hi.0);
        widths.push(got.hi.0 - got.lo.0);
        std::thread::sleep(Duration::from_micros(300));
    }
    widths.sort_by(f64::total_cmp);
    let median = widths[widths.len() / 2];
    eprintln!("1 ms windows: median bound width {median:.5} J");
    // 45 W over the window and the two steps around its edges: about 0.14 J at most.
    assert!(median < 0.2, "median bound width {median} J");
    let rec = profiler.stop();
    assert!(rec.failure.is_none());
}

/// A window that begins after a pause (the sampler resting, reading every 20 ms) wakes it for
/// a reading just before its start: a 1 ms region's bounds stay a few steps wide, as while
/// spans run, not the rest gap's 20 ms of energy.
#[test]
fn a_window_after_a_pause_has_a_reading_at_its_start() {
    let _lock = joules_tests::profiler_lock();
    let sim = Sim::new(SimScript::new(Watts(8.0)).span("region", Watts(45.0)));
    let truth = sim.truth();
    let profiler = Profiler::builder().source(sim).start().unwrap();
    let mut widths = Vec::new();
    for _ in 0..8 {
        // Longer than the rest gap and the sampler's nap: it rests when the window begins.
        std::thread::sleep(Duration::from_millis(60));
        let before = region_truth(&truth);
        let (_, e) = profiler.measure("region", || spin(Duration::from_millis(1)));
        let got = e.unwrap().total().unwrap();
        let want = region_truth(&truth) - before;
        assert!(got.lo.0 <= want && want <= got.hi.0, "truth {want} J outside [{}, {}]", got.lo.0, got.hi.0);
        widths.push(got.hi.0 - got.lo.0);
    }
    widths.sort_by(f64::total_cmp);
    let median = widths[widths.len() / 2];
    eprintln!("1 ms windows after a pause: median bound width {median:.5} J (widths {widths:?})");
    // Resting, the last reading before the start would be up to 20 ms old: 0.16 J at 8 W
    // idle on top of the window's own. Woken, the bounds span the window and about two steps.
    assert!(median < 0.15, "median bound width {median} J: no reading near the start");
    profiler.stop();
}

/// A window dropped without `end` still ends its span, which reports show like any other.
#[test]
fn a_dropped_window_records_a_span_and_measures_nothing() {
    let _lock = joules_tests::profiler_lock();
    let sim = Sim::new(SimScript::new(Watts(5.0)).span("region", Watts(30.0)));
    let profiler = Profiler::builder().source(sim).start().unwrap();
    {
        let _w = profiler.window("region");
        spin(Duration::from_millis(20));
    }
    let report = profiler.stop().report("w");
    let span = report.benches[0].spans.iter().find(|s| s.path == "region").expect("the window is a span");
    assert_eq!(span.calls.point, 1.0);
}
