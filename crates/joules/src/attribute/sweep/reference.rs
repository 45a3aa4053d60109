//! The sweep as first written, piece by piece: every stretch between two breakpoints adds
//! itself to every running path and domain. Slow (each edge costs every running path times
//! every domain) but plainly right; the sweep's clocks and meters must give the same sums.

use super::*;

/// Who had a piece: several threads.
const MANY: u32 = u32::MAX - 2;

/// The sums [`super::sweep`] gives, summed piece by piece.
pub(super) fn sweep(tl: &Timeline, tree: &SpanTree, log: &SpanLog, setup: &Setup, mut sums: Sums) -> Sums {
    let nd = tl.domains.len();
    let Spans { mut heap, mut threads, mut running, .. } = Spans::new(log, tree, None);
    let mut ds: Vec<DomainState> =
        (0..nd).map(|_| DomainState { sole: NONE, clean: true, ..DomainState::default() }).collect();
    let mut row: Vec<(usize, f64)> = Vec::with_capacity(16);
    let mut wi = 0;
    let mut t = Nanos(0);
    loop {
        let win_now = setup.window_at(&mut wi, t);
        // Span edges at t.
        while let Some((et, th)) = heap.peek() {
            if et > t {
                break;
            }
            heap.pop();
            let th = th as usize;
            let events = &log.threads[th].events;
            let ev = events[threads[th].next];
            threads[th].next += 1;
            if let Some(next) = events.get(threads[th].next) {
                // Per-thread times are monotonic; a clock that stepped back is clamped.
                heap.push((next.t.max(et), th as u32));
            }
            match ev.kind {
                EventKind::Enter => {
                    // Spans still open at its depth ended (forgotten).
                    let depth = usize::from(ev.depth);
                    if depth < threads[th].stack.len() {
                        threads[th].stack.truncate(depth);
                        let back = threads[th].stack.last().copied();
                        running.set(&mut threads, th, back);
                    }
                    let parent = threads[th].stack.last().copied();
                    let Some(path) = tree.child(parent, ev.site) else { continue };
                    threads[th].stack.push(path);
                    running.set(&mut threads, th, Some(path));
                    if let Some(w) = win_now {
                        sums.out[w].time[path as usize].calls += 1;
                        sums.out[w].time[path as usize].stretches += 1;
                    }
                }
                EventKind::Exit | EventKind::Cut => {
                    // Unwinds to the exiting span, as `SpanTree::build` does; a cut to its
                    // depth.
                    let stack = &mut threads[th].stack;
                    let at = match ev.kind {
                        EventKind::Cut => usize::from(ev.depth).min(stack.len()),
                        _ => match stack.iter().rposition(|&p| tree.paths[p as usize].site == ev.site) {
                            Some(at) => at,
                            None => continue,
                        },
                    };
                    stack.truncate(at);
                    let back = threads[th].stack.last().copied();
                    running.set(&mut threads, th, back);
                    if let (Some(w), Some(q)) = (win_now, back) {
                        sums.out[w].time[q as usize].stretches += 1;
                    }
                }
            }
        }
        // Readings at t.
        for (d, td) in tl.domains.iter().enumerate() {
            while ds[d].next < td.series.len() && td.series.times[ds[d].next] <= t {
                close_reading(d, tl, setup, &mut ds[d], &mut sums, &mut row);
            }
        }
        if t >= setup.end_all {
            break;
        }
        let mut nb = setup.end_all;
        if let Some((et, _)) = heap.peek() {
            nb = nb.min(et);
        }
        for (d, td) in tl.domains.iter().enumerate() {
            if let Some(&rt) = td.series.times.get(ds[d].next) {
                nb = nb.min(rt);
            }
        }
        if let Some(edge) = setup.next_edge(wi, t) {
            nb = nb.min(edge);
        }
        if nb <= t {
            nb = Nanos(t.0 + 1);
        }
        piece(t, nb, win_now, &running, tl, &mut ds, &mut sums.per, &mut sums.out);
        t = nb;
    }
    for (d, st) in ds.iter_mut().enumerate() {
        flush_edges(st, &mut sums.per, d);
    }
    sums
}

