//! Attribution at scale: 10 million span events over a million counter readings, attributed
//! in one sweep (both estimators, ten sample windows), timed, with the peak heap measured by
//! a counting allocator.
//!
//!     cargo bench -p joules-tests --bench attribute_scale
//!
//! Issue 9's target: at most 1 s, at most 32 bytes per event (the log itself is 16).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use joules::attribute::{SpanTree, Window, attribute};
use joules::source::{Domain, DomainKind, SourceKind};
use joules::spanlog::{EventKind, SpanLog};
use joules::timeline::{Timeline, TimelineDomain};
use joules::{Joules, Nanos};

struct Counting;

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: defers to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let n = NOW.fetch_add(l.size(), Relaxed) + l.size();
        PEAK.fetch_max(n, Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        NOW.fetch_sub(l.size(), Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const EVENTS: usize = 10_000_000;
const READINGS: usize = 1_000_000;

fn main() {
    // A model's pass: forward{ a, b{ c }, d }, 10 events, about 1 ms; one thread.
    let mut log = SpanLog::new();
    let [f, a, b, c, d] = ["forward", "a", "b", "c", "d"].map(|n| log.add_site(n));
    let mut t = 0u64;
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut jitter = |base: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        base + x % (base / 4 + 1)
    };
    let pass = [
        (f, EventKind::Enter, 5_000),
        (a, EventKind::Enter, 180_000),
        (a, EventKind::Exit, 3_000),
        (b, EventKind::Enter, 40_000),
        (c, EventKind::Enter, 300_000),
        (c, EventKind::Exit, 20_000),
        (b, EventKind::Exit, 2_000),
        (d, EventKind::Enter, 250_000),
        (d, EventKind::Exit, 1_000),
        (f, EventKind::Exit, 60_000),
    ];
    while log.len() + pass.len() <= EVENTS {
        for &(site, kind, gap) in &pass {
            log.push(0, Nanos(t), site, kind);
            t += jitter(gap);
        }
    }
    let mut tl = Timeline {
        domains: vec![TimelineDomain::new(
            Domain {
                id: "package-0".into(),
                kind: DomainKind::Package,
                part_of: None,
                resolution: Joules(15.3e-6),
                update_period: Nanos(t / READINGS as u64),
                update_period_measured: true,
            },
            SourceKind::Sim,
        )],
        ..Timeline::default()
    };
    let step = t / READINGS as u64;
    let mut e = 0.0;
    for k in 0..READINGS as u64 {
        e += 0.02 + (k % 7) as f64 * 1e-3;
        tl.domains[0].series.push_within(Nanos(k * step), Joules(e), Nanos(1_000));
    }
    tl.polled(Nanos(0));
    tl.polled(Nanos((READINGS as u64 - 1) * step));
    // As stored, without the growth slack of building them here.
    for t in &mut log.threads {
        t.events.shrink_to_fit();
    }
    for d in &mut tl.domains {
        d.series.times.shrink_to_fit();
        d.series.energy.shrink_to_fit();
        d.series.uncertainty.shrink_to_fit();
    }
    let inputs = NOW.load(Relaxed);
    PEAK.store(inputs, Relaxed);

    let cpu_before = cpu_times();
    let started = Instant::now();
    let tree = SpanTree::build(&log, tl.last_poll);
    let built = started.elapsed();
    let windows: Vec<Window> =
        (0..10).map(|i| Window { start: Nanos(t / 10 * i), end: Nanos(t / 10 * (i + 1)) }).collect();
    let out = attribute(&tl, &tree, &log, &windows);
    let took = started.elapsed();
    let cpu_after = cpu_times();
    let peak = PEAK.load(Relaxed);
    assert_eq!(out.len(), 10);
    let n = log.len();
    println!(
        "{n} events over {READINGS} readings ({} paths, 10 windows): attributed in {:.3} s; \
         inputs {:.1} B/event, peak heap {:.1} B/event ({:.1} B/event beyond the inputs)",
        tree.paths.len(),
        took.as_secs_f64(),
        inputs as f64 / n as f64,
        peak as f64 / n as f64,
        (peak - inputs) as f64 / n as f64
    );
    println!(
        "methods: {:?}; of the time, building the span tree took {:.3} s; CPU time {:.3} s user, \
         {:.3} s system (page faults: the fit's rows)",
        out[0].domains[0].method,
        built.as_secs_f64(),
        cpu_after.0 - cpu_before.0,
        cpu_after.1 - cpu_before.1
    );
}

/// This process's user and system CPU time so far, in seconds.
fn cpu_times() -> (f64, f64) {
    // SAFETY: getrusage writes a plain struct we own.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    (secs(usage.ru_utime), secs(usage.ru_stime))
}
