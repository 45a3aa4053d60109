//! Starting and stopping a profile: the sampler thread and what it records.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crate::clock;
use crate::source::{self, ReadCtx, ReadError, Source, SourceKind};
use crate::span::{self, ACTIVE};
use crate::spanlog::SpanLog;
use crate::timeline::{Timeline, TimelineDomain};
use crate::units::{Joules, Nanos};

/// Only one profiler may run in a process: spans go to whichever one runs.
static RUNNING: AtomicBool = AtomicBool::new(false);

/// Why a profiler could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// Another profiler is running in this process.
    #[error("a joules profiler is already running in this process")]
    AlreadyRunning,
    /// No source could be opened, not even the estimate.
    #[error("no energy source could be opened: {0}")]
    NoSource(String),
}

/// A source that was probed and could not be used.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Unavailable {
    /// Which source.
    pub source: String,
    /// Why not.
    pub reason: String,
    /// How to make it available, if there is a way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// Probes the sources in order of trust (perf, powercap, MSR, else the CPU-time estimate).
/// Returns those opened and why the others were not.
pub fn probe_sources() -> (Vec<Box<dyn Source>>, Vec<Unavailable>) {
    let probe = source::Probe::from_env();
    let unavailable = probe
        .outcomes
        .iter()
        .filter_map(|o| match &o.status {
            source::ProbeStatus::Unavailable { reason, fix } => Some(Unavailable {
                source: o.kind.name().to_owned(),
                reason: reason.clone(),
                fix: fix.clone(),
            }),
            _ => None,
        })
        .collect();
    (probe.sources, unavailable)
}

/// Configures a [`Profiler`].
pub struct ProfilerBuilder {
    sources: Vec<Box<dyn Source>>,
    unavailable: Vec<Unavailable>,
    period: Duration,
    sync: Option<fn()>,
}

impl std::fmt::Debug for ProfilerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfilerBuilder").field("period", &self.period).finish_non_exhaustive()
    }
}

impl ProfilerBuilder {
    /// Reads `source` (instead of the probed ones, if this is called at all).
    pub fn source(mut self, source: impl Source + 'static) -> Self {
        self.sources.push(Box::new(source));
        self
    }

    /// Reads the sources [`probe_sources`] finds.
    pub fn probed_sources(mut self) -> Self {
        let (found, unavailable) = probe_sources();
        self.sources.extend(found);
        self.unavailable.extend(unavailable);
        self
    }

    /// How often the sampler polls the sources (default 250 us: four polls per RAPL update,
    /// so each new value is placed in time within 125 us).
    pub fn period(mut self, period: Duration) -> Self {
        self.period = period.max(Duration::from_micros(50));
        self
    }

    /// Calls `hook` at every span edge while this profiler runs, before the edge is stamped.
    ///
    /// GPU work is asynchronous: a layer that launches kernels returns before they run, so a
    /// span around it measures the launch, and the GPU's energy lands in whatever span is open
    /// when the kernels execute. A hook that waits for the device (e.g. candle's
    /// `Device::synchronize`, `cudaDeviceSynchronize`) makes every span's edges real. It costs
    /// a device round trip per edge; for a few layers, prefer `#[measure_energy(sync = f)]`.
    pub fn sync_at_span_edges(mut self, hook: fn()) -> Self {
        self.sync = Some(hook);
        self
    }

    /// Starts sampling and recording spans.
    pub fn start(mut self) -> Result<Profiler, ProfileError> {
        if self.sources.is_empty() {
            self = self.probed_sources();
        }
        if self.sources.is_empty() {
            let why: Vec<String> = self.unavailable.iter().map(|u| u.reason.clone()).collect();
            return Err(ProfileError::NoSource(why.join("; ")));
        }
        if RUNNING.swap(true, Ordering::AcqRel) {
            return Err(ProfileError::AlreadyRunning);
        }
        span::discard_pending();
        let start_raw = clock::raw_now();
        let started_at = SystemTime::now();
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = Sampler::new(self.sources, start_raw);
        let described = sampler.describe();
        let period = self.period;
        let flag = stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let handle = std::thread::Builder::new()
            .name("joules-sampler".into())
            .spawn(move || sampler.run(period, &flag, &ready_tx))
            .expect("spawning the joules sampler thread");
        // Spans count only once the first reading exists, so none falls before the timeline.
        let _ = ready_rx.recv();
        span::set_sync_hook(self.sync);
        ACTIVE.store(true, Ordering::Release);
        Ok(Profiler {
            start_raw,
            started_at,
            stop,
            handle: Some(handle),
            sources: described,
            unavailable: self.unavailable,
        })
    }
}

