//! `cargo joules bench` runs this: one batched inference of the MLP per iteration, dense
//! (`inference`) and with 60% of its hidden neurons kept (`pruned`). `cargo joules compare
//! --benches inference pruned` shows per layer what pruning saved in joules beside the
//! multiply-adds it removed.

use joules::bench::Bencher;
use joules_example_mlp::{Mlp, batch};

/// The share of hidden neurons the pruned variant keeps.
const KEEP: f64 = 0.6;

fn inference(b: &mut Bencher<'_>) {
    let model = Mlp::new(42);
    let input = batch(32, 7);
    b.inferences_per_iter(32);
    b.iter(|| model.forward(&input));
}

/// The weights are random, so there is no accuracy to lose: the quality noted is how often
/// the pruned network picks the dense one's class.
fn pruned(b: &mut Bencher<'_>) {
    let dense = Mlp::new(42);
    let model = dense.pruned(KEEP);
    let check = batch(1000, 11);
    let agree = dense.classify(&check).iter().zip(model.classify(&check)).filter(|(a, b)| **a == *b).count();
    b.note(format!(
        "hidden widths {:?} of {:?}; picks the dense network's class for {agree} of 1000 random inputs (random weights: no accuracy to report)",
        model.widths(),
        dense.widths()
    ));
    let input = batch(32, 7);
    b.inferences_per_iter(32);
    b.iter(|| model.forward(&input));
}

joules::bench_main!(inference, pruned);
