//! A small multilayer perceptron on ndarray: 784 -> 256 -> 128 -> 10 with ReLU and softmax,
//! the shape of an MNIST classifier. Weights come from a seeded RNG (He initialisation), so
//! every run computes the same thing with no download. Every layer is a span.

use joules::measure_energy;
use ndarray::{Array1, Array2, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

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
    fn same_seed_same_network() {
        let x = batch(2, 3);
        assert_eq!(Mlp::new(1).forward(&x), Mlp::new(1).forward(&x));
        assert_ne!(Mlp::new(1).forward(&x), Mlp::new(2).forward(&x));
    }
}
