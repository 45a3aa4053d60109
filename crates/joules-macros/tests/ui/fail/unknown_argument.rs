#[joules::measure_energy(label = "x")]
fn layer() {}

fn main() {
    layer();
}
