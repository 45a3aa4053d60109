//! Starting and stopping a profile: the sampler thread and what it records.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::SystemTime;

use crate::clock;
use crate::sampler::clock::{Alarm, RealClock};
use crate::sampler::{Sampler, Spans};
use crate::source::{self, Source, SourceKind};
use crate::span::{self, ACTIVE};
use crate::spanlog::SpanLog;
use crate::timeline::Timeline;
use crate::units::Nanos;

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
    /// The choice of sources or domains (`--source`, `--domain`, `JOULES_SOURCES`,
    /// `JOULES_DOMAINS`) names something this machine does not offer.
    #[error("{0}")]
    Selection(String),
    /// The sampler thread could not be started.
    #[error("could not start the joules sampler thread: {0}")]
    Spawn(String),
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
    let (sources, unavailable, _) = probed(source::Probe::from_env());
    (sources, unavailable)
}

/// A probe's sources, the unusable ones, and what is wrong with the selection.
pub(crate) fn probed(probe: source::Probe) -> (Vec<Box<dyn Source>>, Vec<Unavailable>, Vec<String>) {
    let unavailable = probe
        .outcomes
        .iter()
        .filter_map(|o| match &o.status {
            source::ProbeStatus::Unavailable { reason, fix } => Some(Unavailable {
                source: o.kind.name().to_owned(),
                reason: reason.clone(),
                fix: fix.clone(),
            }),
            source::ProbeStatus::NotSelected => Some(Unavailable {
                source: o.kind.name().to_owned(),
                reason: format!(
                    "not selected (--source / --domain, {} / {})",
                    source::select::SOURCES_ENV,
                    source::select::DOMAINS_ENV
                ),
                fix: None,
            }),
            _ => None,
        })
        .collect();
    (probe.sources, unavailable, probe.selection_errors)
}

/// Configures a [`Profiler`].
pub struct ProfilerBuilder {
    sources: Vec<Box<dyn Source>>,
    unavailable: Vec<Unavailable>,
    selection_errors: Vec<String>,
    /// Whether a probe chose the sources (then an empty choice is final).
    probed: bool,
    live: Option<crate::live::LiveConfig>,
    sync: Option<fn()>,
}

impl std::fmt::Debug for ProfilerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfilerBuilder").field("sources", &self.sources.len()).finish_non_exhaustive()
    }
}

impl ProfilerBuilder {
    /// Reads `source` (instead of the probed ones, if this is called at all).
    pub fn source(mut self, source: impl Source + 'static) -> Self {
        self.sources.push(Box::new(source));
        self
    }

    /// Reads the sources [`probe_sources`] finds (those `JOULES_SOURCES` and
    /// `JOULES_DOMAINS` choose, if set).
    pub fn probed_sources(self) -> Self {
        self.probed_from(source::Probe::from_env())
    }

