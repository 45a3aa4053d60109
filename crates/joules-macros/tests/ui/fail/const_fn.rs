#[joules::measure_energy]
const fn layer() -> u32 {
    1
}

fn main() {
    let _ = layer();
}
