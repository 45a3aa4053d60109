//! The one pass over span edges and readings, in time order, that feeds both estimators.
//!
//! Breakpoints are span edges (merged across threads with a heap), readings of every domain
//! and window bounds; between two of them nothing changes, so each piece adds its length to
//! the running paths' time, its time-share energy per domain, and its busy time to the
//! regression interval each domain is filling. An interval closes at a precisely stamped
//! reading; readings stamped less precisely are skipped, merging their two intervals.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::regression::{self, Design, Fit};
use super::{
    Attribution, Choice, DomainShare, FitInfo, LONG_SPAN_STEPS, Method, PathId, PathTime, SpanTree, Window,
};
use crate::source::SourceKind;
use crate::spanlog::{EventKind, SpanLog};
use crate::timeline::{Series, Timeline};
use crate::units::{Joules, Nanos};

const NONE: u32 = u32::MAX;
/// Time-share's marks for who had a reading interval: nobody in a span, or several threads.
const REST: u32 = u32::MAX - 1;
const MANY: u32 = u32::MAX - 2;
/// Beyond this many paths the regression is not attempted (its normal equations grow with
/// the square): time-share attributes every path, and the report says so by its method.
pub(crate) const MAX_REGRESSION_PATHS: usize = 400;
/// A regression interval with spans in it may run over at most this many update periods
/// (imprecise steps in between are skipped); longer ones are left out of the fit.
const MAX_MERGED_STEPS: u64 = 4;
/// Above this p-value the regression's powers are taken as equal (power flat across paths).
const FLAT_P: f64 = 0.05;
/// ...and their powers known to within this (relative, 95%).
const FLAT_WITHIN: f64 = 0.05;

struct Thread {
    next: usize,
    stack: Vec<PathId>,
    last_t: Nanos,
    /// Its position in the running list, or NONE.
    slot: u32,
}

/// The paths running now: one entry per thread inside a span.
#[derive(Default)]
struct Running {
    list: Vec<(u32, PathId)>,
}

impl Running {
    fn set(&mut self, threads: &mut [Thread], th: usize, path: Option<PathId>) {
        let slot = threads[th].slot;
        match (slot, path) {
            (NONE, Some(p)) => {
                threads[th].slot = self.list.len() as u32;
                self.list.push((th as u32, p));
            }
            (NONE, None) => {}
            (s, Some(p)) => self.list[s as usize].1 = p,
            (s, None) => {
                self.list.swap_remove(s as usize);
                if let Some(&(moved, _)) = self.list.get(s as usize) {
                    threads[moved as usize].slot = s;
                }
                threads[th].slot = NONE;
            }
        }
    }
}

/// The next span edge of every thread, earliest first. Most profiles have one thread that
/// runs spans: its edge is kept apart from the heap, which then costs nothing.
#[derive(Default)]
struct Edges {
    one: Option<(Nanos, u32)>,
    heap: BinaryHeap<Reverse<(Nanos, u32)>>,
}

impl Edges {
    fn push(&mut self, e: (Nanos, u32)) {
        match self.one {
            None if self.heap.is_empty() => self.one = Some(e),
            _ => {
                if let Some(one) = self.one.take() {
                    self.heap.push(Reverse(one));
                }
                self.heap.push(Reverse(e));
            }
        }
    }

    fn peek(&self) -> Option<(Nanos, u32)> {
        self.one.or_else(|| self.heap.peek().map(|r| r.0))
    }

    fn pop(&mut self) {
        if self.one.take().is_none() {
            self.heap.pop();
        }
    }
}

/// Per domain: the regression interval being filled, and time-share's edge bookkeeping.
#[derive(Default)]
struct DomainState {
    /// The next reading after the sweep's time.
    next: usize,
    /// The precise reading the current regression interval started at.
    start: Option<usize>,
    busy: Vec<(PathId, f64)>,
    base: f64,
    /// The reading and window the last row added ended at: a row starting there follows it.
    last_row: Option<(usize, usize)>,
    /// Time-share in the current reading interval: the one path that ran alone so far (NONE:
    /// none yet), whether that held throughout, and the energy given per (window, path).
    sole: u32,
    clean: bool,
    given: Vec<(usize, PathId, f64)>,
    /// The current reading interval's mean power, W.
    power: f64,
}

/// Per window and domain: the time-share sums, and the times the regression's powers
/// turn into joules.
struct WinDomain {
    share: DomainShare,
    busy: Vec<f64>,
    overlap: Vec<f64>,
}

