#[joules::measure_energy(name = "encoder/attention")]
fn layer() {}

fn main() {
    layer();
}
