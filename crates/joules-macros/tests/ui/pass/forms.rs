use joules::measure_energy;

#[measure_energy]
fn free(x: u32) -> u32 {
    x + 1
}

#[measure_energy(name = "renamed")]
fn named() {}

// Operations from the arguments, of any numeric type; the arguments stay usable.
#[measure_energy(ops = 2 * rows * cols)]
fn matvec(rows: usize, cols: usize, x: Vec<f32>) -> Vec<f32> {
    x.into_iter().take(rows.min(cols)).collect()
}

#[measure_energy(name = "scaled", ops = (n as f64) * 1.5)]
async fn scaled(n: u32, data: String) -> usize {
    data.len() + n as usize
}

#[measure_energy(name = "generic",)]
fn generic<T: Clone + Default>(x: &T) -> T
where
    T: std::fmt::Debug,
{
    let _ = x.clone();
    T::default()
}

struct Layer;

impl Layer {
    #[measure_energy]
    fn forward(&self, x: f32) -> f32 {
        x * 2.0
    }

    #[measure_energy]
    pub async fn forward_async(&self, x: f32) -> Result<f32, String> {
        let y: f32 = "1.5".parse().map_err(|e: std::num::ParseFloatError| e.to_string())?;
        Ok(self.forward(x) + y)
    }
}

trait Model {
    fn run(&mut self) -> usize;
}

impl Model for Layer {
    #[measure_energy]
    fn run(&mut self) -> usize {
        if true {
            return 3;
        }
        4
    }
}

mod gpu {
    pub fn synchronize() {}
}

#[measure_energy(name = "gpu-layer", sync = gpu::synchronize)]
fn synced(x: u32) -> u32 {
    x
}

// One span per index: each layer of a stack is told apart.
#[measure_energy(name = "block", index = i, ops = 4 * width)]
fn block(i: usize, width: usize) -> usize {
    i + width
}

#[measure_energy(name = "gpu-block", index = layer.0, sync = gpu::synchronize)]
fn synced_block(layer: (usize, u8)) -> u8 {
    layer.1
}

#[measure_energy(index = i)]
async fn async_block(i: usize, data: Vec<u8>) -> usize {
    data.len() + i
}

#[measure_energy]
fn early_return(v: Option<u8>) -> Option<u8> {
    let v = v?;
    Some(v)
}

fn main() {
    let _ = free(1) + generic::<u8>(&3) as u32;
    named();
    let _ = matvec(2, 3, vec![1.0; 3]);
    let _ = scaled(2, String::new());
    let mut l = Layer;
    let _ = l.forward(1.0) + l.run() as f32;
    let _ = l.forward_async(1.0);
    let _ = early_return(Some(1)) .map(|v| synced(u32::from(v)));
    let _ = block(1, 2) + usize::from(synced_block((3, 4)));
    let _ = async_block(5, Vec::new());
    let _span = joules::span!("block");
    let _layer = joules::span!("layer", 7);
}
