//! The one pass over span edges and readings, in time order, that feeds both estimators.
//!
//! Breakpoints are span edges (merged across threads with a heap), readings of every domain
//! and window bounds; between two of them nothing changes. Each path keeps clocks (its busy
//! thread-time, its share of the wall time) that move only when a thread starts or stops
//! running it; each domain has a meter that lists the paths run since its last reading or
//! window edge and reads their clocks there, adding their time-share energy and their busy
//! time to the regression interval the domain is filling. So an edge costs its two paths,
//! not every running path times every domain (`reference`, the piece-by-piece form, is the
//! tests' oracle). An interval closes at a precisely stamped reading; readings stamped less
//! precisely are skipped, merging their two intervals.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::regression::{self, Design, Fit};
use super::{
    Attribution, Choice, DomainShare, FitInfo, LONG_SPAN_STEPS, Method, PathId, PathTime, SpanTree, Window,
};
use crate::source::SourceKind;
use crate::spanlog::{EventKind, SpanLog};

#[cfg(test)]
mod reference;
use crate::timeline::{Series, Timeline};
use crate::units::{Joules, Nanos};

const NONE: u32 = u32::MAX;
/// Time-share's mark for who had a reading interval: nobody in a span.
const REST: u32 = u32::MAX - 1;
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
    /// The next of its operation counts (`Spans::ops`) not yet reached.
    next_ops: usize,
    stack: Vec<PathId>,
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
    /// The sweep began inside this reading interval, at a cut (see [`sweep`]): its
    /// time-share bookkeeping is kept for the merge, not flushed.
    defer: bool,
    deferred: Option<Pending>,
}

/// Time-share's bookkeeping of a reading interval that a cut splits between two parts.
#[derive(Default)]
struct Pending {
    sole: u32,
    clean: bool,
    given: Vec<(usize, PathId, f64)>,
}

impl Pending {
    fn take(st: &mut DomainState) -> Pending {
        Pending { sole: st.sole, clean: st.clean, given: std::mem::take(&mut st.given) }
    }
}

/// Per window and domain: the time-share sums, and the times the regression's powers
/// turn into joules.
struct WinDomain {
    share: DomainShare,
    busy: Vec<f64>,
    overlap: Vec<f64>,
}

/// What a sweep sums, before each domain's paths are settled.
pub(super) struct Sums {
    out: Vec<Attribution>,
    per: Vec<Vec<WinDomain>>,
    designs: Vec<Option<Design>>,
}

impl Sums {
    /// Zero sums of the same shape, with room for `rows(d)` regression rows per domain.
    fn fresh(&self, rows: impl Fn(usize) -> usize) -> Sums {
        let zero_share = |s: &DomainShare| DomainShare {
            exclusive: vec![Joules(0.0); s.exclusive.len()],
            edge: vec![Joules(0.0); s.edge.len()],
            ..DomainShare::default()
        };
        Sums {
            out: self
                .out
                .iter()
                .map(|a| Attribution {
                    window: a.window,
                    time: vec![PathTime::default(); a.time.len()],
                    domains: Vec::new(),
                })
                .collect(),
            per: self
                .per
                .iter()
                .map(|v| {
                    v.iter()
                        .map(|wd| WinDomain {
                            share: zero_share(&wd.share),
                            busy: vec![0.0; wd.busy.len()],
                            overlap: vec![0.0; wd.overlap.len()],
                        })
                        .collect()
                })
                .collect(),
            designs: self
                .designs
                .iter()
                .enumerate()
                .map(|(d, x)| x.as_ref().map(|x| Design::with_capacity(x.columns(), rows(d))))
                .collect(),
        }
    }

    /// Adds the sums of a later part of the sweep.
    fn add(&mut self, o: Sums) {
        for (a, b) in self.out.iter_mut().zip(&o.out) {
            for (x, y) in a.time.iter_mut().zip(&b.time) {
                x.exclusive.0 += y.exclusive.0;
                x.inclusive.0 += y.inclusive.0;
                x.calls += y.calls;
                x.stretches += y.stretches;
                x.ops += y.ops;
            }
        }
        for (a, b) in self.per.iter_mut().flatten().zip(o.per.iter().flatten()) {
            let (x, y) = (&mut a.share, &b.share);
            x.total.0 += y.total.0;
            x.covered.0 += y.covered.0;
            for (u, v) in x.exclusive.iter_mut().zip(&y.exclusive) {
                u.0 += v.0;
            }
            for (u, v) in x.edge.iter_mut().zip(&y.edge) {
                u.0 += v.0;
            }
            for (u, v) in a.busy.iter_mut().zip(&b.busy) {
                *u += v;
            }
            for (u, v) in a.overlap.iter_mut().zip(&b.overlap) {
                *u += v;
            }
        }
        for (a, b) in self.designs.iter_mut().zip(&o.designs) {
            if let (Some(a), Some(b)) = (a, b) {
                a.absorb(b);
            }
        }
    }
}

