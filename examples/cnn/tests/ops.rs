//! A profile of the pruned CNN carries each layer's declared multiply-adds, as `macs()` counts
//! them from its shape: the reports show the cut from what the layers declared. Its own test
//! binary, so no other test's inference runs while it profiles.

use joules::source::{Sim, SimScript};
use joules::{Profiler, Watts};
use joules_example_cnn::{Cnn, fetched, test_set};

#[test]
fn a_profile_carries_each_layers_declared_multiply_adds() {
    let Some(dir) = fetched() else { return };
    let dense = Cnn::load(&dir.join("mnist.pth")).unwrap();
    let (images, _) = test_set(&dir.join("mnist_test.csv"), 8).unwrap();
    for model in [dense.clone(), dense.pruned(joules_example_cnn::PRUNED_WIDTHS).unwrap()] {
        let profiler = Profiler::builder().source(Sim::new(SimScript::new(Watts(10.0)))).start().unwrap();
        model.forward(&images).unwrap();
        let report = profiler.stop().report("cnn");
        let spans = &report.benches[0].spans;
        for (layer, macs) in ["conv1", "conv2", "fc1", "fc2"].iter().zip(model.macs()) {
            let path = format!("forward/{layer}");
            let span = spans.iter().find(|s| s.path == path).unwrap_or_else(|| panic!("no {path}"));
            let ops = span.ops.as_ref().unwrap_or_else(|| panic!("{path} declared nothing"));
            assert_eq!(ops.per_call, (8 * macs) as f64, "{path}");
        }
        let forward = spans.iter().find(|s| s.path == "forward").unwrap();
        let total: usize = model.macs().iter().sum();
        assert_eq!(forward.ops.as_ref().unwrap().inclusive.point, (8 * total) as f64);
    }
}
