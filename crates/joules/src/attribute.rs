//! The aggregator: lays spans over the energy timeline and attributes joules to span paths.
//!
//! *Time-share*: the power of a domain is taken as constant between two readings. At every
//! instant that power is shared equally by the threads inside a span, and goes to each
//! thread's innermost span path (its *exclusive* energy); when no thread is inside a span it
//! is *unattributed*. Nothing is dropped, so per domain the exclusive energies plus the
//! unattributed energy add up to the total. A path's *inclusive* energy adds its
//! descendants'. Right for spans much longer than a counter's update period; shorter spans
//! are flagged by the report.

use std::collections::HashMap;

use crate::spanlog::{EventKind, SiteId, SpanLog};
use crate::timeline::Timeline;
use crate::units::{Joules, Nanos};

/// Index of a span path in a [`SpanTree`].
pub type PathId = u32;

/// A span path: a site reached through a chain of enclosing spans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathNode {
    /// The enclosing path.
    pub parent: Option<PathId>,
    /// The innermost site.
    pub site: SiteId,
    /// Span names from the outermost, joined by `/`.
    pub name: String,
    /// 0 for a root span.
    pub depth: u32,
}

#[derive(Clone, Copy, Debug)]
struct Segment {
    start: Nanos,
    end: Nanos,
    path: PathId,
}

/// Spans rebuilt from their edges: the paths, and per thread the intervals in which each path
/// was the innermost one.
#[derive(Clone, Debug, Default)]
pub struct SpanTree {
    /// Every path seen; a parent always precedes its children.
    pub paths: Vec<PathNode>,
    segments: Vec<Vec<Segment>>,
    calls: Vec<(Nanos, PathId)>,
    /// Exits that matched no open span (entered before the profile started).
    pub unmatched_exits: u64,
}

impl SpanTree {
    /// Rebuilds the spans of `log`. Spans still open at `end` end there.
    pub fn build(log: &SpanLog, end: Nanos) -> Self {
        let mut tree = SpanTree::default();
        let mut index: HashMap<(Option<PathId>, SiteId), PathId> = HashMap::new();
        for thread in &log.threads {
            let mut segments = Vec::new();
            // (site, path) of the open spans, and when the innermost one last became innermost.
            let mut stack: Vec<(SiteId, PathId)> = Vec::new();
            let mut since = Nanos(0);
            for ev in &thread.events {
                let t = ev.t.min(end);
                match ev.kind {
                    EventKind::Enter => {
                        if let Some(&(_, top)) = stack.last() {
                            segments.push(Segment { start: since, end: t, path: top });
                        }
                        let parent = stack.last().map(|&(_, p)| p);
                        let path = *index.entry((parent, ev.site)).or_insert_with(|| {
                            let name = &log.site(ev.site).name;
                            let (name, depth) = match parent {
                                Some(p) => {
                                    let pn = &tree.paths[p as usize];
                                    (format!("{}/{name}", pn.name), pn.depth + 1)
                                }
                                None => (name.clone(), 0),
                            };
                            tree.paths.push(PathNode { parent, site: ev.site, name, depth });
                            (tree.paths.len() - 1) as PathId
                        });
                        tree.calls.push((t, path));
                        stack.push((ev.site, path));
                        since = t;
                    }
                    EventKind::Exit => match stack.last() {
                        Some(&(site, top)) if site == ev.site => {
                            segments.push(Segment { start: since, end: t, path: top });
                            stack.pop();
                            since = t;
                        }
                        _ => tree.unmatched_exits += 1,
                    },
                }
            }
            if let Some(&(_, top)) = stack.last() {
                segments.push(Segment { start: since, end, path: top });
            }
            segments.retain(|s| s.end > s.start);
            tree.segments.push(segments);
        }
        tree.calls.sort_unstable_by_key(|&(t, _)| t);
        tree
    }
}

/// A stretch of a profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// From.
    pub start: Nanos,
    /// To.
    pub end: Nanos,
}

/// Time spent in a path.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PathTime {
    /// Time as the innermost span, summed over threads.
    pub exclusive: Nanos,
    /// Time inside it, descendants included.
    pub inclusive: Nanos,
    /// Times it was entered.
    pub calls: u64,
}

/// One domain's energy in a window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DomainShare {
    /// All the energy the domain's counter saw in the window.
    pub total: Joules,
    /// Energy while no span ran.
    pub unattributed: Joules,
    /// Per path, as the innermost span.
    pub exclusive: Vec<Joules>,
    /// Per path, descendants included.
    pub inclusive: Vec<Joules>,
    /// Per path, the part of `exclusive` from reading intervals that the path did not fill
    /// alone: there time-share assumes the power was even, and the truth may differ.
    pub edge: Vec<Joules>,
    /// How much of the window this domain's readings cover (less if it ended early).
    pub covered: Nanos,
}

/// The energy and time of every span path in a window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attribution {
    /// The window actually covered by readings.
    pub window: Option<Window>,
    /// Per path.
    pub time: Vec<PathTime>,
    /// Per timeline domain.
    pub domains: Vec<DomainShare>,
}

const IDLE: u32 = u32::MAX;

