//! The encoder is the real all-MiniLM-L6-v2 (the published paraphrase cosine, 0.755), and its
//! pruned variant cuts at least 30% of the pruned layers' multiply-adds; what that costs in
//! embedding quality is printed. They fail, saying what to run, when the weights are not
//! fetched (`scripts/fetch-models minilm`), unless JOULES_SKIP_MODELS is set.

use joules_example_minilm::{FFN, HEADS, KEEP, MiniLm, SENTENCES, cosine, fetched};

fn model() -> Option<MiniLm> {
    fetched().map(|dir| MiniLm::load(&dir).unwrap())
}

#[test]
fn the_paraphrase_cosine_is_the_published_one_and_an_unrelated_pair_is_near_zero() {
    let Some(model) = model() else { return };
    let e = model
        .embed(&[
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The quarterly report shows revenue grew by twelve percent while costs stayed flat.",
        ])
        .unwrap();
    let (para, unrelated) = (cosine(&e, 0, 1).unwrap(), cosine(&e, 0, 2).unwrap());
    println!("paraphrase {para:.4}, unrelated {unrelated:.4}");
    assert!((para - 0.755).abs() <= 0.01, "{para}");
    assert!(unrelated.abs() < 0.15, "{unrelated}");
}

#[test]
fn padding_a_sentence_in_a_batch_changes_nothing() {
    let Some(model) = model() else { return };
    let alone = model.embed(&["A man is eating food."]).unwrap();
    let batched = model.embed(&["A man is eating food.", SENTENCES[10]]).unwrap();
    let same = (alone.get(0).unwrap() * batched.get(0).unwrap()).unwrap().sum_all().unwrap();
    let same: f32 = same.to_scalar().unwrap();
    assert!(same > 0.9999, "{same}");
}

#[test]
fn pruning_cuts_a_third_of_the_multiply_adds_and_says_what_it_costs() {
    let Some(model) = model() else { return };
    let pruned = model.pruned(KEEP).unwrap();
    for (dense, cut) in model.widths().iter().zip(pruned.widths()) {
        assert_eq!(*dense, (HEADS, FFN));
        assert_eq!(cut, (8, 1024));
    }
    let n = 16;
    let parts = ["qkv", "scores", "context", "attention output", "intermediate", "ffn output"];
    for (d, p) in model.macs(n).iter().zip(pruned.macs(n)) {
        for (part, (d, p)) in parts.iter().zip(d.iter().zip(p)) {
            let cut = 1.0 - p as f64 / *d as f64;
            assert!(cut >= 0.3, "{part}: {cut}");
        }
    }
    let dense = model.embed(&SENTENCES).unwrap();
    let cut = pruned.embed(&SENTENCES).unwrap();
    let agree: Vec<f32> = (0..SENTENCES.len())
        .map(|i| {
            (dense.get(i).unwrap() * cut.get(i).unwrap()).unwrap().sum_all().unwrap().to_scalar().unwrap()
        })
        .collect();
    let mean = agree.iter().sum::<f32>() / agree.len() as f32;
    let para = cosine(&cut, 0, 1).unwrap();
    println!(
        "pruned to dense cosine: mean {mean:.3}, min {:.3}; paraphrase {para:.3}",
        agree.iter().cloned().fold(1.0, f32::min)
    );
    // Pruned with no retraining, the encoder keeps much of its meaning, not all.
    assert!(mean > 0.5, "{mean}");
}
