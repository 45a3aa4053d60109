//! A simulated energy counter with known ground truth.
//!
//! The machine's power follows a script: `idle` watts when no span runs; a thread inside a
//! span adds that span's watts above idle (and its thread's extra watts, if scripted), so two
//! threads running at once draw `idle + (P_a - idle) + (P_b - idle)`. Per update period all
//! power may be scaled by seeded noise (the machine's background). The counter behaves like
//! RAPL: it publishes the energy only at its steps, on a lattice of `update_period` with
//! seeded jitter, quantised to `unit`.
//!
//! The ground truth is integrated from the scripted power as spans enter and leave, not from
//! any reading: each thread's innermost span path gets its own power above idle plus an equal
//! share of idle with the other running threads, and idle while no span runs is
//! unattributed. So the truth follows the same rule as the regression estimator (see
//! [`crate::attribute`]) and differs from time-share's equal split of all power.
//!
//! The simulator learns which span runs from a tap on span edges ([`crate::span`]), set
//! when it is first read, or, offline, from a [`SpanLog`] built in advance
//! ([`Sim::replaying`]). It is read through the same sampler as hardware.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Domain, DomainKind, ReadCtx, ReadError, Source, SourceKind};
use crate::spanlog::{EventKind, SpanLog};
use crate::units::{Joules, Nanos, Watts};

/// The power script and counter shape of a [`Sim`].
#[derive(Clone, Debug)]
pub struct SimScript {
    idle: Watts,
    spans: BTreeMap<String, Watts>,
    threads: BTreeMap<u32, Watts>,
    update_period: Nanos,
    jitter: Nanos,
    unit: Joules,
    /// Relative standard deviation of the power in each update period, and the seed.
    noise: (f64, u64),
    seed: u64,
}

impl SimScript {
    /// `idle` watts when no span runs; spans not in the script draw idle power too.
    pub fn new(idle: Watts) -> Self {
        SimScript {
            idle,
            spans: BTreeMap::new(),
            threads: BTreeMap::new(),
            update_period: Nanos(1_000_000),
            jitter: Nanos(0),
            unit: Joules(1.0 / 65536.0),
            noise: (0.0, 0),
            seed: 0x5EED,
        }
    }

    /// Power fluctuates: in each update period all of it is scaled by `1 + relative_sd * z`,
    /// `z` a standard normal drawn from `seed` and the period's index, so a run's noise is
    /// reproducible whatever the read times.
    pub fn noise(mut self, relative_sd: f64, seed: u64) -> Self {
        self.noise = (relative_sd, seed);
        self
    }

    /// Spans named `name` draw `watts` while innermost.
    pub fn span(mut self, name: &str, watts: Watts) -> Self {
        self.spans.insert(name.to_owned(), watts);
        self
    }

    /// Thread `index` (in the order threads first entered a span) draws `extra` watts more
    /// while inside any span.
    pub fn thread(mut self, index: u32, extra: Watts) -> Self {
        self.threads.insert(index, extra);
        self
    }

    /// How often the counter changes (default 1 ms, like RAPL).
    pub fn update_period(mut self, period: Nanos) -> Self {
        self.update_period = Nanos(period.0.max(1));
        self
    }

    /// Each step comes up to `jitter` early or late (uniform, seeded; default 0). At most
    /// 45% of the period, so steps stay in order.
    pub fn jitter(mut self, jitter: Nanos) -> Self {
        self.jitter = jitter;
        self
    }

    /// The counter's step (default 2^-16 J; Intel's usual RAPL unit is 2^-16 J for DRAM and
    /// 15.3 uJ, 2^-16 J, for packages).
    pub fn unit(mut self, unit: Joules) -> Self {
        self.unit = unit;
        self
    }

    /// Seeds the step jitter (default fixed).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    fn power_of(&self, name: &str) -> Watts {
        self.spans.get(name).copied().unwrap_or(self.idle)
    }

    /// The noise factor of update period `k`.
    fn factor(&self, k: u64) -> f64 {
        let (sd, seed) = self.noise;
        if sd == 0.0 {
            return 1.0;
        }
        let u = |i: u64| unit_interval(splitmix64(seed ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i));
        // Box-Muller on two uniforms in (0, 1].
        let z = (-2.0 * (1.0 - u(1)).ln()).sqrt() * (std::f64::consts::TAU * u(2)).cos();
        (1.0 + sd * z).max(0.0)
    }

    /// When step `k` (k >= 1) is published.
    pub fn step_time(&self, k: u64) -> Nanos {
        let period = self.update_period.0;
        let j = self.jitter.0.min(period * 45 / 100) as f64;
        let u = unit_interval(splitmix64(self.seed ^ k.wrapping_mul(0xD1B5_4A32_D192_ED03)));
        Nanos(((k * period) as f64 + (2.0 * u - 1.0) * j).max(0.0) as u64)
    }
}

