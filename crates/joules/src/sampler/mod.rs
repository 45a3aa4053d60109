//! The sampler: reads every source into a [`Timeline`], timing each counter step precisely.
//!
//! Each source has its own schedule. A stepped counter (RAPL, NVML's energy counter) is
//! watched around the steps a [`lock::StepLock`] predicts; a continuous one (the CPU-time
//! estimate, integrated NVML power) is read at a fixed rate and stamped when read. While no
//! span is open and none was entered since the last look, nothing needs attributing
//! precisely, so every counter is read only every [`REST_GAP`], without watching for its
//! steps: a sleeping program pays almost nothing for being profiled. When spans resume, the
//! locks pick up where they left off (or learn again if the counter drifted meanwhile).
//!
//! The same code runs on the real clock (a thread of the profiler) and on a
//! [`clock::VirtualClock`] (offline replays in the accuracy benchmark).

pub mod clock;
mod lock;

use crate::source::{ReadCtx, ReadError, Source};
use crate::spanlog::{EventKind, SpanLog};
use crate::timeline::{Series, Timeline, TimelineDomain};
use crate::units::{Joules, Nanos};
use clock::SamplerClock;
use lock::{Plan, StepLock};

/// A continuous counter is read this often while spans run.
const CONTINUOUS_EVERY: Nanos = Nanos(1_000_000);
/// While nothing runs, watched steps and continuous reads are at least this far apart.
pub const REST_GAP: Nanos = Nanos(20_000_000);
/// The sampler looks at the stop flag and the span buffers at least this often while spans
/// run, and while they rest (when this bounds how late it notices them resume).
const MAX_NAP: Nanos = Nanos(5_000_000);
const REST_NAP: Nanos = Nanos(10_000_000);
/// How long start and stop wait at most for every stepped counter to step.
const STEP_WAIT: Nanos = Nanos(300_000_000);

/// The message of a caught panic.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Where the sampler learns whether spans are running.
pub(crate) enum Spans {
    /// Drain the span rings (the real profiler), stamping from this raw start tick.
    Rings {
        /// Raw tick of the profile's start.
        start_raw: u64,
        /// Per thread position in the log, open spans.
        depth: Vec<i64>,
    },
    /// Spans are known in advance (an offline replay): always attribute precisely.
    Known,
}

struct Slot {
    source: Box<dyn Source>,
    /// Where its domains start in the timeline.
    offset: usize,
    /// Its first stepped domain steers its schedule.
    lead: Option<usize>,
    lock: Option<StepLock>,
    plan: Plan,
    /// The instant and duration of its previous read.
    last_read: Option<(Nanos, Nanos)>,
    failed: bool,
}

/// Reads `sources` on a virtual clock from 0 to `end`, as a profiler's sampler would while
/// spans run, and returns what it recorded: an offline replay of a simulated run whose spans
/// were written in advance (see [`crate::source::Sim::replaying`]).
pub fn replay(sources: Vec<Box<dyn Source>>, clock: clock::VirtualClock, end: Nanos) -> Timeline {
    let mut sampler = Sampler::new(sources, clock, Spans::Known);
    sampler.settle(Nanos(0));
    sampler.run_until(|_, now| now >= end);
    sampler.settle(end);
    sampler.finish().0
}

/// Reads sources into a timeline on a clock.
pub(crate) struct Sampler<C: SamplerClock> {
    clock: C,
    slots: Vec<Slot>,
    pub(crate) timeline: Timeline,
    pub(crate) spans: SpanLog,
    span_source: Spans,
    row: Vec<Joules>,
    last: Vec<Option<Joules>>,
    active: bool,
    settling: bool,
    /// Something waits for the next readings (a window's end): watch as while spans run.
    held: bool,
}

