//! Live profiles: totals folded as the profile runs, against the simulator's truth, in
//! bounded memory.

use std::time::{Duration, Instant};

use joules::live::LiveConfig;
use joules::source::{Sim, SimScript};
use joules::{Profiler, Watts};

fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::black_box(0u64);
    }
}

fn request() {
    let _r = joules::span!("request");
    {
        let _a = joules::span!("layer_a");
        spin(Duration::from_micros(300));
    }
    {
        let _b = joules::span!("layer_b");
        spin(Duration::from_micros(150));
    }
}

/// Per-path totals, summed over many folds of 200 ms, within a few percent of the truth;
/// calls counted exactly; the recording left at stop holds one stretch, not the run.
#[test]
fn live_totals_match_ground_truth_and_forget_what_they_folded() {
    let _lock = joules_tests::profiler_lock();
    let script = SimScript::new(Watts(5.0))
        .span("request", Watts(15.0))
        .span("layer_a", Watts(60.0))
        .span("layer_b", Watts(30.0));
    let sim = Sim::new(script);
    let truth = sim.truth();
    let profiler = Profiler::builder()
        .source(sim)
        .live(LiveConfig::default().fold_every(Duration::from_millis(200)))
        .start()
        .unwrap();
    let live = profiler.live().expect("a live profile has totals");
    let mut calls = 0u64;
    let mut folds_seen = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(2_000) {
        request();
        calls += 1;
        // Requests come with gaps, as a service's do.
        std::thread::sleep(Duration::from_micros(200));
        if calls.is_multiple_of(500) {
            folds_seen.push(live.totals().folds);
        }
    }
    let rec = profiler.stop();
    let totals = live.totals();
    let truth = truth.lock().unwrap().clone();
    assert!(folds_seen.windows(2).all(|w| w[0] <= w[1]), "folds only grow: {folds_seen:?}");
    assert!(totals.folds >= 8, "2 s at a fold every 200 ms: {} folds", totals.folds);
    let path =
        |name: &str| totals.paths.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("no path {name}"));
    assert_eq!(path("request").calls, calls);
    assert_eq!(path("request/layer_a").calls, calls);
    for (name, tolerance) in [("request", 0.03), ("request/layer_a", 0.05), ("request/layer_b", 0.05)] {
        let p = path(name);
        let (got, want) = (p.inclusive[0].0, truth.inclusive(name).0);
        eprintln!("{name}: live {got:.5} J, truth {want:.5} J ({:+.2}%)", 100.0 * (got - want) / want);
        assert!((got - want).abs() / want < tolerance, "{name}: live {got} J, truth {want} J");
    }
    let d = &totals.domains[0];
    let total_truth = truth.total.0;
    eprintln!(
        "domain: {:.4} J of {total_truth:.4} J; covered {} ms",
        d.energy.0,
        totals.covered.0 / 1_000_000
    );
    assert!(d.energy.0 <= total_truth * 1.001 && d.energy.0 > total_truth * 0.9);
    assert!(d.provenance.contains("simulated") && !d.measured && d.lost.is_none());
    // Each stretch is forgotten once folded: the recording holds what followed the last cut.
    let left: usize = rec.spans.threads.iter().map(|t| t.events.len()).sum();
    assert!(left < 100, "{left} span edges left after {calls} requests (6 edges each)");
}

/// A long-lived span around everything (a server's main loop) does not pin the spans inside
/// it: they are forgotten once folded, and the outer span's enter alone stays.
#[test]
fn an_open_outer_span_does_not_pin_what_it_holds() {
    let _lock = joules_tests::profiler_lock();
    let sim = Sim::new(SimScript::new(Watts(5.0)).span("layer_a", Watts(40.0)));
    let profiler = Profiler::builder()
        .source(sim)
        .live(LiveConfig::default().fold_every(Duration::from_millis(100)))
        .start()
        .unwrap();
    let live = profiler.live().unwrap();
    let serve = joules::span!("serve");
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < Duration::from_millis(800) {
        let _a = joules::span!("layer_a");
        spin(Duration::from_micros(100));
        n += 1;
    }
    // A snapshot shows what the sampler still holds while the outer span is open.
    let (_, held) = profiler.snapshot().unwrap();
    let edges: usize = held.threads.iter().map(|t| t.events.len()).sum();
    assert!((edges as u64) < n / 2, "{edges} edges held after {n} inner spans inside an open one");
    drop(serve);
    profiler.stop();
    let totals = live.totals();
    let inner = totals.paths.iter().find(|p| p.name == "serve/layer_a").expect("inner path");
    assert_eq!(inner.calls, n);
}

/// The only domain ends (a GPU lost on a GPU-only host): the stretch up to its end is folded,
/// it is reported lost, and spans go on being forgotten rather than filling memory.
#[test]
fn a_live_profile_whose_only_domain_ends_says_so_and_keeps_forgetting() {
    use joules::source::{Domain, ReadCtx, ReadError, Source, SourceKind};
    use joules::{Joules, Nanos};

    struct Dies {
        sim: Sim,
        at: Nanos,
    }
    impl Source for Dies {
        fn kind(&self) -> SourceKind {
            self.sim.kind()
        }
        fn describe(&self) -> String {
            self.sim.describe()
        }
        fn domains(&self) -> &[Domain] {
            self.sim.domains()
        }
        fn set_update_period(&mut self, index: usize, period: Nanos) {
            self.sim.set_update_period(index, period);
        }
        fn read(&mut self, ctx: &ReadCtx, out: &mut [Joules]) -> Result<(), ReadError> {
            if ctx.now >= self.at {
                return Err(ReadError::Lost { lost: vec![(0, "the device is gone".into())] });
            }
            self.sim.read(ctx, out)
        }
    }

    let _lock = joules_tests::profiler_lock();
    let sim = Sim::new(SimScript::new(Watts(5.0)).span("layer_a", Watts(40.0)));
    let dies = Dies { sim, at: Nanos(300_000_000) };
    let profiler = Profiler::builder()
        .source(dies)
        .live(LiveConfig::default().fold_every(Duration::from_millis(100)))
        .start()
        .unwrap();
    let live = profiler.live().unwrap();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(900) {
        let _a = joules::span!("layer_a");
        spin(Duration::from_micros(100));
    }
    let (_, held) = profiler.snapshot().unwrap();
    let edges: usize = held.threads.iter().map(|t| t.events.len()).sum();
    let totals = live.totals();
    profiler.stop();
    let d = &totals.domains[0];
    assert!(d.lost.as_deref().is_some_and(|w| w.contains("the device is gone")), "{:?}", d.lost);
    assert!(d.energy.0 > 0.0, "the stretch before the loss is folded");
    // 600 ms of 100 µs spans after the loss: about 12,000 edges, had they stayed.
    assert!(edges < 2_000, "{edges} span edges held after the only domain ended");
}
