//! An ordinary criterion bench measuring joules per iteration through
//! `joules::criterion::Energy`: `cargo bench -p joules-tests --bench energy_criterion`.
//! Criterion's baselines (`--save-baseline`, `--baseline`) compare joules as they compare
//! time. Criterion's HTML report needs its `html_reports` feature, which this workspace
//! builds criterion without: it would plot these joules with the units `Energy` gives, but
//! that was not tried here.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use joules::criterion::Energy;

/// A dense layer's multiply-adds, `n` x `n`.
fn dense(n: usize, x: &[f32], w: &[f32]) -> Vec<f32> {
    (0..n).map(|i| (0..n).map(|j| w[i * n + j] * x[j]).sum()).collect()
}

fn layers(c: &mut Criterion<Energy>) {
    let mut g = c.benchmark_group("dense");
    for n in [128usize, 256] {
        let x = vec![0.5f32; n];
        let w: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.1).collect();
        // Multiply-adds per joule, beside joules per iteration.
        g.throughput(Throughput::Elements((n * n) as u64));
        g.bench_function(format!("{n}x{n}"), |b| b.iter(|| dense(n, black_box(&x), black_box(&w))));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    // Long samples: an energy counter steps about every millisecond.
    config = Criterion::default()
        .with_measurement(Energy::new())
        .sample_size(20)
        .measurement_time(std::time::Duration::from_secs(4));
    targets = layers
}
criterion_main!(benches);
