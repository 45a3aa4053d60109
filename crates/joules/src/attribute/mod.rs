//! The aggregator: lays spans over the energy timeline and attributes joules to span paths.
//!
//! One sweep over the span edges and readings, in time order, feeds two estimators, chosen
//! per path and domain and named in the report ([`Method`]):
//!
//! - *Time-share* takes a domain's power as constant between two readings and shares it
//!   equally among the threads inside a span at each instant. Right for spans much longer
//!   than a counter step ([`LONG_SPAN_STEPS`] steps or more), where it measures how power
//!   really varied; below that it is as wrong as reading the counter at span edges.
//! - *Regression* ([`regression`]) solves, over the intervals between precisely stamped
//!   counter steps, `dE_k = sum_l P_l busy_kl + P_0 (rest_k - overlap_k)` for each path's
//!   power `P_l >= 0`, with standard errors and their covariance. `busy_kl` is the time path
//!   `l` was innermost in interval `k`, summed over threads; `rest_k` the time no span ran;
//!   `overlap_k` the thread-time beyond one while several threads ran spans.
//!
//! The threads rule: `P_l` is the machine's power while one thread runs `l`. Threads running
//! at the same time each add their path's power above the base `P_0`, which is drawn once:
//! a path's joules are `P_l x busy_l - P_0 x overlap_l`, where `overlap_l` is its share of
//! the time other threads ran with it (`(m-1)/m` of each instant with `m` threads). So a path
//! busy on two threads counts twice, and two threads running layers of different power get
//! different joules (time-share would split their sum equally).
//!
//! Time no span covers is *unattributed*, never dropped: per domain and window, the exclusive
//! energies plus the unattributed energy add up to the counter's total. A path's *inclusive*
//! energy adds its descendants'.
//!
//! Memory: the sweep keeps per thread its open spans, per path its clocks, and per domain
//! the interval being filled and the paths run in it, nothing per event; the regression
//! keeps one compact row per counter interval (its energy and nonzero entries, about 40
//! bytes) for its covariance. One regression per domain pools the intervals of every window.

pub mod regression;
mod sweep;

use crate::spanlog::{EventKind, SiteId, SpanLog};
use crate::timeline::Timeline;
use crate::units::{Joules, Nanos};

/// Spans whose innermost stretches last this many counter steps or more are attributed by
/// time-share: at that length the energy misplaced at their two edges is under ~1%, and
/// time-share follows a power that changes between calls, which the regression averages.
pub const LONG_SPAN_STEPS: u64 = 50;

/// Index of a span path in a [`SpanTree`].
pub type PathId = u32;

/// A span path: a site reached through a chain of enclosing spans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathNode {
    /// The enclosing path.
    pub parent: Option<PathId>,
    /// The innermost site.
    pub site: SiteId,
    /// Span names from the outermost, joined by `/`. Where two sites under one parent share
    /// a name (every layer's `forward`), each of them carries its module, and its line if
    /// the module is shared too: `model/forward (model::attention)`. Names stay bare
    /// otherwise, so reports stay readable.
    pub name: String,
    /// 0 for a root span.
    pub depth: u32,
}

/// The span paths of a log (no per-event data: the sweep recomputes paths as it goes).
#[derive(Clone, Debug, Default)]
pub struct SpanTree {
    /// Every path seen; a parent always precedes its children.
    pub paths: Vec<PathNode>,
    children: Vec<Vec<(SiteId, PathId)>>,
    roots: Vec<(SiteId, PathId)>,
    /// Exits that matched no open span (entered before the profile started, or the exit of
    /// a span already ended by an enclosing guard dropped before it).
    pub unmatched_exits: u64,
    /// Per path, whether spans were dropped while it was a thread's innermost recorded span:
    /// their time and energy are in its exclusive figures.
    pub held_dropped: Vec<bool>,
    /// Spans were dropped while a thread had none open: their energy is unattributed.
    pub dropped_outside: bool,
    /// Per path, whether a span of it was not left by its own guard: ended by an enclosing
    /// span's exit (its guard dropped after that one's; forgotten ones are left out of the log), or
    /// still open when the profile stopped. Spans its thread entered meanwhile nested
    /// under it.
    pub not_left: Vec<bool>,
    /// Per path, whether a span entered inside it was left out because its guard was never
    /// dropped ([`SpanLog::leave_out_forgotten`]): that span's time and energy are in this
    /// path's exclusive figures.
    pub holds_forgotten: Vec<bool>,
    /// The spans left out so, by the path they were entered in (None: outside any span) and
    /// their site: how many.
    pub forgotten: std::collections::BTreeMap<(Option<PathId>, SiteId), u64>,
}