impl<C: SamplerClock> Sampler<C> {
    pub(crate) fn new(sources: Vec<Box<dyn Source>>, clock: C, span_source: Spans) -> Self {
        let mut timeline = Timeline::default();
        let mut slots = Vec::new();
        for source in sources {
            let offset = timeline.domains.len();
            let mut lead = None;
            for (i, d) in source.domains().iter().enumerate() {
                let mut td = TimelineDomain::new(d.clone(), source.kind());
                td.modelled = source.modelled();
                // About a minute of steps at 1 kHz before the vectors grow.
                td.series.reserve(60_000);
                timeline.domains.push(td);
                if d.update_period.0 > 0 && lead.is_none() {
                    lead = Some(i);
                }
            }
            let lock = lead.map(|i| {
                let period = source.domains()[i].update_period;
                StepLock::new(period, source.min_interval(), Series::precise_limit(period))
            });
            slots.push(Slot {
                source,
                offset,
                lead,
                lock,
                plan: Plan::ReadAt(Nanos(0)),
                last_read: None,
                failed: false,
            });
        }
        let n = timeline.domains.len();
        Sampler {
            clock,
            slots,
            timeline,
            spans: SpanLog::new(),
            span_source,
            row: vec![Joules(0.0); n],
            last: vec![None; n],
            active: true,
            settling: false,
            held: false,
        }
    }

    pub(crate) fn now(&mut self) -> Nanos {
        self.clock.now()
    }

    /// Reads until every counter has a reading after `t`, a stepped one a step (or until
    /// [`STEP_WAIT`] passed):
    /// energy before a counter's first step, or after its last, cannot be placed in time.
    pub(crate) fn settle(&mut self, t: Nanos) {
        let give_up = Nanos(self.now().0 + STEP_WAIT.0);
        // Settling watches closely, spans or not: it waits for a step, which resting would
        // see only every REST_GAP.
        self.settling = true;
        if !self.active {
            self.active = true;
            self.replan();
        }
        while !self.stepped_since(t) && self.now() < give_up {
            self.step(give_up);
        }
        self.settling = false;
    }

    /// Keeps the counters watched closely while `on`, spans or not.
    pub(crate) fn hold_active(&mut self, on: bool) {
        self.held = on;
        if on && !self.active {
            self.active = true;
            self.replan();
        }
    }

    /// Every domain still read has a reading after `t`: a stepped counter has stepped, a
    /// continuous one has been read (a window or span may begin at once, and needs a reading
    /// before it).
    fn stepped_since(&self, t: Nanos) -> bool {
        self.timeline
            .domains
            .iter()
            .filter(|d| d.ended.is_none())
            .all(|d| d.series.times.last().is_some_and(|&s| s > t))
    }

    /// The first domain that stopped being read, when and why, if any did.
    pub(crate) fn first_ended(&self) -> Option<(Nanos, String)> {
        self.timeline.domains.iter().find_map(|d| {
            d.ended
                .as_ref()
                .map(|(t, why)| (*t, format!("{} stopped at {} ms ({why})", d.domain.id, t.0 / 1_000_000)))
        })
    }

    /// Runs until `stop` says so (checked at least every [`MAX_NAP`]).
    pub(crate) fn run_until(&mut self, mut stop: impl FnMut(&mut Self, Nanos) -> bool) {
        loop {
            let now = self.now();
            if stop(self, now) {
                break;
            }
            let nap = if self.active { MAX_NAP } else { REST_NAP };
            self.step(Nanos(now.0 + nap.0));
        }
    }

