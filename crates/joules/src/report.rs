//! Reports: what a run measured, where every figure came from, as versioned JSON.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::host::Host;
use crate::profiler::{SourceInfo, Unavailable};
use crate::source::{DomainKind, SourceKind};
use crate::stats::Estimate;

/// The report format's version. Readers refuse reports with another one.
pub const SCHEMA: u32 = 1;

/// A run's results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Format version: [`SCHEMA`].
    pub schema: u32,
    /// `joules <version>`.
    pub tool: String,
    /// When the run ended, in seconds since the Unix epoch.
    pub created_unix_s: u64,
    /// The machine.
    pub host: Host,
    /// The sources read, with their domains.
    pub sources: Vec<SourceInfo>,
    /// The sources that could not be used, and why.
    pub unavailable: Vec<Unavailable>,
    /// One entry per benchmark (or profile).
    pub benches: Vec<BenchReport>,
    /// Process runs merged into this report (`cargo joules bench --runs N`); each figure then
    /// keeps every run's value ([`Estimate::runs`]).
    #[serde(default = "one_run")]
    pub runs: u32,
}

fn one_run() -> u32 {
    1
}

/// One benchmark: figures are per iteration, estimated over samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// The benchmark's name.
    pub name: String,
    /// The samples taken.
    pub samples: Vec<SampleInfo>,
    /// Per domain totals.
    pub domains: Vec<DomainReport>,
    /// Per span path, parents before children.
    pub spans: Vec<SpanReport>,
    /// Anything that makes these figures less trustworthy.
    pub warnings: Vec<String>,
    /// What the benchmark said of itself ([`Bencher::note`](crate::bench::Bencher::note)),
    /// e.g. the accuracy of the model variant it ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Inferences one iteration does (its batch), as the bench declared
    /// ([`Bencher::inferences_per_iter`](crate::bench::Bencher::inferences_per_iter)); 1 where
    /// it did not.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub inferences_per_iteration: u64,
    /// The model's training energy where one was declared, and when inference overtakes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<Training>,
}

fn one() -> u64 {
    1
}

fn is_one(n: &u64) -> bool {
    *n == 1
}

/// A model's training energy, declared (it is not measured here), and the number of
/// inferences after which running the model has used more energy than training it did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Training {
    /// The declared energy, in joules.
    pub energy_j: f64,
    /// Where the figure comes from (a model card, a paper, the user's own estimate).
    pub source: String,
    /// `energy_j` over the energy of one inference (the bench's energy per iteration summed
    /// over the domains no other contains, over its inferences per iteration), with its
    /// interval; absent where the bench measured no energy.
    pub break_even_inferences: Option<Estimate>,
}

impl BenchReport {
    /// Energy per iteration over every domain that no other domain contains (package and
    /// GPU, not package and its cores), with an interval from the per-sample sums.
    pub fn energy_per_iteration(&self) -> Option<Estimate> {
        let top: Vec<&Estimate> =
            self.domains.iter().filter(|d| d.part_of.is_none()).map(|d| &d.total_j).collect();
        Estimate::sum(&top)
    }

    /// Energy per inference: [`energy_per_iteration`](Self::energy_per_iteration) over the
    /// inferences an iteration does.
    pub fn energy_per_inference(&self) -> Option<Estimate> {
        let per = self.inferences_per_iteration.max(1) as f64;
        self.energy_per_iteration().map(|e| e.scaled(1.0 / per))
    }

    /// Declares the model's training energy (`energy_j` joules, from `source`) and works out
    /// when inference overtakes it from this bench's figures.
    pub fn set_training(&mut self, energy_j: f64, source: impl Into<String>) {
        let break_even_inferences = self.energy_per_inference().and_then(|e| e.per_unit(energy_j));
        self.training = Some(Training { energy_j, source: source.into(), break_even_inferences });
    }
}

/// One sample of a benchmark.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleInfo {
    /// Iterations run.
    pub iterations: u64,
    /// Wall time.
    pub duration_ns: u64,
}

/// A domain's energy per iteration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DomainReport {
    /// The domain id, e.g. `package-0`.
    pub domain: String,
    /// What it covers.
    pub kind: DomainKind,
    /// The domain that already contains this one's energy, if any.
    pub part_of: Option<String>,
    /// Who read it.
    pub source: SourceKind,
    /// "measured (RAPL powercap)", "estimated from CPU time", "simulated".
    pub provenance: String,
    /// How energy was attributed to spans, e.g. "regression (5 paths), time-share (1 path)".
    pub method: String,
    /// Median uncertainty of the instants its readings were stamped at (ns): how well the
    /// sampler placed each counter step in time.
    #[serde(default)]
    pub step_uncertainty_ns: Option<u64>,
    /// The share of readings stamped precisely enough for the regression.
    #[serde(default)]
    pub precise_readings: Option<f64>,
    /// The counter's step.
    pub resolution_j: f64,
    /// How often the counter changes (0: continuously).
    pub update_period_ns: u64,
    /// Whether that period was measured on this machine at start (else it is nominal).
    pub update_period_measured: bool,
    /// All energy per iteration.
    pub total_j: Estimate,
    /// Energy per iteration while no span ran.
    pub unattributed_j: Estimate,
    /// The domain's power at rest, measured before the benchmarks ran (absent for a plain
    /// profile).
    pub idle_w: Option<Estimate>,
    /// `total_j` less what idle power would have used over the time the domain was read.
    pub above_idle_j: Option<Estimate>,
    /// Why the domain stopped being read early, if it did.
    pub ended: Option<String>,
}

