//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes:
    0    success
    2    usage or input error (bad arguments, a corrupt report)
    4    significant energy regression against the baseline
    5    reports not comparable (other machine or source)
    6    no energy source could be opened, not even the estimate
    7    doctor: no energy counter can be read (figures would be estimates)
    8    an energy source failed during the run (nothing gated or saved)
  101    the benchmarks failed to build
  102    cargo metadata failed
  103    a benchmark binary failed or wrote no report";

/// `cargo` runs `cargo-joules joules ...`; this root accepts exactly that.
#[derive(Debug, Parser)]
#[command(bin_name = "cargo", styles = clap::builder::Styles::plain())]
pub(crate) enum Cargo {
    /// Per-layer energy of your code: run energy benchmarks and gate regressions.
    Joules(Box<JoulesArgs>),
}

#[derive(Debug, Args)]
#[command(
    version,
    display_name = "cargo-joules",
    disable_help_subcommand = true,
    after_help = EXIT_CODES
)]
pub(crate) struct JoulesArgs {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Build and run the energy benchmarks, print joules per layer, write a JSON report.
    #[command(after_help = EXIT_CODES)]
    Bench(BenchArgs),
    /// Compare two reports (or baselines): what got costlier, what got cheaper, per span.
    #[command(after_help = EXIT_CODES)]
    Compare(CompareArgs),
    /// Show which energy sources this machine offers, which one is read, and how to fix the rest.
    #[command(after_help = EXIT_CODES)]
    Doctor(DoctorArgs),
    /// Draw a flame graph (SVG) of a report's exclusive joules per span path, or with --diff or
    /// --benches a differential one coloured by the significant changes.
    #[command(after_help = EXIT_CODES)]
    Flamegraph(FlamegraphArgs),
    /// An energy label for a benchmark: joules per inference, a grade A-G on the efficiency
    /// and index scales, gCO2e, break-even with training, and where every figure came from.
    /// Writes an SVG and JSON, prints it for the terminal.
    #[command(after_help = LABEL_HELP)]
    Label(LabelArgs),
    /// Show a report: for the terminal, or with --html as one self-contained page (per-layer
    /// bars with intervals, flame graphs, the label, a comparison, every figure's provenance).
    #[command(after_help = EXIT_CODES)]
    Report(ReportArgs),
    /// Run any command (Rust or not) and measure its energy per domain, as `perf stat` counts
    /// its events: joules with bounds, mean power, and where each figure came from. Prints to
    /// stderr (stdout is the command's) and exits with the command's exit code.
    #[command(after_help = RUN_HELP)]
    Run(RunArgs),
}

const RUN_HELP: &str = "\
Energy counters (RAPL, NVML) measure their whole domain: every process that ran on the package
or GPU meanwhile is in the figures. Without a counter, the figure is an estimate from the
command's CPU time (its whole process tree), labelled so.

Exit codes:
    the command's own (128 + N if a signal N ended it)
    2    usage error, or the command could not be started
    6    no energy source could be opened, not even the estimate
    8    an energy source failed during the run";

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Also write the run as a report (JSON, the format `cargo joules bench` writes).
    #[arg(short, long, value_name = "PATH")]
    pub(crate) output: Option<PathBuf>,
    /// How to print the figures on stderr.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
    #[command(flatten)]
    pub(crate) select: SourceArgs,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "CMD")]
    pub(crate) command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// The report: a path, or a baseline name [default: the last `cargo joules bench`].
    pub(crate) report: Option<String>,
    /// Write one HTML page instead, with nothing fetched from the network.
    #[arg(long)]
    pub(crate) html: bool,
    /// Compare with this older report or baseline (shown on the page, with a differential
    /// flame graph of the first bench).
    #[arg(long, value_name = "OLD", requires = "html", conflicts_with = "benches")]
    pub(crate) against: Option<String>,
    /// Compare two benchmarks of the report (a model and its pruned variant); the newer one's
    /// label is graded against the older on the index scale.
    #[arg(long, num_args = 2, value_names = ["OLD_BENCH", "NEW_BENCH"], requires = "html")]
    pub(crate) benches: Option<Vec<String>>,
    /// Where to write the page [default: <target-dir>/joules/report.html].
    #[arg(short, long, value_name = "PATH", requires = "html")]
    pub(crate) output: Option<PathBuf>,
    /// Path to Cargo.toml (to find target/joules).
    #[arg(long, value_name = "PATH")]
    pub(crate) manifest_path: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) gate: GateArgs,
    #[command(flatten)]
    pub(crate) output_args: OutputArgs,
}