/// Adds piece `[a, b)` to every sum.
#[allow(clippy::too_many_arguments)]
fn piece(
    a: Nanos,
    b: Nanos,
    win: Option<usize>,
    running: &Running,
    tl: &Timeline,
    ds: &mut [DomainState],
    per: &mut [Vec<WinDomain>],
    out: &mut [Attribution],
) {
    let dt_ns = b.0 - a.0;
    let dt = dt_ns as f64 * 1e-9;
    let m = running.list.len();
    if let Some(w) = win {
        for &(_, p) in &running.list {
            out[w].time[p as usize].exclusive.0 += dt_ns;
        }
    }
    for (d, td) in tl.domains.iter().enumerate() {
        let s = &td.series;
        let st = &mut ds[d];
        let k = st.next;
        if k == 0 || k >= s.len() {
            continue;
        }
        // The regression interval being filled (across windows; it is kept only if one
        // window holds it whole).
        if st.start.is_some() {
            if m == 0 {
                st.base += dt;
            } else {
                st.base -= (m - 1) as f64 * dt;
                for &(_, p) in &running.list {
                    match st.busy.iter_mut().find(|(q, _)| *q == p) {
                        Some((_, b)) => *b += dt,
                        None => st.busy.push((p, dt)),
                    }
                }
            }
        }
        let Some(w) = win else { continue };
        let e = st.power * dt;
        let wd = &mut per[w][d];
        wd.share.total.0 += e;
        wd.share.covered.0 += dt_ns;
        // Who had this piece: rest, one path, or several threads (never clean).
        let who = match m {
            0 => REST,
            1 => running.list[0].1,
            _ => MANY,
        };
        if st.sole == NONE {
            st.sole = who;
        }
        st.clean &= st.sole == who && who != MANY;
        if m == 0 {
            continue;
        }
        let each = e / m as f64;
        let ovl = dt * (m - 1) as f64 / m as f64;
        for &(_, p) in &running.list {
            wd.share.exclusive[p as usize].0 += each;
            wd.busy[p as usize] += dt;
            wd.overlap[p as usize] += ovl;
            match st.given.iter_mut().find(|(gw, q, _)| *gw == w && *q == p) {
                Some((_, _, g)) => *g += each,
                None => st.given.push((w, p, each)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::source::{Domain, DomainKind};
    use crate::spanlog::SiteId;
    use crate::timeline::TimelineDomain;

    /// Per thread: (gap ns, Some(site) to enter, Some(3) to exit the outermost open span
    /// (unwinding those inside it), Some(4) to cut every open span (the bench harness after
    /// an iteration that forgot its guards), None to exit the innermost).
    type Ops = Vec<(u64, Option<u8>)>;

    fn log_of(threads: &[Ops]) -> SpanLog {
        let mut log = SpanLog::new();
        let sites: Vec<_> = ["a", "b", "c"].iter().map(|n| log.add_site(n)).collect();
        for (i, ops) in threads.iter().enumerate() {
            let (mut t, mut stack) = (0, Vec::new());
            for &(gap, op) in ops {
                t += gap;
                let (site, kind) = match op {
                    Some(4) => {
                        stack.clear();
                        log.push(i as u32, Nanos(t), SiteId(0), EventKind::Cut);
                        continue;
                    }
                    Some(3) if !stack.is_empty() => {
                        let outer = stack[0];
                        stack.clear();
                        (outer, EventKind::Exit)
                    }
                    Some(k) => {
                        let k = k % 3;
                        stack.push(k);
                        (k, EventKind::Enter)
                    }
                    // An exit of nothing now and then (the stack is empty).
                    None => (stack.pop().unwrap_or(0), EventKind::Exit),
                };
                log.push(i as u32, Nanos(t), sites[site as usize], kind);
            }
        }
        log
    }

    fn timeline_of(readings: &[(u64, f64, f64, bool)]) -> Timeline {
        let domain = |id: &str| {
            TimelineDomain::new(
                Domain {
                    id: id.into(),
                    kind: DomainKind::Package,
                    part_of: None,
                    resolution: Joules(1e-6),
                    update_period: Nanos(1_000),
                    update_period_measured: true,
                },
                SourceKind::Sim,
            )
        };
        let mut tl = Timeline { domains: vec![domain("p"), domain("d")], ..Timeline::default() };
        let (mut t, mut e) = (0, [0.0, 0.0]);
        for &(gap, d0, d1, precise) in readings {
            t += gap;
            e[0] += d0;
            e[1] += d1;
            let within = Nanos(if precise { 0 } else { 50_000 });
            tl.domains[0].series.push_within(Nanos(t), Joules(e[0]), within);
            // The second domain skips a reading now and then, so its steps differ.
            if gap % 3 != 0 {
                tl.domains[1].series.push_within(Nanos(t), Joules(e[1]), within);
            }
            tl.polled(Nanos(t));
        }
        tl
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 + 1e-9 * a.abs().max(b.abs())
    }

    fn same(a: &Sums, b: &Sums) -> Result<(), String> {
        for (w, (x, y)) in a.out.iter().zip(&b.out).enumerate() {
            if x.window != y.window || x.time != y.time {
                return Err(format!(
                    "window {w}: {:?} {:?} vs {:?} {:?}",
                    x.window, x.time, y.window, y.time
                ));
            }
        }
        for (w, (x, y)) in a.per.iter().zip(&b.per).enumerate() {
            for (d, (x, y)) in x.iter().zip(y).enumerate() {
                let vecs = [
                    (
                        "exclusive",
                        x.share.exclusive.iter().map(|j| j.0).collect::<Vec<_>>(),
                        y.share.exclusive.iter().map(|j| j.0).collect::<Vec<_>>(),
                    ),
                    (
                        "edge",
                        x.share.edge.iter().map(|j| j.0).collect(),
                        y.share.edge.iter().map(|j| j.0).collect(),
                    ),
                    ("busy", x.busy.clone(), y.busy.clone()),
                    ("overlap", x.overlap.clone(), y.overlap.clone()),
                    ("total", vec![x.share.total.0], vec![y.share.total.0]),
                ];
                for (what, u, v) in vecs {
                    if u.len() != v.len() || u.iter().zip(&v).any(|(p, q)| !close(*p, *q)) {
                        return Err(format!("window {w} domain {d} {what}: {u:?} vs {v:?}"));
                    }
                }
                if x.share.covered != y.share.covered {
                    return Err(format!("window {w} domain {d} covered"));
                }
            }
        }
        for (d, (x, y)) in a.designs.iter().zip(&b.designs).enumerate() {
            let (Some(x), Some(y)) = (x, y) else { continue };
            let ((g, c, n), (h, e, m)) = (x.sums(), y.sums());
            if n != m || g.iter().zip(h).chain(c.iter().zip(e)).any(|(p, q)| !close(*p, *q)) {
                return Err(format!("domain {d} design: {n} rows {g:?} {c:?} vs {m} rows {h:?} {e:?}"));
            }
        }
        Ok(())
    }

    fn in_four(tl: &Timeline, tree: &SpanTree, log: &SpanLog, setup: &Setup, sums: Sums) -> Sums {
        sweep_in(tl, tree, log, setup, sums, 4)
    }

    /// A reading interval that a cut splits, with one path alone on each side: neither side
    /// is mixed, but the interval is, and its energy is edge energy as in one sweep.
    #[test]
    fn a_cut_interval_with_a_different_path_on_each_side_is_mixed() {
        let mut log = SpanLog::new();
        let (a, b) = (log.add_site("a"), log.add_site("b"));
        for (t, site, kind) in [
            (10, a, EventKind::Enter),
            (1_500, a, EventKind::Exit),
            (1_500, b, EventKind::Enter),
            (2_900, b, EventKind::Exit),
        ] {
            log.push(0, Nanos(t), site, kind);
        }
        let tl = timeline_of(&[
            (1, 0.1, 0.1, true),
            (999, 0.3, 0.2, true),
            (1_000, 0.5, 0.4, true),
            (1_000, 0.2, 0.1, true),
            (1_000, 0.1, 0.3, true),
        ]);
        let tree = SpanTree::build(&log, tl.last_poll);
        let windows = [
            Window { start: Nanos(0), end: Nanos(1_500) },
            Window { start: Nanos(1_500), end: Nanos(4_000) },
        ];
        let run = |f: &dyn Fn(&Timeline, &SpanTree, &SpanLog, &Setup, Sums) -> Sums| {
            let (sums, setup) = Setup::new(&tl, &tree, &windows, true);
            let setup = setup.expect("a setup");
            assert_eq!(setup.cuts(&tl, &log, 2), [Nanos(1_500)]);
            f(&tl, &tree, &log, &setup, sums)
        };
        let (parts, one) = (run(&in_four), run(&sweep));
        same(&parts, &one).unwrap();
        assert!(one.per[0][0].share.edge[0].0 > 0.0, "a's side of the interval is edge energy");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
        /// The clocks and meters sum exactly what the piece-by-piece sweep does.
        #[test]
        fn meters_sum_what_pieces_do(
            threads in proptest::collection::vec(
                proptest::collection::vec((0u64..1_500, proptest::option::weighted(0.55, 0u8..5)), 0..80),
                1..4,
            ),
            readings in proptest::collection::vec((1u64..1_200, 0.0f64..1.0, 0.0f64..0.5, proptest::bool::weighted(0.8)), 2..150),
            cuts in proptest::collection::vec(0u64..60_000, 0..12),
        ) {
            let log = log_of(&threads);
            let tl = timeline_of(&readings);
            let tree = SpanTree::build(&log, tl.last_poll);
            // Windows between sorted cuts (every other gap, so some time lies outside any).
            let mut cuts = cuts;
            cuts.sort_unstable();
            let windows: Vec<Window> = cuts
                .chunks(2)
                .filter(|c| c.len() == 2)
                .map(|c| Window { start: Nanos(c[0]), end: Nanos(c[1]) })
                .chain(cuts.is_empty().then_some(Window { start: Nanos(0), end: Nanos(u64::MAX / 2) }))
                .collect();
            let run = |f: fn(&Timeline, &SpanTree, &SpanLog, &Setup, Sums) -> Sums| {
                let (sums, setup) = Setup::new(&tl, &tree, &windows, true);
                setup.map(|s| f(&tl, &tree, &log, &s, sums))
            };
            let (new, old) = (run(super::super::sweep), run(sweep));
            prop_assert_eq!(new.is_some(), old.is_some());
            if let (Some(new), Some(old)) = (new, old) {
                let r = same(&new, &old);
                prop_assert!(r.is_ok(), "{}", r.unwrap_err());
                // Cut into parts swept on their own threads, the sums are the same.
                let parts = run(in_four).expect("a setup");
                let r = same(&parts, &old);
                prop_assert!(r.is_ok(), "in parts: {}", r.unwrap_err());
            }
        }
    }
}
