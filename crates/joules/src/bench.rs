//! The benchmark harness that `cargo joules bench` drives.
//!
//! A bench target with `harness = false` ends in [`bench_main!`](crate::bench_main). Each
//! benchmark warms up, then runs a number of samples of many iterations while one profiler
//! records; every figure is then estimated per iteration over the samples. With `JOULES_OUT`
//! set (as `cargo joules bench` does) the report goes there as JSON; otherwise a table is
//! printed.

use std::hint::black_box;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::attribute::{SpanTree, Window};
use crate::exit::ExitCodes;
use crate::profiler::{Profiler, ProfilerBuilder};
use crate::report::Report;
use crate::summary::{self, SampleWindow};
use crate::units::Nanos;

/// Where the harness writes its report (set by `cargo joules bench`).
pub const OUT_ENV: &str = "JOULES_OUT";

/// How long and how often to measure.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchConfig {
    /// Time spent running the benchmark before measuring (`JOULES_WARM_UP_MS`, default 1000).
    pub warm_up: Duration,
    /// Samples per benchmark (`JOULES_SAMPLES`, default 10, at least 2).
    pub samples: u32,
    /// Target length of one sample (`JOULES_SAMPLE_MS`, default 300): hundreds of counter
    /// updates, so the edges of a sample matter little.
    pub sample_time: Duration,
    /// Time spent at rest before the benchmarks to measure idle power (`JOULES_IDLE_MS`,
    /// default 500; 0 skips it).
    pub idle: Duration,
    /// The model's training energy in joules and where the figure comes from
    /// (`JOULES_TRAINING_J`, `JOULES_TRAINING_SOURCE`), for every bench; it overrides one a
    /// bench declares ([`Bencher::training_energy`]).
    pub training: Option<(f64, String)>,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            warm_up: Duration::from_millis(1000),
            samples: 10,
            sample_time: Duration::from_millis(300),
            idle: Duration::from_millis(500),
            training: None,
        }
    }
}

impl BenchConfig {
    /// The defaults, overridden by `JOULES_WARM_UP_MS`, `JOULES_SAMPLES`, `JOULES_SAMPLE_MS`,
    /// `JOULES_IDLE_MS`, `JOULES_TRAINING_J` and `JOULES_TRAINING_SOURCE`.
    pub fn from_env() -> Result<Self, String> {
        let mut cfg = BenchConfig::default();
        let num = |key: &str| -> Result<Option<u64>, String> {
            match std::env::var(key) {
                Ok(v) => v.trim().parse().map(Some).map_err(|_| format!("{key}={v:?} is not a whole number")),
                Err(_) => Ok(None),
            }
        };
        if let Some(ms) = num("JOULES_WARM_UP_MS")? {
            cfg.warm_up = Duration::from_millis(ms);
        }
        if let Some(n) = num("JOULES_SAMPLES")? {
            if n < 2 {
                return Err(format!("JOULES_SAMPLES={n}: at least 2 samples give an interval"));
            }
            cfg.samples = u32::try_from(n).map_err(|_| "JOULES_SAMPLES is too large".to_owned())?;
        }
        if let Some(ms) = num("JOULES_SAMPLE_MS")? {
            cfg.sample_time = Duration::from_millis(ms.max(1));
        }
        if let Some(ms) = num("JOULES_IDLE_MS")? {
            cfg.idle = Duration::from_millis(ms);
        }
        if let Ok(v) = std::env::var("JOULES_TRAINING_J") {
            let joules: f64 = v
                .trim()
                .parse()
                .ok()
                .filter(|j: &f64| j.is_finite() && *j > 0.0)
                .ok_or_else(|| format!("JOULES_TRAINING_J={v:?} is not an energy in joules above 0"))?;
            let source = std::env::var("JOULES_TRAINING_SOURCE")
                .unwrap_or_else(|_| "declared by the user (JOULES_TRAINING_J)".to_owned());
            cfg.training = Some((joules, source));
        }
        Ok(cfg)
    }
}

/// Handed to each benchmark function; call [`iter`](Bencher::iter) once.
#[derive(Debug)]
pub struct Bencher<'a> {
    name: &'a str,
    profiler: &'a Profiler,
    config: &'a BenchConfig,
    samples: Vec<SampleWindow>,
    warnings: Vec<String>,
    notes: Vec<String>,
    inferences: u64,
    training: Option<(f64, String)>,
}

/// The update period of a stepped counter in whose intervals the regression found layers it
/// could not tell apart during `window` (a loop in step with that counter), if any.
fn phase_locked(profiler: &Profiler, window: Window) -> Option<Nanos> {
    let (tl, log) = profiler.snapshot()?;
    let tree = SpanTree::build(&log, tl.last_poll);
    let parts = crate::attribute::attribute(&tl, &tree, &log, &[window]);
    parts
        .iter()
        .flat_map(|a| a.domains.iter().zip(&tl.domains))
        .filter(|(share, td)| td.domain.update_period.0 > 0 && share.merged_with.iter().any(Option::is_some))
        .map(|(_, td)| td.domain.update_period)
        .min()
}

