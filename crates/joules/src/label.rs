//! The energy label: what one inference of a benchmark costs, graded A-G on two documented
//! scales, with its carbon at a stated grid intensity, when it overtakes training, what it
//! would cost at other devices' published peak efficiency, and where every figure came from.
//!
//! # The scales
//! Each grade is taken at the figure's point; the grades its interval reaches are given too,
//! so a grade that the noise could move says so.
//!
//! **Efficiency** (needs declared operations): operations per joule of a whole inference,
//! everything the measured domains drew included, on a log scale, one grade per decade:
//!
//! | grade | ops per joule | TOPS/W | anchored on |
//! |---|---|---|---|
//! | A | ≥ 1e13 | ≥ 10 | beyond today's digital peaks; analog in-memory compute (imec: up to 2,900 TOPS/W, macro level) |
//! | B | ≥ 1e12 | ≥ 1 | the peaks of today's accelerators: Edge TPU 2, H100 SXM 2.8 (INT8 dense), B200 4.5 (FP8 dense), Jetson AGX Orin 4.6 (INT8 sparse) TOPS/W |
//! | C | ≥ 1e11 | ≥ 0.1 | a system that reaches a tenth of such a peak |
//! | D | ≥ 1e10 | ≥ 0.01 | |
//! | E | ≥ 1e9 | ≥ 0.001 | |
//! | F | ≥ 1e8 | | |
//! | G | < 1e8 | | |
//!
//! As the EU's rescaled appliance labels leave their top class empty at launch, A is out of
//! reach of today's digital hardware: there is room above. Hardware figures count a
//! multiply-add as two operations; [`LabelOptions::ops_per_declared`] says how many of those
//! one declared operation is (2 where the spans declare multiply-adds, as joules' examples do).
//!
//! **Index** (needs a reference): 100 x the energy per inference over the reference's, e.g.
//! a pruned model against its dense original, banded as the EU label for refrigerating
//! appliances bands its energy efficiency index (Commission Delegated Regulation (EU)
//! 2019/2016, Annex II, Table 1): A ≤ 41, B ≤ 51, C ≤ 64, D ≤ 80, E ≤ 100, F ≤ 125, G above.
//! The reference itself scores 100, an E: a change has to cut a fifth of the energy to reach
//! D, and to 41% of it to reach A.
//!
//! # Carbon
//! Grams of CO2-equivalent are energy times a grid's carbon intensity. The default is
//! [`WORLD_GRID`]: the world average of electricity generation in 2022, 436 gCO2/kWh, from
//! Ember's Global Electricity Review 2023. Set your grid's with `--grid-intensity`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::compare::relative_change;
use crate::report::{BenchReport, Report};
use crate::source::SourceKind;
use crate::stats::Estimate;

/// The label format's version, in its JSON.
pub const LABEL_SCHEMA: u32 = 1;

/// A grid's carbon intensity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    /// Grams of CO2-equivalent per kWh.
    pub g_per_kwh: f64,
    /// Where the figure comes from, with its year.
    pub source: String,
}

/// The default grid: the world average of 2022.
pub const WORLD_GRID: (f64, &str) = (436.0, "world average 2022, Ember Global Electricity Review 2023");

/// A device with a published peak efficiency, for the what-if projection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// Its name.
    pub name: String,
    /// Peak operations per joule, in TOPS/W (1e12 operations per joule).
    pub tops_per_w: f64,
    /// What the figure is and where it comes from.
    pub source: String,
}

/// The devices the what-if projection uses by default, from their makers' published peaks.
pub fn default_devices() -> Vec<Device> {
    let d = |name: &str, tops_per_w: f64, source: &str| Device {
        name: name.to_owned(),
        tops_per_w,
        source: source.to_owned(),
    };
    vec![
        d("NVIDIA H100 SXM", 2.8, "about 1,979 TOPS INT8 dense at 700 W (NVIDIA H100 datasheet)"),
        d("NVIDIA B200", 4.5, "about 4.5 PFLOPS FP8 dense at 1,000 W (NVIDIA DGX B200 / HGX B200 figures)"),
        d("NVIDIA Jetson AGX Orin", 4.6, "275 TOPS INT8 sparse at 60 W (NVIDIA Jetson AGX Orin datasheet)"),
        d("Google Edge TPU", 2.0, "4 TOPS INT8 at 2 W (Coral Edge TPU documentation)"),
        d(
            "imec analog inference accelerator",
            2900.0,
            "up to 2,900 TOPS/W, macro level, ternary weights, DRAM excluded (imec AnIA, 2020)",
        ),
    ]
}

