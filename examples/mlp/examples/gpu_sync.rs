//! Why a GPU layer needs `sync`: GPU work is asynchronous, so a layer that launches it returns
//! at once, and a span around it measures the launch, not the work. Here a thread stands in
//! for the device (no GPU needed): `launch` queues 30 ms of "kernel", `synchronize` waits for
//! the queue to drain, as candle's `Device::synchronize` or `cudaDeviceSynchronize` would.
//!
//! `cargo run -p joules-example-mlp --example gpu_sync` prints the span's time both ways.

use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::time::Duration;

use joules::source::{Sim, SimScript};
use joules::{Profiler, Watts, measure_energy};

/// A pretend device: a worker thread and a count of queued kernels.
struct Device {
    queue: Mutex<Sender<Duration>>,
    pending: Arc<(Mutex<usize>, Condvar)>,
}

static DEVICE: LazyLock<Device> = LazyLock::new(|| {
    let (tx, rx) = channel::<Duration>();
    let pending = Arc::new((Mutex::new(0usize), Condvar::new()));
    let worker = pending.clone();
    std::thread::spawn(move || {
        for kernel in rx {
            std::thread::sleep(kernel);
            let (count, done) = &*worker;
            *count.lock().unwrap() -= 1;
            done.notify_all();
        }
    });
    Device { queue: Mutex::new(tx), pending }
});

fn launch(kernel: Duration) {
    *DEVICE.pending.0.lock().unwrap() += 1;
    DEVICE.queue.lock().unwrap().send(kernel).unwrap();
}

/// Waits until every launched kernel has run.
fn synchronize() {
    let (count, done) = &*DEVICE.pending;
    let mut n = count.lock().unwrap();
    while *n > 0 {
        n = done.wait(n).unwrap();
    }
}

#[measure_energy(name = "matmul-unsynced")]
fn matmul_unsynced() {
    launch(Duration::from_millis(30));
}

#[measure_energy(name = "matmul-synced", sync = synchronize)]
fn matmul_synced() {
    launch(Duration::from_millis(30));
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let script =
        SimScript::new(Watts(60.0)).span("matmul-unsynced", Watts(300.0)).span("matmul-synced", Watts(300.0));
    let profiler = Profiler::builder().source(Sim::new(script)).start()?;
    for _ in 0..5 {
        matmul_unsynced();
        synchronize(); // outside the span: the work lands in no span at all
        matmul_synced();
    }
    let report = profiler.stop().report("gpu-sync");
    for span in &report.benches[0].spans {
        println!(
            "{:16} {:>8.3} ms per call",
            span.path,
            span.exclusive_ns.point / span.calls.point.max(1.0) / 1e6
        );
    }
    println!("\nWithout sync the span ends at the launch; with it, the span covers the 30 ms of work.");
    Ok(())
}