/// The windows clipped to the readings, and what every sweep starts from.
pub(super) struct Setup {
    /// Per window, clipped; those left empty are None and get nothing.
    wins: Vec<Option<Window>>,
    /// The windows that are not empty, by start.
    order: Vec<usize>,
    /// The end of the last window: the sweep stops there.
    end_all: Nanos,
    /// Per domain, the stamp uncertainty a reading may have to close a regression interval.
    limits: Vec<u64>,
}

impl Setup {
    /// None when no window overlaps the readings; `sums` is then the answer as it is.
    fn new(tl: &Timeline, tree: &SpanTree, windows: &[Window], regress: bool) -> (Sums, Option<Setup>) {
        let n_paths = tree.paths.len();
        let nd = tl.domains.len();
        let mut sums = Sums {
            out: windows
                .iter()
                .map(|_| Attribution {
                    window: None,
                    time: vec![PathTime::default(); n_paths],
                    domains: Vec::new(),
                })
                .collect(),
            per: Vec::new(),
            designs: Vec::new(),
        };
        let Some(first) = tl.first_poll else { return (sums, None) };
        let wins: Vec<Option<Window>> = windows
            .iter()
            .map(|w| {
                let (s, e) = (w.start.max(first), w.end.min(tl.last_poll));
                (e > s).then_some(Window { start: s, end: e })
            })
            .collect();
        let mut order: Vec<usize> = (0..windows.len()).filter(|&i| wins[i].is_some()).collect();
        order.sort_by_key(|&i| wins[i].map(|w| w.start));
        let Some(end_all) = order.iter().filter_map(|&i| wins[i].map(|w| w.end)).max() else {
            return (sums, None);
        };
        for &i in &order {
            sums.out[i].window = wins[i];
        }
        sums.per = windows
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
        // One regression per domain, over the intervals inside any window: a window's own
        // intervals (a few hundred) give a noisier fit, and one whose steps were poorly timed
        // (a sampler preempted for a while) can throw it off; pooled, they are a small part
        // of the data. Each window's joules are then the pooled powers times its own times,
        // with standard errors from the pooled covariance.
        sums.designs = tl
            .domains
            .iter()
            .map(|td| regress.then(|| Design::with_capacity(n_paths + 1, td.series.len())))
            .collect();
        let limits = tl.domains.iter().map(|d| Series::precise_limit(d.domain.update_period).0).collect();
        (sums, Some(Setup { wins, order, end_all, limits }))
    }

    /// Up to `parts - 1` times to cut the sweep at, for parts of about even numbers of span
    /// edges. A cut is a window's start with every earlier window ended by then, where no
    /// domain reads, and each part has a reading of every domain strictly inside it, so
    /// that a reading interval is split by one cut at most.
    fn cuts(&self, tl: &Timeline, log: &SpanLog, parts: usize) -> Vec<Nanos> {
        if parts < 2 || self.order.len() < 2 {
            return Vec::new();
        }
        let mut ended = Nanos(0);
        let mut candidates = Vec::new();
        for (k, &i) in self.order.iter().enumerate() {
            let Some(w) = self.wins[i] else { continue };
            let reads_at = |t: Nanos| tl.domains.iter().any(|td| td.series.times.binary_search(&t).is_ok());
            if k > 0 && ended <= w.start && !reads_at(w.start) {
                candidates.push(w.start);
            }
            ended = ended.max(w.end);
        }
        let before =
            |t: Nanos| -> usize { log.threads.iter().map(|th| th.events.partition_point(|e| e.t < t)).sum() };
        let counts: Vec<usize> = candidates.iter().map(|&t| before(t)).collect();
        let mut cuts: Vec<Nanos> = Vec::new();
        for j in 1..parts {
            let target = log.len() * j / parts;
            let best = (0..candidates.len())
                .filter(|&c| cuts.last().is_none_or(|&l| candidates[c] > l))
                .min_by_key(|&c| counts[c].abs_diff(target));
            if let Some(c) = best {
                cuts.push(candidates[c]);
            }
        }
        // Every part holds a reading of every domain strictly inside it; a cut that leaves
        // one without is dropped (its parts merge).
        let inside = |from: Nanos, to: Option<Nanos>| {
            tl.domains.iter().all(|td| {
                let t = &td.series.times;
                let lo = t.partition_point(|&r| r <= from);
                lo < t.len() && to.is_none_or(|to| t[lo] < to)
            })
        };
        let mut kept: Vec<Nanos> = Vec::new();
        for (k, &c) in cuts.iter().enumerate() {
            let from = kept.last().copied();
            let before_ok = match from {
                Some(f) => inside(f, Some(c)),
                None => tl.domains.iter().all(|td| td.series.times.first().is_some_and(|&r| r < c)),
            };
            let after_ok = inside(c, cuts.get(k + 1).copied());
            if before_ok && after_ok {
                kept.push(c);
            }
        }
        kept
    }