    /// Reads the sources `probe` chose; a profile with a selection error refuses to start.
    pub fn probed_from(mut self, probe: source::Probe) -> Self {
        let (found, unavailable, errors) = probed(probe);
        self.probed = true;
        self.sources.extend(found);
        self.unavailable.extend(unavailable);
        self.selection_errors.extend(errors);
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

    /// Makes the profile live: it folds its recording into running totals as it goes, in
    /// bounded memory, for as long as it runs ([`crate::live`]); [`Profiler::live`] reads
    /// them. Stopping folds the last stretch too, so the totals cover the whole run, and what
    /// [`Profiler::stop`] returns holds only the spans still open then and the readings kept
    /// for windows.
    pub fn live(mut self, config: crate::live::LiveConfig) -> Self {
        self.live = Some(config);
        self
    }

    /// Starts sampling and recording spans.
    pub fn start(mut self) -> Result<Profiler, ProfileError> {
        if self.sources.is_empty() && !self.probed {
            self = self.probed_sources();
        }
        if !self.selection_errors.is_empty() {
            return Err(ProfileError::Selection(self.selection_errors.join("; ")));
        }
        if self.sources.is_empty() {
            let why: Vec<String> =
                self.unavailable.iter().map(|u| format!("{}: {}", u.source, u.reason)).collect();
            return Err(ProfileError::NoSource(why.join("; ")));
        }
        if RUNNING.swap(true, Ordering::AcqRel) {
            return Err(ProfileError::AlreadyRunning);
        }
        span::discard_pending();
        span::new_generation();
        let start_raw = clock::raw_now();
        span::set_tap_origin(start_raw);
        let started_at = SystemTime::now();
        let stop = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(std::sync::OnceLock::new());
        let failed_flag = failed.clone();
        let described = describe(&self.sources);
        let answers_from = described.clone();
        let live = match self.live {
            Some(config) => match crate::live::start(&described) {
                Ok((handle, tx, thread)) => Some((config, handle, tx, thread)),
                Err(e) => {
                    RUNNING.store(false, Ordering::Release);
                    return Err(ProfileError::Spawn(e.to_string()));
                }
            },
            None => None,
        };
        let (live_handle, live_thread, mut folder) = match live {
            Some((config, handle, tx, thread)) => {
                (Some(handle), Some(thread), Some(crate::live::Folder::new(config, tx)))
            }
            None => (None, None, None),
        };
        let sources = self.sources;
        let flag = stop.clone();
        let alarm = Arc::new(Alarm::default());
        let alarm_for_sampler = alarm.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let (req_tx, req_rx) = std::sync::mpsc::channel::<Request>();
        let handle = std::thread::Builder::new().name("joules-sampler".into()).spawn(move || {
            // The clock is made on this thread: it sets the thread's timer slack.
            let clock = RealClock::new(start_raw, alarm_for_sampler);
            let mut sampler = Sampler::new(sources, clock, Spans::Rings { start_raw, depth: Vec::new() });
            // Spans may start once every stepped counter has stepped: energy before a
            // counter's first step cannot be placed in time.
            let origin = sampler.now();
            sampler.settle(origin);
            let _ = ready_tx.send(());
            let mut windows: Vec<crate::window::Pending> = Vec::new();
            sampler.run_until(|s, _| {
                while let Ok(request) = req_rx.try_recv() {
                    request.answer(s, &mut windows);
                }
                if let Some(folder) = &mut folder {
                    folder.maybe_fold(s);
                }
                if !windows.is_empty() {
                    let now = s.now();
                    windows.retain(|w| !w.try_answer(&s.timeline, &answers_from, now, false));
                    // Windows waiting for their next reading keep the counters watched
                    // closely, as a running span does.
                    s.hold_active(!windows.is_empty());
                }
                if failed_flag.get().is_none()
                    && let Some(why) = s.first_ended()
                {
                    let _ = failed_flag.set(why);
                }
                flag.load(Ordering::Acquire)
            });
            // Likewise every stepped counter steps once more, so the last spans are covered.
            let end = sampler.now();
            sampler.settle(end);
            let _ = sampler.look_at_spans();
            while let Ok(request) = req_rx.try_recv() {
                request.answer(&mut sampler, &mut windows);
            }
            for w in &windows {
                w.try_answer(&sampler.timeline, &answers_from, end, true);
            }
            if let Some(folder) = &mut folder {
                // The last stretch is folded too, so the totals hold the whole run.
                folder.fold(&mut sampler);
            }
            // Ends the aggregator, once it has folded everything sent.
            drop(folder);
            sampler.finish()
        });
        let handle = match handle {
            Ok(handle) => handle,
            Err(e) => {
                // Nothing started: leave no global state behind, so a later start can work.
                RUNNING.store(false, Ordering::Release);
                return Err(ProfileError::Spawn(e.to_string()));
            }
        };
        // Spans count only once the first reading exists, so none falls before the timeline.
        let _ = ready_rx.recv();
        span::set_sync_hook(self.sync);
        ACTIVE.store(true, Ordering::Release);
        Ok(Profiler {
            start_raw,
            started_at,
            stop,
            failed,
            handle: Some(handle),
            requests: req_tx,
            alarm,
            live: live_handle,
            live_thread,
            sources: described,
            unavailable: self.unavailable,
        })
    }
}

/// What a [`Profiler`] asks of its sampler thread, answered between two reads.
#[cfg_attr(not(feature = "bench"), allow(dead_code))]
enum Request {
    Snapshot(std::sync::mpsc::SyncSender<(Timeline, SpanLog)>),
    Discard(crate::attribute::Window, std::sync::mpsc::SyncSender<usize>),
    Share(usize, std::sync::mpsc::SyncSender<usize>),
    Window(crate::window::Pending),
}

impl Request {
    /// Answers with the span rings drained first, so that the answer covers every edge made
    /// before the request.
    fn answer<C: crate::sampler::clock::SamplerClock>(
        self,
        s: &mut Sampler<C>,
        windows: &mut Vec<crate::window::Pending>,
    ) {
        match self {
            Request::Snapshot(reply) => {
                let _ = reply.send(s.snapshot());
            }
            Request::Discard(w, reply) => {
                let _ = s.look_at_spans();
                let _ = reply.send(s.spans.discard_within(w.start, w.end));
            }
            Request::Share(parts, reply) => {
                let _ = s.look_at_spans();
                let _ = reply.send(s.spans.share_room(parts));
            }
            Request::Window(pending) => windows.push(pending),
        }
    }
}

/// A running profile. [`stop`](Profiler::stop) it to get the [`Recording`].
#[derive(Debug)]
pub struct Profiler {
    start_raw: u64,
    started_at: SystemTime,
    stop: Arc<AtomicBool>,
    /// Set by the sampler when a domain stops being read (a failed read, a lost GPU).
    failed: Arc<std::sync::OnceLock<(Nanos, String)>>,
    handle: Option<JoinHandle<(Timeline, SpanLog)>>,
    /// Asks things of the sampler thread, which owns the recording.
    requests: std::sync::mpsc::Sender<Request>,
    /// Wakes the sampler from its rest when a window begins.
    pub(crate) alarm: Arc<Alarm>,
    live: Option<crate::live::Live>,
    live_thread: Option<JoinHandle<()>>,
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
    /// Why the sampler stopped early, if it did (it panicked): the timeline and spans are
    /// then empty, and no figure can be made.
    pub failure: Option<String>,
}

impl Profiler {
    /// A builder; with no source added, [`probe_sources`] chooses.
    pub fn builder() -> ProfilerBuilder {
        ProfilerBuilder {
            sources: Vec::new(),
            unavailable: Vec::new(),
            selection_errors: Vec::new(),
            probed: false,
            live: None,
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

    /// A copy of the readings and spans recorded so far, without stopping (the sampler
    /// makes it between two reads). None if the sampler has stopped.
    pub fn snapshot(&self) -> Option<(Timeline, SpanLog)> {
        self.ask(Request::Snapshot)
    }

    /// Removes from the recording every span that began and ended within `window`, e.g. a
    /// benchmark's warm-up, which no figure uses and which must not fill the log; returns
    /// how many span edges went. None if the sampler has stopped.
    #[cfg_attr(not(feature = "bench"), allow(dead_code))]
    pub(crate) fn discard_spans(&self, window: crate::attribute::Window) -> Option<usize> {
        self.ask(|reply| Request::Discard(window, reply))
    }

    /// Gives what follows (a benchmark) its share of the span log's room left, with `parts`
    /// benchmarks still to run; returns how many span edges that is.
    #[cfg_attr(not(feature = "bench"), allow(dead_code))]
    pub(crate) fn share_span_log(&self, parts: usize) -> Option<usize> {
        self.ask(|reply| Request::Share(parts, reply))
    }

    /// The energy of every domain between `start` and `end`, once readings cover them.
    pub(crate) fn window_energy(
        &self,
        start: Nanos,
        end: Nanos,
        label: &'static str,
    ) -> Result<crate::window::WindowEnergy, crate::window::WindowError> {
        use crate::window::{ANSWER_WAIT, Pending, WindowError};
        let (reply, rx) = std::sync::mpsc::sync_channel(1);
        self.requests
            .send(Request::Window(Pending { start, end, label, reply }))
            .map_err(|_| WindowError::Stopped)?;
        rx.recv_timeout(ANSWER_WAIT).map_err(|e| match e {
            std::sync::mpsc::RecvTimeoutError::Timeout => WindowError::Timeout,
            std::sync::mpsc::RecvTimeoutError::Disconnected => WindowError::Stopped,
        })
    }

    fn ask<T>(&self, request: impl FnOnce(std::sync::mpsc::SyncSender<T>) -> Request) -> Option<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.requests.send(request(tx)).ok()?;
        rx.recv_timeout(std::time::Duration::from_secs(5)).ok()
    }

    /// Which domain stopped being read, when and why, once one has (a read that failed or
    /// panicked, a lost GPU, a non-finite reading): a harness can stop there rather than
    /// measure on with figures it cannot use. Lock-free.
    pub fn failure(&self) -> Option<(Nanos, &str)> {
        self.failed.get().map(|(t, why)| (*t, why.as_str()))
    }

    /// The running totals of a live profile ([`ProfilerBuilder::live`]); None otherwise.
    pub fn live(&self) -> Option<crate::live::Live> {
        self.live.clone()
    }

    /// The sources being read.
    pub fn sources(&self) -> &[SourceInfo] {
        &self.sources
    }

    /// Stops sampling and returns what was recorded. Spans still open end now.
    pub fn stop(mut self) -> Recording {
        let (recorded, failure) = match self.finish() {
            Some(Ok(recorded)) => (recorded, None),
            Some(Err(why)) => (Default::default(), Some(why)),
            None => (Default::default(), Some("the profile was already stopped".to_owned())),
        };
        let (timeline, spans) = recorded;
        Recording {
            started_at: self.started_at,
            timeline,
            spans,
            sources: std::mem::take(&mut self.sources),
            unavailable: std::mem::take(&mut self.unavailable),
            failure,
        }
    }

    /// Stops the sampler; what it recorded, or why it has nothing (its panic's message).
    fn finish(&mut self) -> Option<Result<(Timeline, SpanLog), String>> {
        let handle = self.handle.take()?;
        ACTIVE.store(false, Ordering::Release);
        span::set_sync_hook(None);
        self.stop.store(true, Ordering::Release);
        let out = handle.join().map_err(|panic| {
            format!("the sampler thread panicked: {}", crate::sampler::panic_message(panic.as_ref()))
        });
        // The sampler dropped its sender: the aggregator ends once its last fold is in.
        if let Some(thread) = self.live_thread.take() {
            let _ = thread.join();
        }
        RUNNING.store(false, Ordering::Release);
        Some(out)
    }
}

impl Drop for Profiler {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

fn describe(sources: &[Box<dyn Source>]) -> Vec<SourceInfo> {
    sources
        .iter()
        .map(|s| SourceInfo {
            kind: s.kind(),
            provenance: s.kind().label(s.modelled()),
            description: s.describe(),
            domains: s.domains().to_vec(),
        })
        .collect()
}
