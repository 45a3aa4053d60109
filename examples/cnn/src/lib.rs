//! A small trained MNIST classifier on candle (CPU): conv32-pool-conv64-pool-fc128-fc10, with
//! the weights of PyPI's `ccexam==1.0.0` (`scripts/fetch-models cnn`), dense or structurally
//! pruned. Every layer is a span that declares its multiply-adds from its shape, so reports
//! give operations per joule, and dense against pruned shows what pruning saved per layer.

use std::path::{Path, PathBuf};

use candle_core::{D, DType, Device, IndexOp, Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear};
use joules::measure_energy;

/// Pixels per side of an MNIST image.
pub const SIDE: usize = 28;

/// The pruned variant's widths: 21 of 32 and 49 of 64 channels, 84 of 128 neurons, so that
/// every layer does 34-50% fewer multiply-adds (a layer's count falls with both its own
/// width and the width of the layer before it).
pub const PRUNED_WIDTHS: [usize; 3] = [21, 49, 84];

/// Where `scripts/fetch-models cnn` puts the weights and the test set: `$JOULES_MODELS_DIR/cnn`,
/// or `target/joules-models/cnn` at the repository's root.
pub fn models_dir() -> PathBuf {
    match std::env::var_os("JOULES_MODELS_DIR") {
        Some(dir) => PathBuf::from(dir).join("cnn"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/joules-models/cnn"),
    }
}

/// For tests: [`models_dir`] where `scripts/fetch-models cnn` has put mnist.pth and mnist_test.csv
/// there; else None, saying so, where JOULES_SKIP_MODELS is set; else a panic that says what
/// to run.
pub fn fetched() -> Option<PathBuf> {
    let dir = models_dir();
    if dir.join("mnist.pth").exists() && dir.join("mnist_test.csv").exists() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("JOULES_SKIP_MODELS").is_some(),
        "{} has no mnist.pth and mnist_test.csv: run scripts/fetch-models cnn (or set JOULES_SKIP_MODELS=1 to skip these tests)",
        dir.display()
    );
    eprintln!("SKIPPED (JOULES_SKIP_MODELS): no weights in {}", dir.display());
    None
}

/// The network: two 3x3 convolutions (padding 1), each followed by ReLU and a 2x2 max-pool,
/// then two fully connected layers.
#[derive(Debug, Clone)]
pub struct Cnn {
    conv1: Conv2d,
    conv2: Conv2d,
    fc1: Linear,
    fc2: Linear,
    /// Channels of the two convolutions and neurons of the hidden layer.
    widths: [usize; 3],
}

fn conv(weight: Tensor, bias: Tensor) -> Conv2d {
    Conv2d::new(weight, Some(bias), Conv2dConfig { padding: 1, ..Conv2dConfig::default() })
}

impl Cnn {
    /// The trained network in `mnist.pth` (a PyTorch state dict).
    pub fn load(path: &Path) -> Result<Self> {
        let tensors: std::collections::HashMap<String, Tensor> =
            candle_core::pickle::read_all(path)?.into_iter().collect();
        let get = |name: &str| {
            tensors
                .get(name)
                .cloned()
                .ok_or_else(|| candle_core::Error::Msg(format!("{}: no tensor `{name}`", path.display())))
        };
        Self::from_weights([
            (get("features.0.weight")?, get("features.0.bias")?),
            (get("features.3.weight")?, get("features.3.bias")?),
            (get("classifier.0.weight")?, get("classifier.0.bias")?),
            (get("classifier.2.weight")?, get("classifier.2.bias")?),
        ])
    }

    fn from_weights(w: [(Tensor, Tensor); 4]) -> Result<Self> {
        let [(c1w, c1b), (c2w, c2b), (f1w, f1b), (f2w, f2b)] = w;
        let widths = [c1w.dim(0)?, c2w.dim(0)?, f1w.dim(0)?];
        Ok(Cnn {
            conv1: conv(c1w.to_dtype(DType::F32)?, c1b.to_dtype(DType::F32)?),
            conv2: conv(c2w.to_dtype(DType::F32)?, c2b.to_dtype(DType::F32)?),
            fc1: Linear::new(f1w.to_dtype(DType::F32)?, Some(f1b.to_dtype(DType::F32)?)),
            fc2: Linear::new(f2w.to_dtype(DType::F32)?, Some(f2b.to_dtype(DType::F32)?)),
            widths,
        })
    }

    /// Channels of the two convolutions and neurons of the hidden layer.
    pub fn widths(&self) -> [usize; 3] {
        self.widths
    }

    /// Multiply-adds per image, per layer (conv1, conv2, fc1, fc2).
    pub fn macs(&self) -> [usize; 4] {
        let [c1, c2, h] = self.widths;
        let (s1, s2, s3) = (SIDE * SIDE, (SIDE / 2) * (SIDE / 2), (SIDE / 4) * (SIDE / 4));
        [s1 * c1 * 9, s2 * c2 * c1 * 9, s3 * c2 * h, h * 10]
    }

