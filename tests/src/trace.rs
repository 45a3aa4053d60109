//! Simulated inference traces with known ground truth, replayed offline through the real
//! sampler (on a virtual clock) and the real attribution: what the accuracy benchmark and
//! the accuracy tests measure.
//!
//! A trace is a few threads, each running passes of layers (a layer runs every pass, or
//! every `every`-th), with durations that wobble as real layers do and a short rest between
//! passes, under a [`SimScript`] counter. The truth is the simulator's, integrated from the
//! scripted power; nothing in it comes from readings or from an estimator's rule.

use joules::attribute::{Choice, Method, SpanTree, Window, attribute_with};
use joules::sampler::clock::VirtualClock;
use joules::source::{ReadCtx, Sim, SimScript, Source};
use joules::spanlog::{EventKind, SpanLog};
use joules::timeline::{Series, Timeline};
use joules::{Joules, Nanos, Watts};

/// One layer of a pass.
#[derive(Clone, Debug)]
pub struct Layer {
    /// Its span name (unique across threads).
    pub name: String,
    /// Its mean duration.
    pub duration: Nanos,
    /// The machine's power while it runs alone.
    pub watts: Watts,
    /// It runs in passes whose index is a multiple of this.
    pub every: u32,
}

impl Layer {
    /// A layer of `us` microseconds at `watts`, every `every`-th pass.
    pub fn new(name: &str, us: u64, watts: f64, every: u32) -> Self {
        Layer { name: name.to_owned(), duration: Nanos(us * 1000), watts: Watts(watts), every }
    }
}

/// A simulated run.
#[derive(Clone, Debug)]
pub struct Trace {
    /// Per thread, the layers of one pass.
    pub threads: Vec<Vec<Layer>>,
    /// Passes per thread.
    pub passes: u32,
    /// Power while no span runs.
    pub idle: Watts,
    /// The counter's update period, its jitter and its energy unit.
    pub period: Nanos,
    /// Each step comes up to this early or late.
    pub jitter: Nanos,
    /// The counter's energy unit.
    pub unit: Joules,
    /// Mean rest between passes.
    pub gap: Nanos,
    /// Relative wobble of each layer's duration (uniform +/-).
    pub wobble: f64,
    /// Relative power noise per update period.
    pub noise: f64,
    /// What one counter read costs the sampler.
    pub read_cost: Nanos,
    /// How late the sampler's wake-ups come (uniform in the range).
    pub wake_late: (Nanos, Nanos),
}

/// One layer's summed joules, by every method, and the truth.
#[derive(Clone, Debug)]
pub struct LayerResult {
    /// The layer.
    pub name: String,
    /// Its mean duration.
    pub duration: Nanos,
    /// The simulator's truth.
    pub truth: f64,
    /// Reading the counter at the span's edges (pyJoules, Zeus).
    pub edge: f64,
    /// Time-share.
    pub time_share: f64,
    /// The regression, and its standard error and degrees of freedom.
    pub regression: f64,
    /// Its standard error.
    pub regression_se: f64,
    /// Residual degrees of freedom of the fit.
    pub dof: f64,
    /// What a report shows: the method joules chooses, and its standard error (0 for
    /// time-share, whose error is systematic).
    pub chosen: f64,
    /// The chosen figure's standard error.
    pub chosen_se: f64,
    /// The method it chose.
    pub method: Method,
    /// The regression could not tell it from other columns (merged, flagged).
    pub merged: bool,
}

impl LayerResult {
    /// Relative error of `x` against the truth.
    pub fn err(&self, x: f64) -> f64 {
        (x - self.truth) / self.truth
    }
}

/// A run's results.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Per layer.
    pub layers: Vec<LayerResult>,
    /// The sampler's step stamps against the true steps: the largest error among stamps it
    /// called precise, and the share of stamps it called precise.
    pub step_error: (Nanos, f64),
}