    /// The window holding `[t, until]`.
    fn window_of(&self, t: Nanos, until: Nanos) -> Option<usize> {
        let pos = self.order.partition_point(|&i| self.wins[i].is_some_and(|w| w.start <= t));
        let i = *self.order.get(pos.checked_sub(1)?)?;
        self.wins[i].filter(|w| until <= w.end).map(|_| i)
    }

    /// The window in force at `t`, advancing `wi` (a position in `order`) past ended ones.
    fn window_at(&self, wi: &mut usize, t: Nanos) -> Option<usize> {
        while *wi < self.order.len() && self.wins[self.order[*wi]].is_some_and(|w| w.end <= t) {
            *wi += 1;
        }
        self.order.get(*wi).copied().filter(|&i| self.wins[i].is_some_and(|w| w.start <= t))
    }

    /// The next window edge after `t`.
    fn next_edge(&self, wi: usize, t: Nanos) -> Option<Nanos> {
        self.order.get(wi).and_then(|&i| self.wins[i]).map(|w| if t < w.start { w.start } else { w.end })
    }
}

/// Attributes each window; see [`super::attribute`].
pub(crate) fn attribute(
    tl: &Timeline,
    tree: &SpanTree,
    log: &SpanLog,
    windows: &[Window],
    choice: Choice,
) -> Vec<Attribution> {
    let regress = choice != Choice::Only(Method::TimeShare) && tree.paths.len() <= MAX_REGRESSION_PATHS;
    let (sums, setup) = Setup::new(tl, tree, windows, regress);
    match setup {
        Some(setup) => finish(sweep(tl, tree, log, &setup, sums), tl, tree, choice),
        None => sums.out,
    }
}

/// Per path, the time it ran as some thread's innermost span, brought up to date only when
/// the number of threads running it changes or a meter reads it: an edge then costs the two
/// paths it switches between, not every running path and domain.
#[derive(Clone, Copy, Default)]
struct PathClock {
    /// Threads running it now.
    threads: u32,
    /// When `busy` and `share` were last brought up to date, and the share clock then.
    at: u64,
    at_share: f64,
    /// Thread-time as the innermost span, ns.
    busy: u64,
    /// Its share of the wall time: each instant with `m` threads in spans counts `1/m` per
    /// thread running it, ns.
    share: f64,
}

/// The sweep's clocks: per path, and for the machine (time with no span, with several).
#[derive(Default)]
struct Clocks {
    now: u64,
    /// Wall time divided among the running threads: `1/m` per instant with `m` >= 1.
    share: f64,
    /// Time no thread was in a span.
    rest: u64,
    /// Thread-time in spans, and the wall time with at least one and at least two threads in.
    thread_busy: u64,
    active: u64,
    many: u64,
    paths: Vec<PathClock>,
}

/// The machine's clocks at an instant.
#[derive(Clone, Copy, Default)]
struct Marks {
    now: u64,
    rest: u64,
    thread_busy: u64,
    active: u64,
    many: u64,
}

impl Clocks {
    /// Moves to `to`, with `m` threads in spans throughout.
    fn advance(&mut self, to: Nanos, m: usize) {
        let dt = to.0 - self.now;
        self.now = to.0;
        match m {
            0 => self.rest += dt,
            // One thread, the usual case: no division on the way.
            1 => {
                self.share += dt as f64;
                self.thread_busy += dt;
                self.active += dt;
            }
            _ => {
                self.share += dt as f64 / m as f64;
                self.thread_busy += m as u64 * dt;
                self.active += dt;
                self.many += dt;
            }
        }
    }

    /// Path `p`'s busy and share time so far.
    #[inline]
    fn read(&self, p: PathId) -> (u64, f64) {
        let c = &self.paths[p as usize];
        let k = u64::from(c.threads);
        (c.busy + k * (self.now - c.at), c.share + k as f64 * (self.share - c.at_share))
    }