impl Bencher<'_> {
    /// Records what this benchmark says of itself in its report, e.g. the accuracy of the
    /// model variant it runs: `cargo joules compare --benches` shows it beside the joules
    /// a variant saved, as their quality cost.
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Declares how many inferences one iteration does (its batch: 64 images, 12
    /// sentences), so that reports give energy per inference. 1 where not declared.
    pub fn inferences_per_iter(&mut self, n: u64) {
        self.inferences = n.max(1);
    }

    /// Declares the energy it took to train the model this benchmark runs (`energy`, and
    /// `source`: where the figure comes from, e.g. the model card). The report then says after
    /// how many inferences running the model has cost more than training it.
    /// `cargo joules bench --training-energy` overrides it.
    /// An energy that is not above 0 (or not finite) is left out, with a warning.
    pub fn training_energy(&mut self, energy: crate::Joules, source: impl Into<String>) {
        if energy.0.is_finite() && energy.0 > 0.0 {
            self.training = Some((energy.0, source.into()));
        } else {
            self.warnings.push(format!(
                "Bencher::training_energy({} J) ignored: a training energy is a finite number of joules above 0",
                energy.0
            ));
        }
    }

    /// Measures `f`, the work of one iteration (e.g. one inference).
    pub fn iter<O>(&mut self, mut f: impl FnMut() -> O) {
        // Spans an iteration leaves open when it returns were forgotten (`mem::forget`):
        // they end there, or every later iteration would nest under them.
        let depth = crate::span::open_depth();
        let mut f = move || {
            black_box(f());
            crate::span::cut_above(depth);
        };
        let start = Instant::now();
        let warm_from = self.profiler.now();
        let mut n: u64 = 0;
        while n == 0 || start.elapsed() < self.config.warm_up {
            f();
            n += 1;
        }
        // A loop in step with a counter gives every counter interval the same mix of layers,
        // and the regression cannot tell them apart (it reports them merged). Then each
        // iteration starts after a random pause of up to one counter step, outside any span,
        // and samples are sized with the pauses counted.
        let warm_up = Window { start: warm_from, end: self.profiler.now() };
        let dither = phase_locked(self.profiler, warm_up);
        // No figure uses the warm-up's spans: they must not fill the log (as a warm-up
        // millions of spans long would, leaving the samples none).
        if self.profiler.discard_spans(warm_up).is_none() {
            self.warnings.push(
                "the sampler did not answer within 5 s when asked to drop the warm-up's spans: \
                 they fill the span log, and later spans may be dropped"
                    .to_owned(),
            );
        }
        let pauses = dither.map_or(0, |step| u128::from(step.0 / 2));
        let per_iter = (start.elapsed().as_nanos() / u128::from(n) + pauses).max(1);
        if let Some(step) = dither {
            self.warnings.push(format!(
                "the loop ran in step with the energy counter (layers could not be told apart): \
                 each iteration started after a random pause of up to {} us, outside any span \
                 (in the totals, not in any span's figures)",
                step.0 / 1000
            ));
        }
        let mut rng = 0x9E37_79B9_7F4A_7C15_u64 ^ per_iter as u64;
        let mut pause = || {
            if let Some(step) = dither {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let until = Instant::now() + Duration::from_nanos(rng % step.0.max(1));
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
            }
        };
        let iterations =
            u64::try_from(self.config.sample_time.as_nanos() / per_iter).unwrap_or(u64::MAX).max(1);
        let progress = Progress::new(self.name, self.config, iterations);
        for _ in 0..self.config.samples {
            let t0 = self.profiler.now();
            for _ in 0..iterations {
                pause();
                f();
            }
            let t1 = self.profiler.now();
            progress.sample_done();
            self.samples.push(SampleWindow { window: Window { start: t0, end: t1 }, iterations });
            if self.profiler.failure().is_some() {
                // Its figures are unusable: the harness ends the run, saying why.
                break;
            }
        }
    }
}

/// A benchmark: its name and function.
pub type Bench = (&'static str, fn(&mut Bencher<'_>));

/// Runs `benches` (those matching the command-line filters) on the probed sources, then writes
/// or prints the report.
pub fn run(benches: &[Bench]) -> ExitCode {
    run_with(Profiler::builder(), benches)
}

/// As [`run`], with a profiler configured by the caller (e.g. on the simulated source).
pub fn run_with(profiler: ProfilerBuilder, benches: &[Bench]) -> ExitCode {
    match run_inner(profiler, benches) {
        Ok(code) => code,
        Err((code, msg)) => {
            eprintln!("joules: error: {msg}");
            ExitCode::from(code)
        }
    }
}