/// A running profile. [`stop`](Profiler::stop) it to get the [`Recording`].
#[derive(Debug)]
pub struct Profiler {
    start_raw: u64,
    started_at: SystemTime,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<(Timeline, SpanLog)>>,
    sources: Vec<SourceInfo>,
    unavailable: Vec<Unavailable>,
}

/// A source in use, as a report describes it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SourceInfo {
    /// How it reads energy.
    pub kind: SourceKind,
    /// Its provenance label, e.g. "measured (RAPL powercap)".
    pub provenance: String,
    /// Its setup.
    pub description: String,
    /// Its counters.
    pub domains: Vec<source::Domain>,
}

/// Everything a profile saw.
#[derive(Debug)]
pub struct Recording {
    /// Wall-clock time of the start.
    pub started_at: SystemTime,
    /// Energy readings.
    pub timeline: Timeline,
    /// Span edges.
    pub spans: SpanLog,
    /// The sources read.
    pub sources: Vec<SourceInfo>,
    /// The sources that could not be used, and why.
    pub unavailable: Vec<Unavailable>,
}

impl Profiler {
    /// A builder; with no source added, [`probe_sources`] chooses.
    pub fn builder() -> ProfilerBuilder {
        ProfilerBuilder {
            sources: Vec::new(),
            unavailable: Vec::new(),
            period: Duration::from_micros(250),
            sync: None,
        }
    }

    /// Starts a profiler on the probed sources.
    pub fn start() -> Result<Profiler, ProfileError> {
        Self::builder().start()
    }

    /// Nanoseconds since this profiler started, on the clock spans use.
    pub fn now(&self) -> Nanos {
        clock::since(self.start_raw, clock::raw_now())
    }

    /// The sources being read.
    pub fn sources(&self) -> &[SourceInfo] {
        &self.sources
    }

    /// Stops sampling and returns what was recorded. Spans still open end now.
    pub fn stop(mut self) -> Recording {
        let (timeline, spans) = self.finish().unwrap_or_default();
        Recording {
            started_at: self.started_at,
            timeline,
            spans,
            sources: std::mem::take(&mut self.sources),
            unavailable: std::mem::take(&mut self.unavailable),
        }
    }

    fn finish(&mut self) -> Option<(Timeline, SpanLog)> {
        let handle = self.handle.take()?;
        ACTIVE.store(false, Ordering::Release);
        span::set_sync_hook(None);
        self.stop.store(true, Ordering::Release);
        let out = handle.join().ok();
        RUNNING.store(false, Ordering::Release);
        out
    }
}

impl Drop for Profiler {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

struct Sampler {
    sources: Vec<Box<dyn Source>>,
    /// Where each source's domains start in a row.
    offsets: Vec<usize>,
    failed: Vec<bool>,
    timeline: Timeline,
    spans: SpanLog,
    row: Vec<Joules>,
    /// Per domain: the value at the previous read.
    last: Vec<Option<Joules>>,
    /// Per source: when it was last read.
    read_at: Vec<Option<Nanos>>,
    start_raw: u64,
}

/// A continuous counter (the estimate) is stored this often, however fast the sampler polls.
const CONTINUOUS_EVERY: Nanos = Nanos(1_000_000);
/// How long start and stop wait at most for a stepped counter's next step (NVML's step every
/// 10-100 ms).
const STEP_WAIT: Duration = Duration::from_millis(250);

impl Sampler {
    fn new(sources: Vec<Box<dyn Source>>, start_raw: u64) -> Self {
        let mut timeline = Timeline::default();
        let mut offsets = Vec::new();
        for s in &sources {
            offsets.push(timeline.domains.len());
            for d in s.domains() {
                let mut td = TimelineDomain::new(d.clone(), s.kind());
                // About a minute of steps at 1 kHz before the vectors grow.
                td.series.times.reserve(60_000);
                td.series.energy.reserve(60_000);
                timeline.domains.push(td);
            }
        }
        let n = timeline.domains.len();
        let n_sources = sources.len();
        let failed = vec![false; n_sources];
        Sampler {
            sources,
            offsets,
            failed,
            timeline,
            spans: SpanLog::new(),
            row: vec![Joules(0.0); n],
            last: vec![None; n],
            read_at: vec![None; n_sources],
            start_raw,
        }
    }