    /// A structurally pruned copy keeping `widths` channels of the two convolutions and
    /// neurons of the hidden layer (each at most what it has), those whose weights have the
    /// largest L2 norm; the layers after each pruned one lose the inputs that fed from what
    /// was removed.
    pub fn pruned(&self, widths: [usize; 3]) -> Result<Self> {
        let top = |w: &Tensor, n: usize| -> Result<Tensor> {
            let norms: Vec<f32> = w.flatten_from(1)?.sqr()?.sum(D::Minus1)?.to_vec1()?;
            let mut order: Vec<u32> = (0..norms.len() as u32).collect();
            order.sort_by(|&a, &b| norms[b as usize].total_cmp(&norms[a as usize]));
            order.truncate(n.max(1));
            order.sort_unstable();
            Tensor::new(order, w.device())
        };
        let (c1w, c1b) = (self.conv1.weight(), self.conv1.bias().expect("a bias"));
        let (c2w, c2b) = (self.conv2.weight(), self.conv2.bias().expect("a bias"));
        let (f1w, f1b) = (self.fc1.weight(), self.fc1.bias().expect("a bias"));
        let (f2w, f2b) = (self.fc2.weight(), self.fc2.bias().expect("a bias"));
        let keep1 = top(c1w, widths[0].min(self.widths[0]))?;
        let c1 = (c1w.index_select(&keep1, 0)?, c1b.index_select(&keep1, 0)?);
        let c2w_in = c2w.index_select(&keep1, 1)?;
        let keep2 = top(&c2w_in, widths[1].min(self.widths[1]))?;
        let c2 = (c2w_in.index_select(&keep2, 0)?, c2b.index_select(&keep2, 0)?);
        // fc1's inputs are the pooled conv2 maps flattened channel by channel (7x7 each).
        let per = (SIDE / 4) * (SIDE / 4);
        let kept2: Vec<u32> = keep2.to_vec1()?;
        let cols: Vec<u32> =
            kept2.iter().flat_map(|&c| (0..per as u32).map(move |i| c * per as u32 + i)).collect();
        let f1w_in = f1w.index_select(&Tensor::new(cols, f1w.device())?, 1)?;
        let keep3 = top(&f1w_in, widths[2].min(self.widths[2]))?;
        let f1 = (f1w_in.index_select(&keep3, 0)?, f1b.index_select(&keep3, 0)?);
        let f2 = (f2w.index_select(&keep3, 1)?, f2b.clone());
        Self::from_weights([c1, c2, f1, f2])
    }

    /// Class scores (logits) for a batch of images, shape (batch, 1, 28, 28), normalised as
    /// the network was trained ([`normalise`]).
    #[measure_energy]
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let batch = x.dim(0)?;
        let x = self.conv1(x, batch)?;
        let x = self.conv2(&x, batch)?;
        let x = self.fc1(&x.flatten_from(1)?, batch)?;
        self.fc2(&x, batch)
    }

    #[measure_energy(name = "conv1", ops = batch * self.macs()[0])]
    fn conv1(&self, x: &Tensor, batch: usize) -> Result<Tensor> {
        self.conv1.forward(x)?.relu()?.max_pool2d(2)
    }

    #[measure_energy(name = "conv2", ops = batch * self.macs()[1])]
    fn conv2(&self, x: &Tensor, batch: usize) -> Result<Tensor> {
        self.conv2.forward(x)?.relu()?.max_pool2d(2)
    }

    #[measure_energy(name = "fc1", ops = batch * self.macs()[2])]
    fn fc1(&self, x: &Tensor, batch: usize) -> Result<Tensor> {
        self.fc1.forward(x)?.relu()
    }

    #[measure_energy(name = "fc2", ops = batch * self.macs()[3])]
    fn fc2(&self, x: &Tensor, batch: usize) -> Result<Tensor> {
        self.fc2.forward(x)
    }

    /// The predicted digit of each image.
    pub fn classify(&self, x: &Tensor) -> Result<Vec<u32>> {
        self.forward(x)?.argmax(D::Minus1)?.to_vec1()
    }
}

/// Pixels 0-255 to the network's input: (x/255 - 0.1307) / 0.3081.
pub fn normalise(pixels: &Tensor) -> Result<Tensor> {
    ((pixels / 255.0)? - 0.1307)? / 0.3081
}

/// The first `n` images of an MNIST CSV (a header, then `label,p1..p784` per row): the
/// images normalised, shape (n, 1, 28, 28), and their labels.
pub fn test_set(path: &Path, n: usize) -> Result<(Tensor, Vec<u32>)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
    let (mut pixels, mut labels) = (Vec::with_capacity(n * SIDE * SIDE), Vec::with_capacity(n));
    for (i, line) in text.lines().skip(1).take(n).enumerate() {
        let mut fields = line.split(',').map(|f| f.trim().parse::<f32>());
        let bad = || {
            candle_core::Error::Msg(format!(
                "{}: row {} is not a label and 784 pixels",
                path.display(),
                i + 2
            ))
        };
        labels.push(fields.next().and_then(|f| f.ok()).ok_or_else(bad)? as u32);
        let row: Vec<f32> = fields.collect::<std::result::Result<_, _>>().map_err(|_| bad())?;
        if row.len() != SIDE * SIDE {
            return Err(bad());
        }
        pixels.extend(row);
    }
    let count = labels.len();
    let images = Tensor::from_vec(pixels, (count, 1, SIDE, SIDE), &Device::Cpu)?;
    Ok((normalise(&images)?, labels))
}

/// The share of `images` classified as `labels` say.
pub fn accuracy(model: &Cnn, images: &Tensor, labels: &[u32]) -> Result<f64> {
    let mut right = 0;
    // Batches of 100 keep memory small.
    for start in (0..labels.len()).step_by(100) {
        let len = 100.min(labels.len() - start);
        let got = model.classify(&images.i(start..start + len)?)?;
        right += got.iter().zip(&labels[start..start + len]).filter(|(a, b)| a == b).count();
    }
    Ok(right as f64 / labels.len().max(1) as f64)
}