const LABEL_HELP: &str = "\
Scales (boundaries and sources: docs/label.md):
    efficiency  operations per joule of a whole inference, a grade per decade:
                A >= 10 TOPS/W, B >= 1, C >= 0.1, D >= 0.01, E >= 0.001, F >= 0.0001, G below
    index       100 x energy per inference / the reference's, EU refrigerator bands
                (Regulation (EU) 2019/2016): A <= 41, B <= 51, C <= 64, D <= 80, E <= 100,
                F <= 125, G above

Exit codes:
    0    success
    2    usage or input error (bad arguments, a corrupt report, a bench with no energy)
    5    the reference is from another machine or source (see --allow-mismatch)
  102    cargo metadata failed";

#[derive(Debug, Args)]
pub(crate) struct LabelArgs {
    /// The report: a path, or a baseline name [default: the last `cargo joules bench`].
    pub(crate) report: Option<String>,
    /// The benchmark to label (its name or last part) [default: the report's first].
    #[arg(long, value_name = "NAME")]
    pub(crate) bench: Option<String>,
    /// Grade the index scale against this report (a path or baseline name): its bench of the
    /// same name, or --reference-bench.
    #[arg(long, value_name = "REPORT")]
    pub(crate) reference: Option<String>,
    /// Grade the index scale against this benchmark: of --reference, or of the labelled
    /// report (e.g. the dense model for its pruned variant).
    #[arg(long, value_name = "NAME")]
    pub(crate) reference_bench: Option<String>,
    /// Grade against a reference from another machine or energy source anyway (the label
    /// then says so).
    #[arg(long)]
    pub(crate) allow_mismatch: bool,
    /// The grid's carbon intensity, in gCO2e per kWh [default: 436, the world average of
    /// 2022, Ember Global Electricity Review 2023].
    #[arg(long, value_name = "G_PER_KWH", requires = "grid_source")]
    pub(crate) grid_intensity: Option<f64>,
    /// Where --grid-intensity comes from (it is printed on the label).
    #[arg(long, value_name = "TEXT", requires = "grid_intensity")]
    pub(crate) grid_source: Option<String>,
    /// Operations, as hardware peaks count them (a multiply-add is two), per declared
    /// operation: 2 where the spans declare multiply-adds, 1 where they declare operations.
    #[arg(long, value_name = "N", default_value_t = 2.0)]
    pub(crate) ops_per_declared: f64,
    /// Add a device to the what-if projection: `NAME=TOPS_PER_W` (repeatable).
    #[arg(long, value_name = "NAME=TOPS_PER_W", value_parser = parse_device)]
    pub(crate) device: Vec<(String, f64)>,
    /// Where to write the SVG; the JSON goes beside it, as .json [default:
    /// <target-dir>/joules/label.svg].
    #[arg(short, long, value_name = "PATH")]
    pub(crate) output: Option<PathBuf>,
    /// What to print: the label for a terminal, or its JSON.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
    /// Colour on the terminal.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub(crate) color: Color,
    /// Path to Cargo.toml (to find target/joules).
    #[arg(long, value_name = "PATH")]
    pub(crate) manifest_path: Option<PathBuf>,
}

/// `NAME=TOPS_PER_W`.
fn parse_device(text: &str) -> Result<(String, f64), String> {
    let (name, tops) = text
        .rsplit_once('=')
        .ok_or_else(|| format!("`{text}`: write a device as NAME=TOPS_PER_W, e.g. \"my NPU=8\""))?;
    match tops.trim().parse::<f64>() {
        Ok(t) if t.is_finite() && t > 0.0 && !name.trim().is_empty() => Ok((name.trim().to_owned(), t)),
        _ => Err(format!("`{text}`: TOPS_PER_W must be a number above 0, and NAME not empty")),
    }
}

#[derive(Debug, Args)]
pub(crate) struct FlamegraphArgs {
    /// The report: a path, or a baseline name [default: the last `cargo joules bench`].
    #[arg(conflicts_with = "diff")]
    pub(crate) report: Option<String>,
    /// Colour by the change from OLD to NEW (paths or baseline names): red costlier, blue
    /// cheaper, and only where the change is significant; frames are as wide as in NEW.
    #[arg(long, num_args = 2, value_names = ["OLD", "NEW"], conflicts_with = "benches")]
    pub(crate) diff: Option<Vec<String>>,
    /// Colour by the change between two benchmarks of the report (a model and its pruned
    /// variant); a name may be a bench's last part.
    #[arg(long, num_args = 2, value_names = ["OLD_BENCH", "NEW_BENCH"])]
    pub(crate) benches: Option<Vec<String>>,
    /// The benchmark to draw (its name or last part) [default: the report's first].
    #[arg(long, value_name = "NAME", conflicts_with = "benches")]
    pub(crate) bench: Option<String>,
    /// The energy domain to draw, e.g. `package-0` [default: every domain no other contains,
    /// summed; with --diff or --benches, the first of them].
    #[arg(long, value_name = "ID")]
    pub(crate) domain: Option<String>,
    /// Where to write the SVG [default: <target-dir>/joules/flamegraph.svg, or
    /// flamegraph-diff.svg].
    #[arg(short, long, value_name = "PATH")]
    pub(crate) output: Option<PathBuf>,
    /// Also write the folded stacks (nanojoules) here, for other flame graph tools.
    #[arg(long, value_name = "PATH")]
    pub(crate) folded: Option<PathBuf>,
    /// Path to Cargo.toml (to find target/joules).
    #[arg(long, value_name = "PATH")]
    pub(crate) manifest_path: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) gate: GateArgs,
}