/// Attributes each window; see [`super::attribute`].
pub(crate) fn attribute(
    tl: &Timeline,
    tree: &SpanTree,
    log: &SpanLog,
    windows: &[Window],
    choice: Choice,
) -> Vec<Attribution> {
    let n_paths = tree.paths.len();
    let nd = tl.domains.len();
    let regress = choice != Choice::Only(Method::TimeShare) && n_paths <= MAX_REGRESSION_PATHS;
    let mut out: Vec<Attribution> = windows
        .iter()
        .map(|_| Attribution { window: None, time: vec![PathTime::default(); n_paths], domains: Vec::new() })
        .collect();
    let Some(first) = tl.first_poll else { return out };
    // Windows clipped to the readings; those left empty get nothing.
    let wins: Vec<Option<Window>> = windows
        .iter()
        .map(|w| {
            let (s, e) = (w.start.max(first), w.end.min(tl.last_poll));
            (e > s).then_some(Window { start: s, end: e })
        })
        .collect();
    let mut order: Vec<usize> = (0..windows.len()).filter(|&i| wins[i].is_some()).collect();
    order.sort_by_key(|&i| wins[i].map(|w| w.start));
    let Some(end_all) = order.iter().filter_map(|&i| wins[i].map(|w| w.end)).max() else { return out };
    for &i in &order {
        out[i].window = wins[i];
    }
    let mut per: Vec<Vec<WinDomain>> = windows
        .iter()
        .map(|_| {
            (0..nd)
                .map(|_| WinDomain {
                    share: DomainShare {
                        exclusive: vec![Joules(0.0); n_paths],
                        edge: vec![Joules(0.0); n_paths],
                        ..DomainShare::default()
                    },
                    busy: vec![0.0; n_paths],
                    overlap: vec![0.0; n_paths],
                })
                .collect()
        })
        .collect();

    let mut threads: Vec<Thread> = log
        .threads
        .iter()
        .map(|_| Thread { next: 0, stack: Vec::new(), last_t: Nanos(0), slot: NONE })
        .collect();
    let mut heap = Edges::default();
    for (i, t) in log.threads.iter().enumerate() {
        if let Some(ev) = t.events.first() {
            heap.push((ev.t, i as u32));
        }
    }
    // One regression per domain, over the intervals inside any window: a window's own
    // intervals (a few hundred) give a noisier fit, and one whose steps were poorly timed (a
    // sampler preempted for a while) can throw it off; pooled, they are a small part of the
    // data. Each window's joules are then the pooled powers times its own times, with
    // standard errors from the pooled covariance.
    let mut designs: Vec<Option<Design>> = tl
        .domains
        .iter()
        .map(|td| regress.then(|| Design::with_capacity(n_paths + 1, td.series.len())))
        .collect();
    let mut running = Running::default();
    let mut ds: Vec<DomainState> =
        (0..nd).map(|_| DomainState { sole: NONE, clean: true, ..DomainState::default() }).collect();
    let limits: Vec<u64> =
        tl.domains.iter().map(|d| Series::precise_limit(d.domain.update_period).0).collect();
    let mut row: Vec<(usize, f64)> = Vec::with_capacity(16);
    let window_of = |t: Nanos, until: Nanos| -> Option<usize> {
        // The window holding [t, until]; `order` is sorted by start.
        let pos = order.partition_point(|&i| wins[i].is_some_and(|w| w.start <= t));
        let i = *order.get(pos.checked_sub(1)?)?;
        wins[i].filter(|w| until <= w.end).map(|_| i)
    };

    let mut wi = 0; // position in `order`
    let mut t = Nanos(0);
    loop {
        while wi < order.len() && wins[order[wi]].is_some_and(|w| w.end <= t) {
            wi += 1;
        }
        let win_now = order.get(wi).copied().filter(|&i| wins[i].is_some_and(|w| w.start <= t));
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
            threads[th].last_t = et;
            match ev.kind {
                EventKind::Enter => {
                    let parent = threads[th].stack.last().copied();
                    let Some(path) = tree.child(parent, ev.site) else { continue };
                    threads[th].stack.push(path);
                    running.set(&mut threads, th, Some(path));
                    if let Some(w) = win_now {
                        out[w].time[path as usize].calls += 1;
                        out[w].time[path as usize].stretches += 1;
                    }
                }
                EventKind::Exit => {
                    // Unwinds to the exiting span, as `SpanTree::build` does.
                    let stack = &mut threads[th].stack;
                    let Some(at) = stack.iter().rposition(|&p| tree.paths[p as usize].site == ev.site) else {
                        continue;
                    };
                    stack.truncate(at);
                    let back = threads[th].stack.last().copied();
                    running.set(&mut threads, th, back);
                    if let (Some(w), Some(q)) = (win_now, back) {
                        out[w].time[q as usize].stretches += 1;
                    }
                }
            }
        }
        // Readings at t.
        for (d, td) in tl.domains.iter().enumerate() {
            let s = &td.series;
            let st = &mut ds[d];
            while st.next < s.len() && s.times[st.next] <= t {
                let r = st.next;
                flush_edges(st, &mut per, d);
                if u64::from(s.uncertainty[r]) <= limits[d] {
                    // An interval stretched over many skipped steps says little and, with
                    // spans in it, would outweigh short ones when columns are compared.
                    let long = |from: usize| {
                        let period = td.domain.update_period.0;
                        period > 0 && (s.times[r] - s.times[from]).0 * 2 > (2 * MAX_MERGED_STEPS + 1) * period
                    };
                    let usable = |from: usize| !long(from) || st.busy.is_empty();
                    if let (Some(from), true) = (st.start.filter(|&f| usable(f)), regress)
                        && let Some(w) = window_of(s.times[from], s.times[r])
                    {
                        row.clear();
                        row.push((0, st.base));
                        row.extend(st.busy.iter().map(|&(p, b)| (p as usize + 1, b)));
                        if let Some(design) = &mut designs[d] {
                            let y = s.energy[r].0 - s.energy[from].0;
                            if st.last_row == Some((from, w)) {
                                design.add_following(y, &row);
                            } else {
                                design.add(y, &row);
                            }
                            st.last_row = Some((r, w));
                        }
                    }
                    st.start = Some(r);
                    st.busy.clear();
                    st.base = 0.0;
                }
                st.next += 1;
                if let (Some(&t1), Some(&e1)) = (s.times.get(st.next), s.energy.get(st.next)) {
                    let span = (t1 - s.times[r]).as_secs_f64();
                    st.power = if span > 0.0 { (e1.0 - s.energy[r].0) / span } else { 0.0 };
                }
            }
        }
        if t >= end_all {
            break;
        }
        // The next breakpoint.
        let mut nb = end_all;
        if let Some((et, _)) = heap.peek() {
            nb = nb.min(et);
        }
        for (d, td) in tl.domains.iter().enumerate() {
            if let Some(&rt) = td.series.times.get(ds[d].next) {
                nb = nb.min(rt);
            }
        }
        if let Some(w) = order.get(wi).and_then(|&i| wins[i]) {
            nb = nb.min(if t < w.start { w.start } else { w.end });
        }
        if nb <= t {
            // Only an event clamped to t can do this; it was applied above.
            nb = Nanos(t.0 + 1);
        }
        piece(t, nb, win_now, &running, tl, &mut ds, &mut per, &mut out);
        t = nb;
    }
    for (d, st) in ds.iter_mut().enumerate() {
        flush_edges(st, &mut per, d);
    }

    let pooled: Vec<Option<Fit>> = designs
        .iter()
        .map(|d| d.as_ref().filter(|d| d.intervals() > 0).and_then(regression::solve))
        .collect();
    drop(designs);
    // Where the regression shows the same power for every path (and the time between
    // spans) — no significant difference, and every power known to within FLAT_WITHIN, so
    // that "no difference" is evidence and not noise — time-share's one assumption holds,
    // and it attributes without the regression's variance.
    // The CPU-time estimate's model gives every busy core the same watts, so flat is its
    // default; the regression overrides that only where it finds a difference (a span that
    // blocks draws nothing). A path held at 0 W is such a difference, or no evidence at all.
    let flat: Vec<bool> = pooled
        .iter()
        .zip(&tl.domains)
        .map(|(f, td)| {
            let Some(f) = f else { return choice == Choice::Auto && td.source == SourceKind::Estimate };
            let clamped = f.clamped.iter().zip(&f.unseen).any(|(c, u)| *c && !*u);
            let same = f.equal_power_p_value() >= FLAT_P && !clamped;
            let known = td.source == SourceKind::Estimate || f.powers_known_within(FLAT_WITHIN);
            choice == Choice::Auto && same && known
        })
        .collect();
    for (w, att) in out.iter_mut().enumerate() {
        if att.window.is_none() {
            continue;
        }
        // Children come after their parents, so one backward pass sums every subtree.
        for p in 0..n_paths {
            att.time[p].inclusive = att.time[p].exclusive;
        }
        for p in (0..n_paths).rev() {
            if let Some(parent) = tree.paths[p].parent {
                let add = att.time[p].inclusive.0;
                att.time[parent as usize].inclusive.0 += add;
            }
        }
        let wd = std::mem::take(&mut per[w]);
        att.domains = wd
            .into_iter()
            .enumerate()
            .map(|(d, wd)| {
                let how = How { choice, fit: pooled[d].as_ref(), flat: flat[d] };
                finish_domain(wd, tl, d, tree, &att.time, how)
            })
            .collect();
    }
    out
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

