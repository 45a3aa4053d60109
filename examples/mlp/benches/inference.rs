//! `cargo joules bench` runs this: one batched inference of the MLP per iteration.

use joules::bench::Bencher;
use joules_example_mlp::{Mlp, batch};

fn inference(b: &mut Bencher<'_>) {
    let model = Mlp::new(42);
    let input = batch(32, 7);
    b.iter(|| model.forward(&input));
}

joules::bench_main!(inference);