/// How two reports are judged.
#[derive(Debug, Args)]
pub(crate) struct GateArgs {
    /// Relative changes within +/- this fraction are noise.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.02)]
    pub(crate) noise_threshold: f64,
    /// Compare reports from different machines or energy sources anyway (flagged in the output).
    #[arg(long)]
    pub(crate) allow_mismatch: bool,
}

/// How output looks.
#[derive(Debug, Args)]
pub(crate) struct OutputArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub(crate) format: OutputFormat,
    /// Colour in tables.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub(crate) color: Color,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OutputFormat {
    /// A table for a terminal.
    Table,
    /// GitHub-flavoured Markdown.
    Markdown,
    /// JSON.
    Json,
    /// Bencher Metric Format.
    Bmf,
    /// CSV, one figure per row.
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Color {
    /// When stdout is a terminal.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

#[derive(Debug, Args)]
pub(crate) struct CompareArgs {
    /// The old report: a path, or the name of a baseline saved with --save-baseline. With
    /// --benches: the report holding both [default: the last `cargo joules bench`].
    #[arg(required_unless_present = "benches")]
    pub(crate) old: Option<String>,
    /// The new report: a path, or a baseline name [default: the last `cargo joules bench`].
    #[arg(conflicts_with = "benches")]
    pub(crate) new: Option<String>,
    /// Compare two benchmarks of one report instead (e.g. a model and its pruned variant):
    /// each layer's joules, declared operations, and the benches' notes (their quality).
    /// A name may be a bench's last part (`pruned` for `mnist/pruned`).
    #[arg(long, num_args = 2, value_names = ["OLD_BENCH", "NEW_BENCH"])]
    pub(crate) benches: Option<Vec<String>>,
    /// Path to Cargo.toml (to find target/joules).
    #[arg(long, value_name = "PATH")]
    pub(crate) manifest_path: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) gate: GateArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
    /// Print a plan that makes energy counters readable without root, by a group rather than
    /// by everyone (a udev rule, the commands for this boot, perf's capability). Changes
    /// nothing unless --apply.
    #[arg(long)]
    pub(crate) fix: bool,
    /// With --fix: write the udev rule and give the energy files that exist now to the group
    /// (as root; the group must exist).
    #[arg(long, requires = "fix")]
    pub(crate) apply: bool,
    /// With --fix: the group given read access.
    #[arg(long, value_name = "NAME", default_value = "power", requires = "fix")]
    pub(crate) group: String,
    /// With --fix: MSR devices too (`/dev/cpu/*/msr`; reading them also needs CAP_SYS_RAWIO).
    #[arg(long, requires = "fix")]
    pub(crate) msr: bool,
    /// With --fix: where the udev rule goes.
    #[arg(long, value_name = "DIR", default_value = joules::access::RULES_DIR, requires = "fix")]
    pub(crate) rules_dir: PathBuf,
    #[command(flatten)]
    pub(crate) select: SourceArgs,
}

/// Which energy sources and domains to read (every subcommand that measures).
#[derive(Debug, Args)]
pub(crate) struct SourceArgs {
    /// Read only these sources (comma-separated, or repeated): perf, powercap, msr, nvml,
    /// estimate. A named estimate is read even beside energy counters. [default: the most
    /// trusted reader of each package, NVML for GPUs, the estimate only where no counter is]
    #[arg(long = "source", value_name = "NAME", value_delimiter = ',', env = "JOULES_SOURCES")]
    pub(crate) sources: Vec<String>,
    /// Read only these domains, by id (package-0, package-0/dram, gpu:0, cpu); a trailing `*`
    /// matches a prefix (package-*). Naming one no source offers is an error.
    #[arg(long = "domain", value_name = "ID", value_delimiter = ',', env = "JOULES_DOMAINS")]
    pub(crate) domains: Vec<String>,
}

