//! Windows: the joules of one region of code, at once, while the profiler runs on.
//!
//! A [`Window`] stamps its two edges on the profiler's clock and, at its end, asks the
//! sampler for every domain's energy between them. The sampler answers as soon as each
//! domain has a reading after the end (a RAPL step is at most a millisecond away), so a
//! window costs its caller about one counter step of waiting and nothing while it runs.
//!
//! Counters are read at instants, not continuously, so a window's energy is known exactly
//! only between readings. Each figure comes with bounds that hold whatever the power did
//! between readings, given that the counter never runs backwards and every reading's instant
//! lies within its stamp's uncertainty:
//! - the *lower* bound is the energy between the first reading surely after the start and
//!   the last reading surely before the end (0 if there is none in between);
//! - the *upper* bound is the energy between the last reading surely before the start and
//!   the first reading surely after the end;
//! - each widens by one counter unit (the quantisation of both readings).
//!
//! The point figure interpolates the counter linearly between readings at both edges: flat
//! power within a step, which is right to a fraction of a step's energy. A window much
//! longer than the counter's step is therefore exact to well under 1%; one shorter than a
//! step has wide bounds, and says so ([`DomainEnergy::shorter_than_step`]).
//!
//! ```
//! use joules::source::{Sim, SimScript};
//! use joules::{Profiler, Watts};
//!
//! let sim = Sim::new(SimScript::new(Watts(5.0)).span("request", Watts(40.0)));
//! let profiler = Profiler::builder().source(sim).start()?;
//! let (sum, energy) = profiler.measure("request", || (0..2_000_000u64).map(std::hint::black_box).sum::<u64>());
//! let energy = energy?;
//! let all = energy.total().expect("every domain was read over the window");
//! assert!(all.lo <= all.point && all.point <= all.hi && all.hi.0 > 0.0);
//! print!("{energy}"); // per domain: point [lo, hi] (provenance)
//! # let _ = sum;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A window is the energy of a *domain* over a stretch of wall time: everything that ran on
//! the package (or GPU) meanwhile, other threads and processes included (the CPU-time
//! estimate: every thread of this process). Per-layer attribution inside a window is what
//! spans and the aggregator do; a window is also a span, named by its label, so it shows
//! in reports as one.

use std::collections::HashMap;
use std::panic::Location;
use std::sync::Mutex;
use std::time::Duration;

use crate::source::{DomainKind, SourceKind};
use crate::span::{self, Site, SpanGuard};
use crate::timeline::{Series, Timeline};
use crate::units::{Joules, Nanos};
use crate::{Profiler, profiler};

/// How long [`Window::end`] waits at most for the readings after the end. Longer than any
/// counter's step (NVML's energy counter: up to 100 ms) and the sampler's longest nap.
pub const ANSWER_WAIT: Duration = Duration::from_secs(2);

/// A region of code being measured. Made by [`Profiler::window`]; [`end`](Window::end) it to
/// get its joules. Dropped without `end`, it measures nothing (its span still ends).
#[derive(Debug)]
#[must_use = "a window measures until `end` is called; dropping it discards the measurement"]
pub struct Window<'p> {
    profiler: &'p Profiler,
    label: &'static str,
    start: Nanos,
    // Ends the window's span when the window ends or is dropped.
    span: Option<SpanGuard>,
}

/// Why a window has no figures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WindowError {
    /// The profiler's sampler has stopped (it failed, or the profiler is being stopped).
    #[error("the profiler's sampler has stopped; no window can be measured")]
    Stopped,
    /// The sampler did not answer within [`ANSWER_WAIT`].
    #[error("no reading after the window's end came within {}s", ANSWER_WAIT.as_secs())]
    Timeout,
}

/// The joules of a window, per domain.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WindowEnergy {
    /// The window's label.
    pub label: String,
    /// Its start, in ns since the profiler started.
    pub start: Nanos,
    /// Its end, likewise.
    pub end: Nanos,
    /// One entry per domain the profiler reads, in reading order.
    pub domains: Vec<DomainEnergy>,
}