    /// One thread more (or fewer) runs `p`; true if it now runs where it did not.
    #[inline]
    fn change(&mut self, p: PathId, up: bool) -> bool {
        let (busy, share) = self.read(p);
        let (now, clock) = (self.now, self.share);
        let c = &mut self.paths[p as usize];
        *c = PathClock { at: now, at_share: clock, busy, share, ..*c };
        if up {
            c.threads += 1;
            c.threads == 1
        } else {
            c.threads -= 1;
            false
        }
    }

    fn marks(&self) -> Marks {
        Marks {
            now: self.now,
            rest: self.rest,
            thread_busy: self.thread_busy,
            active: self.active,
            many: self.many,
        }
    }
}

/// What ran since a mark: the paths that did, with their clocks then, and the machine's.
struct Meter {
    epoch: u32,
    /// Per path, the epoch it was last listed in.
    seen: Vec<u32>,
    list: Vec<(PathId, u64, f64)>,
    from: Marks,
}

/// What a meter read: per path that ran, its busy and share time (ns); the machine's.
struct Stretch {
    len: u64,
    rest: u64,
    thread_busy: u64,
    active: u64,
    many: u64,
}

impl Meter {
    fn new(n_paths: usize) -> Self {
        Meter { epoch: 1, seen: vec![0; n_paths], list: Vec::new(), from: Marks::default() }
    }

    /// Lists `p`, if it is not yet, with its clocks now.
    #[inline]
    fn touch(&mut self, p: PathId, clocks: &Clocks) {
        let seen = &mut self.seen[p as usize];
        if *seen != self.epoch {
            *seen = self.epoch;
            let (busy, share) = clocks.read(p);
            self.list.push((p, busy, share));
        }
    }

    /// Starts over from now, with the running paths listed.
    fn restart(&mut self, clocks: &Clocks, running: &Running) {
        if self.epoch == u32::MAX {
            self.seen.fill(0);
            self.epoch = 0;
        }
        self.epoch += 1;
        self.list.clear();
        self.from = clocks.marks();
        for &(_, p) in &running.list {
            self.touch(p, clocks);
        }
    }

    /// The machine's time since the mark, and per path that ran, its busy and share time.
    fn read<'a>(&'a self, clocks: &'a Clocks) -> (Stretch, impl Iterator<Item = (PathId, u64, f64)> + 'a) {
        let (m, f) = (clocks.marks(), self.from);
        let reading = Stretch {
            len: m.now - f.now,
            rest: m.rest - f.rest,
            thread_busy: m.thread_busy - f.thread_busy,
            active: m.active - f.active,
            many: m.many - f.many,
        };
        let paths = self.list.iter().filter_map(|&(p, b0, s0)| {
            let (b, s) = clocks.read(p);
            (b > b0).then_some((p, b - b0, s - s0))
        });
        (reading, paths)
    }
}

/// Span edges per part of a parallel sweep, at least: below this, one part.
const EVENTS_PER_PART: usize = 1 << 20;

/// The sweep: span edges, readings and window edges in time order (see the module's
/// docs). A long log is cut at window starts into parts swept on threads of their own, each
/// from the span stacks open at its cut; their sums are added up, and the reading interval
/// each cut splits is settled from both sides (see [`merge`]).
fn sweep(tl: &Timeline, tree: &SpanTree, log: &SpanLog, setup: &Setup, sums: Sums) -> Sums {
    let threads = std::thread::available_parallelism().map_or(1, usize::from).min(8);
    sweep_in(tl, tree, log, setup, sums, threads.min(log.len() / EVENTS_PER_PART).max(1))
}

/// [`sweep`] in at most `parts` parts.
fn sweep_in(tl: &Timeline, tree: &SpanTree, log: &SpanLog, setup: &Setup, sums: Sums, parts: usize) -> Sums {
    let cuts = setup.cuts(tl, log, parts);
    if cuts.is_empty() {
        return sweep_part(tl, tree, log, setup, sums, None, None).sums;
    }
    let mut later: Vec<(Start, Option<Nanos>, Sums)> = Vec::with_capacity(cuts.len());
    for (k, start) in Start::at(tree, log, tl, &cuts).into_iter().enumerate() {
        let end = cuts.get(k + 1).copied();
        // Room for the rows of this part's readings only.
        let fresh = sums.fresh(|d| {
            let times = &tl.domains[d].series.times;
            times.partition_point(|&t| end.is_none_or(|e| t < e)) - times.partition_point(|&t| t < start.t)
        });
        later.push((start, end, fresh));
    }
    let (first, later) = std::thread::scope(|scope| {
        let handles: Vec<_> = later
            .into_iter()
            .map(|(start, end, fresh)| {
                scope.spawn(move || sweep_part(tl, tree, log, setup, fresh, Some(start), end))
            })
            .collect();
        let first = sweep_part(tl, tree, log, setup, sums, None, Some(cuts[0]));
        let later: Vec<Part> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect();
        (first, later)
    });
    merge(first, later)
}

