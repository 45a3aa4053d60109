//! A simulated energy counter with known ground truth.
//!
//! The power at any instant follows a script: `idle` watts when no span runs, and each span
//! name's watts while it is the innermost span of a thread (threads add their power above
//! idle). The counter behaves like RAPL: it changes only every `update_period`, in steps of
//! `unit`. The exact energy of every span path is kept as the ground truth, so estimators can
//! be checked against it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::{Domain, DomainKind, ReadCtx, ReadError, Source, SourceKind};
use crate::spanlog::{EventKind, SiteId};
use crate::units::{Joules, Nanos, Watts};

/// The power script and counter shape of a [`Sim`].
#[derive(Clone, Debug)]
pub struct SimScript {
    idle: Watts,
    spans: BTreeMap<String, Watts>,
    update_period: Nanos,
    unit: Joules,
    /// Relative standard deviation of the power in each update period, and the seed.
    noise: (f64, u64),
}

impl SimScript {
    /// `idle` watts when no span runs; spans not in the script draw idle power too.
    pub fn new(idle: Watts) -> Self {
        SimScript {
            idle,
            spans: BTreeMap::new(),
            update_period: Nanos(1_000_000),
            unit: Joules(1.0 / 65536.0),
            noise: (0.0, 0),
        }
    }

    /// Power fluctuates: in each update period all of it is scaled by `1 + relative_sd * z`,
    /// `z` a standard normal drawn from `seed` and the period's index, so a run's noise is
    /// reproducible whatever the read times.
    pub fn noise(mut self, relative_sd: f64, seed: u64) -> Self {
        self.noise = (relative_sd, seed);
        self
    }

    /// The noise factor of update period `k`.
    fn factor(&self, k: u64) -> f64 {
        let (sd, seed) = self.noise;
        if sd == 0.0 {
            return 1.0;
        }
        let u = |i: u64| {
            (splitmix64(seed ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i) >> 11) as f64 / (1u64 << 53) as f64
        };
        // Box-Muller on two uniforms in (0, 1].
        let z = (-2.0 * (1.0 - u(1)).ln()).sqrt() * (std::f64::consts::TAU * u(2)).cos();
        (1.0 + sd * z).max(0.0)
    }

    /// Spans named `name` draw `watts` while innermost.
    pub fn span(mut self, name: &str, watts: Watts) -> Self {
        self.spans.insert(name.to_owned(), watts);
        self
    }

    /// How often the counter changes (default 1 ms, like RAPL).
    pub fn update_period(mut self, period: Nanos) -> Self {
        self.update_period = Nanos(period.0.max(1));
        self
    }

    /// The counter's step (default 2^-16 J, RAPL's usual unit).
    pub fn unit(mut self, unit: Joules) -> Self {
        self.unit = unit;
        self
    }

    fn power_of(&self, name: &str) -> Watts {
        self.spans.get(name).copied().unwrap_or(self.idle)
    }
}

/// The exact energy the simulated machine used, by span path (names joined by `/`).
#[derive(Clone, Debug, Default)]
pub struct SimTruth {
    /// Exclusive energy per span path.
    pub exclusive: BTreeMap<String, Joules>,
    /// Energy while no span ran.
    pub unattributed: Joules,
    /// Everything.
    pub total: Joules,
}

impl SimTruth {
    /// Inclusive energy of `path`: its own plus all its descendants'.
    pub fn inclusive(&self, path: &str) -> Joules {
        let prefix = format!("{path}/");
        self.exclusive
            .iter()
            .filter(|(p, _)| *p == path || p.starts_with(&prefix))
            .fold(Joules(0.0), |acc, (_, j)| acc + *j)
    }
}

/// Replay state of the thread at the same position in `SpanLog::threads`.
struct ThreadState {
    next: usize,
    /// The open spans, outermost first: (site, path string).
    stack: Vec<(SiteId, String)>,
}

/// The simulated source.
pub struct Sim {
    script: SimScript,
    domains: [Domain; 1],
    settled: Nanos,
    energy: f64,
    threads: Vec<ThreadState>,
    truth: Arc<Mutex<SimTruth>>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim").field("script", &self.script).finish_non_exhaustive()
    }
}

