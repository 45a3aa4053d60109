#[joules::measure_energy(ops = 1, ops = 2)]
fn layer() {}

fn main() {
    layer();
}
