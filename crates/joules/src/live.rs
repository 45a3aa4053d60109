//! Live profiles: a profiler that runs for as long as a service does, in bounded memory,
//! keeping joules and calls per span path and domain as monotonic totals, for Prometheus,
//! OpenTelemetry or a look of the program's own.
//!
//! Every [`LiveConfig::fold_every`] the sampler cuts the recording at an instant every
//! domain has been read past, hands a copy of the stretch since the last cut to an aggregator
//! thread, and forgets the spans that ended before the cut and the readings older than
//! [`LiveConfig::keep_readings`] (which [`Window`](crate::Window)s still use). The aggregator
//! attributes the stretch as a report would ([`crate::attribute`]: the regression for short
//! spans, time-share for long ones) and adds each path's joules to its totals. So memory
//! holds one stretch of span edges and a minute of readings, whatever the uptime; the totals
//! grow with the number of span paths, which the code fixes, never with requests.
//!
//! A stretch of a few seconds holds thousands of counter intervals: enough for the regression
//! to tell layers apart. Each stretch is solved on its own, and the totals add the solutions.
//! The powers are never negative, so a path whose power a stretch cannot resolve gets a
//! small positive share rather than a negative one: totals of paths far below a counter
//! step lean a little high, never low.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::attribute::{self, SpanTree, sibling_label};
use crate::profiler::SourceInfo;
use crate::source::{DomainKind, SourceKind};
use crate::spanlog::{SiteId, SpanLog};
use crate::timeline::Timeline;
use crate::units::{Joules, Nanos};

/// How a live profile folds its recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveConfig {
    /// How often the recording is folded into the totals (default 5 s): figures are as old
    /// as this at most, and span edges of this long are held in memory.
    pub fold_every: Duration,
    /// How long readings are kept (default 60 s): a [`Window`](crate::Window) longer than
    /// this has no reading before its start, and says so.
    pub keep_readings: Duration,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig { fold_every: Duration::from_secs(5), keep_readings: Duration::from_secs(60) }
    }
}

impl LiveConfig {
    /// Folds every `every` (at least 10 ms).
    pub fn fold_every(mut self, every: Duration) -> Self {
        self.fold_every = every.max(Duration::from_millis(10));
        self
    }

    /// Keeps readings for `keep` (at least two folds' worth, whatever is asked).
    pub fn keep_readings(mut self, keep: Duration) -> Self {
        self.keep_readings = keep;
        self
    }
}

/// Monotonic totals since the profile started, as of the last fold.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    /// Wall time folded so far.
    pub covered: Nanos,
    /// Folds made.
    pub folds: u64,
    /// Per domain, in reading order.
    pub domains: Vec<DomainTotal>,
    /// Per span path, in the order first seen.
    pub paths: Vec<PathTotal>,
}

impl Totals {
    /// Every span path's energy in every domain, as the innermost span (`inclusive` false)
    /// or with its descendants: (path, domain, joules). What every exporter lists.
    pub fn span_energy(&self, inclusive: bool) -> impl Iterator<Item = (&str, &str, Joules)> + '_ {
        self.paths.iter().flat_map(move |p| {
            self.domains.iter().enumerate().map(move |(d, domain)| {
                let e = if inclusive { p.inclusive[d] } else { p.exclusive[d] };
                (p.name.as_str(), domain.id.as_str(), e)
            })
        })
    }
}

/// One domain's totals.
#[derive(Clone, Debug, PartialEq)]
pub struct DomainTotal {
    /// The domain's id.
    pub id: String,
    /// What it covers.
    pub kind: DomainKind,
    /// The domain it is part of, if any.
    pub part_of: Option<String>,
    /// Who reads it.
    pub source: SourceKind,
    /// How its figures are obtained, e.g. "measured (RAPL powercap)".
    pub provenance: String,
    /// Whether an energy counter of real hardware reads it (not the estimate, not
    /// integrated power, not the simulator).
    pub measured: bool,
    /// All the energy its counter saw in the folded time.
    pub energy: Joules,
    /// The part no span path was running for.
    pub unattributed: Joules,
    /// Why it stopped being read, if it did (a lost GPU, a failed read).
    pub lost: Option<String>,
}

/// One span path's totals.
#[derive(Clone, Debug, PartialEq)]
pub struct PathTotal {
    /// Its name, levels joined by `/`, disambiguated by module (and line) where two sites
    /// under one parent share a name.
    pub name: String,
    /// Times it was entered.
    pub calls: u64,
    /// Per domain (as [`Totals::domains`]), its energy as the innermost span.
    pub exclusive: Vec<Joules>,
    /// Per domain, its energy with its descendants'.
    pub inclusive: Vec<Joules>,
}

