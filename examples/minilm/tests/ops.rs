//! A profile of the pruned encoder carries every product's declared multiply-adds, as
//! `macs()` counts them from the shapes: the reports show the cut from what the layers
//! declared. Its own test binary, so no other test's inference runs while it profiles.

use joules::source::{Sim, SimScript};
use joules::{Profiler, Watts};
use joules_example_minilm::{KEEP, MiniLm, SENTENCES, fetched};

#[test]
fn a_profile_carries_every_products_declared_multiply_adds() {
    let Some(dir) = fetched() else { return };
    let dense = MiniLm::load(&dir).unwrap();
    for model in [dense.clone(), dense.pruned(KEEP).unwrap()] {
        let batch = model.tokenize(&SENTENCES[..3]).unwrap();
        let (b, n) = batch.shape().unwrap();
        let profiler = Profiler::builder().source(Sim::new(SimScript::new(Watts(10.0)))).start().unwrap();
        model.encode(&batch).unwrap();
        let report = profiler.stop().report("minilm");
        let spans = &report.benches[0].spans;
        let per_call = |path: &str| {
            let span = spans.iter().find(|s| s.path == path).unwrap_or_else(|| panic!("no {path}"));
            span.ops.as_ref().map_or(0.0, |o| o.per_call)
        };
        let parts = [
            "attention/qkv",
            "attention/scores",
            "attention/context",
            "attention/output",
            "feed_forward/intermediate",
            "feed_forward/output",
        ];
        for (i, macs) in model.macs(n).iter().enumerate() {
            for (part, m) in parts.iter().zip(macs) {
                let path = format!("encode/layer.{i}/{part}");
                assert_eq!(per_call(&path), (b * n * m) as f64, "{path}");
            }
            assert_eq!(per_call(&format!("encode/layer.{i}/attention/softmax")), 0.0);
        }
        let encode = spans.iter().find(|s| s.path == "encode").unwrap();
        let total: usize = model.macs(n).iter().flatten().sum();
        assert_eq!(encode.ops.as_ref().unwrap().inclusive.point, (b * n * total) as f64);
    }
}
