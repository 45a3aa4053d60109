//! A criterion [`Measurement`] of energy (feature `criterion`): an ordinary criterion bench
//! measures joules per iteration, with criterion's own statistics, baselines and HTML report.
//!
//! ```no_run
//! use criterion::{Criterion, criterion_group, criterion_main};
//! use joules::criterion::Energy;
//!
//! fn bench(c: &mut Criterion<Energy>) {
//!     c.bench_function("sum", |b| b.iter(|| (0..100_000u64).sum::<u64>()));
//! }
//!
//! criterion_group! {
//!     name = benches;
//!     config = Criterion::default().with_measurement(Energy::new());
//!     targets = bench
//! }
//! criterion_main!(benches);
//! ```
//!
//! A sample's energy is the counters' difference over every iteration criterion batches into
//! it, summed over the domains no other contains (package and a GPU's energy counter, not
//! package and its cores). The sources are probed as `cargo joules bench` probes them (RAPL
//! where it can be read, else the CPU-time estimate; NVIDIA GPUs with an energy counter on
//! top), and said once on stderr: criterion's report has no place for where a figure came
//! from. GPUs without an energy counter are left out: their power, read at a sample's two
//! ends only, would not integrate to anything.
//!
//! Counters move in steps (RAPL about every millisecond): a sample shorter than
//! [`MIN_PERIODS`] steps is off by up to a step's energy at each end. When the measurement is
//! dropped it says how many of its samples (criterion's warm-up included) were that short,
//! and how to lengthen them; criterion batches iterations into samples itself, so this is
//! the lever.
//!
//! This is criterion 0.8's `Measurement`. A bench id measured both in time and in joules
//! shares one baseline folder: give energy benches their own names or groups.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use criterion::Throughput;
use criterion::measurement::{Measurement, ValueFormatter};

use crate::source::{ReadCtx, Source, SourceKind};
use crate::units::{Joules, Nanos};

/// Samples shorter than this many counter updates get a warning.
pub const MIN_PERIODS: u64 = 100;

/// A reading in joules, or why it failed.
type Reading = Result<f64, String>;

/// How long a reading may take before the bench stops: a source that hangs must not hang
/// the bench with it.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Energy, in joules, as a criterion measurement.
pub struct Energy {
    /// Asks the reader thread for a reading, and gets it back; None once dropped.
    reader: Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<Reading>)>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Where the figures come from, e.g. "package-0: measured (RAPL powercap)".
    provenance: String,
    /// The longest update period of the domains summed.
    period: Nanos,
    /// Samples taken, and how many of them were shorter than [`MIN_PERIODS`] periods.
    samples: AtomicU64,
    short: AtomicU64,
}

impl std::fmt::Debug for Energy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Energy").field("provenance", &self.provenance).finish_non_exhaustive()
    }
}

impl Energy {
    /// Reads this machine's energy counters, probed as `cargo joules bench` probes them;
    /// panics if none can be opened, not even the CPU-time estimate (a bench cannot run then),
    /// or if `JOULES_SOURCES` / `JOULES_DOMAINS` name what this machine does not offer.
    pub fn new() -> Self {
        let (sources, unavailable, selection_errors) =
            crate::profiler::probed(crate::source::Probe::from_env());
        assert!(selection_errors.is_empty(), "joules: {}", selection_errors.join("; "));
        assert!(
            !sources.is_empty(),
            "joules: no energy source could be opened: {}",
            unavailable.iter().map(|u| format!("{}: {}", u.source, u.reason)).collect::<Vec<_>>().join("; ")
        );
        Self::with_sources(sources)
    }

    /// Reads these sources (a simulator in tests, or a source set up by hand); panics if
    /// there are none, or if none has a domain to sum.
    ///
    /// They are read on a thread of their own, as the profiler's sampler reads them: the
    /// CPU-time estimate leaves its reader's time out, and here that is the measuring, not
    /// the measured. Sources that integrate sampled power are left out (see the module).
    pub fn with_sources(sources: Vec<Box<dyn Source>>) -> Self {
        let (sources, integrated): (Vec<_>, Vec<_>) = sources
            .into_iter()
            .partition(|s| !matches!(s.kind(), SourceKind::NvmlPower | SourceKind::HwmonPower));
        for s in &integrated {
            eprintln!(
                "joules: criterion leaves out {}: sampled power read at a sample's two ends integrates to nothing",
                s.describe()
            );
        }
        let top: Vec<Vec<usize>> = sources
            .iter()
            .map(|s| (0..s.domains().len()).filter(|&i| s.domains()[i].part_of.is_none()).collect())
            .collect();
        let provenance = sources
            .iter()
            .zip(&top)
            .flat_map(|(s, top)| {
                top.iter().map(move |&i| format!("{}: {}", s.domains()[i].id, s.kind().provenance()))
            })
            .collect::<Vec<_>>()
            .join("; ");
        assert!(!provenance.is_empty(), "joules: criterion was given no energy domain to read");
        let period = sources
            .iter()
            .zip(&top)
            .flat_map(|(s, top)| top.iter().map(move |&i| s.domains()[i].update_period))
            .max()
            .unwrap_or(Nanos(0));
        eprintln!("joules: criterion measures energy from {provenance}");
        let (ask, asked) = mpsc::channel::<()>();
        let (answer, answers) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("joules-criterion".into())
            .spawn(move || read_on_request(sources, top, asked, answer))
            .expect("a thread to read the energy counters on");
        Energy {
            reader: Mutex::new(Some((ask, answers))),
            thread: Some(thread),
            provenance,
            period,
            samples: AtomicU64::new(0),
            short: AtomicU64::new(0),
        }
    }

