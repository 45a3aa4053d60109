const NAME: &str = "layer";

#[joules::measure_energy(name = NAME)]
fn layer() {}

fn main() {
    layer();
}