impl SpanTree {
    /// The paths of `log`.
    pub fn build(log: &SpanLog, _end: Nanos) -> Self {
        let mut tree = SpanTree::default();
        for thread in &log.threads {
            let mut stack: Vec<(SiteId, PathId)> = Vec::new();
            let mut forgotten = thread.forgotten.iter().peekable();
            for (i, ev) in thread.events.iter().enumerate() {
                while let Some(&(_, site)) = forgotten.next_if(|&&(at, _)| at <= i) {
                    tree.note_forgotten(stack.last().map(|&(_, p)| p), site);
                }
                if ev.after_loss {
                    match stack.last() {
                        Some(&(_, p)) => tree.held_dropped[p as usize] = true,
                        None => tree.dropped_outside = true,
                    }
                }
                // An exit ends its own span and any still open above it (a guard dropped
                // out of order); an enter ends any still open at its depth (one the bench
                // harness found open after its iteration, whose guard was then dropped
                // late). Either way later spans nest where they ran. The sweep unwinds the
                // same way.
                match ev.ends_from(&stack, |&(site, _)| site) {
                    Some(at) => {
                        let left = usize::from(ev.kind == EventKind::Exit);
                        for &(_, p) in stack.get(at + left..).unwrap_or_default() {
                            tree.not_left[p as usize] = true;
                        }
                        stack.truncate(at);
                        if ev.kind == EventKind::Enter {
                            let parent = stack.last().map(|&(_, p)| p);
                            let path = tree.intern(log, parent, ev.site);
                            stack.push((ev.site, path));
                        }
                    }
                    None => tree.unmatched_exits += 1,
                }
            }
            for &(_, site) in forgotten {
                tree.note_forgotten(stack.last().map(|&(_, p)| p), site);
            }
            for &(_, p) in &stack {
                tree.not_left[p as usize] = true;
            }
        }
        tree.name_paths(log);
        tree
    }

    fn note_forgotten(&mut self, inside: Option<PathId>, site: SiteId) {
        if let Some(p) = inside {
            self.holds_forgotten[p as usize] = true;
        }
        *self.forgotten.entry((inside, site)).or_default() += 1;
    }

    /// Names every path (parents come first), telling apart siblings whose sites share a
    /// name: by module, and by line where the module is shared too.
    fn name_paths(&mut self, log: &SpanLog) {
        for p in 0..self.paths.len() {
            let (parent, site) = (self.paths[p].parent, self.paths[p].site);
            let siblings = match parent {
                Some(q) => &self.children[q as usize],
                None => &self.roots,
            };
            let others = siblings.iter().filter(|&&(s, _)| s != site).map(|&(s, _)| log.site(s));
            let label = sibling_label(log.site(site), others);
            self.paths[p].name = match parent {
                Some(q) => format!("{}/{label}", self.paths[q as usize].name),
                None => label,
            };
        }
    }

    /// The path of `site` entered inside `parent`, if it was seen.
    pub(crate) fn child(&self, parent: Option<PathId>, site: SiteId) -> Option<PathId> {
        let list = match parent {
            Some(p) => &self.children[p as usize],
            None => &self.roots,
        };
        list.iter().find(|(s, _)| *s == site).map(|&(_, p)| p)
    }

    fn intern(&mut self, log: &SpanLog, parent: Option<PathId>, site: SiteId) -> PathId {
        if let Some(p) = self.child(parent, site) {
            return p;
        }
        let name = &log.site(site).name;
        let (name, depth) = match parent {
            Some(p) => {
                let pn = &self.paths[p as usize];
                (format!("{}/{name}", pn.name), pn.depth + 1)
            }
            None => (name.clone(), 0),
        };
        self.paths.push(PathNode { parent, site, name, depth });
        self.children.push(Vec::new());
        self.held_dropped.push(false);
        self.not_left.push(false);
        self.holds_forgotten.push(false);
        let id = (self.paths.len() - 1) as PathId;
        match parent {
            Some(p) => self.children[p as usize].push((site, id)),
            None => self.roots.push((site, id)),
        }
        id
    }
}

