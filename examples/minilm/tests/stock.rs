//! candle-transformers' stock `BertModel` through its own `tracing` spans and joules' Layer:
//! the per-component paths appear, and its embeddings are the annotated example's. Needs the
//! weights (`scripts/fetch-models minilm`) unless JOULES_SKIP_MODELS is set.

use joules::source::{Sim, SimScript};
use joules::{Profiler, Watts};
use joules_example_minilm::{MiniLm, SENTENCES, fetched, stock_bert, stock_encode};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Layer, SubscriberExt};

#[test]
fn the_stock_model_gets_a_path_per_component_and_our_embeddings() {
    let Some(dir) = fetched() else { return };
    let ours = MiniLm::load(&dir).unwrap();
    let batch = ours.tokenize(&SENTENCES[..4]).unwrap();
    let subscriber = tracing_subscriber::registry()
        .with(joules::tracing::JoulesLayer::new().with_filter(LevelFilter::TRACE));
    let (report, stock) = tracing::subscriber::with_default(subscriber, || {
        // candle makes its spans as it loads: under the subscriber, or they are disabled.
        let model = stock_bert(&dir).unwrap();
        let profiler = Profiler::builder().source(Sim::new(SimScript::new(Watts(10.0)))).start().unwrap();
        let stock = stock_encode(&model, &batch).unwrap();
        (profiler.stop().report("stock"), stock)
    });
    let paths: Vec<&str> = report.benches[0].spans.iter().map(|s| s.path.as_str()).collect();
    for want in [
        "model",
        "model/embeddings",
        "model/encoder/layer",
        "model/encoder/layer/attn/self-attn",
        "model/encoder/layer/attn/self-attn/softmax",
        "model/encoder/layer/inter",
        "model/encoder/layer/out",
        "pool",
    ] {
        assert!(paths.contains(&want), "{want} missing from {paths:#?}");
    }
    let layer = report.benches[0].spans.iter().find(|s| s.path == "model/encoder/layer").unwrap();
    assert_eq!(layer.calls.point, 6.0, "six layers, one callsite, one path");

    let annotated = ours.encode(&batch).unwrap();
    for i in 0..4 {
        let c: f32 = (stock.get(i).unwrap() * annotated.get(i).unwrap())
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(c > 0.9999, "sentence {i}: cosine {c}");
    }
}