/// How a label is made.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelOptions {
    /// The grid the carbon figures are for.
    pub grid: Grid,
    /// Operations (as hardware peaks count them: a multiply-add is two) per declared one.
    pub ops_per_declared: f64,
    /// The what-if devices.
    pub devices: Vec<Device>,
    /// The report's SHA-256, hex, as read from its file.
    pub report_sha256: String,
}

impl Default for LabelOptions {
    fn default() -> Self {
        LabelOptions {
            grid: Grid { g_per_kwh: WORLD_GRID.0, source: WORLD_GRID.1.to_owned() },
            ops_per_declared: 2.0,
            devices: default_devices(),
            report_sha256: String::new(),
        }
    }
}

/// A figure and its interval, in the unit its name says.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The point estimate.
    pub point: f64,
    /// The interval's confidence level (0.95).
    pub level: f64,
    /// The lower bound, where known.
    pub lo: Option<f64>,
    /// The upper bound, where known (a rate per joule has none when the joules' interval
    /// reaches 0).
    pub hi: Option<f64>,
}

impl Interval {
    fn of(e: &Estimate) -> Self {
        Interval { point: e.point, level: e.level, lo: e.lo, hi: e.hi }
    }

    fn times(self, k: f64) -> Self {
        Interval {
            point: self.point * k,
            level: self.level,
            lo: self.lo.map(|x| x * k),
            hi: self.hi.map(|x| x * k),
        }
    }
}

/// One grade band: values from `from` (inclusive) up to `to`, or the other way for a scale
/// where lower is better.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Band {
    /// A to G.
    pub grade: char,
    /// Its lower end (None: unbounded).
    pub from: Option<f64>,
    /// Its upper end (None: unbounded).
    pub to: Option<f64>,
}

/// A grade on one scale.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Grade {
    /// `efficiency` or `index`.
    pub scale: String,
    /// What the scale measures, in words, with its unit.
    pub measure: String,
    /// The graded figure and its interval.
    pub value: Interval,
    /// The grade at the point.
    pub grade: char,
    /// The best and worst grades within the interval (the same as `grade` when it is firm).
    pub range: (char, char),
    /// The reference, for the index scale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The scale's bands, A first.
    pub bands: Vec<Band>,
    /// Where the scale comes from.
    pub basis: String,
}

/// Carbon per inference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Carbon {
    /// The grid.
    pub grid: Grid,
    /// Grams of CO2e per inference.
    pub g_per_inference: Interval,
    /// Grams of CO2e per million inferences.
    pub g_per_million: Interval,
}

/// When running the model costs more than training it did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BreakEven {
    /// The declared training energy, in joules.
    pub training_j: f64,
    /// Where that figure comes from.
    pub source: String,
    /// The inferences whose energy equals it.
    pub inferences: Option<Interval>,
}

/// One device's projected energy per inference at its peak efficiency.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    /// The device and its figure.
    pub device: Device,
    /// Joules per inference were the device to run at its peak: a lower bound on what it
    /// would really use.
    pub j_per_inference_at_peak: f64,
    /// The measured energy per inference over the projection.
    pub measured_over_projected: f64,
}

/// Where the label's figures came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// True where every domain was measured by a hardware counter; false where any was
    /// estimated or simulated.
    pub measured: bool,
    /// The domains that were estimated or simulated, not measured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_measured: Vec<String>,
    /// Each domain summed: `package-0: measured (RAPL powercap)`.
    pub sources: Vec<String>,
    /// How joules were attributed to spans.
    pub estimator: String,
    /// The machine: CPU, logical CPUs, kernel, OS.
    pub machine: String,
    /// When the report was made: `YYYY-MM-DD HH:MM UTC`.
    pub date: String,
    /// The tool that made the report.
    pub tool: String,
    /// The report file's SHA-256.
    pub report_sha256: String,
}

