//! A service profiled live for minutes holds steady memory: requests at 1 kHz, each a root
//! span with two layers, under a live profiler on the probed sources (the CPU-time estimate
//! where no counter can be read), folding every 5 s. The process's resident memory and the
//! span edges the sampler holds are sampled every 10 s; once the readings kept for windows
//! (60 s) are full, memory must stay flat: the run fails if it grew by more than
//! `MAX_GROWTH_KB` between the 70th second and the end.
//!
//! `cargo bench -p joules-tests --bench live_memory` (or `cargo test ... --bench`, as CI
//! does); `JOULES_SERVICE_SECONDS` shortens or lengthens the run (default 120).

use std::time::{Duration, Instant};

use joules::Profiler;
use joules::live::LiveConfig;

const MAX_GROWTH_KB: u64 = 1024;

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::black_box(0u64);
    }
}

fn main() {
    let seconds: u64 =
        std::env::var("JOULES_SERVICE_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(120);
    let profiler =
        Profiler::builder().probed_sources().live(LiveConfig::default()).start().expect("a profiler");
    let live = profiler.live().expect("live");
    let start = Instant::now();
    let mut next_request = start;
    let mut next_look = start;
    let mut requests = 0u64;
    let mut looks: Vec<(u64, u64, usize, u64)> = Vec::new();
    while start.elapsed() < Duration::from_secs(seconds) {
        if Instant::now() >= next_look {
            let held =
                profiler.snapshot().map_or(0, |(_, log)| log.threads.iter().map(|t| t.events.len()).sum());
            let t = start.elapsed().as_secs();
            looks.push((t, rss_kb(), held, live.totals().folds));
            eprintln!(
                "{t:>4} s: {requests} requests, RSS {} KB, {held} span edges held, {} folds",
                rss_kb(),
                live.totals().folds
            );
            next_look += Duration::from_secs(10);
        }
        {
            let _r = joules::span!("request");
            {
                let _a = joules::span!("decode");
                spin(Duration::from_micros(150));
            }
            let _b = joules::span!("respond");
            spin(Duration::from_micros(50));
        }
        requests += 1;
        // 1k requests a second, as a service with idle gaps between them.
        next_request += Duration::from_millis(1);
        std::thread::sleep(next_request.saturating_duration_since(Instant::now()));
    }
    profiler.stop();
    let end_rss = rss_kb();
    let totals = live.totals();
    let calls = totals.paths.iter().find(|p| p.name == "request").map_or(0, |p| p.calls);
    println!(
        "live_memory: {requests} requests in {seconds} s ({:.0}/s); {} folds; request calls counted {calls}; RSS end {end_rss} KB",
        requests as f64 / seconds as f64,
        totals.folds
    );
    assert_eq!(calls, requests, "every request counted once");
    // The most it held from the 70th second on (the end's figure is after the profiler
    // stopped and freed its buffers, so it cannot show growth).
    let steady_from = looks.iter().find(|l| l.0 >= 70).or(looks.last()).map_or(end_rss, |l| l.1);
    let peak_after = looks.iter().filter(|l| l.0 >= 70).map(|l| l.1).max().unwrap_or(steady_from);
    let growth = peak_after.saturating_sub(steady_from);
    let held_max = looks.iter().map(|l| l.2).max().unwrap_or(0);
    println!(
        "live_memory: RSS grew {growth} KB after the 70th second (limit {MAX_GROWTH_KB}); at most {held_max} span edges held"
    );
    if seconds >= 100 && growth > MAX_GROWTH_KB {
        eprintln!("live_memory: FAILED: memory grew by {growth} KB while the service ran steadily");
        std::process::exit(1);
    }
}