    fn describe(&self) -> Vec<SourceInfo> {
        self.sources
            .iter()
            .map(|s| SourceInfo {
                kind: s.kind(),
                provenance: s.kind().provenance().to_owned(),
                description: s.describe(),
                domains: s.domains().to_vec(),
            })
            .collect()
    }

    fn run(
        mut self,
        period: Duration,
        stop: &AtomicBool,
        ready: &std::sync::mpsc::SyncSender<()>,
    ) -> (Timeline, SpanLog) {
        // Spans may start once every stepped counter has stepped: energy before a counter's
        // first step cannot be placed in time.
        let origin = self.now();
        self.poll_until(period, |s| s.stepped_since(origin));
        let _ = ready.send(());
        let period_ns = Nanos::from(period);
        let mut deadline = self.now();
        loop {
            // Sleep to absolute deadlines so the rate does not drift; a late poll is
            // stamped with its real time, so lateness costs resolution, not accuracy.
            let now = self.now();
            deadline = Nanos(deadline.0 + period_ns.0).max(now);
            std::thread::sleep(Duration::from_nanos((deadline - now).0));
            let finishing = stop.load(Ordering::Acquire);
            self.tick();
            if finishing {
                break;
            }
        }
        // Likewise every stepped counter steps once more, so the last spans are covered.
        let end = self.now();
        self.poll_until(period, |s| s.stepped_since(end));
        (self.timeline, self.spans)
    }

    /// Polls every `period` until `done` or [`STEP_WAIT`] has passed.
    fn poll_until(&mut self, period: Duration, done: impl Fn(&Self) -> bool) {
        let give_up = std::time::Instant::now() + STEP_WAIT;
        self.tick();
        while !done(self) && std::time::Instant::now() < give_up {
            std::thread::sleep(period);
            self.tick();
        }
    }

    /// True when every stepped domain still being read has a reading stamped after `t`.
    fn stepped_since(&self, t: Nanos) -> bool {
        self.timeline
            .domains
            .iter()
            .filter(|d| d.domain.update_period.0 > 0 && d.ended.is_none())
            .all(|d| d.series.times.last().is_some_and(|&s| s > t))
    }

    fn now(&self) -> Nanos {
        clock::since(self.start_raw, clock::raw_now())
    }

    fn tick(&mut self) {
        span::drain_into(&mut self.spans, self.start_raw);
        let now = self.now();
        let ctx = ReadCtx { now, spans: &self.spans };
        for (i, source) in self.sources.iter_mut().enumerate() {
            let due = self.read_at[i].is_none_or(|t| now - t >= source.min_interval());
            if self.failed[i] || !due {
                continue;
            }
            let range = self.offsets[i]..self.offsets[i] + source.domains().len();
            let result = source.read(&ctx, &mut self.row[range.clone()]);
            let prev = self.read_at[i].replace(now);
            let lost = match result {
                Ok(()) => None,
                // One domain ended; the source wrote the others.
                Err(ReadError::Lost { domain, reason }) => Some((range.start + domain, reason)),
                Err(e) => {
                    // The other sources go on; this one's domains end here, with the reason.
                    self.failed[i] = true;
                    for d in &mut self.timeline.domains[range] {
                        d.ended = Some((now, e.to_string()));
                    }
                    continue;
                }
            };
            if let Some((d, reason)) = lost {
                self.timeline.domains[d].ended = Some((now, reason));
            }
            for d in range {
                let td = &mut self.timeline.domains[d];
                if td.ended.is_some() {
                    continue;
                }
                let value = self.row[d];
                if td.domain.update_period.0 > 0 {
                    // A stepped counter: a new value appeared since this source's last read.
                    if let (Some(prev), Some(before)) = (prev, self.last[d]) {
                        if value != before {
                            td.series.push(Nanos(prev.0 + (now.0 - prev.0) / 2), value);
                        }
                    }
                } else if td.series.times.last().is_none_or(|&t| now - t >= CONTINUOUS_EVERY) {
                    td.series.push(now, value);
                }
                self.last[d] = Some(value);
            }
        }
        self.timeline.polled(now);
    }
}