/// An energy label for one benchmark of a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Label {
    /// [`LABEL_SCHEMA`].
    pub schema: u32,
    /// The benchmark.
    pub bench: String,
    /// Inferences one iteration does.
    pub inferences_per_iteration: u64,
    /// Joules per inference.
    pub j_per_inference: Interval,
    /// Watt-hours per 1000 inferences (AI Energy Score's unit).
    pub wh_per_1000: Interval,
    /// Declared operations per inference, as hardware counts them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ops_per_inference: Option<f64>,
    /// The efficiency grade, where operations are declared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub efficiency: Option<Grade>,
    /// The index grade, where a reference is given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<Grade>,
    /// Why there is no index grade, where there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_index: Option<String>,
    /// Carbon.
    pub carbon: Carbon,
    /// Break-even with training, where a training energy was declared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub training: Option<BreakEven>,
    /// The hardware what-if, where operations are declared: projections, not measurements.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub what_if: Vec<Projection>,
    /// Provenance.
    pub provenance: Provenance,
    /// Cautions: the bench's warnings and the label's own.
    pub warnings: Vec<String>,
}

/// A label could not be made.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum LabelError {
    /// The bench measured no energy.
    #[error("benchmark `{0}` has no energy figures to label")]
    NoEnergy(String),
    /// An option is out of range.
    #[error("{0}")]
    Option(String),
}

/// Efficiency bands in operations per joule, A first (lower bounds).
const EFFICIENCY_FLOORS: [f64; 6] = [1e13, 1e12, 1e11, 1e10, 1e9, 1e8];
/// Index bands (upper bounds), A first: Regulation (EU) 2019/2016, Annex II, Table 1.
const INDEX_CEILINGS: [f64; 6] = [41.0, 51.0, 64.0, 80.0, 100.0, 125.0];
const GRADES: [char; 7] = ['A', 'B', 'C', 'D', 'E', 'F', 'G'];

fn efficiency_grade(ops_per_j: f64) -> char {
    let i = EFFICIENCY_FLOORS.iter().position(|&f| ops_per_j >= f).unwrap_or(6);
    GRADES[i]
}

fn index_grade(index: f64) -> char {
    let i = INDEX_CEILINGS.iter().position(|&c| index <= c).unwrap_or(6);
    GRADES[i]
}

/// The bands A to G from the six bounds between them: the lower bound of each grade where
/// higher is better (efficiency), its upper bound where lower is (index).
fn bands(bounds: &[f64; 6], higher_is_better: bool) -> Vec<Band> {
    GRADES
        .iter()
        .enumerate()
        .map(|(i, &grade)| {
            let (own, previous) = (bounds.get(i).copied(), i.checked_sub(1).map(|j| bounds[j]));
            let (from, to) = if higher_is_better { (own, previous) } else { (previous, own) };
            Band { grade, from, to }
        })
        .collect()
}

fn efficiency_bands() -> Vec<Band> {
    bands(&EFFICIENCY_FLOORS, true)
}

fn index_bands() -> Vec<Band> {
    bands(&INDEX_CEILINGS, false)
}

/// The best and worst grade over an interval: `better` is the bound that grades best; a
/// missing bound is unbounded, so it reaches the end of the scale.
fn range(grade: fn(f64) -> char, point: char, better: Option<f64>, worse: Option<f64>) -> (char, char) {
    let best = better.map_or(GRADES[0], grade);
    let worst = worse.map_or(GRADES[6], grade);
    (best.min(point), worst.max(point))
}

/// The declared operations of one iteration: its root spans' inclusive operations.
fn ops_per_iteration(bench: &BenchReport) -> Option<f64> {
    let roots: Vec<f64> = bench
        .spans
        .iter()
        .filter(|s| s.depth == 0)
        .filter_map(|s| s.ops.as_ref().map(|o| o.inclusive.point))
        .collect();
    (!roots.is_empty()).then(|| roots.iter().sum())
}

