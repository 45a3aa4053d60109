//! candle-transformers' stock `BertModel` with the all-MiniLM-L6-v2 weights, annotated by
//! nobody but candle: its own `tracing` spans (`model`, `embeddings`, `encoder`, `layer`,
//! `attn`, `self-attn`, `softmax`, `inter`, `out`, ...) become joules spans through
//! `joules::tracing::JoulesLayer`. `cargo joules bench --manifest-path
//! examples/minilm/Cargo.toml --bench stock` (after `scripts/fetch-models minilm`) gives
//! the per-component table of the same 12 sentences the annotated `sentences` bench runs.
//! The one span of ours is `pool`, the sentence pooling the stock model does not have.
//!
//! Every layer runs the same callsites, so the six layers are one path each component (six
//! calls per iteration), where the annotated example tells `layer.0` from `layer.5`.

use joules::bench::Bencher;
use joules_example_minilm::{MiniLm, SENTENCES, models_dir, stock_bert, stock_encode};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

fn stock(b: &mut Bencher<'_>) {
    // candle's spans are TRACE; the filter is the Layer's own, so no other layer sees them.
    tracing_subscriber::registry()
        .with(joules::tracing::JoulesLayer::new().with_filter(LevelFilter::TRACE))
        .try_init()
        .expect("the only subscriber of this bench");

    let dir = models_dir();
    let fail = |e: &dyn std::fmt::Display| -> ! {
        eprintln!("joules-example-minilm: {e}: run scripts/fetch-models minilm first");
        std::process::exit(2)
    };
    let model = stock_bert(&dir).unwrap_or_else(|e| fail(&e));
    // The same batch as the annotated example, tokenised by it.
    let ours = MiniLm::load(&dir).unwrap_or_else(|e| fail(&e));
    let batch = ours.tokenize(&SENTENCES).expect("tokenising");

    // Like for like: the stock model computes the annotated example's embeddings.
    let (stock, annotated) =
        (stock_encode(&model, &batch).expect("inference"), ours.encode(&batch).expect("inference"));
    let agree = (0..SENTENCES.len())
        .map(|i| (stock.get(i)? * annotated.get(i)?)?.sum_all()?.to_scalar::<f32>())
        .collect::<candle_core::Result<Vec<f32>>>()
        .expect("inference")
        .into_iter()
        .fold(1.0, f32::min);
    if agree < 0.9999 {
        eprintln!(
            "joules-example-minilm: the stock model's embeddings differ from ours (min cosine {agree})"
        );
        std::process::exit(1);
    }
    b.note(format!(
        "candle-transformers BertModel, its own tracing spans (pool is ours); cosine to the annotated example's embeddings: min {agree:.5}"
    ));
    b.inferences_per_iter(SENTENCES.len() as u64);
    b.iter(|| stock_encode(&model, &batch).expect("inference"));
}

joules::bench_main!(stock);
