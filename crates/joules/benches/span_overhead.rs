//! What a span costs: entering and leaving one with a profiler running, with none, and a
//! `tracing` span under a `Registry` subscriber for comparison (what `#[instrument]` does per
//! call: create, enter, exit, close).
//!
//! Targets: running <= 30 ns, idle <= 1 ns, running <= 0.5x the tracing span. With
//! `--features tracing`, also a `tracing` span through joules' Layer while a profiler runs.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use joules::source::EstimateSource;
use joules::{Profiler, Watts};

fn spans(c: &mut Criterion) {
    let mut g = c.benchmark_group("span_enter_exit");

    g.bench_function("joules_idle", |b| {
        b.iter(|| {
            let guard = joules::span!("layer");
            black_box(&guard);
        })
    });

    let subscriber = tracing_subscriber::registry();
    tracing::subscriber::with_default(subscriber, || {
        g.bench_function("tracing_registry_new_span", |b| {
            b.iter(|| {
                let span = tracing::info_span!("layer");
                let entered = span.enter();
                black_box(&entered);
            })
        });
        let span = tracing::info_span!("layer");
        g.bench_function("tracing_registry_reentered_span", |b| {
            b.iter(|| {
                let entered = span.enter();
                black_box(&entered);
            })
        });
    });

    // joules' Layer installed in production, no profiler running.
    #[cfg(feature = "tracing")]
    layer_spans(&mut g, "idle");

    {
        // The sampler drains the buffers at 1 kHz as in a real profile; past the span log's
        // cap, drained events are counted and discarded, so memory stays bounded. A source
        // without the simulator's edge tap (which adds its own ring push per edge), as
        // hardware is read.
        let profiler =
            Profiler::builder().source(EstimateSource::with_watts_per_core(Watts(10.0))).start().unwrap();
        g.bench_function("joules_running", |b| {
            b.iter(|| {
                let guard = joules::span!("layer");
                black_box(&guard);
            })
        });
        // The same `tracing` spans with joules' Layer on the registry, a profiler running
        // (`--features tracing`).
        #[cfg(feature = "tracing")]
        layer_spans(&mut g, "running");
        drop(profiler);
    }
    g.finish();
}

#[cfg(feature = "tracing")]
fn layer_spans(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>, state: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    let subscriber = tracing_subscriber::registry().with(joules::tracing::JoulesLayer::new());
    tracing::subscriber::with_default(subscriber, || {
        g.bench_function(format!("tracing_joules_layer_{state}_new_span"), |b| {
            b.iter(|| {
                let span = tracing::info_span!("layer");
                let entered = span.enter();
                black_box(&entered);
            })
        });
        let span = tracing::info_span!("layer");
        g.bench_function(format!("tracing_joules_layer_{state}_reentered_span"), |b| {
            b.iter(|| {
                let entered = span.enter();
                black_box(&entered);
            })
        });
    });
}

criterion_group!(benches, spans);
criterion_main!(benches);