/// What one part of the sweep summed, and per domain, time-share's bookkeeping of the
/// reading intervals cut at its ends.
struct Part {
    sums: Sums,
    /// The interval its start cut splits: its side of it (when it starts at a cut).
    first: Vec<Option<Pending>>,
    /// The interval its end cut splits: its side of it (when it ends at a cut).
    last: Vec<Option<Pending>>,
}

/// Adds up the parts, in time order. An interval a cut splits is time-share's "clean" (one
/// path alone, or nobody) only if both sides were, with the same path; otherwise what
/// either side gave in it is edge energy, as one sweep would have found.
fn merge(first: Part, later: Vec<Part>) -> Sums {
    let mut sums = first.sums;
    let mut last = first.last;
    for part in later {
        for (d, (a, b)) in last.iter_mut().zip(part.first).enumerate() {
            let (Some(a), Some(b)) = (a.take(), b) else { continue };
            let same = a.sole == NONE || b.sole == NONE || a.sole == b.sole;
            if !(a.clean && b.clean && same) {
                for &(w, p, e) in a.given.iter().chain(&b.given) {
                    if let Some(wd) = sums.per.get_mut(w).and_then(|v| v.get_mut(d)) {
                        wd.share.edge[p as usize].0 += e;
                    }
                }
            }
        }
        sums.add(part.sums);
        last = part.last;
    }
    sums
}

/// Where a part after a cut starts: the cut; per thread, its next edge, its open spans and
/// the (clamped) time of its edge before; per domain, its next reading.
struct Start {
    t: Nanos,
    threads: Vec<(usize, Vec<PathId>, Nanos)>,
    next: Vec<usize>,
}

impl Start {
    /// The state at each cut (sorted), replaying the span edges before it as the sweep
    /// does: an enter of a path the tree lacks is skipped, an exit unwinds to its site.
    fn at(tree: &SpanTree, log: &SpanLog, tl: &Timeline, cuts: &[Nanos]) -> Vec<Start> {
        let mut starts: Vec<Start> = cuts
            .iter()
            .map(|&t| Start {
                t,
                threads: Vec::with_capacity(log.threads.len()),
                next: tl.domains.iter().map(|td| td.series.times.partition_point(|&r| r <= t)).collect(),
            })
            .collect();
        for thread in &log.threads {
            let (mut stack, mut clamp, mut i) = (Vec::new(), Nanos(0), 0);
            let events = &thread.events;
            for start in &mut starts {
                while let Some(ev) = events.get(i)
                    && ev.t.max(clamp) < start.t
                {
                    clamp = ev.t.max(clamp);
                    i += 1;
                    if let Some(at) = ev.ends_from(&stack, |&p| tree.paths[p as usize].site) {
                        stack.truncate(at);
                        if ev.kind == EventKind::Enter
                            && let Some(p) = tree.child(stack.last().copied(), ev.site)
                        {
                            stack.push(p);
                        }
                    }
                }
                start.threads.push((i, stack.clone(), clamp));
            }
        }
        starts
    }
}

