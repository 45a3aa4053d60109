//! `tracing` spans measured through `joules::tracing::JoulesLayer`, under a real subscriber
//! stack (a `Registry` with the layer), against the simulator's ground truth.

use std::time::Duration;

use joules::source::{Sim, SimScript};
use joules::{Profiler, Watts};
use tracing_subscriber::layer::SubscriberExt;

fn pause(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// An encoder as candle's BERT marks it: `model` > `encoder` > `layer` (the same callsite on
/// every call) > `attn` and `inter`.
fn forward() {
    let _model = tracing::info_span!("model").entered();
    pause(40);
    let _encoder = tracing::info_span!("encoder").entered();
    // Every span has time of its own: the Layer's mapping is under test here; how finely
    // the estimator resolves a few microseconds between children is `accuracy`'s.
    pause(30);
    for _ in 0..2 {
        let _layer = tracing::trace_span!("layer").entered();
        {
            let _attn = tracing::trace_span!("attn").entered();
            pause(60);
        }
        pause(20);
        let _inter = tracing::trace_span!("inter").entered();
        pause(90);
    }
}

#[test]
fn tracing_spans_get_their_joules_within_two_percent_of_truth() {
    let _lock = joules_tests::profiler_lock();
    let script = SimScript::new(Watts(5.0))
        .span("model", Watts(12.0))
        .span("encoder", Watts(18.0))
        .span("layer", Watts(25.0))
        .span("attn", Watts(60.0))
        .span("inter", Watts(40.0));
    let sim = Sim::new(script);
    let truth = sim.truth();
    // Everything a `tracing` user stacks the layer on: the registry, filtered to TRACE.
    let subscriber = tracing_subscriber::registry()
        .with(joules::tracing::JoulesLayer::new())
        .with(tracing_subscriber::filter::LevelFilter::TRACE);
    let report = tracing::subscriber::with_default(subscriber, || {
        let profiler = Profiler::builder().source(sim).start().unwrap();
        pause(20);
        forward();
        pause(20);
        forward();
        profiler.stop().report("traced")
    });
    let truth = truth.lock().unwrap().clone();
    let bench = &report.benches[0];
    let paths: Vec<&str> = bench.spans.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "model",
            "model/encoder",
            "model/encoder/layer",
            "model/encoder/layer/attn",
            "model/encoder/layer/inter"
        ],
        "one path per callsite, nested as entered"
    );
    let layer = bench.spans.iter().find(|s| s.path == "model/encoder/layer").unwrap();
    assert_eq!(layer.calls.point, 4.0, "every layer call on one path");
    for span in &bench.spans {
        let e = &span.energy[0];
        let (excl, incl) = (truth.exclusive[&span.path].0, truth.inclusive(&span.path).0);
        let rel = |got: f64, want: f64| (got - want).abs() / want;
        eprintln!(
            "{}: excl err {:.3}% incl err {:.3}%",
            span.path,
            100.0 * rel(e.exclusive_j.point, excl),
            100.0 * rel(e.inclusive_j.point, incl)
        );
        assert!(
            rel(e.exclusive_j.point, excl) < 0.02,
            "{} exclusive {} vs truth {excl}",
            span.path,
            e.exclusive_j.point
        );
        assert!(
            rel(e.inclusive_j.point, incl) < 0.02,
            "{} inclusive {} vs truth {incl}",
            span.path,
            e.inclusive_j.point
        );
    }
}

mod first {
    pub(crate) fn step() {
        let _s = tracing::info_span!("step").entered();
        std::hint::black_box((0..20_000u64).sum::<u64>());
    }
}

mod second {
    pub(crate) fn step() {
        let _s = tracing::info_span!("step").entered();
        std::hint::black_box((0..20_000u64).sum::<u64>());
    }
}

#[test]
fn one_name_from_two_callsites_stays_two_paths_and_an_unprofiled_span_costs_nothing() {
    let _lock = joules_tests::profiler_lock();
    let subscriber = tracing_subscriber::registry().with(joules::tracing::JoulesLayer::new());
    let report = tracing::subscriber::with_default(subscriber, || {
        // Entered before any profiler: nothing recorded, nothing left open.
        first::step();
        let profiler = Profiler::builder().source(Sim::new(SimScript::new(Watts(5.0)))).start().unwrap();
        let _outer = tracing::info_span!("outer").entered();
        for _ in 0..3 {
            first::step();
            second::step();
        }
        drop(_outer);
        profiler.stop().report("two")
    });
    let bench = &report.benches[0];
    let steps: Vec<&joules::report::SpanReport> =
        bench.spans.iter().filter(|s| s.path.starts_with("outer/step")).collect();
    assert_eq!(
        steps.len(),
        2,
        "two callsites, two paths: {:?}",
        bench.spans.iter().map(|s| &s.path).collect::<Vec<_>>()
    );
    assert_ne!(steps[0].path, steps[1].path);
    for s in steps {
        assert_eq!(s.calls.point, 3.0, "{}", s.path);
        assert!(s.path.contains("first") || s.path.contains("second"), "told apart by module: {}", s.path);
    }
}