fn run_inner(builder: ProfilerBuilder, benches: &[Bench]) -> Result<ExitCode, (u8, String)> {
    let config = BenchConfig::from_env().map_err(|e| (ExitCodes::USAGE, e))?;
    // cargo passes `--bench`; the other arguments are name filters.
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let selected: Vec<&Bench> = benches
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    let profiler = builder.start().map_err(|e| (ExitCodes::NO_SOURCE, e.to_string()))?;
    for s in profiler.sources() {
        eprintln!("joules: source: {} ({})", s.provenance, s.description);
    }
    let idle_windows = measure_idle(&profiler, config.idle);
    let mut windows = Vec::new();
    for (i, (name, f)) in selected.iter().enumerate() {
        // Each bench gets its share of the span log: a runaway one cannot starve the next.
        let shared = profiler.share_span_log(selected.len() - i);
        let mut b = Bencher {
            name,
            profiler: &profiler,
            config: &config,
            samples: Vec::new(),
            warnings: Vec::new(),
            notes: Vec::new(),
            inferences: 1,
            training: None,
        };
        if shared.is_none() {
            b.warnings.push(
                "the sampler did not answer within 5 s when asked to give this bench its share of \
                 the span log: it may run short of room for spans"
                    .to_owned(),
            );
        }
        f(&mut b);
        // Found between samples, not after every bench has run for minutes (a stop after the
        // last sample is left to the check below, which forgives it).
        if let Some((t, why)) = profiler.failure()
            && b.samples.last().is_some_and(|s| t < s.window.end)
        {
            let why = why.to_owned();
            drop(profiler.stop());
            return Err((
                ExitCodes::SOURCE_FAILED,
                format!("an energy source failed during the run, so no report was written: {why}"),
            ));
        }
        if b.samples.is_empty() {
            return Err((ExitCodes::USAGE, format!("benchmark `{name}` never called Bencher::iter")));
        }
        let training = config.training.clone().or(b.training);
        windows.push((*name, b.samples, b.warnings, (b.notes, b.inferences, training)));
    }
    let rec = profiler.stop();
    if let Some(why) = &rec.failure {
        return Err((ExitCodes::SOURCE_FAILED, format!("no figures: {why}")));
    }
    // A source that failed or a device that was lost before the last sample ended leaves
    // figures short: the run must not pass a gate or become a baseline (a broken run would
    // read as an improvement), so it ends here, saying what stopped when and why. (One that
    // stops while the profile settles after the last sample lost nothing.)
    let measured_until = windows.iter().flat_map(|(_, s, _, _)| s.iter().map(|s| s.window.end)).max();
    let failed: Vec<String> = rec
        .timeline
        .domains
        .iter()
        .filter(|d| d.ended.as_ref().is_some_and(|(t, _)| measured_until.is_none_or(|end| *t < end)))
        .filter_map(|d| {
            d.ended
                .as_ref()
                .map(|(t, why)| format!("{} stopped at {} ms ({why})", d.domain.id, t.0 / 1_000_000))
        })
        .collect();
    if !failed.is_empty() {
        return Err((
            ExitCodes::SOURCE_FAILED,
            format!(
                "an energy source failed during the run, so no report was written: {}",
                failed.join("; ")
            ),
        ));
    }
    let tree = SpanTree::build(&rec.spans, rec.end());
    let warnings = summary::recording_warnings(&rec, &tree);
    let idle = (!idle_windows.is_empty())
        .then(|| summary::idle_power(&rec.timeline, &tree, &rec.spans, &idle_windows));
    let benches = windows
        .iter()
        .map(|(name, samples, own, (notes, inferences, training))| {
            let mut bench = summary::summarize(
                name,
                &rec.timeline,
                &tree,
                &rec.spans,
                samples,
                idle.as_deref(),
                warnings.iter().chain(own).cloned().collect(),
            );
            bench.notes.clone_from(notes);
            bench.inferences_per_iteration = *inferences;
            if let Some((joules, source)) = training {
                bench.set_training(*joules, source.clone());
            }
            bench
        })
        .collect();
    let report = Report::new(rec.sources, rec.unavailable, benches);
    match std::env::var_os(OUT_ENV) {
        Some(path) => {
            let path = PathBuf::from(path);
            report.write_atomic(&path).map_err(|e| (ExitCodes::BENCH_FAILED, e.to_string()))?;
        }
        None => print!("{}", crate::render::table(&report)),
    }
    Ok(ExitCode::SUCCESS)
}

/// Sleeps through `total`, in five windows, so each domain's idle power gets an interval.
fn measure_idle(profiler: &Profiler, total: Duration) -> Vec<Window> {
    if total.is_zero() {
        return Vec::new();
    }
    eprintln!("joules: measuring idle power for {} ms", total.as_millis());
    (0..5)
        .map(|_| {
            let start = profiler.now();
            std::thread::sleep(total / 5);
            Window { start, end: profiler.now() }
        })
        .collect()
}

/// A progress bar on a terminal for runs over a second; plain lines otherwise.
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn new(name: &str, config: &BenchConfig, iterations: u64) -> Self {
        let long = config.sample_time * config.samples > Duration::from_secs(1);
        if long && std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(u64::from(config.samples));
            bar.set_style(
                indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} samples, {eta} left")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar.set_message(format!("joules: {name}: {iterations} iterations per sample"));
            Progress(Some(bar))
        } else {
            eprintln!(
                "joules: {name}: {} samples x {iterations} iterations (~{} ms each)",
                config.samples,
                config.sample_time.as_millis()
            );
            Progress(None)
        }
    }

    fn sample_done(&self) {
        if let Some(bar) = &self.0 {
            bar.inc(1);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