fn unit_interval(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
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
    /// When the counter stepped, in order.
    pub steps: Vec<Nanos>,
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

/// One thread of the simulated machine: its open spans, outermost first.
#[derive(Default)]
struct SimThread {
    stack: Vec<(u32, String)>,
    /// Its innermost path's power above idle.
    extra: f64,
}

/// The simulated machine: integrates power between span edges and publishes steps.
struct Machine {
    script: SimScript,
    threads: BTreeMap<u32, SimThread>,
    settled: Nanos,
    energy: f64,
    next_step: u64,
    published: f64,
}

impl Machine {
    fn new(script: SimScript) -> Self {
        Machine {
            script,
            threads: BTreeMap::new(),
            settled: Nanos(0),
            energy: 0.0,
            next_step: 1,
            published: 0.0,
        }
    }

    /// Integrates up to `t`, publishing every step on the way.
    fn advance(&mut self, t: Nanos, truth: &mut SimTruth) {
        loop {
            let step = self.script.step_time(self.next_step);
            if step > t {
                break;
            }
            self.integrate(step, truth);
            let unit = self.script.unit.0;
            // Never backwards, as a hardware counter: a late edge that lowered the energy
            // (see `edge`) shows at a later step instead.
            self.published = ((self.energy / unit).floor() * unit).max(self.published);
            truth.steps.push(step);
            self.next_step += 1;
        }
        self.integrate(t, truth);
    }

    fn integrate(&mut self, until: Nanos, truth: &mut SimTruth) {
        // Each update period of the lattice has its own noise factor.
        let period = self.script.update_period.0;
        while self.settled < until {
            let k = self.settled.0 / period;
            let end = until.min(Nanos((k + 1) * period));
            let seconds = self.script.factor(k) * (end - self.settled).as_secs_f64();
            let running: Vec<(&str, f64)> = self
                .threads
                .values()
                .filter_map(|t| t.stack.last().map(|(_, p)| (p.as_str(), t.extra)))
                .collect();
            self.energy += book(self.script.idle.0, &running, seconds, truth);
            self.settled = end;
        }
    }

    /// Every thread inside a span but `except`: its innermost path and power above idle.
    fn running(&self, except: u32) -> Vec<(String, f64)> {
        self.threads
            .iter()
            .filter(|&(&i, _)| i != except)
            .filter_map(|(_, t)| t.stack.last().map(|(_, p)| (p.clone(), t.extra)))
            .collect()
    }

    /// Noise-weighted seconds from `from` to `to`.
    fn noisy_seconds(&self, from: Nanos, to: Nanos) -> f64 {
        let period = self.script.update_period.0;
        let mut t = from;
        let mut sum = 0.0;
        while t < to {
            let k = t.0 / period;
            let end = to.min(Nanos((k + 1) * period));
            sum += self.script.factor(k) * (end - t).as_secs_f64();
            t = end;
        }
        sum
    }

    /// Applies a span edge at `t`.
    ///
    /// An edge can reach the simulator after it integrated past the edge's time: a thread
    /// stamps the edge, then hands it over, and a read in between (or a preemption) comes
    /// first. Hardware power follows the work, whose change the stamp marks, so the energy
    /// since `t` is booked again with the new power. Steps already published keep what
    /// they showed and later ones make up for it, as a counter latched a moment early
    /// would. The other threads are taken as they are now over that stretch: exact for one
    /// thread, or where no other thread changed span meanwhile. Otherwise the idle shares
    /// of that stretch (idle power times the edge's lateness, microseconds) are split by
    /// the wrong count of running threads: the truth's total and the counter stay exact,
    /// one path's truth is off by that much.
    fn edge(&mut self, thread: u32, t: Nanos, edge: (u32, &str, EventKind, u16), truth: &mut SimTruth) {
        let late = t < self.settled;
        let before = late.then(|| {
            let others = self.running(thread);
            let this =
                self.threads.get(&thread).and_then(|st| st.stack.last().map(|(_, p)| (p.clone(), st.extra)));
            (others, this)
        });
        self.apply(thread, t.max(self.settled), edge, truth);
        if let Some((mut then, this_then)) = before {
            let seconds = self.noisy_seconds(t, self.settled);
            let idle = self.script.idle.0;
            let mut now = then.clone();
            now.extend(
                self.threads.get(&thread).and_then(|st| st.stack.last().map(|(_, p)| (p.clone(), st.extra))),
            );
            then.extend(this_then);
            self.energy += book(idle, &now, seconds, truth) + book(idle, &then, -seconds, truth);
        }
    }

    /// `edge`: site, name, kind and depth (as in a span log's events).
    fn apply(&mut self, thread: u32, t: Nanos, edge: (u32, &str, EventKind, u16), truth: &mut SimTruth) {
        let (site, name, kind, depth) = edge;
        self.advance(t, truth);
        let idle = self.script.idle.0;
        let thread_extra = self.script.threads.get(&thread).map_or(0.0, |w| w.0);
        let power = |name: &str| self.script.power_of(name).0 - idle + thread_extra;
        let st = self.threads.entry(thread).or_default();
        match kind {
            EventKind::Enter => {
                // Spans still open at its depth were forgotten: they end here.
                st.stack.truncate(usize::from(depth));
                let path = match st.stack.last() {
                    Some((_, parent)) => format!("{parent}/{name}"),
                    None => name.to_owned(),
                };
                st.stack.push((site, path));
                st.extra = power(name);
            }
            EventKind::Exit | EventKind::Cut => {
                // Unwinds to the exiting span, as the attribution does; a late exit (of a
                // span already ended) changes nothing. A cut ends what is open at its depth.
                let depth = usize::from(depth);
                if kind == EventKind::Cut || st.stack.get(depth).is_some_and(|(s, _)| *s == site) {
                    st.stack.truncate(depth);
                }
                st.extra = match st.stack.last() {
                    Some((_, path)) => power(path.rsplit('/').next().unwrap_or(path)),
                    None => 0.0,
                };
            }
        }
    }
}

/// Books `seconds` (noise-weighted; negative to take back) of the machine with `running`
/// threads (innermost path, power above idle) into the truth, and returns the energy: each
/// running thread's path gets its power above idle and an equal share of idle; idle while
/// none runs is unattributed.
fn book<S: AsRef<str>>(idle: f64, running: &[(S, f64)], seconds: f64, truth: &mut SimTruth) -> f64 {
    let idle = idle * seconds;
    let mut total = idle;
    if running.is_empty() {
        truth.unattributed.0 += idle;
    } else {
        let share = idle / running.len() as f64;
        for (path, extra) in running {
            let e = extra * seconds;
            total += e;
            *truth.exclusive.entry(path.as_ref().to_owned()).or_default() += Joules(share + e);
        }
    }
    truth.total.0 += total;
    total
}

/// A span edge the tap saw: (thread, t, site, kind, depth).
type Tapped = (u32, Nanos, u32, EventKind, u16);

thread_local! {
    /// This thread's ring of tapped edges.
    static TAP_RING: std::cell::RefCell<Option<rtrb::Producer<Tapped>>> =
        const { std::cell::RefCell::new(None) };
}

/// Every thread's ring, drained by the simulator. A lock only to register a thread and to
/// drain: the tap itself is wait-free, as the span path is. (A mutex around one shared
/// queue, hammered by the sampler reading back to back around each step, held span edges
/// back by tens of microseconds, after the machine had integrated past them.)
static TAP_RINGS: Mutex<Vec<rtrb::Consumer<Tapped>>> = Mutex::new(Vec::new());

fn rings() -> MutexGuard<'static, Vec<rtrb::Consumer<Tapped>>> {
    TAP_RINGS.lock().unwrap_or_else(|p| p.into_inner())
}