/// A handle on a live profile's totals; cheap to clone, readable from any thread.
#[derive(Clone, Debug)]
pub struct Live {
    shared: Arc<Mutex<Aggregate>>,
}

impl Live {
    /// The totals as of the last fold (takes a lock the aggregator holds only while it adds
    /// a fold, never the span path).
    pub fn totals(&self) -> Totals {
        self.shared.lock().unwrap_or_else(|e| e.into_inner()).totals.clone()
    }
}

/// A stretch to fold: a copy of the recording and the window to attribute.
pub(crate) struct Stretch {
    pub(crate) timeline: Timeline,
    pub(crate) spans: SpanLog,
    pub(crate) window: attribute::Window,
}

/// The aggregator's state: the totals and the path identities behind them.
#[derive(Debug, Default)]
struct Aggregate {
    totals: Totals,
    /// Per path: its parent path and innermost site (a path's identity, stable across folds).
    keys: Vec<(Option<usize>, SiteId)>,
    index: HashMap<(Option<usize>, SiteId), usize>,
}

/// Starts the aggregator thread: it folds what `stretches` brings until the sender goes.
pub(crate) fn start(
    sources: &[SourceInfo],
) -> std::io::Result<(Live, std::sync::mpsc::Sender<Stretch>, std::thread::JoinHandle<()>)> {
    let shared = Arc::new(Mutex::new(Aggregate::default()));
    let provenance: Vec<(SourceKind, String, String)> = sources
        .iter()
        .flat_map(|s| s.domains.iter().map(move |d| (s.kind, d.id.clone(), s.provenance.clone())))
        .collect();
    let (tx, rx) = std::sync::mpsc::channel::<Stretch>();
    let folder = shared.clone();
    let handle = std::thread::Builder::new().name("joules-live".into()).spawn(move || {
        for stretch in rx {
            let mut agg = folder.lock().unwrap_or_else(|e| e.into_inner());
            agg.fold(&stretch, &provenance);
        }
    })?;
    Ok((Live { shared }, tx, handle))
}

impl Aggregate {
    fn fold(&mut self, s: &Stretch, provenance: &[(SourceKind, String, String)]) {
        let tree = SpanTree::build(&s.spans, s.window.end);
        let Some(att) = attribute::attribute(&s.timeline, &tree, &s.spans, &[s.window]).pop() else { return };
        let t = &mut self.totals;
        if t.domains.is_empty() {
            t.domains = s
                .timeline
                .domains
                .iter()
                .map(|d| DomainTotal {
                    id: d.domain.id.clone(),
                    kind: d.domain.kind,
                    part_of: d.domain.part_of.clone(),
                    source: d.source,
                    provenance: provenance
                        .iter()
                        .find(|(k, id, _)| *k == d.source && *id == d.domain.id)
                        .map(|(_, _, p)| p.clone())
                        .unwrap_or_else(|| d.source.label(d.modelled)),
                    measured: d.source.is_measured(),
                    energy: Joules(0.0),
                    unattributed: Joules(0.0),
                    lost: None,
                })
                .collect();
        }
        let n_domains = t.domains.len();
        for (d, share) in att.domains.iter().enumerate().take(n_domains) {
            t.domains[d].energy += share.total;
            t.domains[d].unattributed += share.unattributed;
        }
        for (d, td) in s.timeline.domains.iter().enumerate().take(n_domains) {
            if let Some((_, why)) = &td.ended {
                t.domains[d].lost.get_or_insert_with(|| why.clone());
            }
        }
        // Each path of this stretch's tree, by its identity (parent's identity, site).
        let mut ours: Vec<usize> = Vec::with_capacity(tree.paths.len());
        let mut added = false;
        for node in &tree.paths {
            let parent = node.parent.map(|p| ours[p as usize]);
            let key = (parent, node.site);
            let i = match self.index.get(&key) {
                Some(&i) => i,
                None => {
                    let i = self.keys.len();
                    self.keys.push(key);
                    self.index.insert(key, i);
                    self.totals.paths.push(PathTotal {
                        name: String::new(),
                        calls: 0,
                        exclusive: vec![Joules(0.0); n_domains],
                        inclusive: vec![Joules(0.0); n_domains],
                    });
                    added = true;
                    i
                }
            };
            ours.push(i);
        }
        let t = &mut self.totals;
        for (p, &i) in ours.iter().enumerate() {
            let total = &mut t.paths[i];
            total.calls += att.time.get(p).map_or(0, |x| x.calls);
            for (d, share) in att.domains.iter().enumerate().take(n_domains) {
                total.exclusive[d] += share.exclusive.get(p).copied().unwrap_or_default();
                total.inclusive[d] += share.inclusive.get(p).copied().unwrap_or_default();
            }
        }
        if let Some(w) = att.window {
            t.covered = Nanos(t.covered.0 + (w.end - w.start).0);
        }
        t.folds += 1;
        if added {
            self.name_paths(&s.spans);
        }
    }