/// One part of the sweep: from the start (None) or a cut, to the end (None) or a cut.
fn sweep_part(
    tl: &Timeline,
    tree: &SpanTree,
    log: &SpanLog,
    setup: &Setup,
    mut sums: Sums,
    start: Option<Start>,
    end: Option<Nanos>,
) -> Part {
    let n_paths = tree.paths.len();
    let nd = tl.domains.len();
    let mut ds: Vec<DomainState> =
        (0..nd).map(|_| DomainState { sole: NONE, clean: true, ..DomainState::default() }).collect();
    let mut clocks = Clocks { paths: vec![PathClock::default(); n_paths], ..Clocks::default() };
    // One meter per domain (from its last reading or window edge), one for the window's
    // time per path (from its last edge).
    let mut meters: Vec<Meter> = (0..=nd).map(|_| Meter::new(n_paths)).collect();
    let mut spans = Spans::new(log, tree, start.as_ref());
    let mut t = Nanos(0);
    if let Some(start) = &start {
        // The clocks and meters start at the cut with its spans running; each domain in
        // the reading interval the cut is in, whose time-share bookkeeping is kept apart.
        t = start.t;
        clocks.now = t.0;
        for &(_, p) in &spans.running.list {
            clocks.change(p, true);
        }
        for meter in &mut meters {
            meter.restart(&clocks, &spans.running);
        }
        for (d, st) in ds.iter_mut().enumerate() {
            let s = &tl.domains[d].series;
            st.next = start.next[d];
            st.defer = true;
            if let Some(r) = st.next.checked_sub(1)
                && let Some(power) = interval_power(s, r)
            {
                st.power = power;
            }
        }
    }
    let mut row: Vec<(usize, f64)> = Vec::with_capacity(16);
    let mut win: Option<usize> = None;
    let mut wi = 0;
    loop {
        // A part that ends at a cut stops before anything at the cut: that is the next's.
        if end.is_some_and(|e| t >= e) {
            break;
        }
        let win_now = setup.window_at(&mut wi, t);
        if win_now != win {
            for d in 0..nd {
                close_stretch(d, tl, &meters[d], &clocks, &mut ds[d], win, &mut sums.per);
                meters[d].restart(&clocks, &spans.running);
            }
            if let Some(w) = win {
                let (_, paths) = meters[nd].read(&clocks);
                for (p, busy, _) in paths {
                    sums.out[w].time[p as usize].exclusive.0 += busy;
                }
            }
            meters[nd].restart(&clocks, &spans.running);
            win = win_now;
        }
        spans.edges_at(t, win, &mut sums.out, &mut clocks, &mut meters);
        // Readings at t.
        for (d, td) in tl.domains.iter().enumerate() {
            let s = &td.series;
            while ds[d].next < s.len() && s.times[ds[d].next] <= t {
                close_stretch(d, tl, &meters[d], &clocks, &mut ds[d], win, &mut sums.per);
                meters[d].restart(&clocks, &spans.running);
                close_reading(d, tl, setup, &mut ds[d], &mut sums, &mut row);
            }
        }
        if t >= setup.end_all {
            break;
        }
        // Until the next reading or window edge only span edges change anything: they are
        // taken in a tight loop (about ten per reading in a model's profile).
        let mut limit = setup.end_all;
        for (d, td) in tl.domains.iter().enumerate() {
            if let Some(&rt) = td.series.times.get(ds[d].next) {
                limit = limit.min(rt);
            }
        }
        if let Some(edge) = setup.next_edge(wi, t) {
            limit = limit.min(edge);
        }
        let limit = limit.max(Nanos(t.0 + 1));
        while let Some((et, _)) = spans.heap.peek()
            && et < limit
        {
            // Every edge at or before t was applied; a clamped one can only equal t.
            let et = et.max(Nanos(t.0 + 1));
            clocks.advance(et, spans.running.list.len());
            t = et;
            spans.edges_at(t, win, &mut sums.out, &mut clocks, &mut meters);
        }
        clocks.advance(limit, spans.running.list.len());
        t = limit;
    }
    let mut last = Vec::with_capacity(nd);
    for (d, st) in ds.iter_mut().enumerate() {
        close_stretch(d, tl, &meters[d], &clocks, st, win, &mut sums.per);
        if end.is_some() {
            last.push(Some(Pending::take(st)));
        } else {
            flush_edges(st, &mut sums.per, d);
            last.push(None);
        }
    }
    if let Some(w) = win {
        let (_, paths) = meters[nd].read(&clocks);
        for (p, busy, _) in paths {
            sums.out[w].time[p as usize].exclusive.0 += busy;
        }
    }
    let first = ds.iter_mut().map(|st| st.deferred.take()).collect();
    Part { sums, first, last }
}

/// The span side of the sweep: every thread's next edge and open spans, and who runs now.
struct Spans<'a> {
    log: &'a SpanLog,
    tree: &'a SpanTree,
    /// Per path, its innermost site (the tree's nodes, with their names, are larger).
    sites: Vec<crate::spanlog::SiteId>,
    heap: Edges,
    threads: Vec<Thread>,
    running: Running,
    /// Per thread, the operations declared in spans: (position of the span's enter, how
    /// many), sorted, one entry per span.
    ops: Vec<Vec<(usize, u64)>>,
}