/// One domain's energy over a window.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DomainEnergy {
    /// The domain's id, e.g. `package-0`, `gpu:0`, `cpu`.
    pub domain: String,
    /// What it covers.
    pub kind: DomainKind,
    /// The domain it is part of, if any (its energy is already inside that one's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_of: Option<String>,
    /// Who read it.
    pub source: SourceKind,
    /// How the figure was obtained, e.g. "measured (RAPL powercap)" or "estimated (...)".
    pub provenance: String,
    /// The figure and its bounds; None where the domain was not read over the whole window
    /// (see `missing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<Bounded>,
    /// The window is shorter than the counter's update period: the bounds are wide and the
    /// point figure is an interpolation across a step.
    pub shorter_than_step: bool,
    /// Why there is no figure, if there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

/// A figure with bounds that hold whatever the power did between readings.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Bounded {
    /// Linear interpolation of the counter at both edges.
    pub point: Joules,
    /// The least energy the readings allow.
    pub lo: Joules,
    /// The most energy the readings allow.
    pub hi: Joules,
}

impl WindowEnergy {
    /// The window's duration.
    pub fn duration(&self) -> Nanos {
        self.end - self.start
    }

    /// The figure of domain `id`, if read over the whole window.
    pub fn domain(&self, id: &str) -> Option<Bounded> {
        self.domains.iter().find(|d| d.domain == id).and_then(|d| d.energy)
    }

    /// The sum over domains that are part of no other (packages, GPUs, DRAM, or the
    /// estimate's `cpu`): the window's energy as far as it was read, or None if a top-level
    /// domain has no figure.
    pub fn total(&self) -> Option<Bounded> {
        let mut sum = Bounded { point: Joules(0.0), lo: Joules(0.0), hi: Joules(0.0) };
        for d in self.domains.iter().filter(|d| d.part_of.is_none()) {
            let e = d.energy?;
            sum.point += e.point;
            sum.lo += e.lo;
            sum.hi += e.hi;
        }
        Some(sum)
    }
}

impl std::fmt::Display for WindowEnergy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}: {:.3} ms", self.label, self.duration().as_secs_f64() * 1e3)?;
        for d in &self.domains {
            match (&d.energy, &d.missing) {
                (Some(e), _) => {
                    let short = if d.shorter_than_step { "; shorter than a counter step" } else { "" };
                    writeln!(
                        f,
                        "  {}: {} J [{}, {}] ({}{short})",
                        d.domain,
                        sig(e.point.0),
                        sig(e.lo.0),
                        sig(e.hi.0),
                        d.provenance
                    )?;
                }
                (None, why) => {
                    writeln!(f, "  {}: no figure ({})", d.domain, why.as_deref().unwrap_or("not read"))?
                }
            }
        }
        Ok(())
    }
}

/// Four significant digits, as the window's figures deserve.
fn sig(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let digits = (3 - x.abs().log10().floor() as i32).max(0) as usize;
    format!("{x:.digits$}")
}

/// Sites of windows, one per label and call site, made on first use and kept for the process
/// (labels are few and fixed: a window's label is `&'static str`).
type SiteKey = (&'static str, &'static str, u32);
static SITES: Mutex<Option<HashMap<SiteKey, &'static Site>>> = Mutex::new(None);

