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
//! it, summed over the domains no other contains (package and GPU, not package and its
//! cores). Counters move in steps (RAPL about every millisecond): a sample shorter than
//! [`MIN_PERIODS`] of them is off by up to a step's energy at each end, and the first such
//! sample prints a warning saying how to lengthen them. The source is chosen as
//! `cargo joules bench` chooses it (RAPL where it can be read, else the CPU-time estimate), and
//! said once on stderr: criterion's report has no place for where a figure came from.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::Instant;

use criterion::Throughput;
use criterion::measurement::{Measurement, ValueFormatter};

use crate::source::{ReadCtx, Source};
use crate::units::{Joules, Nanos};

/// Samples shorter than this many counter updates get a warning.
pub const MIN_PERIODS: u64 = 100;

/// A reading in joules, or why it failed.
type Reading = Result<f64, String>;

/// Energy, in joules, as a criterion measurement.
pub struct Energy {
    /// Asks the reader thread for a reading, and gets it back.
    reader: Mutex<(mpsc::Sender<()>, mpsc::Receiver<Reading>)>,
    /// Where the figures come from, e.g. "package-0: measured (RAPL powercap)".
    provenance: String,
    /// The longest update period of the domains read.
    period: Nanos,
    warned: AtomicBool,
}

impl std::fmt::Debug for Energy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Energy").field("provenance", &self.provenance).finish_non_exhaustive()
    }
}

impl Energy {
    /// Reads this machine's energy counters, probed as `cargo joules bench` probes them;
    /// panics if none can be opened, not even the CPU-time estimate (a bench cannot run then).
    pub fn new() -> Self {
        let (sources, unavailable) = crate::probe_sources();
        assert!(
            !sources.is_empty(),
            "joules: no energy source could be opened: {}",
            unavailable.iter().map(|u| format!("{}: {}", u.source, u.reason)).collect::<Vec<_>>().join("; ")
        );
        Self::with_sources(sources)
    }

    /// Reads these sources (a simulator in tests, or a source set up by hand).
    ///
    /// They are read on a thread of their own, as the profiler's sampler reads them: the
    /// CPU-time estimate leaves its reader's time out, and here that is the measuring, not
    /// the measured.
    pub fn with_sources(sources: Vec<Box<dyn Source>>) -> Self {
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
        let period = sources
            .iter()
            .flat_map(|s| s.domains().iter().map(|d| d.update_period))
            .max()
            .unwrap_or(Nanos(0));
        eprintln!("joules: criterion measures energy from {provenance}");
        let (ask, asked) = mpsc::channel::<()>();
        let (answer, answers) = mpsc::channel();
        std::thread::Builder::new()
            .name("joules-criterion".into())
            .spawn(move || read_on_request(sources, top, asked, answer))
            .expect("a thread to read the energy counters on");
        Energy { reader: Mutex::new((ask, answers)), provenance, period, warned: AtomicBool::new(false) }
    }

    /// Where the figures come from.
    pub fn provenance(&self) -> &str {
        &self.provenance
    }

    /// The energy read so far, summed over the domains no other contains.
    fn read(&self) -> f64 {
        let channel = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let reading = channel.0.send(()).ok().and_then(|()| channel.1.recv().ok());
        match reading {
            Some(Ok(joules)) => joules,
            // A source that fails mid-bench would make every later figure wrong: stop.
            Some(Err(e)) => panic!("joules: {e}"),
            None => panic!("joules: the energy reader thread is gone"),
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
        let took = started.elapsed();
        let floor = std::time::Duration::from_nanos(self.period.0.saturating_mul(MIN_PERIODS));
        if took < floor && !self.warned.swap(true, Ordering::Relaxed) {
            eprintln!(
                "joules: warning: a sample took {took:?}, under {MIN_PERIODS} updates of the energy \
                 counter ({floor:?}): its joules are off by up to a counter step at each end. \
                 Lengthen samples (a longer `measurement_time`, fewer `sample_size`, or more work \
                 per iteration)."
            );
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

fn units_of(throughput: &Throughput) -> (f64, &'static str) {
    match throughput {
        Throughput::Bits(n) => (*n as f64, "bits/J"),
        Throughput::Bytes(n) | Throughput::BytesDecimal(n) => (*n as f64, "B/J"),
        Throughput::Elements(n) | Throughput::ElementsAndBytes { elements: n, .. } => (*n as f64, "elem/J"),
    }
}

impl ValueFormatter for JoulesFormatter {
    fn scale_values(&self, typical_value: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = energy_unit(typical_value);
        for v in values.iter_mut() {
            *v *= factor;
        }
        unit
    }

    fn scale_throughputs(
        &self,
        _typical_value: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let (per, unit) = units_of(throughput);
        for v in values.iter_mut() {
            *v = if *v > 0.0 { per / *v } else { 0.0 };
        }
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "J"
    }
}

/// The factor and unit criterion is to show `typical` joules in.
fn energy_unit(typical: f64) -> (f64, &'static str) {
    const UNITS: [(f64, &str); 7] =
        [(1e9, "GJ"), (1e6, "MJ"), (1e3, "kJ"), (1.0, "J"), (1e-3, "mJ"), (1e-6, "µJ"), (1e-9, "nJ")];
    let &(f, unit) = UNITS.iter().find(|(f, _)| typical.abs() >= *f).unwrap_or(&UNITS[6]);
    (1.0 / f, unit)
}
