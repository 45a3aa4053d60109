//! The trained CNN is the real one (98% or better on the first 1000 MNIST test images), and
//! its pruned variant cuts 30-50% of every layer's multiply-adds; what that costs
//! in accuracy is printed. They fail, saying what to run, when the weights are not
//! fetched (`scripts/fetch-models cnn`), unless JOULES_SKIP_MODELS is set.

use joules_example_cnn::{Cnn, PRUNED_WIDTHS, accuracy, fetched, test_set};

#[test]
fn the_trained_cnn_classifies_98_percent_of_1000_test_images() {
    let Some(dir) = fetched() else { return };
    let model = Cnn::load(&dir.join("mnist.pth")).unwrap();
    let (images, labels) = test_set(&dir.join("mnist_test.csv"), 1000).unwrap();
    assert_eq!(labels.len(), 1000);
    let acc = accuracy(&model, &images, &labels).unwrap();
    println!("dense: {:.1}% on 1000 test images", 100.0 * acc);
    assert!(acc >= 0.98, "{acc}");
}

#[test]
fn pruning_cuts_30_to_50_percent_of_each_layers_multiply_adds_and_says_what_it_costs() {
    let Some(dir) = fetched() else { return };
    let model = Cnn::load(&dir.join("mnist.pth")).unwrap();
    let pruned = model.pruned(PRUNED_WIDTHS).unwrap();
    assert_eq!(pruned.widths(), [21, 49, 84]);
    for (layer, (d, p)) in
        ["conv1", "conv2", "fc1", "fc2"].iter().zip(model.macs().into_iter().zip(pruned.macs()))
    {
        let cut = 1.0 - p as f64 / d as f64;
        println!("{layer}: {d} -> {p} multiply-adds per image ({:.0}% fewer)", 100.0 * cut);
        assert!((0.3..=0.5).contains(&cut), "{layer}: {cut}");
    }
    let (images, labels) = test_set(&dir.join("mnist_test.csv"), 1000).unwrap();
    let (dense_acc, pruned_acc) =
        (accuracy(&model, &images, &labels).unwrap(), accuracy(&pruned, &images, &labels).unwrap());
    println!("accuracy: dense {:.1}%, pruned {:.1}%", 100.0 * dense_acc, 100.0 * pruned_acc);
    // A structurally pruned net with no fine-tuning keeps most of its skill, not all.
    assert!(pruned_acc > 0.5, "{pruned_acc}");
}