fn tap(thread: u32, t: Nanos, site: u32, kind: EventKind, depth: u16) {
    let _ = TAP_RING.try_with(|cell| {
        let mut ring = cell.borrow_mut();
        let producer = ring.get_or_insert_with(|| {
            let (producer, consumer) = rtrb::RingBuffer::new(1 << 16);
            rings().push(consumer);
            producer
        });
        // A full ring (the simulator not read for a long while) loses the edge; the
        // machine then keeps that thread's previous power, and its truth says so.
        let _ = producer.push((thread, t, site, kind, depth));
    });
}

/// Moves every tapped edge into `out`, forgetting rings whose thread has exited.
fn drain_taps(out: &mut Vec<Tapped>) {
    let mut rings = rings();
    for consumer in rings.iter_mut() {
        while let Ok(e) = consumer.pop() {
            out.push(e);
        }
    }
    rings.retain(|c| !(c.is_abandoned() && c.is_empty()));
}

enum Feed {
    /// Live spans, through the edge tap; site names looked up once per site.
    Tap { names: Vec<Option<&'static str>>, installed: bool, pending: Vec<Tapped> },
    /// A log known in advance, merged across threads by time: (t, thread, site, kind, depth).
    Log { events: Vec<(Nanos, u32, u32, EventKind, u16)>, names: Vec<String>, next: usize },
}

/// The simulated source.
pub struct Sim {
    machine: Machine,
    feed: Feed,
    domains: [Domain; 1],
    truth: Arc<Mutex<SimTruth>>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim").field("script", &self.machine.script).finish_non_exhaustive()
    }
}