/// Makes the label of `bench` (in `report`), graded against `reference` (a bench of the same
/// or another report, and its name for the label) where one is given.
pub fn label(
    report: &Report,
    bench: &BenchReport,
    reference: Option<(&BenchReport, &str)>,
    opts: &LabelOptions,
) -> Result<Label, LabelError> {
    if !(opts.grid.g_per_kwh >= 0.0 && opts.grid.g_per_kwh.is_finite()) {
        return Err(LabelError::Option(format!(
            "grid intensity {} g/kWh must be a finite figure of 0 or more",
            opts.grid.g_per_kwh
        )));
    }
    if !(opts.ops_per_declared > 0.0 && opts.ops_per_declared.is_finite()) {
        return Err(LabelError::Option(format!(
            "operations per declared operation {} must be above 0",
            opts.ops_per_declared
        )));
    }
    let energy = bench
        .energy_per_inference()
        .filter(|e| e.point > 0.0)
        .ok_or_else(|| LabelError::NoEnergy(bench.name.clone()))?;
    let per_inference = Interval::of(&energy);
    let inferences = bench.inferences_per_iteration.max(1) as f64;
    let mut warnings = bench.warnings.clone();

    let ops_per_inference =
        ops_per_iteration(bench).map(|ops| ops / inferences * opts.ops_per_declared).filter(|&o| o > 0.0);
    let efficiency = ops_per_inference.and_then(|ops| energy.per_unit(ops)).map(|rate| {
        let grade = efficiency_grade(rate.point);
        Grade {
            scale: "efficiency".into(),
            measure: "operations per joule, whole inference".into(),
            value: Interval::of(&rate),
            grade,
            range: range(efficiency_grade, grade, rate.hi, rate.lo),
            reference: None,
            bands: efficiency_bands(),
            basis: "log scale, a grade per decade; B starts at 1 TOPS/W, where today's accelerators \
                    peak (Edge TPU 2, H100 2.8, B200 4.5, Jetson AGX Orin 4.6 TOPS/W)"
                .into(),
        }
    });

    let (index, no_index) = match reference {
        None => (None, Some("no reference given".to_owned())),
        Some((r, name)) => match r.energy_per_inference().filter(|e| e.point > 0.0) {
            None => (None, Some(format!("reference `{name}` has no energy figures"))),
            Some(old) => match relative_change(&old, &energy) {
                None => (
                    None,
                    Some(format!(
                        "the change from reference `{name}` cannot be tested (too few samples to \
                         give it an interval)"
                    )),
                ),
                Some((change, _, _)) => {
                    let value = Interval {
                        point: 100.0 * (1.0 + change.point),
                        level: energy.level,
                        lo: Some(100.0 * (1.0 + change.lo)),
                        hi: Some(100.0 * (1.0 + change.hi)),
                    };
                    let grade = index_grade(value.point);
                    let grade = Grade {
                        scale: "index".into(),
                        measure: format!("energy per inference, % of {name}"),
                        value,
                        grade,
                        range: range(index_grade, grade, value.lo, value.hi),
                        reference: Some(name.to_owned()),
                        bands: index_bands(),
                        basis: "energy efficiency index bands of the EU label for refrigerating \
                                appliances, Regulation (EU) 2019/2016, Annex II, Table 1"
                            .into(),
                    };
                    (Some(grade), None)
                }
            },
        },
    };
    if let (Some(why), Some(_)) = (&no_index, reference) {
        warnings.push(format!("no index grade: {why}"));
    }

    let g_per_j = opts.grid.g_per_kwh / 3.6e6;
    let carbon = Carbon {
        grid: opts.grid.clone(),
        g_per_inference: per_inference.times(g_per_j),
        g_per_million: per_inference.times(g_per_j * 1e6),
    };
    let training = bench.training.as_ref().map(|t| BreakEven {
        training_j: t.energy_j,
        source: t.source.clone(),
        inferences: t.break_even_inferences.as_ref().map(Interval::of),
    });
    let what_if = match ops_per_inference {
        None => Vec::new(),
        Some(ops) => opts
            .devices
            .iter()
            .filter(|d| d.tops_per_w > 0.0)
            .map(|d| {
                let j = ops / (d.tops_per_w * 1e12);
                Projection {
                    device: d.clone(),
                    j_per_inference_at_peak: j,
                    measured_over_projected: energy.point / j,
                }
            })
            .collect(),
    };

    let top: Vec<_> = bench.domains.iter().filter(|d| d.part_of.is_none()).collect();
    let not_measured: Vec<String> = top
        .iter()
        .filter(|d| matches!(d.source, SourceKind::Estimate | SourceKind::Sim))
        .map(|d| d.domain.clone())
        .collect();
    let measured = not_measured.is_empty();
    let methods: BTreeSet<&str> = top.iter().map(|d| d.method.as_str()).collect();
    let h = &report.host;
    let provenance = Provenance {
        measured,
        not_measured,
        sources: top.iter().map(|d| format!("{}: {}", d.domain, d.provenance)).collect(),
        estimator: methods.into_iter().collect::<Vec<_>>().join("; "),
        machine: format!("{} ({} logical CPUs), kernel {}, {}", h.cpu_model, h.logical_cpus, h.kernel, h.os),
        date: utc(report.created_unix_s),
        tool: report.tool.clone(),
        report_sha256: opts.report_sha256.clone(),
    };

    Ok(Label {
        schema: LABEL_SCHEMA,
        bench: bench.name.clone(),
        inferences_per_iteration: bench.inferences_per_iteration.max(1),
        j_per_inference: per_inference,
        wh_per_1000: per_inference.times(1000.0 / 3600.0),
        ops_per_inference,
        efficiency,
        index,
        no_index,
        carbon,
        training,
        what_if,
        provenance,
        warnings,
    })
}