/// Time-share attribution of `tl`'s energy to `tree`'s paths within `window`.
pub fn time_share(tl: &Timeline, tree: &SpanTree, window: Window) -> Attribution {
    let n_paths = tree.paths.len();
    let mut out = Attribution {
        window: None,
        time: vec![PathTime::default(); n_paths],
        domains: vec![
            DomainShare {
                exclusive: vec![Joules(0.0); n_paths],
                inclusive: vec![Joules(0.0); n_paths],
                edge: vec![Joules(0.0); n_paths],
                ..DomainShare::default()
            };
            tl.domains.len()
        ],
    };
    let Some(first) = tl.first_poll else { return out };
    let start = window.start.max(first);
    let end = window.end.min(tl.last_poll);
    if end <= start {
        return out;
    }
    out.window = Some(Window { start, end });

    // Thread state changes inside the window: (t, is a start, thread, path or IDLE); at one
    // instant, ends come before starts.
    let mut changes: Vec<(Nanos, bool, u32, u32)> = Vec::new();
    for (slot, segs) in tree.segments.iter().enumerate() {
        let first = segs.partition_point(|s| s.end <= start);
        for s in segs[first..].iter().take_while(|s| s.start < end) {
            changes.push((s.start.max(start), true, slot as u32, s.path));
            changes.push((s.end.min(end), false, slot as u32, IDLE));
        }
    }
    changes.sort_unstable_by_key(|&(t, is_start, _, _)| (t, is_start));
    let slots = tree.segments.len();

    sweep(&changes, slots, start, end, &[], |dt, _, active| {
        for &p in active {
            out.time[p as usize].exclusive.0 += dt.0;
        }
    });
    for (td, share) in tl.domains.iter().zip(&mut out.domains) {
        let s = &td.series;
        if s.len() < 2 {
            continue;
        }
        // Only where this domain has readings on both sides.
        let (ds, de) = (start.max(s.times[0]), end.min(s.times[s.len() - 1]));
        if de <= ds {
            continue;
        }
        share.covered = de - ds;
        // Per reading interval: each path's energy in it, and whether one path filled it alone.
        let mut interval = EdgeTracker::default();
        sweep(&changes, slots, ds, de, &s.times, |dt, k, active| {
            let span = (s.times[k] - s.times[k - 1]).as_secs_f64();
            let power = if span > 0.0 { (s.energy[k].0 - s.energy[k - 1].0) / span } else { 0.0 };
            let e = power * dt.as_secs_f64();
            share.total.0 += e;
            interval.piece(k, active, &mut share.edge);
            if active.is_empty() {
                share.unattributed.0 += e;
            } else {
                let each = e / active.len() as f64;
                for &p in active {
                    share.exclusive[p as usize].0 += each;
                    interval.add(p, each);
                }
            }
        });
        interval.flush(&mut share.edge);
    }

    let first = tree.calls.partition_point(|&(t, _)| t < start);
    for &(_, p) in tree.calls[first..].iter().take_while(|&&(t, _)| t < end) {
        out.time[p as usize].calls += 1;
    }
    // Children come after their parents, so one backward pass sums every subtree.
    for p in 0..n_paths {
        out.time[p].inclusive = out.time[p].exclusive;
        for share in &mut out.domains {
            share.inclusive[p] = share.exclusive[p];
        }
    }
    for p in (0..n_paths).rev() {
        if let Some(parent) = tree.paths[p].parent {
            let (parent, child) = (parent as usize, p);
            out.time[parent].inclusive.0 += out.time[child].inclusive.0;
            for share in &mut out.domains {
                let add = share.inclusive[child];
                share.inclusive[parent] += add;
            }
        }
    }
    out
}

/// Finds the energy each path got in reading intervals it did not fill alone.
#[derive(Default)]
struct EdgeTracker {
    k: Option<usize>,
    /// The active paths in the interval's first piece.
    first: Vec<u32>,
    /// Whether a later piece had other active paths.
    changed: bool,
    energy: Vec<(u32, f64)>,
}

impl EdgeTracker {
    fn piece(&mut self, k: usize, active: &[u32], edge: &mut [Joules]) {
        if self.k != Some(k) {
            self.flush(edge);
            self.k = Some(k);
            self.first.clear();
            self.first.extend_from_slice(active);
        } else if self.first != active {
            self.changed = true;
        }
    }

    fn add(&mut self, p: u32, e: f64) {
        match self.energy.iter_mut().find(|(q, _)| *q == p) {
            Some((_, acc)) => *acc += e,
            None => self.energy.push((p, e)),
        }
    }

    fn flush(&mut self, edge: &mut [Joules]) {
        // Clean only when one path was the sole active one throughout.
        if self.changed || self.first.len() > 1 {
            for &(p, e) in &self.energy {
                edge[p as usize].0 += e;
            }
        }
        self.energy.clear();
        self.changed = false;
    }
}

/// Walks `[start, end)` in pieces within which neither the set of active span paths nor the
/// reading interval changes, calling `f(length, k, active paths)`, where `k` indexes the
/// reading interval `times[k-1]..times[k]` (with no `times`, `k` is 0).
fn sweep(
    changes: &[(Nanos, bool, u32, u32)],
    slots: usize,
    start: Nanos,
    end: Nanos,
    times: &[Nanos],
    mut f: impl FnMut(Nanos, usize, &[u32]),
) {
    let mut state = vec![IDLE; slots];
    let mut active: Vec<u32> = Vec::new();
    let mut ci = 0;
    let mut k =
        if times.is_empty() { 0 } else { times.partition_point(|&t| t <= start).clamp(1, times.len() - 1) };
    let mut cur = start;
    while cur < end {
        let mut changed = false;
        while ci < changes.len() && changes[ci].0 <= cur {
            let (_, _, slot, path) = changes[ci];
            state[slot as usize] = path;
            changed = true;
            ci += 1;
        }
        if changed {
            active.clear();
            active.extend(state.iter().copied().filter(|&p| p != IDLE));
        }
        let mut next = end;
        if let Some(c) = changes.get(ci) {
            next = next.min(c.0);
        }
        if !times.is_empty() {
            next = next.min(times[k]);
        }
        if next > cur {
            f(next - cur, k, &active);
        }
        cur = next;
        if !times.is_empty() && cur >= times[k] && k + 1 < times.len() {
            k += 1;
        }
    }
}