    /// Names every path as a report would, over every path seen so far: a name gains its
    /// module only when a sibling with the same name has been seen, so labels stay put
    /// unless such a sibling first appears.
    fn name_paths(&mut self, log: &SpanLog) {
        for i in 0..self.keys.len() {
            let (parent, site) = self.keys[i];
            let others =
                self.keys.iter().filter(|&&(p, s)| p == parent && s != site).map(|&(_, s)| log.site(s));
            let label = sibling_label(log.site(site), others);
            self.totals.paths[i].name = match parent {
                Some(q) => format!("{}/{label}", self.totals.paths[q].name),
                None => label,
            };
        }
    }
}

/// The sampler's side of a live profile: when to cut, and what to forget.
pub(crate) struct Folder {
    config: LiveConfig,
    tx: std::sync::mpsc::Sender<Stretch>,
    /// The end of the last stretch folded (None before the first).
    last_cut: Option<Nanos>,
    last_fold: Option<Nanos>,
}

impl Folder {
    pub(crate) fn new(config: LiveConfig, tx: std::sync::mpsc::Sender<Stretch>) -> Self {
        // The fields are public: the minimums their setters promise hold here too.
        let fold_every = config.fold_every.max(Duration::from_millis(10));
        let config = LiveConfig { fold_every, keep_readings: config.keep_readings.max(2 * fold_every) };
        Folder { config, tx, last_cut: None, last_fold: None }
    }

    /// Folds if a fold is due.
    pub(crate) fn maybe_fold<C: crate::sampler::clock::SamplerClock>(
        &mut self,
        s: &mut crate::sampler::Sampler<C>,
    ) {
        let now = s.now();
        let due = match self.last_fold {
            Some(t) => now - t >= Nanos::from(self.config.fold_every),
            None => {
                self.last_fold = Some(now);
                false
            }
        };
        if due {
            self.last_fold = Some(now);
            self.fold(s);
        }
    }

    /// Cuts where every domain still read has a reading at or after, sends the stretch
    /// since the last cut, and forgets what no later stretch or window needs.
    pub(crate) fn fold<C: crate::sampler::clock::SamplerClock>(
        &mut self,
        s: &mut crate::sampler::Sampler<C>,
    ) {
        let last = |d: &crate::timeline::TimelineDomain| d.series.times.last().copied();
        let read_on: Vec<Option<Nanos>> =
            s.timeline.domains.iter().filter(|d| d.ended.is_none()).map(last).collect();
        let all_ended = read_on.is_empty();
        // Once every domain has ended (a lost GPU on a GPU-only host), the stretch up to the
        // last reading is folded once, and spans go on being forgotten: they have no energy
        // to be given, and must not fill memory.
        let cut = if all_ended {
            s.timeline.domains.iter().filter_map(last).max()
        } else {
            read_on.into_iter().min().flatten()
        };
        let from = self.last_cut.unwrap_or_else(|| s.timeline.first_poll.unwrap_or_default());
        if let Some(cut) = cut.filter(|&c| c > from) {
            let (timeline, spans) = s.snapshot();
            let window = attribute::Window { start: from, end: cut };
            // The aggregator is gone only if it panicked: the totals then stop growing, and
            // the sampler still forgets, so memory stays bounded.
            let _ = self.tx.send(Stretch { timeline, spans, window });
            self.last_cut = Some(cut);
        }
        let forget_to = if all_ended { Some(s.now()) } else { self.last_cut };
        let Some(cut) = forget_to else { return };
        s.spans.forget_before(cut);
        let keep_from = Nanos(cut.0.saturating_sub(Nanos::from(self.config.keep_readings).0));
        for d in &mut s.timeline.domains {
            d.series.drop_before(keep_from);
        }
    }
}