/// `YYYY-MM-DD HH:MM UTC` of a Unix time (days to a civil date as in H. Hinnant's
/// `civil_from_days`).
pub fn utc(unix_s: u64) -> String {
    let days = (unix_s / 86_400) as i64;
    let (hh, mm) = ((unix_s % 86_400) / 3600, (unix_s % 3600) / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc(1_796_121_600 + 59), "2026-12-01 10:40 UTC");
    }

    #[test]
    fn efficiency_grades_fall_a_decade_at_a_time() {
        assert_eq!(efficiency_grade(2.9e15), 'A');
        assert_eq!(efficiency_grade(1e13), 'A');
        assert_eq!(efficiency_grade(9.99e12), 'B');
        assert_eq!(efficiency_grade(2.8e12), 'B');
        assert_eq!(efficiency_grade(5.6e9), 'E');
        assert_eq!(efficiency_grade(1e8), 'F');
        assert_eq!(efficiency_grade(9.9e7), 'G');
        assert_eq!(efficiency_grade(0.0), 'G');
    }

    #[test]
    fn index_grades_follow_the_eu_refrigerator_bands() {
        for (index, grade) in [
            (30.0, 'A'),
            (41.0, 'A'),
            (41.1, 'B'),
            (51.0, 'B'),
            (64.0, 'C'),
            (80.0, 'D'),
            (100.0, 'E'),
            (125.0, 'F'),
            (125.1, 'G'),
        ] {
            assert_eq!(index_grade(index), grade, "index {index}");
        }
        let bands = index_bands();
        assert_eq!((bands[0].from, bands[0].to), (None, Some(41.0)));
        assert_eq!((bands[6].from, bands[6].to), (Some(125.0), None));
        let bands = efficiency_bands();
        assert_eq!((bands[0].from, bands[0].to), (Some(1e13), None));
        assert_eq!((bands[6].from, bands[6].to), (None, Some(1e8)));
    }

    #[test]
    fn a_grade_range_spans_the_interval() {
        assert_eq!(range(index_grade, 'E', Some(78.0), Some(103.0)), ('D', 'F'));
        assert_eq!(range(index_grade, 'E', Some(90.0), Some(95.0)), ('E', 'E'));
        assert_eq!(range(efficiency_grade, 'E', None, Some(5e9)), ('A', 'E'), "no upper bound");
        assert_eq!(range(efficiency_grade, 'E', Some(2e9), None), ('E', 'G'), "no lower bound");
    }
}