fn site(label: &'static str, at: &'static Location<'static>) -> &'static Site {
    let mut sites = SITES.lock().unwrap_or_else(|e| e.into_inner());
    sites
        .get_or_insert_with(HashMap::new)
        .entry((label, at.file(), at.line()))
        .or_insert_with(|| Box::leak(Box::new(Site::new(label, "joules::window", at.file(), at.line()))))
}

impl Profiler {
    /// Begins a window labelled `label` on this thread: [`end`](Window::end) it for its
    /// joules per domain. It is also a span named `label`, identified by the caller's file
    /// and line. Costs a span's entry and a look-up of the label (a lock, uncontended).
    #[track_caller]
    pub fn window(&self, label: &'static str) -> Window<'_> {
        let site = site(label, Location::caller());
        // A resting sampler reads every source before the window begins (the ring waits for
        // it), so that the start has a reading just before it; the span then begins with the
        // window, not while the sampler wakes.
        self.alarm.ring();
        let span = span::enter(site);
        Window { profiler: self, label, start: self.now(), span: Some(span) }
    }

    /// Runs `f` in a window labelled `label`: its result and the window's joules.
    #[track_caller]
    pub fn measure<R>(
        &self,
        label: &'static str,
        f: impl FnOnce() -> R,
    ) -> (R, Result<WindowEnergy, WindowError>) {
        let window = self.window(label);
        let out = f();
        (out, window.end())
    }
}

impl Window<'_> {
    /// Ends the window and waits (about one counter step) for its joules per domain.
    pub fn end(mut self) -> Result<WindowEnergy, WindowError> {
        let end = self.profiler.now();
        drop(self.span.take());
        let (start, label) = (self.start, self.label);
        self.profiler.window_energy(start, end, label)
    }
}

/// Where a window request waits in the sampler until readings cover it.
pub(crate) struct Pending {
    pub(crate) start: Nanos,
    pub(crate) end: Nanos,
    pub(crate) label: &'static str,
    pub(crate) reply: std::sync::mpsc::SyncSender<WindowEnergy>,
}

impl Pending {
    /// Answers if every domain has been read after the end (or has ended), or if `last` is
    /// set (the sampler is stopping and reads no more); true if answered.
    pub(crate) fn try_answer(
        &self,
        tl: &Timeline,
        sources: &[profiler::SourceInfo],
        now: Nanos,
        last: bool,
    ) -> bool {
        let ready = tl.domains.iter().all(|d| {
            d.ended.is_some()
                || surely_after(&d.series, self.end).is_some()
                || d.held_until().is_some_and(|h| h >= self.end)
        });
        // A window nobody can answer (a source that stopped being read without saying so)
        // is answered with what there is once its caller has given up, so that it never
        // keeps the sampler watching.
        let expired = now.0 > self.end.0 + ANSWER_WAIT.as_nanos() as u64;
        if !(ready || last || expired) {
            return false;
        }
        let _ = self.reply.send(energy(tl, sources, self.start, self.end, self.label));
        true
    }
}

/// The energy of every domain of `tl` between `start` and `end`.
pub(crate) fn energy(
    tl: &Timeline,
    sources: &[profiler::SourceInfo],
    start: Nanos,
    end: Nanos,
    label: &str,
) -> WindowEnergy {
    let domains = tl
        .domains
        .iter()
        .map(|d| {
            let provenance = sources
                .iter()
                .find(|s| s.kind == d.source && s.domains.iter().any(|x| x.id == d.domain.id))
                .map(|s| s.provenance.clone())
                .unwrap_or_else(|| d.source.label(d.modelled));
            let ended_early = d.ended.as_ref().filter(|(t, _)| *t <= end);
            let held = d.held_until();
            let (energy, missing) =
                match (ended_early, bounded(&d.series, start, end, d.domain.resolution, held)) {
                    (Some((t, why)), _) => {
                        (None, Some(format!("stopped being read at {} ms: {why}", t.0 / 1_000_000)))
                    }
                    (None, Ok(e)) => (Some(e), None),
                    (None, Err(why)) => (None, Some(why.to_owned())),
                };
            DomainEnergy {
                domain: d.domain.id.clone(),
                kind: d.domain.kind,
                part_of: d.domain.part_of.clone(),
                source: d.source,
                provenance,
                energy,
                shorter_than_step: end - start < d.reading_period(),
                missing,
            }
        })
        .collect();
    WindowEnergy { label: label.to_owned(), start, end, domains }
}

/// The span of instants reading `i` may have been taken at.
fn bracket(s: &Series, i: usize) -> (u64, u64) {
    let (t, u) = (s.times[i].0, u64::from(s.uncertainty[i]));
    (t.saturating_sub(u), t + u)
}

/// The last reading surely at or before `x` (its whole bracket is). Readings stamped after
/// `x` cannot be; of the rest the walk back is short, brackets being narrow.
fn surely_before(s: &Series, x: Nanos) -> Option<usize> {
    let upto = s.times.partition_point(|&t| t <= x);
    (0..upto).rev().find(|&i| bracket(s, i).1 <= x.0)
}

/// The first reading surely at or after `x`.
fn surely_after(s: &Series, x: Nanos) -> Option<usize> {
    let from = s.times.partition_point(|&t| t < x);
    (from..s.len()).find(|&i| bracket(s, i).0 >= x.0)
}

/// The energy of `s` between `start` and `end`, bounded as the module says. `held_until`:
/// the counter is known to have kept its last value until then (a stepped counter read
/// unchanged since), which stands for a reading after the end where there is none.
pub(crate) fn bounded(
    s: &Series,
    start: Nanos,
    end: Nanos,
    unit: Joules,
    held_until: Option<Nanos>,
) -> Result<Bounded, &'static str> {
    let e = |i: usize| s.energy[i].0;
    let Some(a) = surely_before(s, start) else {
        return Err("no reading before the window's start (it began before the readings kept)");
    };
    let after_end = match surely_after(s, end) {
        Some(b) => e(b),
        None if held_until.is_some_and(|h| h >= end) => e(s.len() - 1),
        None => return Err("no reading after the window's end"),
    };
    let hi = after_end - e(a) + unit.0;
    let lo = match (surely_after(s, start), surely_before(s, end)) {
        (Some(i), Some(j)) if i < j => (e(j) - e(i) - unit.0).max(0.0),
        _ => 0.0,
    };
    // Not `clamp`: a counter that ran backwards (lo > hi) must not panic the sampler.
    let point = (interpolate(s, end) - interpolate(s, start)).max(lo).min(hi);
    Ok(Bounded { point: Joules(point), lo: Joules(lo), hi: Joules(hi) })
}

