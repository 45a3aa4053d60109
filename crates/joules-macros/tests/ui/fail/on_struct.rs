#[joules::measure_energy]
struct Layer {
    weights: Vec<f32>,
}

fn main() {
    let _ = Layer { weights: Vec::new() }.weights;
}
