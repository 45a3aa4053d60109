#[joules::measure_energy(name = "a", name = "b")]
fn layer() {}

fn main() {
    layer();
}
