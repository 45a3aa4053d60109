//! What a `Window` costs its caller, for per-request use (criterion):
//! - `begin+drop`: beginning a window and dropping it unmeasured (a span's entry and exit,
//!   the label's site looked up, the sampler's alarm checked);
//! - `begin+end`: a whole window with its answer, on the simulated counter (1 ms steps):
//!   the caller waits for the first reading after the end, about half a step on average;
//! - `live span`: a span's entry and exit under a live profile, the hot path a service's
//!   layers pay.
//!
//!     cargo bench -p joules-tests --bench window_cost

use criterion::{Criterion, criterion_group, criterion_main};
use joules::live::LiveConfig;
use joules::source::{Sim, SimScript};
use joules::{Profiler, Watts};

fn window_cost(c: &mut Criterion) {
    let profiler = Profiler::builder()
        .source(Sim::new(SimScript::new(Watts(5.0))))
        .live(LiveConfig::default())
        .start()
        .unwrap();
    let mut g = c.benchmark_group("window");
    g.bench_function("begin+drop", |b| {
        b.iter(|| {
            let w = profiler.window("request");
            drop(std::hint::black_box(w));
        })
    });
    g.bench_function("begin+end", |b| b.iter(|| profiler.window("request").end().unwrap()));
    g.bench_function("live span", |b| {
        b.iter(|| {
            let _s = joules::span!("layer");
        })
    });
    g.finish();
    drop(profiler);
}

criterion_group!(benches, window_cost);
criterion_main!(benches);
