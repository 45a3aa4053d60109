//! candle-transformers' stock `BertModel` with the all-MiniLM-L6-v2 weights, annotated by
//! nobody but candle: its own `tracing` spans (`model`, `embeddings`, `encoder`, `layer`,
//! `attn`, `self-attn`, `softmax`, `inter`, `out`, ...) become joules spans through
//! `joules::tracing::JoulesLayer`. `cargo joules bench --manifest-path
//! examples/minilm/Cargo.toml --bench stock` (after `scripts/fetch-models minilm`) gives
//! the per-component table of the same 12 sentences the annotated `sentences` bench runs.
//!
//! Every layer runs the same callsites, so the six layers are one path each component (six
//! calls per iteration), where the annotated example tells `layer.0` from `layer.5`.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use joules::bench::Bencher;
use joules_example_minilm::{MiniLm, SENTENCES, models_dir, pool};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

fn stock(b: &mut Bencher<'_>) {
    // candle's spans are at TRACE level.
    let subscriber = tracing_subscriber::registry()
        .with(joules::tracing::JoulesLayer::new())
        .with(tracing_subscriber::filter::LevelFilter::TRACE);
    subscriber.try_init().expect("the only subscriber of this bench");

    let dir = models_dir();
    let fail = |e: &dyn std::fmt::Display| -> ! {
        eprintln!("joules-example-minilm: {e}: run scripts/fetch-models minilm first");
        std::process::exit(2)
    };
    let config: Config = std::fs::read_to_string(dir.join("config.json"))
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
        .unwrap_or_else(|e| fail(&e));
    // SAFETY: the weights file is not modified while it is mapped (it is only read here).
    let vb = unsafe {
        VarBuilder::from_mmaped_safetensors(&[dir.join("model.safetensors")], DType::F32, &Device::Cpu)
    }
    .unwrap_or_else(|e| fail(&e));
    let model = BertModel::load(vb, &config).unwrap_or_else(|e| fail(&e));

    // The same batch as the annotated example, tokenised by it.
    let ours = MiniLm::load(&dir).unwrap_or_else(|e| fail(&e));
    let batch = ours.tokenize(&SENTENCES).expect("tokenising");
    let types = batch.ids.zeros_like().expect("token types");
    let encode = || -> candle_core::Result<Tensor> {
        let hidden = model.forward(&batch.ids, &types, Some(&batch.mask))?;
        pool(&hidden, &batch.mask)
    };

    // The stock model and ours compute the same embeddings: the comparison is like for like.
    let (stock, annotated) = (encode().expect("inference"), ours.encode(&batch).expect("inference"));
    let agree: Vec<f32> = (0..SENTENCES.len())
        .map(|i| (stock.get(i)? * annotated.get(i)?)?.sum_all()?.to_scalar::<f32>())
        .collect::<candle_core::Result<_>>()
        .expect("inference");
    b.note(format!(
        "candle-transformers BertModel, its own tracing spans; cosine to the annotated example's embeddings: min {:.5}",
        agree.iter().copied().fold(1.0, f32::min)
    ));
    b.inferences_per_iter(SENTENCES.len() as u64);
    b.iter(|| encode().expect("inference"));
}

joules::bench_main!(stock);
