use joules::attribute::{SpanTree, Window, time_share};
use joules::spanlog::{EventKind, SpanLog};
use joules::timeline::Timeline;
use joules::{Joules, Nanos};
use proptest::prelude::*;

/// A thread's script: each step waits `gap` ns, then enters site `k` (Some) or exits (None).
fn thread_ops() -> impl Strategy<Value = Vec<(u64, Option<u8>)>> {
    proptest::collection::vec((0u64..5_000, proptest::option::weighted(0.55, 0u8..4)), 0..60)
}

fn build_log(threads: &[Vec<(u64, Option<u8>)>]) -> (SpanLog, Nanos) {
    let mut log = SpanLog::new();
    let sites: Vec<_> = ["a", "b", "c", "d"].iter().map(|n| log.add_site(n)).collect();
    let mut end = Nanos(0);
    for (i, ops) in threads.iter().enumerate() {
        let mut t = 0;
        let mut stack = Vec::new();
        for &(gap, op) in ops {
            t += gap;
            match op {
                Some(k) => {
                    stack.push(k);
                    log.push(i as u32, Nanos(t), sites[k as usize], EventKind::Enter);
                }
                // A stray exit (nothing open) must be tolerated, as after a profiler restart.
                None => {
                    let k = stack.pop().unwrap_or(0);
                    log.push(i as u32, Nanos(t), sites[k as usize], EventKind::Exit);
                }
            }
        }
        end = end.max(Nanos(t));
    }
    (log, end)
}

fn timeline(readings: &[(u64, f64, f64)]) -> Timeline {
    let domain = |id: &str| joules_tests::sim_package(id, Nanos(1000), false);
    let mut tl = Timeline { domains: vec![domain("p"), domain("d")], ..Timeline::default() };
    let (mut t, mut e0, mut e1) = (0, 0.0, 0.0);
    for &(gap, d0, d1) in readings {
        t += gap;
        e0 += d0;
        e1 += d1;
        tl.push(Nanos(t), &[Joules(e0), Joules(e1)]);
    }
    tl
}

proptest! {
    #[test]
    fn exclusive_plus_unattributed_is_total(
        threads in proptest::collection::vec(thread_ops(), 1..4),
        readings in proptest::collection::vec((1u64..3_000, 0.0f64..1.0, 0.0f64..0.5), 2..200),
        w0 in 0u64..100_000,
        wlen in 0u64..300_000,
    ) {
        let (log, end) = build_log(&threads);
        let tree = SpanTree::build(&log, end);
        let tl = timeline(&readings);
        let a = time_share(&tl, &tree, &log, Window { start: Nanos(w0), end: Nanos(w0 + wlen) });
        for share in &a.domains {
            let excl: f64 = share.exclusive.iter().map(|j| j.0).sum();
            let sum = excl + share.unattributed.0;
            prop_assert!((sum - share.total.0).abs() <= 1e-9 * share.total.0.max(1.0),
                "exclusive {excl} + unattributed {} != total {}", share.unattributed.0, share.total.0);
            let roots: f64 = tree.paths.iter().enumerate()
                .filter(|(_, p)| p.parent.is_none())
                .map(|(i, _)| share.inclusive[i].0)
                .sum();
            prop_assert!((roots - excl).abs() <= 1e-9 * excl.max(1.0));
            for (i, p) in tree.paths.iter().enumerate() {
                prop_assert!(share.inclusive[i].0 + 1e-12 >= share.exclusive[i].0);
                // Edge energy is the part of a path's exclusive energy placed by assumption.
                prop_assert!(share.edge[i].0 >= 0.0 && share.edge[i].0 <= share.exclusive[i].0 + 1e-12);
                if let Some(parent) = p.parent {
                    prop_assert!(share.inclusive[parent as usize].0 + 1e-12 >= share.inclusive[i].0);
                }
            }
        }
        // The window's energy is the counter's advance over it, whatever the spans.
        if let Some(w) = a.window {
            let at = |t: Nanos, d: usize| {
                let s = &tl.domains[d].series;
                let k = s.times.partition_point(|&x| x <= t).clamp(1, s.len() - 1);
                let (t0, t1) = (s.times[k - 1], s.times[k]);
                let (e0, e1) = (s.energy[k - 1].0, s.energy[k].0);
                if t1 == t0 { e1 } else { e0 + (e1 - e0) * (t - t0).as_secs_f64() / (t1 - t0).as_secs_f64() }
            };
            for d in 0..2 {
                let want = at(w.end, d) - at(w.start, d);
                prop_assert!((a.domains[d].total.0 - want).abs() <= 1e-9 * want.abs().max(1.0),
                    "domain {d}: total {} vs counter advance {want}", a.domains[d].total.0);
            }
        }
    }
}
