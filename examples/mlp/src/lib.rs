//! A small multilayer perceptron on ndarray: 784 -> 256 -> 128 -> 10 with ReLU and softmax,
//! the shape of an MNIST classifier. Weights come from a seeded RNG (He initialisation), so
//! every run computes the same thing with no download. Every layer is a span.

use joules::measure_energy;
use ndarray::{Array1, Array2, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The pruned variant's hidden widths: 179 of 256 and 89 of 128 neurons, 30%, 51% and 30%
/// fewer multiply-adds in the three layers (the middle one loses both its inputs and its
/// outputs).
pub const PRUNED_WIDTHS: [usize; 2] = [179, 89];

/// One fully connected layer: `y = x W + b`.
#[derive(Debug, Clone)]
pub struct Dense {
    weights: Array2<f32>,
    bias: Array1<f32>,
}

impl Dense {
    fn new(inputs: usize, outputs: usize, rng: &mut StdRng) -> Self {
        let scale = (2.0 / inputs as f32).sqrt();
        let weights = Array2::from_shape_fn((inputs, outputs), |_| (rng.random::<f32>() * 2.0 - 1.0) * scale);
        Dense { weights, bias: Array1::zeros(outputs) }
    }

    fn forward(&self, x: &Array2<f32>) -> Array2<f32> {
        x.dot(&self.weights) + &self.bias
    }

    /// Multiply-adds of a forward pass over `rows` inputs.
    fn macs(&self, rows: usize) -> usize {
        rows * self.weights.len()
    }

    /// Keeps the inputs `rows` (what a pruned layer before it still gives) and the outputs
    /// `cols`.
    fn select(&self, rows: &[usize], cols: &[usize]) -> Self {
        Dense {
            weights: self.weights.select(Axis(0), rows).select(Axis(1), cols),
            bias: self.bias.select(Axis(0), cols),
        }
    }
}

/// The `n` of `scores` that are largest, in index order.
fn top(scores: &[f32], n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order.truncate(n);
    order.sort_unstable();
    order
}

/// The network.
#[derive(Debug, Clone)]
pub struct Mlp {
    layers: [Dense; 3],
}

impl Mlp {
    /// Input features.
    pub const INPUTS: usize = 784;
    /// Output classes.
    pub const CLASSES: usize = 10;

    /// A network with weights drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        Mlp {
            layers: [
                Dense::new(Self::INPUTS, 256, &mut rng),
                Dense::new(256, 128, &mut rng),
                Dense::new(128, Self::CLASSES, &mut rng),
            ],
        }
    }

    /// Neurons of the two hidden layers.
    pub fn widths(&self) -> [usize; 2] {
        [self.layers[0].weights.ncols(), self.layers[1].weights.ncols()]
    }

    /// Multiply-adds per input, per layer (dense1, dense2, dense3).
    pub fn macs(&self) -> [usize; 3] {
        [self.layers[0].macs(1), self.layers[1].macs(1), self.layers[2].macs(1)]
    }

    /// A structurally pruned copy keeping `widths` neurons of the two hidden layers (each at
    /// most what it has), those whose incoming and outgoing weights have the largest L2 norm;
    /// the layer after each loses the inputs that fed from what was removed.
    pub fn pruned(&self, widths: [usize; 2]) -> Self {
        let [d1, d2, d3] = &self.layers;
        let norms = |into: &Dense, out_of: &Dense| -> Vec<f32> {
            let incoming = into.weights.map(|w| w * w).sum_axis(Axis(0));
            let outgoing = out_of.weights.map(|w| w * w).sum_axis(Axis(1));
            (incoming + outgoing).to_vec()
        };
        let all = |n: usize| (0..n).collect::<Vec<usize>>();
        let keep1 = top(&norms(d1, d2), widths[0].min(d1.weights.ncols()));
        let d2 = d2.select(&keep1, &all(d2.weights.ncols()));
        let keep2 = top(&norms(&d2, d3), widths[1].min(d2.weights.ncols()));
        Mlp {
            layers: [
                d1.select(&all(Self::INPUTS), &keep1),
                d2.select(&all(keep1.len()), &keep2),
                d3.select(&keep2, &all(Self::CLASSES)),
            ],
        }
    }

    /// Class probabilities for a batch of inputs (rows).
    #[measure_energy]
    pub fn forward(&self, x: &Array2<f32>) -> Array2<f32> {
        let h = self.dense1(x);
        let h = relu(h);
        let h = self.dense2(&h);
        let h = relu(h);
        let logits = self.dense3(&h);
        softmax(logits)
    }

    #[measure_energy(name = "dense1", ops = self.layers[0].macs(x.nrows()))]
    fn dense1(&self, x: &Array2<f32>) -> Array2<f32> {
        self.layers[0].forward(x)
    }

    #[measure_energy(name = "dense2", ops = self.layers[1].macs(x.nrows()))]
    fn dense2(&self, x: &Array2<f32>) -> Array2<f32> {
        self.layers[1].forward(x)
    }

    #[measure_energy(name = "dense3", ops = self.layers[2].macs(x.nrows()))]
    fn dense3(&self, x: &Array2<f32>) -> Array2<f32> {
        self.layers[2].forward(x)
    }
}

