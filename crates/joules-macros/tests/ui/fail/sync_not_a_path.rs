#[joules::measure_energy(sync = 3)]
fn layer() {}

fn main() {
    layer();
}