impl Sim {
    /// A simulated package following `script`.
    pub fn new(script: SimScript) -> Self {
        let domain = Domain {
            id: "sim-package".into(),
            kind: DomainKind::Package,
            part_of: None,
            resolution: script.unit,
            update_period: script.update_period,
            update_period_measured: false,
        };
        Sim {
            script,
            domains: [domain],
            settled: Nanos(0),
            energy: 0.0,
            threads: Vec::new(),
            truth: Arc::default(),
        }
    }

    /// A handle on the ground truth, readable while and after the profile runs.
    pub fn truth(&self) -> Arc<Mutex<SimTruth>> {
        self.truth.clone()
    }

    /// Integrates the script from `self.settled` to `until`, crediting the truth table.
    fn advance(&mut self, until: Nanos, truth: &mut SimTruth) {
        // Each update period has its own noise factor.
        let period = self.script.update_period.0;
        while self.settled < until {
            let k = self.settled.0 / period;
            let end = until.min(Nanos((k + 1) * period));
            let factor = self.script.factor(k);
            self.advance_within(end, factor, truth);
        }
    }

    fn advance_within(&mut self, until: Nanos, factor: f64, truth: &mut SimTruth) {
        let dt = until - self.settled;
        let idle = Watts(self.script.idle.0 * factor) * dt;
        let active: Vec<&str> =
            self.threads.iter().filter_map(|t| t.stack.last()).map(|(_, p)| p.as_str()).collect();
        let mut total = idle;
        if active.is_empty() {
            truth.unattributed += idle;
        } else {
            let idle_share = Joules(idle.0 / active.len() as f64);
            for path in active {
                let leaf = path.rsplit('/').next().unwrap_or(path);
                let extra = Watts((self.script.power_of(leaf).0 - self.script.idle.0) * factor) * dt;
                total += extra;
                *truth.exclusive.entry(path.to_owned()).or_default() += idle_share + extra;
            }
        }
        truth.total += total;
        self.energy += total.0;
        self.settled = until;
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Source for Sim {
    fn kind(&self) -> SourceKind {
        SourceKind::Sim
    }

    fn describe(&self) -> String {
        format!(
            "simulated counter: idle {} W, {} scripted spans, updates every {} us",
            self.script.idle.0,
            self.script.spans.len(),
            self.script.update_period.0 / 1000
        )
    }

    fn domains(&self) -> &[Domain] {
        &self.domains
    }

    fn set_update_period(&mut self, index: usize, period: Nanos) {
        super::set_period(&mut self.domains, index, period);
    }

    fn read(&mut self, ctx: &ReadCtx<'_>, out: &mut [Joules]) -> Result<(), ReadError> {
        let period = self.script.update_period.0;
        let tick = Nanos(ctx.now.0 / period * period);
        let truth = self.truth.clone();
        let mut truth = truth.lock().unwrap_or_else(|p| p.into_inner());
        // The log's threads only grow, so position i is the same thread on every read.
        while self.threads.len() < ctx.spans.threads.len() {
            self.threads.push(ThreadState { next: 0, stack: Vec::new() });
        }
        // Replay span edges up to the counter's last update, in time order across threads.
        loop {
            let mut best: Option<(usize, Nanos)> = None;
            for (i, (state, log)) in self.threads.iter().zip(&ctx.spans.threads).enumerate() {
                if let Some(ev) = log.events.get(state.next) {
                    if ev.t <= tick && best.is_none_or(|(_, t)| ev.t < t) {
                        best = Some((i, ev.t));
                    }
                }
            }
            let Some((i, t)) = best else { break };
            // An edge stamped before the last update but drained after it (its thread was
            // preempted between reading the clock and pushing) takes effect now.
            self.advance(t.max(self.settled), &mut truth);
            let state = &mut self.threads[i];
            let ev = ctx.spans.threads[i].events[state.next];
            state.next += 1;
            match ev.kind {
                EventKind::Enter => {
                    let name = &ctx.spans.site(ev.site).name;
                    let path = match state.stack.last() {
                        Some((_, parent)) => format!("{parent}/{name}"),
                        None => name.clone(),
                    };
                    state.stack.push((ev.site, path));
                }
                EventKind::Exit => {
                    if state.stack.last().is_some_and(|(s, _)| *s == ev.site) {
                        state.stack.pop();
                    }
                }
            }
        }
        self.advance(tick, &mut truth);
        let unit = self.script.unit.0;
        out[0] = Joules((self.energy / unit).floor() * unit);
        Ok(())
    }
}