impl<'a> Spans<'a> {
    /// From the log's start, or from a cut.
    fn new(log: &'a SpanLog, tree: &'a SpanTree, start: Option<&Start>) -> Self {
        let mut threads: Vec<Thread> = log
            .threads
            .iter()
            .map(|_| Thread { next: 0, next_ops: 0, stack: Vec::new(), slot: NONE })
            .collect();
        let ops: Vec<Vec<(usize, u64)>> = log
            .threads
            .iter()
            .map(|t| {
                let mut ops = t.ops.clone();
                ops.sort_unstable();
                ops.dedup_by(|b, a| {
                    let same = a.0 == b.0;
                    if same {
                        a.1 = a.1.saturating_add(b.1);
                    }
                    same
                });
                ops
            })
            .collect();
        let mut heap = Edges::default();
        let mut running = Running::default();
        for (i, t) in log.threads.iter().enumerate() {
            let mut before = Nanos(0);
            if let Some((next, stack, clamp)) = start.map(|s| &s.threads[i]) {
                threads[i].next = *next;
                threads[i].stack.clone_from(stack);
                running.set(&mut threads, i, stack.last().copied());
                before = *clamp;
            }
            if let Some(ev) = t.events.get(threads[i].next) {
                // Clamped to the edge before, as the sweep clamps.
                heap.push((ev.t.max(before), i as u32));
            }
        }
        for (thread, ops) in threads.iter_mut().zip(&ops) {
            thread.next_ops = ops.partition_point(|&(at, _)| at < thread.next);
        }
        let sites = tree.paths.iter().map(|p| p.site).collect();
        Spans { log, tree, sites, heap, threads, running, ops }
    }

    /// Applies every span edge at or before `t`: the paths' clocks, the meters' lists, and
    /// the calls and stretches of window `win`.
    #[inline(always)]
    fn edges_at(
        &mut self,
        t: Nanos,
        win: Option<usize>,
        out: &mut [Attribution],
        clocks: &mut Clocks,
        meters: &mut [Meter],
    ) {
        let (log, tree, sites) = (self.log, self.tree, &self.sites);
        while let Some((et, th)) = self.heap.peek() {
            if et > t {
                break;
            }
            self.heap.pop();
            let th = th as usize;
            let thread = &mut self.threads[th];
            let events = &log.threads[th].events;
            let ev = events[thread.next];
            thread.next += 1;
            if let Some(next) = events.get(thread.next) {
                // Per-thread times are monotonic; a clock that stepped back is clamped.
                self.heap.push((next.t.max(et), th as u32));
            }
            let was = thread.stack.last().copied();
            // Unwinds as `SpanTree::build` does.
            let Some(at) = ev.ends_from(&thread.stack, |&p| sites[p as usize]) else { continue };
            let now = match ev.kind {
                EventKind::Enter => {
                    thread.stack.truncate(at);
                    let back = thread.stack.last().copied();
                    match tree.child(back, ev.site) {
                        Some(path) => {
                            thread.stack.push(path);
                            if let Some(w) = win {
                                let time = &mut out[w].time[path as usize];
                                time.calls += 1;
                                time.stretches += 1;
                                let (ops, at) = (&self.ops[th], thread.next - 1);
                                while ops.get(thread.next_ops).is_some_and(|&(o, _)| o < at) {
                                    thread.next_ops += 1;
                                }
                                if let Some(&(o, n)) = ops.get(thread.next_ops)
                                    && o == at
                                {
                                    time.ops = time.ops.saturating_add(n);
                                }
                            }
                            Some(path)
                        }
                        // A path the tree lacks (never, for a tree built from this log).
                        None if back == was => continue,
                        None => back,
                    }
                }
                // A cut that ends nothing changes nothing.
                EventKind::Cut if at == thread.stack.len() => continue,
                EventKind::Exit | EventKind::Cut => {
                    let stack = &mut thread.stack;
                    stack.truncate(at);
                    let back = stack.last().copied();
                    if let (Some(w), Some(q)) = (win, back) {
                        out[w].time[q as usize].stretches += 1;
                    }
                    back
                }
            };
            self.running.set(&mut self.threads, th, now);
            if let Some(q) = was {
                clocks.change(q, false);
            }
            if let Some(p) = now
                && clocks.change(p, true)
            {
                for meter in meters.iter_mut() {
                    meter.touch(p, clocks);
                }
            }
        }
    }
}