/// A span's name as one level of a path among `others` entered in the same parent: bare,
/// or with its module where another shares the name, and its line too where the module is
/// shared as well.
pub(crate) fn sibling_label<'a>(
    me: &crate::spanlog::SiteInfo,
    others: impl Iterator<Item = &'a crate::spanlog::SiteInfo>,
) -> String {
    let same_name: Vec<&crate::spanlog::SiteInfo> = others.filter(|o| o.name == me.name).collect();
    if same_name.is_empty() {
        me.name.clone()
    } else if same_name.iter().all(|o| o.module != me.module) {
        format!("{} ({})", me.name, me.module)
    } else {
        format!("{} ({}:{})", me.name, me.module, me.line)
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
    /// Times it became some thread's innermost span (entered, or returned to from a child).
    pub stretches: u64,
    /// Operations declared in its calls entered in the window (descendants' not included).
    pub ops: u64,
}

/// How a path's energy in a domain was attributed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Power flat between readings, shared equally by running threads.
    #[default]
    TimeShare,
    /// Per-path power solved over many counter intervals.
    Regression,
}

impl Method {
    /// The name reports use.
    pub fn name(self) -> &'static str {
        match self {
            Method::TimeShare => "time-share",
            Method::Regression => "regression",
        }
    }
}

/// What the regression saw in one domain and window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FitInfo {
    /// Counter intervals used.
    pub intervals: usize,
    /// Residual degrees of freedom.
    pub dof: f64,
    /// Residual standard deviation per interval, joules (outlying intervals down-weighted).
    pub sigma: Joules,
    /// The base power `P_0` (while no span ran), watts.
    pub base_w: f64,
}

/// One domain's energy in a window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DomainShare {
    /// All the energy the domain's counter saw in the window.
    pub total: Joules,
    /// Energy not attributed to any path: `total` less every path's exclusive energy.
    pub unattributed: Joules,
    /// Per path, as the innermost span.
    pub exclusive: Vec<Joules>,
    /// Per path, descendants included.
    pub inclusive: Vec<Joules>,
    /// Per path, the standard error of `exclusive` (0 for time-share, whose error is
    /// systematic: see `edge`).
    pub exclusive_se: Vec<f64>,
    /// Per path, the standard error of `inclusive`, covariances included.
    pub inclusive_se: Vec<f64>,
    /// Per path, how its energy was attributed.
    pub method: Vec<Method>,
    /// Per path, for regression: the first path of the group it could not be told apart from,
    /// if any (the members share one power).
    pub merged_with: Vec<Option<PathId>>,
    /// Per path, the part of its time-share energy from reading intervals it did not fill
    /// alone: there time-share assumes the power was even, and the truth may differ.
    pub edge: Vec<Joules>,
    /// The regression, where one was solved.
    pub fit: Option<FitInfo>,
    /// The regression over every window found one power for every path and for the time
    /// between spans, so time-share, whose one assumption that is, attributed them.
    pub flat: bool,
    /// How much of the window this domain's readings cover (less if it ended early).
    pub covered: Nanos,
    /// Per path, its share of the wall time this domain was read, in seconds: each instant
    /// with `m` threads in spans counts `1/m` to each running thread's path. The shares and
    /// the time no span ran add up to `covered`, so idle power subtracted over them is
    /// subtracted once per unit of wall time, however many threads ran.
    pub wall_s: Vec<f64>,
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

/// Which estimator attributes each path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Choice {
    /// Time-share for long spans, the regression for the rest (where it could be solved).
    #[default]
    Auto,
    /// One method for every path (where the regression cannot be solved, time-share).
    Only(Method),
}

/// Attributes each of `windows` (sorted, not overlapping) by [`Choice::Auto`].
pub fn attribute(tl: &Timeline, tree: &SpanTree, log: &SpanLog, windows: &[Window]) -> Vec<Attribution> {
    attribute_with(tl, tree, log, windows, Choice::Auto)
}

/// Attributes each of `windows` (sorted, not overlapping) with the given choice of method.
pub fn attribute_with(
    tl: &Timeline,
    tree: &SpanTree,
    log: &SpanLog,
    windows: &[Window],
    choice: Choice,
) -> Vec<Attribution> {
    sweep::attribute(tl, tree, log, windows, choice)
}

/// Time-share attribution of one window.
pub fn time_share(tl: &Timeline, tree: &SpanTree, log: &SpanLog, window: Window) -> Attribution {
    sweep::attribute(tl, tree, log, &[window], Choice::Only(Method::TimeShare)).pop().unwrap_or_default()
}