    /// Sleeps until the next due source (or `limit`), then serves it.
    fn step(&mut self, limit: Nanos) {
        let due = self.slots.iter().enumerate().filter(|(_, s)| !s.failed).min_by_key(|(_, s)| s.plan.wake());
        let Some((i, wake)) = due.map(|(i, s)| (i, s.plan.wake())) else {
            self.clock.sleep_until(limit);
            return;
        };
        if wake > limit {
            self.rest(limit);
            let _ = self.look_at_spans();
            return;
        }
        if self.active {
            self.clock.sleep_until(wake);
        } else if self.rest(wake) {
            let _ = self.look_at_spans();
            return;
        }
        let woke = self.now();
        if self.look_at_spans() {
            // Spans resumed and every plan changed: start over from the new ones, sleeping
            // until they are due.
            return;
        }
        match self.slots[i].plan {
            Plan::ReadAt(_) => {
                // Resting, a stepped counter is read without steering its lock: nothing
                // needs its steps placed precisely, and a plain read costs almost nothing.
                let step = self.read(i);
                let now = self.now();
                let active = self.active;
                let slot = &mut self.slots[i];
                slot.plan = match &mut slot.lock {
                    Some(lock) if active => {
                        if let Some((t, unc)) = step {
                            lock.stepped(t, unc);
                        }
                        lock.plan(now)
                    }
                    Some(_) => Plan::ReadAt(Nanos(now.0 + REST_GAP.min(slot.source.longest_gap()).0)),
                    None => {
                        let every = if active { CONTINUOUS_EVERY } else { REST_GAP };
                        let every = every.max(slot.source.min_interval()).min(slot.source.longest_gap());
                        Plan::ReadAt(Nanos(now.0 + every.0))
                    }
                };
            }
            Plan::Watch { wake, until } => {
                if let Some(lock) = &mut self.slots[i].lock {
                    lock.woke(wake, woke);
                }
                let spacing = self.slots[i].source.min_interval();
                let mut first = true;
                loop {
                    if spacing.0 > 0 {
                        // A slow source (NVML) is watched at its own pace.
                        if let Some((last, _)) = self.slots[i].last_read {
                            self.clock.sleep_until(Nanos(last.0 + spacing.0));
                        }
                    }
                    let step = self.read(i);
                    let failed = self.slots[i].failed;
                    let late = self.clock.now() > until;
                    // The first read sets the value the watched step will change: a change
                    // there is an earlier step (skipped, not yet seen, or the watched one
                    // if the wake-up came late, which the window's end then counts).
                    let baseline_read = std::mem::replace(&mut first, false);
                    if let Some(lock) = &mut self.slots[i].lock {
                        match step {
                            Some(_) if baseline_read && !late && !failed => continue,
                            Some((t, unc)) => lock.stepped(t, unc),
                            None if failed || late => lock.missed(),
                            None => continue,
                        }
                    }
                    break;
                }
                let now = self.now();
                let active = self.active;
                let slot = &mut self.slots[i];
                let rest = REST_GAP.min(slot.source.longest_gap());
                if let Some(lock) = &mut slot.lock {
                    slot.plan = if active { lock.plan(now) } else { Plan::ReadAt(Nanos(now.0 + rest.0)) };
                }
            }
        }
    }

    /// Sleeps until `t`, as lightly as nothing needs watching; if an alarm cuts the rest
    /// short (a window begins), reads every source at once, so that the window has a reading
    /// at its start rather than the rest's last (up to [`REST_GAP`] old), and returns true.
    fn rest(&mut self, t: Nanos) -> bool {
        let rung = if self.active {
            self.clock.sleep_until(t);
            false
        } else {
            self.clock.rest_until(t)
        };
        if rung {
            for i in 0..self.slots.len() {
                if !self.slots[i].failed {
                    // A plain read: its stamp is a period wide, too loose to steer a lock.
                    let _ = self.read(i);
                }
            }
            self.clock.alarm_answered();
        }
        rung
    }

    /// Drains new span events (real profiles) and notes whether any span is running; true
    /// if spans just resumed (and the plans were remade).
    pub(crate) fn look_at_spans(&mut self) -> bool {
        if let Spans::Rings { start_raw, depth } = &mut self.span_source {
            let before: Vec<usize> = self.spans.threads.iter().map(|t| t.events.len()).collect();
            crate::span::drain_into(&mut self.spans, *start_raw);
            let mut fresh = false;
            depth.resize(self.spans.threads.len(), 0);
            for (i, thread) in self.spans.threads.iter().enumerate() {
                let from = before.get(i).copied().unwrap_or(0);
                for ev in &thread.events[from..] {
                    fresh = true;
                    // A late exit (of a span ended earlier by an enclosing guard dropped
                    // first) must not make a running span look like rest.
                    depth[i] = match ev.kind {
                        EventKind::Enter => i64::from(ev.depth) + 1,
                        EventKind::Exit if ev.is_late() => depth[i],
                        EventKind::Exit | EventKind::Cut => i64::from(ev.depth),
                    };
                }
            }
            let was = self.active;
            self.active = self.settling || self.held || fresh || depth.iter().any(|&d| d > 0);
            if self.active && !was {
                // Spans resumed: watch the next steps, not those planned for the rest.
                self.replan();
                return true;
            }
        }
        false
    }

    /// Plans every source afresh from now, as while spans run.
    fn replan(&mut self) {
        let now = self.clock.now();
        for slot in &mut self.slots {
            slot.plan = match &mut slot.lock {
                Some(lock) => lock.plan(now),
                None => Plan::ReadAt(now),
            };
        }
    }