/// Adds what domain `d`'s meter read since its last reading or window edge to the
/// regression interval being filled and, inside a window, to time-share's sums.
fn close_stretch(
    d: usize,
    tl: &Timeline,
    meter: &Meter,
    clocks: &Clocks,
    st: &mut DomainState,
    win: Option<usize>,
    per: &mut [Vec<WinDomain>],
) {
    let s = &tl.domains[d].series;
    let k = st.next;
    if k == 0 || k >= s.len() {
        return;
    }
    let (r, paths) = meter.read(clocks);
    if r.len == 0 {
        return;
    }
    const S: f64 = 1e-9;
    let regress = st.start.is_some();
    if regress {
        // Time between spans, less the thread-time beyond one while several ran.
        st.base += (r.rest as f64 - (r.thread_busy - r.active) as f64) * S;
    }
    let wd = win.map(|w| (w, &mut per[w][d]));
    let Some((w, wd)) = wd else {
        if regress {
            for (p, busy, _) in paths {
                add_busy(&mut st.busy, p, busy as f64 * S);
            }
        }
        return;
    };
    wd.share.total.0 += st.power * r.len as f64 * S;
    wd.share.covered.0 += r.len;
    // Who had this stretch: rest, one path, or several threads (never clean).
    if r.many > 0 {
        st.clean = false;
    }
    if r.rest > 0 {
        had(st, REST);
    }
    for (p, busy, share) in paths {
        had(st, p);
        let (busy, share) = (busy as f64 * S, share * S);
        let each = st.power * share;
        wd.share.exclusive[p as usize].0 += each;
        wd.busy[p as usize] += busy;
        wd.overlap[p as usize] += busy - share;
        st.given.push((w, p, each));
        if regress {
            add_busy(&mut st.busy, p, busy);
        }
    }
}

/// Who had part of time-share's reading interval: it stays clean while that is one path alone
/// (or nobody) throughout.
fn had(st: &mut DomainState, who: u32) {
    if st.sole == NONE {
        st.sole = who;
    }
    st.clean &= st.sole == who;
}

fn add_busy(busy: &mut Vec<(PathId, f64)>, p: PathId, secs: f64) {
    match busy.iter_mut().find(|(q, _)| *q == p) {
        Some((_, b)) => *b += secs,
        None => busy.push((p, secs)),
    }
}

/// Reading `ds.next` of domain `d`, its stretch closed: ends time-share's reading interval
/// and, where it is precisely stamped, the regression interval, which becomes a row.
fn close_reading(
    d: usize,
    tl: &Timeline,
    setup: &Setup,
    st: &mut DomainState,
    sums: &mut Sums,
    row: &mut Vec<(usize, f64)>,
) {
    let td = &tl.domains[d];
    let s = &td.series;
    let r = st.next;
    flush_edges(st, &mut sums.per, d);
    if u64::from(s.uncertainty[r]) <= setup.limits[d] {
        // An interval stretched over many skipped steps says little and, with spans in it,
        // would outweigh short ones when columns are compared.
        let long = |from: usize| {
            let period = td.domain.update_period.0;
            period > 0 && (s.times[r] - s.times[from]).0 * 2 > (2 * MAX_MERGED_STEPS + 1) * period
        };
        let usable = |from: usize| !long(from) || st.busy.is_empty();
        if let Some(from) = st.start.filter(|&f| usable(f))
            && let Some(design) = &mut sums.designs[d]
            && let Some(w) = setup.window_of(s.times[from], s.times[r])
        {
            row.clear();
            row.push((0, st.base));
            row.extend(st.busy.iter().map(|&(p, b)| (p as usize + 1, b)));
            let y = s.energy[r].0 - s.energy[from].0;
            if st.last_row == Some((from, w)) {
                design.add_following(y, row);
            } else {
                design.add(y, row);
            }
            st.last_row = Some((r, w));
        }
        st.start = Some(r);
        st.busy.clear();
        st.base = 0.0;
    }
    st.next += 1;
    if let Some(power) = interval_power(s, r) {
        st.power = power;
    }
}

/// The mean power, watts, from reading `r` to the next, if there is a next (0 over no time).
fn interval_power(s: &Series, r: usize) -> Option<f64> {
    let (&t1, &e1) = (s.times.get(r + 1)?, s.energy.get(r + 1)?);
    let span = (t1 - s.times[r]).as_secs_f64();
    Some(if span > 0.0 { (e1.0 - s.energy[r].0) / span } else { 0.0 })
}

/// Settles every window's paths from the sums.
fn finish(mut sums: Sums, tl: &Timeline, tree: &SpanTree, choice: Choice) -> Vec<Attribution> {
    let n_paths = tree.paths.len();
    let pooled: Vec<Option<Fit>> = sums
        .designs
        .iter()
        .map(|d| d.as_ref().filter(|d| d.intervals() > 0).and_then(regression::solve))
        .collect();
    drop(std::mem::take(&mut sums.designs));
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
    let mut out = sums.out;
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
        let wd = std::mem::take(&mut sums.per[w]);
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

/// Ends a reading interval: energy given in it is edge energy unless one path filled it alone.
fn flush_edges(st: &mut DomainState, per: &mut [Vec<WinDomain>], d: usize) {
    if std::mem::take(&mut st.defer) {
        st.deferred = Some(Pending::take(st));
    } else if !st.clean {
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
    share.wall_s = wd.busy.iter().zip(&wd.overlap).map(|(b, o)| (b - o).max(0.0)).collect();
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