/// A span path's time and energy per iteration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpanReport {
    /// Span names from the outermost, joined by `/`.
    pub path: String,
    /// 0 for a root span.
    pub depth: u32,
    /// Calls per iteration.
    pub calls: Estimate,
    /// Time as the innermost span, per iteration.
    pub exclusive_ns: Estimate,
    /// Time inside, descendants included, per iteration.
    pub inclusive_ns: Estimate,
    /// Energy per domain, in the order of [`BenchReport::domains`].
    pub energy: Vec<SpanEnergy>,
    /// Cautions about these figures.
    pub flags: Vec<Flag>,
    /// Where the innermost span is in the code (absent in reports from before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<SpanSite>,
    /// Operations declared in its calls (`#[measure_energy(ops = ...)]`, `joules::add_ops`),
    /// per iteration; absent where neither it nor a span inside it declared any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops: Option<SpanOps>,
}

/// The operations a span path declared, per iteration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpanOps {
    /// Declared in its own calls.
    pub exclusive: Estimate,
    /// Its own and its descendants': what its inclusive joules paid for.
    pub inclusive: Estimate,
    /// Per call: its own.
    pub per_call: f64,
}

/// Where a span is in the code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanSite {
    /// `module_path!()` at the span.
    pub module: String,
    /// `file!()` at the span.
    pub file: String,
    /// `line!()` at the span.
    pub line: u32,
}

/// A span path's energy in one domain, per iteration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpanEnergy {
    /// The domain id.
    pub domain: String,
    /// As the innermost span.
    pub exclusive_j: Estimate,
    /// Descendants included.
    pub inclusive_j: Estimate,
    /// `exclusive_j` less what idle power would have used in the span's share of the wall
    /// time (idle is drawn once per instant, however many threads run the span).
    pub exclusive_above_idle_j: Option<Estimate>,
    /// How its energy was attributed: "regression" or "time-share".
    #[serde(default = "time_share_name")]
    pub method: String,
    /// Inclusive operations per inclusive joule, its interval from the joules'; absent
    /// without declared operations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops_per_j: Option<Estimate>,
}

fn time_share_name() -> String {
    "time-share".to_owned()
}

/// A caution attached to a span's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "flag", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Flag {
    /// A call is shorter than the counter's update period: its energy comes from how power
    /// was shared over longer intervals, not from the counter changing during the call.
    BelowResolution {
        /// The domain.
        domain: String,
        /// Mean time per call, exclusive.
        call_ns: u64,
        /// The counter's update period (or a continuous source's reading interval).
        update_period_ns: u64,
    },
    /// Spans entered inside this one were dropped (a full span ring or log): their time and
    /// energy are in this span's exclusive figures, not in their own.
    SpansDropped,
    /// A span of this path was not left by its own guard: an enclosing span's exit ended it
    /// (its guard was dropped after that one's), or it was still open when the profile
    /// stopped. Spans its thread entered meanwhile nested under it.
    NotLeft,
    /// A span entered inside this one never ended: its guard was forgotten (`mem::forget`)
    /// or leaked. It is left out of the report, so that later spans nest where they ran; its
    /// time and energy are in this span's exclusive figures.
    ForgottenInside,
    /// The regression could not tell this path from others: their busy times always moved
    /// together (e.g. a loop in step with the counter). The group shares one power, and each
    /// member's joules are that power times its own time.
    Merged {
        /// The domain.
        domain: String,
        /// The other members ("(outside spans)" for time no span covered).
        with: Vec<String>,
    },
}

/// A report could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// I/O failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Not a joules report, or a damaged one.
    #[error("{}: not a valid joules report ({reason})", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Written by a joules with another report format.
    #[error("{}: report schema {found}, this joules reads schema {SCHEMA}", path.display())]
    Schema {
        /// The file.
        path: PathBuf,
        /// Its schema.
        found: u64,
    },
}

/// Makes a file written through a temporary one readable by all, as a file created in place
/// would be (a temporary file is created private, 0600).
pub fn readable(file: &std::fs::File) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

impl Report {
    /// A report of this machine, now.
    pub fn new(sources: Vec<SourceInfo>, unavailable: Vec<Unavailable>, benches: Vec<BenchReport>) -> Self {
        let created_unix_s =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Report {
            schema: SCHEMA,
            tool: format!("joules {}", env!("CARGO_PKG_VERSION")),
            created_unix_s,
            host: Host::current(),
            sources,
            unavailable,
            benches,
            runs: 1,
        }
    }

    /// Writes the report as JSON to `path` atomically: a temporary file in the same directory,
    /// then a rename, so readers never see half a report and a failed write loses nothing.
    pub fn write_atomic(&self, path: &Path) -> Result<(), ReportError> {
        let io = |source| ReportError::Io { path: path.to_owned(), source };
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        let json = serde_json::to_vec_pretty(self).expect("reports serialize");
        tmp.write_all(&json).map_err(io)?;
        tmp.write_all(b"\n").map_err(io)?;
        readable(tmp.as_file()).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    }

    /// Reads a report, refusing damaged, foreign or other-schema files.
    pub fn read(path: &Path) -> Result<Self, ReportError> {
        let bytes =
            std::fs::read(path).map_err(|source| ReportError::Io { path: path.to_owned(), source })?;
        Self::from_slice(path, &bytes)
    }

    /// Parses a report read from `path`.
    pub fn from_slice(path: &Path, bytes: &[u8]) -> Result<Self, ReportError> {
        let corrupt = |reason: String| ReportError::Corrupt { path: path.to_owned(), reason };
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
        let schema = value
            .get("schema")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| corrupt("no `schema` field".into()))?;
        if schema != u64::from(SCHEMA) {
            return Err(ReportError::Schema { path: path.to_owned(), found: schema });
        }
        serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))
    }
}
