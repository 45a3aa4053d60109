//! `cargo joules bench --manifest-path examples/minilm/Cargo.toml` runs this (after `scripts/fetch-models
//! minilm`): the 12 sentences of [`SENTENCES`] through all-MiniLM-L6-v2 per iteration, dense
//! and pruned to two thirds of each layer's attention heads and feed-forward neurons ([`KEEP`]). `cargo joules
//! compare --benches dense pruned` shows, per layer, what the pruning saved in joules beside
//! what it saved in multiply-adds, and each bench's note says what it cost in quality.

use joules::bench::Bencher;
use joules_example_minilm::{KEEP, MiniLm, SENTENCES, cosine, models_dir};

fn load() -> MiniLm {
    MiniLm::load(&models_dir()).unwrap_or_else(|e| {
        eprintln!("joules-example-minilm: {e}: run scripts/fetch-models minilm first");
        std::process::exit(2)
    })
}

/// Notes the variant's quality (the paraphrase cosine, published 0.755 for the dense model,
/// and how close its embeddings of [`SENTENCES`] stay to the dense model's) and its
/// multiply-adds per batch.
fn note_quality(b: &mut Bencher<'_>, dense: &MiniLm, model: &MiniLm) {
    let batch = model.tokenize(&SENTENCES).expect("tokenising");
    let (sentences, tokens) = batch.shape().expect("a batch");
    let macs: usize = model.macs(tokens).iter().flatten().sum::<usize>() * sentences * tokens;
    let (reference, mine) =
        (dense.embed(&SENTENCES).expect("inference"), model.encode(&batch).expect("inference"));
    let agree: Vec<f32> = (0..sentences)
        .map(|i| (reference.get(i)? * mine.get(i)?)?.sum_all()?.to_scalar::<f32>())
        .collect::<Result<_, _>>()
        .expect("inference");
    b.note(format!(
        "paraphrase cosine {:.3} (dense, published: 0.755); cosine to the dense embeddings of {sentences} sentences: mean {:.3}, min {:.3}; {macs} multiply-adds per batch of {sentences} x {tokens} tokens",
        cosine(&mine, 0, 1).expect("inference"),
        agree.iter().sum::<f32>() / agree.len().max(1) as f32,
        agree.iter().copied().fold(1.0, f32::min),
    ));
}

fn dense(b: &mut Bencher<'_>) {
    let model = load();
    note_quality(b, &model, &model);
    let batch = model.tokenize(&SENTENCES).expect("tokenising");
    b.inferences_per_iter(SENTENCES.len() as u64);
    b.iter(|| model.encode(&batch).expect("inference"));
}

fn pruned(b: &mut Bencher<'_>) {
    let dense = load();
    let model = dense.pruned(KEEP).expect("pruning");
    note_quality(b, &dense, &model);
    let batch = model.tokenize(&SENTENCES).expect("tokenising");
    b.inferences_per_iter(SENTENCES.len() as u64);
    b.iter(|| model.encode(&batch).expect("inference"));
}

joules::bench_main!(dense, pruned);
