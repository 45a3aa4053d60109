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
    log_appends();
}

/// A sampler's look at the spans appends each thread's events to the log, finding that
/// thread's list by its index: with n threads that must cost O(1), so that a look costs O(n)
/// and not O(n²). Round-robin appends over ever more threads should take the same time each.
fn log_appends() {
    use joules::Nanos;
    use joules::spanlog::{EventKind, SpanLog};
    const APPENDS: u32 = 2_000_000;
    for threads in [1u32, 16, 256, 4096] {
        let mut log = SpanLog::new();
        let site = log.add_site("work");
        let started = Instant::now();
        for i in 0..APPENDS {
            log.push(i % threads, Nanos(u64::from(i)), site, EventKind::Enter);
        }
        let ns = started.elapsed().as_nanos() as f64 / f64::from(APPENDS);
        println!("log appends over {threads} threads: {ns:.1} ns each");
    }
}
