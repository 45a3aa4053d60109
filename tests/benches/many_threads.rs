//! 16 threads each enter and leave 1M spans under one profile: every event is either recorded
//! or counted as dropped (a full ring, or the log's cap of 16M events), exactly; and what a
//! sampler look at the spans costs with that many threads.
//!
//! `cargo bench -p joules-tests --bench many_threads` (panics if the counts do not add up).

use std::time::Instant;

use joules::source::{Sim, SimScript};
use joules::{Profiler, Watts};

const THREADS: usize = 16;
const SPANS: usize = 1_000_000;

fn main() {
    let profiler = Profiler::builder().source(Sim::new(SimScript::new(Watts(10.0)))).start().unwrap();
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for _ in 0..SPANS {
                    let _span = joules::span!("work");
                }
            });
        }
    });
    let ran = started.elapsed();
    let rec = profiler.stop();
    let emitted = (THREADS * SPANS * 2) as u64;
    let recorded: u64 = rec.spans.threads.iter().map(|t| t.events.len() as u64).sum();
    let dropped = rec.spans.dropped();
    println!(
        "{THREADS} threads x {SPANS} spans in {:.2} s: {emitted} events emitted, {recorded} recorded, {dropped} dropped ({} threads in the log)",
        ran.as_secs_f64(),
        rec.spans.threads.len()
    );
    assert_eq!(recorded + dropped, emitted, "every event is recorded or counted as dropped");
}