    /// Reads slot `i` once; where its lead domain stepped, the step's stamp and uncertainty.
    fn read(&mut self, i: usize) -> Option<(Nanos, Nanos)> {
        let before = self.clock.now();
        let slot = &mut self.slots[i];
        let range = slot.offset..slot.offset + slot.source.domains().len();
        let latch = self.clock.latch(before);
        let row = &mut self.row[range.clone()];
        let source = &mut slot.source;
        // A panicking source must not take the sampler (and every other source) with it:
        // it ends like a failed read, with the panic's message as the reason.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            source.read(&ReadCtx { now: latch }, row)
        }))
        .unwrap_or_else(|panic| Err(ReadError::Panicked { reason: panic_message(panic.as_ref()) }));
        self.clock.read_done();
        let after = self.clock.now();
        // The counter was latched somewhere in the read (or at its start, for a source that
        // says so).
        let (at, half_read) = if self.slots[i].source.latches_at_start() {
            (latch, Nanos(0))
        } else {
            (Nanos(before.0 + (after.0 - before.0) / 2), Nanos((after.0 - before.0).div_ceil(2)))
        };
        let slot = &mut self.slots[i];
        let prev = slot.last_read.replace((at, half_read));
        let mut lost = match result {
            Ok(()) => Vec::new(),
            // Some domains ended; the source wrote the others.
            Err(ReadError::Lost { lost }) => {
                lost.into_iter().map(|(d, why)| (range.start + d, why)).collect()
            }
            Err(e) => {
                // The other sources go on; this one's domains end here, with the reason.
                slot.failed = true;
                for d in &mut self.timeline.domains[range] {
                    d.ended = Some((at, e.to_string()));
                }
                return None;
            }
        };
        // NaN or infinity never reaches a timeline (and so a report): the domain ends here,
        // as for any broken read, and the run says so.
        for d in range.clone() {
            let value = self.row[d].0;
            if !value.is_finite()
                && self.timeline.domains[d].ended.is_none()
                && !lost.iter().any(|l| l.0 == d)
            {
                lost.push((d, format!("the source returned a non-finite reading ({value})")));
            }
        }
        let lead_lost = lost.iter().any(|&(d, _)| Some(d - range.start) == slot.lead);
        for (d, reason) in lost {
            self.timeline.domains[d].ended = Some((at, reason));
        }
        if lead_lost {
            // The domain that steered this source's lock is gone: steer by the next stepped
            // one still read, or read on a plain schedule if none is left.
            let next = range.clone().find(|&e| {
                let td = &self.timeline.domains[e];
                td.ended.is_none() && td.domain.update_period.0 > 0
            });
            slot.lead = next.map(|e| e - range.start);
            slot.lock = next.map(|e| {
                let period = self.timeline.domains[e].domain.update_period;
                StepLock::new(period, slot.source.min_interval(), Series::precise_limit(period))
            });
            slot.plan = Plan::ReadAt(at);
        }
        let mut lead_step = None;
        for d in range.clone() {
            let td = &mut self.timeline.domains[d];
            if td.ended.is_some() {
                continue;
            }
            let value = self.row[d];
            // The counter showed `value` at some instant of the read, at its start at least.
            td.read_until = before;
            if td.domain.update_period.0 > 0 {
                // A stepped counter: a new value appeared between the previous read and this.
                if let (Some((p, p_half)), Some(before)) = (prev, self.last[d])
                    && value != before
                {
                    // The value is the last step's: within the bracket, and within a
                    // period before this read (reads further apart than a period, as
                    // while resting, see several steps and keep the last).
                    let from = Nanos(p.0.max(at.0.saturating_sub(td.domain.update_period.0)));
                    let mid = Nanos(from.0 + (at.0 - from.0) / 2);
                    let unc = Nanos((at.0 - from.0).div_ceil(2) + p_half.0.max(half_read.0));
                    td.series.push_within(mid, value, unc);
                    if Some(d - range.start) == slot.lead {
                        lead_step = Some((mid, unc));
                    }
                }
            } else {
                td.series.push_within(at, value, half_read);
            }
            self.last[d] = Some(value);
        }
        self.timeline.polled(at);
        lead_step
    }

    /// A copy of what was recorded so far (span events drained first).
    pub(crate) fn snapshot(&mut self) -> (Timeline, SpanLog) {
        let _ = self.look_at_spans();
        let mut spans = self.spans.clone();
        spans.leave_out_forgotten();
        (self.timeline.clone(), spans)
    }

    /// Every source, ready for a report.
    pub(crate) fn finish(mut self) -> (Timeline, SpanLog) {
        self.spans.leave_out_forgotten();
        (self.timeline, self.spans)
    }
}
