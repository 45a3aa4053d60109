#[joules::measure_energy(index = name)]
fn layer(name: &str) -> usize {
    name.len()
}

fn main() {
    layer("x");
}
