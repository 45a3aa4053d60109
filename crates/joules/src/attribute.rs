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
    let n_domains = tl.domains.len();
    let mut out = Attribution {
        window: None,
        time: vec![PathTime::default(); n_paths],
        domains: vec![
            DomainShare {
                exclusive: vec![Joules(0.0); n_paths],
                inclusive: vec![Joules(0.0); n_paths],
                ..DomainShare::default()
            };
            n_domains
        ],
    };
    let times = &tl.times;
    if times.len() < 2 {
        return out;
    }
    let start = window.start.max(times[0]);
    let end = window.end.min(times[times.len() - 1]);
    if end <= start {
        return out;
    }
    out.window = Some(Window { start, end });

    // Thread state changes inside the window: (t, thread, path or IDLE), ends before starts.
    let mut changes: Vec<(Nanos, bool, u32, u32)> = Vec::new();
    for (slot, segs) in tree.segments.iter().enumerate() {
        let first = segs.partition_point(|s| s.end <= start);
        for s in segs[first..].iter().take_while(|s| s.start < end) {
            changes.push((s.start.max(start), true, slot as u32, s.path));
            changes.push((s.end.min(end), false, slot as u32, IDLE));
        }
    }
    changes.sort_unstable_by_key(|&(t, is_start, _, _)| (t, is_start));

    let valid: Vec<usize> = (0..n_domains).map(|d| tl.valid_len(d)).collect();
    let mut state = vec![IDLE; tree.segments.len()];
    let mut active: Vec<u32> = Vec::new();
    let mut k = times.partition_point(|&t| t <= start).max(1);
    let mut cur = start;
    let mut ci = 0;
    let mut power = vec![0.0f64; n_domains];
    let set_power = |k: usize, power: &mut [f64]| {
        let dt = (times[k] - times[k - 1]).as_secs_f64();
        for (d, p) in power.iter_mut().enumerate() {
            *p =
                if k < valid[d] && dt > 0.0 { (tl.energy(k, d).0 - tl.energy(k - 1, d).0) / dt } else { 0.0 };
        }
    };
    set_power(k, &mut power);
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
        let mut next = end.min(times[k]);
        if let Some(c) = changes.get(ci) {
            next = next.min(c.0);
        }
        let dt = next - cur;
        if dt.0 > 0 {
            let secs = dt.as_secs_f64();
            for (d, share) in out.domains.iter_mut().enumerate() {
                let e = power[d] * secs;
                share.total.0 += e;
                if k < valid[d] {
                    share.covered.0 += dt.0;
                }
                if active.is_empty() {
                    share.unattributed.0 += e;
                } else {
                    let each = e / active.len() as f64;
                    for &p in &active {
                        share.exclusive[p as usize].0 += each;
                    }
                }
            }
            for &p in &active {
                out.time[p as usize].exclusive.0 += dt.0;
            }
        }
        cur = next;
        if cur >= times[k] && k + 1 < times.len() {
            k += 1;
            set_power(k, &mut power);
        }
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