#[measure_energy]
fn relu(mut x: Array2<f32>) -> Array2<f32> {
    x.mapv_inplace(|v| v.max(0.0));
    x
}

#[measure_energy]
fn softmax(mut x: Array2<f32>) -> Array2<f32> {
    for mut row in x.axis_iter_mut(Axis(0)) {
        let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        row.mapv_inplace(|v| (v - max).exp());
        let sum = row.sum();
        row /= sum;
    }
    x
}

/// A batch of `batch` inputs in [0, 1) drawn from `seed`.
pub fn batch(batch: usize, seed: u64) -> Array2<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    Array2::from_shape_fn((batch, Mlp::INPUTS), |_| rng.random::<f32>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_gives_probabilities() {
        let y = Mlp::new(7).forward(&batch(4, 1));
        assert_eq!(y.dim(), (4, Mlp::CLASSES));
        for row in y.axis_iter(Axis(0)) {
            assert!((row.sum() - 1.0).abs() < 1e-5);
            assert!(row.iter().all(|&p| p > 0.0));
        }
    }

    #[test]
    fn pruning_cuts_the_hidden_layers_multiply_adds_and_keeps_the_strongest_neurons() {
        let dense = Mlp::new(42);
        let pruned = dense.pruned(PRUNED_WIDTHS);
        assert_eq!(pruned.widths(), [179, 89]);
        for (d, p) in dense.macs().into_iter().zip(pruned.macs()) {
            let cut = 1.0 - p as f64 / d as f64;
            assert!((0.3..=0.52).contains(&cut), "{d} -> {p}");
        }
        // Keeping everything is the same network.
        let x = batch(16, 9);
        assert_eq!(dense.pruned(dense.widths()).forward(&x), dense.forward(&x));
        let y = pruned.forward(&x);
        assert_eq!(y.dim(), (16, Mlp::CLASSES));
        // A kept neuron carries its own weights: its column of dense1 is the dense one's.
        let kept = top(
            &(dense.layers[0].weights.map(|w| w * w).sum_axis(Axis(0))
                + dense.layers[1].weights.map(|w| w * w).sum_axis(Axis(1)))
            .to_vec(),
            179,
        );
        assert_eq!(pruned.layers[0].weights.column(0), dense.layers[0].weights.column(kept[0]));
    }

    #[test]
    fn same_seed_same_network() {
        let x = batch(2, 3);
        assert_eq!(Mlp::new(1).forward(&x), Mlp::new(1).forward(&x));
        assert_ne!(Mlp::new(1).forward(&x), Mlp::new(2).forward(&x));
    }
}
