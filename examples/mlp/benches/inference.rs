//! `cargo joules bench` runs this: one batched inference of the MLP per iteration, dense
//! (`inference`) and with fewer hidden neurons ([`PRUNED_WIDTHS`], `pruned`). `cargo joules compare
//! --benches inference pruned` shows per layer what pruning saved in joules beside the
//! multiply-adds it removed.

use joules::bench::Bencher;
use joules_example_mlp::{Mlp, PRUNED_WIDTHS, batch};

fn inference(b: &mut Bencher<'_>) {
    let model = Mlp::new(42);
    let input = batch(32, 7);
    b.inferences_per_iter(32);
    b.iter(|| model.forward(&input));
}

/// The weights are random, so the network has no skill for pruning to cost: the note says
/// what was cut, not what it cost.
fn pruned(b: &mut Bencher<'_>) {
    let dense = Mlp::new(42);
    let model = dense.pruned(PRUNED_WIDTHS);
    let macs = |m: &Mlp| m.macs().iter().sum::<usize>();
    b.note(format!(
        "hidden widths {:?} of {:?}: {} of {} multiply-adds per input (random weights: no accuracy to lose or report)",
        model.widths(),
        dense.widths(),
        macs(&model),
        macs(&dense)
    ));
    let input = batch(32, 7);
    b.inferences_per_iter(32);
    b.iter(|| model.forward(&input));
}

joules::bench_main!(inference, pruned);