impl Sim {
    /// A simulated package following `script`, driven by the spans of the running profile.
    pub fn new(script: SimScript) -> Self {
        Self::with_feed(script, Feed::Tap { names: Vec::new(), installed: false, pending: Vec::new() })
    }

    /// A simulated package following `script`, driven by the spans of `log` (offline replays,
    /// where the log is written before the sampler reads).
    pub fn replaying(script: SimScript, log: &SpanLog) -> Self {
        let mut events: Vec<(Nanos, u32, u32, EventKind, u16)> = log
            .threads
            .iter()
            .flat_map(|t| t.events.iter().map(move |e| (e.t, t.index, e.site.0, e.kind, e.depth)))
            .collect();
        events.sort_by_key(|e| e.0);
        let names = log.sites.iter().map(|s| s.name.clone()).collect();
        Self::with_feed(script, Feed::Log { events, names, next: 0 })
    }

    fn with_feed(script: SimScript, feed: Feed) -> Self {
        let domain = Domain {
            id: "sim-package".into(),
            kind: DomainKind::Package,
            part_of: None,
            resolution: script.unit,
            update_period: script.update_period,
            update_period_measured: false,
        };
        Sim { machine: Machine::new(script), feed, domains: [domain], truth: Arc::default() }
    }

    /// A handle on the ground truth, readable while and after the profile runs.
    pub fn truth(&self) -> Arc<Mutex<SimTruth>> {
        self.truth.clone()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Feed::Tap { installed: true, .. } = self.feed {
            crate::span::set_edge_tap(None);
        }
    }
}

