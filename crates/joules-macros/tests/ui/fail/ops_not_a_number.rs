#[joules::measure_energy(ops = name.clone())]
fn layer(name: String) -> usize {
    name.len()
}

fn main() {
    layer(String::new());
}