    /// Where the figures come from.
    pub fn provenance(&self) -> &str {
        &self.provenance
    }

    /// The energy read so far, summed over the domains no other contains.
    fn read(&self) -> f64 {
        let channel = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let Some((ask, answers)) = channel.as_ref() else { panic!("joules: the measurement was dropped") };
        if ask.send(()).is_err() {
            panic!("joules: the energy reader thread is gone");
        }
        match answers.recv_timeout(READ_TIMEOUT) {
            Ok(Ok(joules)) => joules,
            // A source that fails mid-bench would make every later figure wrong: stop.
            Ok(Err(e)) => panic!("joules: {e}"),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("joules: reading the energy counters took over {READ_TIMEOUT:?}")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("joules: the energy reader thread is gone"),
        }
    }
}

impl Drop for Energy {
    fn drop(&mut self) {
        // The sources go with their thread: stop it and wait, so that nothing of theirs
        // (a simulator's tap, an open device) outlives the measurement.
        self.reader.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let (short, samples) = (self.short.load(Ordering::Relaxed), self.samples.load(Ordering::Relaxed));
        if short > 0 {
            let floor = Duration::from_nanos(self.period.0.saturating_mul(MIN_PERIODS));
            eprintln!(
                "joules: {short} of {samples} samples (criterion's warm-up included) took under \
                 {MIN_PERIODS} updates of the energy counter ({floor:?}): each is off by up to a \
                 counter step at either end. Lengthen them: a longer `measurement_time`, a smaller \
                 `sample_size`, or more work per iteration."
            );
        }
    }
}

/// The reader thread: one reading per request, until the measurement is dropped.
fn read_on_request(
    mut sources: Vec<Box<dyn Source>>,
    top: Vec<Vec<usize>>,
    asked: mpsc::Receiver<()>,
    answer: mpsc::Sender<Reading>,
) {
    let origin = Instant::now();
    let mut buf = Vec::new();
    while asked.recv().is_ok() {
        let ctx = ReadCtx { now: Nanos(origin.elapsed().as_nanos() as u64) };
        let mut total = Ok(0.0);
        for (source, top) in sources.iter_mut().zip(&top) {
            buf.clear();
            buf.resize(source.domains().len(), Joules(0.0));
            match source.read(&ctx, &mut buf) {
                Ok(()) => total = total.map(|t| t + top.iter().map(|&i| buf[i].0).sum::<f64>()),
                Err(e) => total = Err(format!("reading {} failed: {e}", source.describe())),
            }
        }
        if answer.send(total).is_err() {
            return;
        }
    }
}

impl Default for Energy {
    fn default() -> Self {
        Self::new()
    }
}

impl Measurement for Energy {
    type Intermediate = (Instant, f64);
    type Value = f64;

    fn start(&self) -> Self::Intermediate {
        (Instant::now(), self.read())
    }

    fn end(&self, (started, before): Self::Intermediate) -> Self::Value {
        let after = self.read();
        let floor = Duration::from_nanos(self.period.0.saturating_mul(MIN_PERIODS));
        self.samples.fetch_add(1, Ordering::Relaxed);
        if started.elapsed() < floor {
            self.short.fetch_add(1, Ordering::Relaxed);
        }
        after - before
    }

    fn add(&self, v1: &Self::Value, v2: &Self::Value) -> Self::Value {
        v1 + v2
    }

    fn zero(&self) -> Self::Value {
        0.0
    }

    fn to_f64(&self, value: &Self::Value) -> f64 {
        *value
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &JoulesFormatter
    }
}

/// Formats joules with a unit per figure, and throughput as elements (or bytes) per joule.
struct JoulesFormatter;

/// Units per iteration, and its rate's unit per prefix: none, k, M, G, T.
fn units_of(throughput: &Throughput) -> (f64, [&'static str; 5]) {
    match throughput {
        Throughput::Bits(n) => (*n as f64, ["bits/J", "Kbits/J", "Mbits/J", "Gbits/J", "Tbits/J"]),
        Throughput::Bytes(n) | Throughput::BytesDecimal(n) => {
            (*n as f64, ["B/J", "KB/J", "MB/J", "GB/J", "TB/J"])
        }
        Throughput::Elements(n) | Throughput::ElementsAndBytes { elements: n, .. } => {
            (*n as f64, ["elem/J", "Kelem/J", "Melem/J", "Gelem/J", "Telem/J"])
        }
    }
}

impl ValueFormatter for JoulesFormatter {
    fn scale_values(&self, typical_value: f64, values: &mut [f64]) -> &'static str {
        let scale = crate::render::Scale::energy(typical_value);
        let (factor, unit) = (scale.factor(), scale.unit());
        for v in values.iter_mut() {
            *v *= factor;
        }
        unit
    }

    fn scale_throughputs(
        &self,
        typical_value: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let (per, units) = units_of(throughput);
        // One prefix for the set, from the typical rate.
        let typical = if typical_value > 0.0 { per / typical_value } else { 0.0 };
        let (factor, unit) = [(1e12, 4), (1e9, 3), (1e6, 2), (1e3, 1)]
            .into_iter()
            .find(|(f, _)| typical >= *f)
            .map_or((1.0, units[0]), |(f, i)| (f, units[i]));
        for v in values.iter_mut() {
            // A sample that drew no energy has no finite rate: criterion needs a number.
            *v = if *v > 0.0 { per / *v / factor } else { 0.0 };
        }
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "J"
    }
}
