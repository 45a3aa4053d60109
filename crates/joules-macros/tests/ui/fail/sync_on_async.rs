fn wait_for_gpu() {}

#[joules::measure_energy(sync = wait_for_gpu)]
async fn layer() {}

fn main() {
    let _ = layer();
}
