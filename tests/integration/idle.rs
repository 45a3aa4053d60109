//! Idle power is subtracted once per unit of wall time per domain, over the time that domain
//! was read: never per thread, never over time a domain that ended early was not read.

use joules::attribute::{SpanTree, Window};
use joules::spanlog::{EventKind, SpanLog};
use joules::stats::Estimate;
use joules::summary::{SampleWindow, summarize};
use joules::timeline::Timeline;
use joules::{Joules, Nanos};

const MS: u64 = 1_000_000;

/// Two domains at a flat 20 W, read every 100 us for 10 ms; the second stops at `ends_ms`.
fn timeline(ends_ms: u64) -> Timeline {
    let domain = |id: &str| joules_tests::sim_package(id, Nanos(100_000), true);
    let mut tl = Timeline { domains: vec![domain("a"), domain("b")], ..Timeline::default() };
    for k in 0..=100u64 {
        let t = Nanos(k * 100_000);
        let e = Joules(20.0 * t.as_secs_f64());
        tl.domains[0].series.push(t, e);
        if t.0 <= ends_ms * MS {
            tl.domains[1].series.push(t, e);
        }
        tl.polled(t);
    }
    if ends_ms < 10 {
        tl.domains[1].ended = Some((Nanos(ends_ms * MS), "device lost".into()));
    }
    tl
}

/// Span `work` from 1 ms to 9 ms on each of `threads` threads.
fn log(threads: u32) -> SpanLog {
    let mut log = SpanLog::new();
    let work = log.add_site("work");
    for th in 0..threads {
        log.push(th, Nanos(MS), work, EventKind::Enter);
        log.push(th, Nanos(9 * MS), work, EventKind::Exit);
    }
    log
}

/// (domain above idle, work's exclusive above idle) per domain, idle 10 W on both.
fn above_idle(threads: u32, ends_ms: u64) -> Vec<(f64, f64)> {
    let (tl, log) = (timeline(ends_ms), log(threads));
    let tree = SpanTree::build(&log, tl.last_poll);
    let samples = [SampleWindow { window: Window { start: Nanos(0), end: Nanos(10 * MS) }, iterations: 1 }];
    let idle = [Estimate::from_samples(vec![10.0, 10.0]), Estimate::from_samples(vec![10.0, 10.0])];
    let b = summarize("idle", &tl, &tree, &log, &samples, Some(&idle), Vec::new());
    (0..2)
        .map(|d| {
            let work = &b.spans[0].energy[d];
            (
                b.domains[d].above_idle_j.as_ref().unwrap().point,
                work.exclusive_above_idle_j.as_ref().unwrap().point,
            )
        })
        .collect()
}

fn near(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6
}

#[test]
fn one_thread_subtracts_idle_over_its_time() {
    // 20 W for 10 ms, 10 W of it idle: 100 mJ above idle; the span's 8 ms: 80 mJ.
    let got = above_idle(1, 10);
    assert!(near(got[0].0, 0.100) && near(got[0].1, 0.080), "{got:?}");
}

#[test]
fn two_threads_in_one_span_subtract_idle_once() {
    // The same 8 ms of wall time, on two threads: idle is drawn once, not twice (which would
    // leave the span nothing above idle).
    let got = above_idle(2, 10);
    assert!(near(got[0].0, 0.100) && near(got[0].1, 0.080), "{got:?}");
}

#[test]
fn a_domain_that_ended_early_subtracts_idle_only_while_it_was_read() {
    // Domain b was read for 5 ms: 100 mJ, 50 mJ above idle (not 0, as over 10 ms); the span
    // ran 4 ms of those: 80 mJ, 40 above idle.
    let got = above_idle(2, 5);
    assert!(near(got[0].0, 0.100) && near(got[0].1, 0.080), "{got:?}");
    assert!(near(got[1].0, 0.050) && near(got[1].1, 0.040), "{got:?}");
}