fn unit(x: u64) -> f64 {
    (splitmix(x) >> 11) as f64 / (1u64 << 53) as f64
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Trace {
    /// A RAPL-like package counter (1 ms, the given jitter, 15.3 uJ) running `layers` on one
    /// thread for `passes` passes, idle 10 W.
    pub fn rapl(layers: Vec<Layer>, passes: u32, jitter_us: u64) -> Self {
        Trace {
            threads: vec![layers],
            passes,
            idle: Watts(10.0),
            period: Nanos(1_000_000),
            jitter: Nanos(jitter_us * 1000),
            unit: Joules(15.3e-6),
            gap: Nanos(20_000),
            wobble: 0.05,
            noise: 0.0,
            read_cost: Nanos(1_500),
            wake_late: (Nanos(3_000), Nanos(30_000)),
        }
    }

    /// Acceptance 1 of issue 9: 1000 passes of 50 us/20 W, 200 us/60 W, 1 ms/35 W, then
    /// 10 ms/80 W every 10th pass and 100 ms/50 W every 50th; 1 ms steps +/-50 us.
    pub fn acceptance() -> Self {
        Trace::rapl(
            vec![
                Layer::new("l50us", 50, 20.0, 1),
                Layer::new("l200us", 200, 60.0, 1),
                Layer::new("l1ms", 1_000, 35.0, 1),
                Layer::new("l10ms", 10_000, 80.0, 10),
                Layer::new("l100ms", 100_000, 50.0, 50),
            ],
            1000,
            50,
        )
    }

    /// The span log of a run, and when its last span ends.
    pub fn log(&self, seed: u64) -> (SpanLog, Nanos) {
        let mut log = SpanLog::new();
        // One site per name: a layer on two threads is one span site, as in real code.
        let mut by_name = std::collections::HashMap::new();
        let sites: Vec<Vec<_>> = self
            .threads
            .iter()
            .map(|ls| {
                ls.iter()
                    .map(|l| *by_name.entry(l.name.clone()).or_insert_with(|| log.add_site(&l.name)))
                    .collect()
            })
            .collect();
        let mut end = Nanos(0);
        let mut r = seed.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let mut next = || {
            r = r.wrapping_add(1);
            unit(r)
        };
        for (th, layers) in self.threads.iter().enumerate() {
            // Spans start after the sampler has locked on, each thread a little apart.
            let mut t = 8_000_000.0 + 137_000.0 * th as f64;
            for pass in 0..self.passes {
                for (layer, &site) in layers.iter().zip(&sites[th]) {
                    if pass % layer.every != 0 {
                        continue;
                    }
                    let d = layer.duration.0 as f64 * (1.0 + self.wobble * (2.0 * next() - 1.0));
                    log.push(th as u32, Nanos(t as u64), site, EventKind::Enter);
                    t += d;
                    log.push(th as u32, Nanos(t as u64), site, EventKind::Exit);
                    t += 1_000.0;
                }
                t += self.gap.0 as f64 * (0.5 + next());
            }
            end = end.max(Nanos(t as u64));
        }
        (log, end)
    }

    /// The simulator's script for a run.
    pub fn script(&self, seed: u64) -> SimScript {
        let s = SimScript::new(self.idle)
            .update_period(self.period)
            .jitter(self.jitter)
            .unit(self.unit)
            .seed(seed)
            .noise(self.noise, seed ^ 0xA5A5);
        self.threads.iter().flatten().fold(s, |s, l| s.span(&l.name, l.watts))
    }

    /// Replays the run through the sampler and every method.
    pub fn run(&self, seed: u64) -> Outcome {
        let (log, end) = self.log(seed);
        let script = self.script(seed);
        let sim = Sim::replaying(script.clone(), &log);
        let truth = sim.truth();
        let clock = VirtualClock::new(self.read_cost, self.wake_late, seed);
        let tl = joules::sampler::replay(vec![Box::new(sim)], clock, Nanos(end.0 + 5_000_000));
        let truth = truth.lock().unwrap().clone();
        let tree = SpanTree::build(&log, tl.last_poll);
        let window = [Window { start: tl.first_poll.unwrap_or_default(), end: tl.last_poll }];
        let by = |choice| attribute_with(&tl, &tree, &log, &window, choice).pop().unwrap();
        let ts = by(Choice::Only(Method::TimeShare));
        let rg = by(Choice::Only(Method::Regression));
        let auto = by(Choice::Auto);
        let edge = edge_readings(&script, &log);
        let layers = self
            .threads
            .iter()
            .flatten()
            .map(|l| {
                let p = tree.paths.iter().position(|p| p.name == l.name).expect("every layer ran");
                LayerResult {
                    name: l.name.clone(),
                    duration: l.duration,
                    truth: truth.exclusive[&l.name].0,
                    edge: edge[p],
                    time_share: ts.domains[0].exclusive[p].0,
                    regression: rg.domains[0].exclusive[p].0,
                    regression_se: rg.domains[0].exclusive_se[p],
                    dof: rg.domains[0].fit.as_ref().map_or(0.0, |f| f.dof),
                    chosen: auto.domains[0].exclusive[p].0,
                    chosen_se: auto.domains[0].exclusive_se[p],
                    method: auto.domains[0].method[p],
                    merged: auto.domains[0].merged_with[p].is_some(),
                }
            })
            .collect();
        Outcome { layers, step_error: step_error(&tl, &truth.steps) }
    }
}

/// Each path's joules read at its span edges from the same counter, as pyJoules does.
fn edge_readings(script: &SimScript, log: &SpanLog) -> Vec<f64> {
    let tree = SpanTree::build(log, Nanos(u64::MAX));
    let mut sim = Sim::replaying(script.clone(), log);
    let mut edges: Vec<(Nanos, u32, u32, EventKind)> = log
        .threads
        .iter()
        .flat_map(|t| t.events.iter().map(move |e| (e.t, t.index, e.site.0, e.kind)))
        .collect();
    edges.sort_by_key(|e| e.0);
    let mut open: std::collections::HashMap<(u32, u32), f64> = Default::default();
    let mut out = vec![0.0; tree.paths.len()];
    let mut value = [Joules(0.0)];
    for (t, th, site, kind) in edges {
        sim.read(&ReadCtx { now: t }, &mut value).unwrap();
        match kind {
            EventKind::Enter => {
                open.insert((th, site), value[0].0);
            }
            // Flat traces made here: no cuts.
            EventKind::Cut => {}
            EventKind::Exit => {
                if let Some(v0) = open.remove(&(th, site)) {
                    // Flat traces: a site's path is its root path.
                    let p = tree.paths.iter().position(|p| p.site.0 == site).unwrap();
                    out[p] += value[0].0 - v0;
                }
            }
        }
    }
    out
}

/// The largest error of a stamp called precise, and the share called precise.
fn step_error(tl: &Timeline, steps: &[Nanos]) -> (Nanos, f64) {
    let d = &tl.domains[0];
    let limit = Series::precise_limit(d.domain.update_period);
    let mut worst = 0u64;
    let mut precise = 0usize;
    for (i, &t) in d.series.times.iter().enumerate() {
        if u64::from(d.series.uncertainty[i]) > limit.0 {
            continue;
        }
        precise += 1;
        let k = steps.partition_point(|&s| s < t);
        let near = [k.checked_sub(1), Some(k)]
            .into_iter()
            .flatten()
            .filter_map(|k| steps.get(k))
            .map(|&s| s.0.abs_diff(t.0))
            .min()
            .unwrap_or(u64::MAX);
        worst = worst.max(near);
    }
    (Nanos(worst), precise as f64 / d.series.len().max(1) as f64)
}
