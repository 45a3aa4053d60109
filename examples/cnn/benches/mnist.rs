//! `cargo joules bench --manifest-path examples/cnn/Cargo.toml` runs this (after
//! `scripts/fetch-models cnn`): one
//! batch of 64 test images through the trained CNN per iteration, dense and pruned to
//! [`PRUNED_WIDTHS`]. `cargo joules compare` of the two shows, per layer,
//! what the pruning saved in joules beside what it saved in multiply-adds.

use joules::bench::Bencher;
use joules_example_cnn::{Cnn, PRUNED_WIDTHS, accuracy, models_dir, test_set};

fn load() -> (Cnn, candle_core::Tensor) {
    let dir = models_dir();
    let model = Cnn::load(&dir.join("mnist.pth")).unwrap_or_else(|e| {
        eprintln!("joules-example-cnn: {e}: run scripts/fetch-models cnn first");
        std::process::exit(2)
    });
    let (images, _) = test_set(&dir.join("mnist_test.csv"), 64).unwrap_or_else(|e| {
        eprintln!("joules-example-cnn: {e}: run scripts/fetch-models cnn first");
        std::process::exit(2)
    });
    (model, images)
}

/// Notes the variant's accuracy on the first 1000 test images (its quality, beside what it
/// costs) and its multiply-adds per image.
fn note_quality(b: &mut Bencher<'_>, model: &Cnn) {
    let (images, labels) = test_set(&models_dir().join("mnist_test.csv"), 1000).expect("the test set");
    let acc = accuracy(model, &images, &labels).expect("inference");
    let macs: usize = model.macs().iter().sum();
    b.note(format!(
        "accuracy {:.1}% on the first 1000 MNIST test images; {macs} multiply-adds per image",
        100.0 * acc
    ));
}

fn dense(b: &mut Bencher<'_>) {
    let (model, images) = load();
    note_quality(b, &model);
    b.inferences_per_iter(64);
    b.iter(|| model.forward(&images).expect("inference"));
}

fn pruned(b: &mut Bencher<'_>) {
    let (model, images) = load();
    let model = model.pruned(PRUNED_WIDTHS).expect("pruning");
    note_quality(b, &model);
    b.inferences_per_iter(64);
    b.iter(|| model.forward(&images).expect("inference"));
}

joules::bench_main!(dense, pruned);