/// The counter at `t`, linear between the readings around it.
fn interpolate(s: &Series, t: Nanos) -> f64 {
    let i = s.times.partition_point(|&x| x <= t);
    match (i.checked_sub(1), s.times.get(i)) {
        (Some(p), Some(&next)) => {
            let (t0, t1) = (s.times[p].0 as f64, next.0 as f64);
            let f = if t1 > t0 { (t.0 as f64 - t0) / (t1 - t0) } else { 1.0 };
            s.energy[p].0 + f * (s.energy[i].0 - s.energy[p].0)
        }
        (Some(p), None) => s.energy[p].0,
        (None, _) => s.energy.first().map_or(0.0, |e| e.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: &[(u64, f64, u32)]) -> Series {
        let mut s = Series::default();
        for &(t, e, u) in points {
            s.push_within(Nanos(t), Joules(e), Nanos(u64::from(u)));
        }
        s
    }

    #[test]
    fn bounds_hold_between_readings_and_the_point_interpolates() {
        // Steps every 1000 ns at 1 J each, stamped within +/- 10 ns.
        let s = series(&[(0, 0.0, 10), (1000, 1.0, 10), (2000, 2.0, 10), (3000, 3.0, 10), (4000, 4.0, 10)]);
        let b = bounded(&s, Nanos(1500), Nanos(2500), Joules(0.0), None).unwrap();
        // Readings surely inside: none pair (2000 alone): lo 0; around: 1000..3000: hi 2 J.
        assert_eq!((b.lo.0, b.hi.0), (0.0, 2.0));
        assert!((b.point.0 - 1.0).abs() < 1e-12, "{b:?}");
        let b = bounded(&s, Nanos(500), Nanos(3500), Joules(0.01), None).unwrap();
        assert!((b.lo.0 - 1.99).abs() < 1e-12 && (b.hi.0 - 4.01).abs() < 1e-12, "{b:?}");
        assert!((b.point.0 - 3.0).abs() < 1e-12);
    }

    #[test]
    fn a_reading_whose_stamp_straddles_an_edge_counts_on_neither_side() {
        // The reading at 2000 +/- 600 may be before or after 1500: it bounds neither side.
        let s = series(&[(0, 0.0, 0), (2000, 2.0, 600), (4000, 4.0, 0)]);
        let b = bounded(&s, Nanos(1500), Nanos(3000), Joules(0.0), None).unwrap();
        assert_eq!((b.lo.0, b.hi.0), (0.0, 4.0));
    }

    #[test]
    fn a_counter_known_flat_after_its_last_step_answers_for_the_end() {
        // An idle zone: its last step at 1000, read unchanged since. Held until 3000, it
        // stands for a reading after an end at 2500; held only until 2000, it does not.
        let s = series(&[(0, 0.0, 0), (1000, 1.0, 0)]);
        assert!(bounded(&s, Nanos(500), Nanos(2500), Joules(0.0), None).is_err());
        let b = bounded(&s, Nanos(500), Nanos(2500), Joules(0.0), Some(Nanos(3000))).unwrap();
        assert_eq!((b.lo.0, b.hi.0), (0.0, 1.0));
        assert!(bounded(&s, Nanos(500), Nanos(2500), Joules(0.0), Some(Nanos(2000))).is_err());
    }

    #[test]
    fn a_window_outside_the_readings_has_no_figure() {
        let s = series(&[(1000, 0.0, 0), (2000, 1.0, 0)]);
        assert!(bounded(&s, Nanos(500), Nanos(1500), Joules(0.0), None).is_err());
        assert!(bounded(&s, Nanos(1200), Nanos(2500), Joules(0.0), None).is_err());
    }
}