pub(crate) fn splitmix64(mut x: u64) -> u64 {
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
        let s = &self.machine.script;
        format!(
            "simulated counter: idle {} W, {} scripted spans, updates every {} us (+/- {} us), unit {:.3} uJ",
            s.idle.0,
            s.spans.len(),
            s.update_period.0 / 1000,
            s.jitter.0 / 1000,
            s.unit.0 * 1e6
        )
    }

    fn domains(&self) -> &[Domain] {
        &self.domains
    }

    fn set_update_period(&mut self, index: usize, period: Nanos) {
        super::set_period(&mut self.domains, index, period);
    }

    fn latches_at_start(&self) -> bool {
        // Its value is the machine's at `ctx.now`; stamping the middle of the read (which
        // drains span edges and integrates, microseconds) would place every step late by
        // half of it, a bias of a few percent on 50 us layers that changes from run to run.
        true
    }

    fn read(&mut self, ctx: &ReadCtx, out: &mut [Joules]) -> Result<(), ReadError> {
        let truth = self.truth.clone();
        let mut truth = truth.lock().unwrap_or_else(|p| p.into_inner());
        match &mut self.feed {
            Feed::Tap { names, installed, pending } => {
                if !*installed {
                    // The first read comes before spans count (the profiler waits for a
                    // step), so no edge is missed.
                    drain_taps(pending);
                    pending.clear();
                    crate::span::set_edge_tap(Some(tap));
                    *installed = true;
                }
                drain_taps(pending);
                // Threads push in their own order. An edge that reaches the simulator after
                // it integrated past the edge's time is booked from its stamp (see
                // `Machine::edge`); one stamped after this read's instant waits for a later
                // read: the value returned is the machine's as of `ctx.now`, and a read
                // delayed between its stamp and here must not show a step that came after.
                pending.sort_by_key(|e| e.1);
                let due = pending.partition_point(|e| e.1 <= ctx.now);
                for &(thread, t, site, kind, depth) in &pending[..due] {
                    let i = site as usize;
                    if names.len() <= i {
                        names.resize(i + 1, None);
                    }
                    let name = *names[i].get_or_insert_with(|| crate::span::site_name(site).unwrap_or("?"));
                    self.machine.edge(thread, t, (site, name, kind, depth), &mut truth);
                }
                pending.drain(..due);
            }
            Feed::Log { events, names, next } => {
                while let Some(&(t, thread, site, kind, depth)) = events.get(*next) {
                    if t > ctx.now {
                        break;
                    }
                    let name =
                        (site as usize).checked_sub(1).and_then(|i| names.get(i)).map_or("?", String::as_str);
                    self.machine.edge(thread, t, (site, name, kind, depth), &mut truth);
                    *next += 1;
                }
            }
        }
        self.machine.advance(ctx.now, &mut truth);
        out[0] = Joules(self.machine.published);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// An edge that reaches the machine after it integrated past the edge's time counts from
    /// its own time, as hardware power follows the work; a step published meanwhile keeps
    /// what it showed, and the next one makes up for it.
    #[test]
    fn a_late_edge_is_booked_from_its_own_time() {
        let unit = 1e-9;
        let script = SimScript::new(Watts(10.0))
            .span("a", Watts(30.0))
            .span("b", Watts(50.0))
            .unit(Joules(unit))
            .update_period(Nanos(50_000));
        let mut m = Machine::new(script);
        let mut truth = SimTruth::default();
        m.edge(0, Nanos(0), (1, "a", EventKind::Enter, 0), &mut truth);
        m.edge(0, Nanos(10_000), (2, "b", EventKind::Enter, 1), &mut truth);
        m.advance(Nanos(70_000), &mut truth);
        let shown = m.published;
        assert!(close(shown, 30.0 * 10e-6 + 50.0 * 40e-6), "step at 50 us: {shown}");
        // b's exit was stamped at 40 us but arrives after the machine reached 70 us (past the
        // step at 50 us).
        m.edge(0, Nanos(40_000), (2, "b", EventKind::Exit, 1), &mut truth);
        assert_eq!(m.published, shown, "a published step stays as it was");
        assert!(close(truth.exclusive["a/b"].0, 50.0 * 30e-6), "{truth:?}");
        assert!(close(truth.exclusive["a"].0, 30.0 * 40e-6), "{truth:?}");
        m.edge(0, Nanos(60_000), (1, "a", EventKind::Exit, 0), &mut truth);
        m.advance(Nanos(120_000), &mut truth);
        // a ran from 0 to 10 us and from 40 to 60 us.
        assert!(close(truth.exclusive["a"].0, 30.0 * 30e-6), "{truth:?}");
        assert!(close(truth.unattributed.0, 10.0 * 60e-6), "{truth:?}");
        assert!(close(truth.total.0, m.energy));
        assert!(close(m.energy, 50.0 * 30e-6 + 30.0 * 30e-6 + 10.0 * 60e-6));
        // The step at 100 us shows the energy as booked from the stamps.
        let at_100us = 50.0 * 30e-6 + 30.0 * 30e-6 + 10.0 * 40e-6;
        assert!((m.published - at_100us).abs() <= unit * 1.001, "{} vs {at_100us}", m.published);
    }

    /// A late edge that lowers the energy never makes the counter go backwards.
    #[test]
    fn the_counter_never_goes_backwards() {
        let script = SimScript::new(Watts(0.0))
            .span("a", Watts(100.0))
            .unit(Joules(1e-6))
            .update_period(Nanos(50_000));
        let mut m = Machine::new(script);
        let mut truth = SimTruth::default();
        m.edge(0, Nanos(0), (1, "a", EventKind::Enter, 0), &mut truth);
        m.advance(Nanos(99_000), &mut truth);
        let before = m.published;
        // Stamped at 10 us: nearly all of the 99 us so far was idle (0 W) after all.
        m.edge(0, Nanos(10_000), (1, "a", EventKind::Exit, 0), &mut truth);
        m.advance(Nanos(120_000), &mut truth);
        assert!(m.published >= before, "{} < {before}", m.published);
        assert!(close(m.energy, 100.0 * 10e-6));
    }
}
