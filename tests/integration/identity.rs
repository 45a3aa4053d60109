//! Span identity: two sites with one name under one parent (every layer's `forward`) are two
//! paths, in reports and in comparisons.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use joules::attribute::{SpanTree, Window};
use joules::compare::{CompareConfig, Verdict, compare};
use joules::report::Report;
use joules::source::{Sim, SimScript};
use joules::summary::{SampleWindow, summarize};
use joules::{Joules, Nanos, Profiler, Watts, measure_energy};

fn spin(us: u64) {
    let until = Instant::now() + Duration::from_micros(us);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// How long attention's `forward` spins on average, in microseconds.
static ATTENTION_US: AtomicU64 = AtomicU64::new(300);

/// `us` times a factor from 0.5 to 1.5 (1 on average), drawn afresh per call. Two layers that
/// always take the same time in turn fill every counter interval in the same proportion, and
/// no estimator can tell their powers apart (the regression flags them merged); varying their
/// lengths, as a real model's inputs do, lets it.
fn varied(us: u64) -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0x2545_f491_4f6c_dd1d);
    let x = STATE.fetch_add(0x9e37_79b9_7f4a_7c15, Relaxed);
    let z = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb) ^ (z >> 31);
    us / 2 + (z % (us + 1))
}

mod attention {
    #[joules::measure_energy]
    pub fn forward() {
        super::spin(super::varied(super::ATTENTION_US.load(std::sync::atomic::Ordering::Relaxed)));
    }
}

mod mlp {
    #[joules::measure_energy]
    pub fn forward() {
        super::spin(super::varied(300));
    }
}

#[measure_energy]
fn model() {
    spin(50);
    attention::forward();
    mlp::forward();
}

/// Eight samples of the model, reported as `cargo joules bench` would.
fn run(attention_us: u64) -> Report {
    let _lock = joules_tests::profiler_lock();
    ATTENTION_US.store(attention_us, Relaxed);
    let script = SimScript::new(Watts(8.0))
        .span("model", Watts(15.0))
        .span("forward", Watts(30.0))
        .unit(Joules(15.3e-6))
        .jitter(Nanos(20_000));
    let profiler = Profiler::builder().source(Sim::new(script)).start().unwrap();
    let mut samples = Vec::new();
    for _ in 0..8 {
        let start = profiler.now();
        let mut iterations = 0;
        while profiler.now().0 - start.0 < 120_000_000 {
            model();
            iterations += 1;
        }
        samples.push(SampleWindow { window: Window { start, end: profiler.now() }, iterations });
    }
    let rec = profiler.stop();
    let tree = SpanTree::build(&rec.spans, rec.end());
    let bench = summarize("model", &rec.timeline, &tree, &rec.spans, &samples, None, Vec::new());
    Report::new(rec.sources, rec.unavailable, vec![bench])
}

#[test]
fn two_forwards_under_one_parent_are_two_paths_and_the_gate_names_the_costlier() {
    let before = run(300);
    let paths: Vec<&str> = before.benches[0].spans.iter().map(|s| s.path.as_str()).collect();
    let module = module_path!();
    let att = format!("model/forward ({module}::attention)");
    let mlp = format!("model/forward ({module}::mlp)");
    assert!(paths.contains(&att.as_str()) && paths.contains(&mlp.as_str()), "{paths:?}");
    let sites: Vec<_> = before.benches[0].spans.iter().filter_map(|s| s.site.as_ref()).collect();
    assert!(
        sites.iter().any(|s| s.module.ends_with("::attention") && s.file.ends_with("identity.rs")),
        "{sites:?}"
    );

    // Attention's forward costing 50% more, the rest as measured: the comparison must pair
    // each path with itself and name attention alone. (Measured twice instead, the two runs'
    // own drift on a shared 2-core VM, where other tests load the cores meanwhile, decided
    // the verdicts as often as the change did; the gate's sensitivity is `gate`'s and
    // `accuracy`'s to test.)
    let mut after = before.clone();
    for span in after.benches[0].spans.iter_mut().filter(|s| s.path == att) {
        for e in &mut span.energy {
            e.exclusive_j = e.exclusive_j.scaled(1.5);
            e.inclusive_j = e.inclusive_j.scaled(1.5);
        }
    }
    let cmp = compare(&before, &after, &CompareConfig { noise: 0.05, ..CompareConfig::default() }).unwrap();
    let verdict = |path: &str| {
        cmp.changes
            .iter()
            .find(|c| c.path == path)
            .map(|c| c.verdict)
            .unwrap_or_else(|| panic!("{path} compared"))
    };
    assert_eq!(verdict(&att), Verdict::Regressed, "{cmp:#?}");
    assert_eq!(verdict(&mlp), Verdict::NoChange, "{cmp:#?}");
    assert_eq!(cmp.changes.iter().filter(|c| c.path == att).count(), 1, "each path is paired once");
}