/// Ends a reading interval: energy given in it is edge energy unless one path filled it alone.
fn flush_edges(st: &mut DomainState, per: &mut [Vec<WinDomain>], d: usize) {
    if !st.clean {
        for &(w, p, e) in &st.given {
            if let Some(wd) = per.get_mut(w).and_then(|v| v.get_mut(d)) {
                wd.share.edge[p as usize].0 += e;
            }
        }
    }
    st.given.clear();
    st.sole = NONE;
    st.clean = true;
}

/// How a domain's paths are attributed: the choice asked for, the domain's pooled fit, and
/// whether that fit found power flat across paths.
#[derive(Clone, Copy)]
struct How<'a> {
    choice: Choice,
    fit: Option<&'a Fit>,
    flat: bool,
}

/// Settles each path's method, energy and error in one window.
fn finish_domain(
    mut wd: WinDomain,
    tl: &Timeline,
    d: usize,
    tree: &SpanTree,
    time: &[PathTime],
    how: How<'_>,
) -> DomainShare {
    let How { choice, fit, flat } = how;
    let n = tree.paths.len();
    let mut share = std::mem::take(&mut wd.share);
    share.method = vec![Method::TimeShare; n];
    share.exclusive_se = vec![0.0; n];
    share.inclusive_se = vec![0.0; n];
    share.merged_with = vec![None; n];
    share.flat = flat && choice == Choice::Auto;
    let period = tl.domains[d].reading_period();
    // Per path, its joules as a combination of the fitted powers (for covariances).
    let mut coef: Vec<Option<Vec<f64>>> = vec![None; n];
    if let Some(fit) = fit {
        share.fit = Some(FitInfo {
            intervals: fit.intervals,
            dof: fit.dof,
            sigma: Joules(fit.sigma2.max(0.0).sqrt()),
            base_w: fit.power[0],
        });
        for l in 0..n {
            let col = l + 1;
            if fit.unseen[col] || wd.busy[l] == 0.0 {
                continue;
            }
            let use_regression = match choice {
                Choice::Only(m) => m == Method::Regression,
                Choice::Auto if flat => false,
                Choice::Auto => {
                    // Time-share only where it is exact enough: stretches long against the
                    // readings, so that under 1% of the path's energy is placed by its
                    // even-power assumption, and (as it splits power equally) a path that
                    // ran alone.
                    let pt = time[l];
                    let stretch = pt.exclusive.0 / pt.stretches.max(1);
                    let alone = wd.overlap[l] <= 0.01 * wd.busy[l];
                    let clean = share.edge[l].0 <= 0.01 * share.exclusive[l].0.abs();
                    !(alone && clean && stretch >= LONG_SPAN_STEPS * period.0.max(1))
                }
            };
            if !use_regression {
                continue;
            }
            let mut c = vec![0.0; n + 1];
            c[col] = wd.busy[l];
            c[0] = -wd.overlap[l];
            // Never below 0: a path held at 0 W that ran beside other threads would otherwise
            // give back base power it never drew.
            share.exclusive[l] =
                Joules((fit.power[col] * wd.busy[l] - fit.power[0] * wd.overlap[l]).max(0.0));
            share.exclusive_se[l] = fit.variance(&c).max(0.0).sqrt();
            share.method[l] = Method::Regression;
            if fit.merged(col) {
                let g = fit.group[col];
                share.merged_with[l] = Some(if g == 0 { PathId::MAX } else { (g - 1) as PathId });
            }
            coef[l] = Some(c);
        }
    }
    let attributed: f64 = share.exclusive.iter().map(|j| j.0).sum();
    share.unattributed = Joules(share.total.0 - attributed);
    // Inclusive figures: subtree sums, with the regression's covariances.
    share.inclusive = share.exclusive.clone();
    let mut inc_coef = coef;
    for p in (0..n).rev() {
        if let Some(parent) = tree.paths[p].parent {
            let parent = parent as usize;
            let add = share.inclusive[p];
            share.inclusive[parent] += add;
            if let Some(child) = inc_coef[p].clone() {
                let acc = inc_coef[parent].get_or_insert_with(|| vec![0.0; n + 1]);
                acc.iter_mut().zip(&child).for_each(|(a, c)| *a += c);
            }
        }
    }
    if let Some(fit) = fit {
        for (se, c) in share.inclusive_se.iter_mut().zip(&inc_coef) {
            if let Some(c) = c {
                *se = fit.variance(c).max(0.0).sqrt();
            }
        }
    }
    share
}