impl SourceArgs {
    /// The choice, checked.
    pub(crate) fn selection(&self) -> Result<joules::source::Selection, String> {
        let join = |v: &Vec<String>| (!v.is_empty()).then(|| v.join(","));
        joules::source::Selection::parse(join(&self.sources).as_deref(), join(&self.domains).as_deref())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// A table for humans.
    Table,
    /// JSON for scripts.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Path to Cargo.toml.
    #[arg(long, value_name = "PATH")]
    pub(crate) manifest_path: Option<PathBuf>,
    /// Only benchmarks of this package (repeatable).
    #[arg(short, long, value_name = "SPEC")]
    pub(crate) package: Vec<String>,
    /// Only this bench target (repeatable).
    #[arg(long, value_name = "NAME")]
    pub(crate) bench: Vec<String>,
    /// Samples per benchmark (at least 2).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(2..))]
    pub(crate) samples: Option<u32>,
    /// Target length of one sample, in milliseconds.
    #[arg(long, value_name = "MS")]
    pub(crate) sample_ms: Option<u64>,
    /// Warm-up before measuring, in milliseconds.
    #[arg(long, value_name = "MS")]
    pub(crate) warm_up_ms: Option<u64>,
    /// Time at rest before the benchmarks, to measure idle power, in milliseconds (0: skip).
    #[arg(long, value_name = "MS")]
    pub(crate) idle_ms: Option<u64>,
    /// Run every benchmark in this many fresh processes, and test changes against the
    /// variation between them (thermal state, turbo, neighbours: on real hardware most
    /// variation is between runs, which one run cannot show).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) runs: u32,
    /// The energy it took to train the model the benchmarks run (e.g. `12kWh`, `40MJ`,
    /// `3.6e6J`): the report says after how many inferences running it has cost more.
    /// Overrides what a bench declares (`Bencher::training_energy`).
    #[arg(long, value_name = "ENERGY", value_parser = parse_energy)]
    pub(crate) training_energy: Option<f64>,
    /// Where the --training-energy figure comes from (a model card, a paper, an estimate).
    #[arg(long, value_name = "TEXT", requires = "training_energy")]
    pub(crate) training_source: Option<String>,
    /// Where to write the report [default: <target-dir>/joules/report.json].
    #[arg(long, value_name = "PATH")]
    pub(crate) output: Option<PathBuf>,
    /// Save this run as baseline NAME (in <target-dir>/joules/baselines/). A run that fails
    /// the gate is not saved (a rolling baseline would adopt the regression) unless --force.
    #[arg(long, value_name = "NAME")]
    pub(crate) save_baseline: Option<String>,
    /// With --save-baseline: save even a run that failed the gate.
    #[arg(long, requires = "save_baseline")]
    pub(crate) force: bool,
    /// Compare this run with baseline NAME; exit 4 on a significant regression.
    #[arg(long, value_name = "NAME")]
    pub(crate) baseline: Option<String>,
    #[command(flatten)]
    pub(crate) gate: GateArgs,
    #[command(flatten)]
    pub(crate) output_args: OutputArgs,
    #[command(flatten)]
    pub(crate) select: SourceArgs,
    /// Only benchmark functions whose name contains one of these.
    pub(crate) filters: Vec<String>,
}

/// An energy with its unit, in joules: `J`, `kJ`, `MJ`, `GJ`, `Wh`, `kWh`, `MWh`, `GWh`.
fn parse_energy(text: &str) -> Result<f64, String> {
    const UNITS: [(&str, f64); 8] = [
        ("GWh", 3.6e12),
        ("MWh", 3.6e9),
        ("kWh", 3.6e6),
        ("Wh", 3.6e3),
        ("GJ", 1e9),
        ("MJ", 1e6),
        ("kJ", 1e3),
        ("J", 1.0),
    ];
    let text = text.trim();
    let (number, factor) = UNITS
        .iter()
        .find_map(|(unit, factor)| text.strip_suffix(unit).map(|n| (n.trim(), *factor)))
        .ok_or_else(|| format!("`{text}` has no unit: write it as e.g. 12kWh, 40MJ or 3.6e6J"))?;
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(n * factor),
        _ => Err(format!("`{number}` is not an energy above 0: write it as e.g. 12kWh, 40MJ or 3.6e6J")),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        super::Cargo::command().debug_assert();
    }

    #[test]
    fn energies_take_their_unit() {
        let parse = super::parse_energy;
        assert_eq!(parse("12kWh"), Ok(12.0 * 3.6e6));
        assert_eq!(parse("40 MJ"), Ok(4e7));
        assert_eq!(parse("3.6e6J"), Ok(3.6e6));
        assert_eq!(parse("1.5Wh"), Ok(5400.0));
        assert!(parse("12").unwrap_err().contains("no unit"));
        assert!(parse("-3kWh").unwrap_err().contains("above 0"));
        assert!(parse("lotsJ").unwrap_err().contains("`lots`"));
    }
}
