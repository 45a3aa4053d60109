use std::time::Duration;

use joules::source::{Domain, ReadCtx, ReadError, Sim, SimScript, Source, SourceKind};
use joules::{Joules, Nanos, Profiler, Watts, measure_energy};

fn pause(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[measure_energy]
fn outer() {
    pause(120);
    middle();
    pause(80);
}

#[measure_energy]
fn middle() {
    pause(100);
    inner();
    pause(60);
}

#[measure_energy]
fn inner() {
    pause(150);
}

/// Three nested layers of known power: inclusive and exclusive joules within 2% of the truth.
#[test]
fn nested_layers_match_ground_truth() {
    let _lock = joules_tests::profiler_lock();
    let script = SimScript::new(Watts(5.0))
        .span("outer", Watts(20.0))
        .span("middle", Watts(35.0))
        .span("inner", Watts(60.0));
    let sim = Sim::new(script);
    let truth = sim.truth();
    let profiler = Profiler::builder().source(sim).start().unwrap();
    pause(30);
    outer();
    pause(30);
    outer();
    pause(30);
    let report = profiler.stop().report("nested");
    let truth = truth.lock().unwrap().clone();
    let bench = &report.benches[0];

    for path in ["outer", "outer/middle", "outer/middle/inner"] {
        let span = bench.spans.iter().find(|s| s.path == path).unwrap_or_else(|| panic!("no span {path}"));
        assert_eq!(span.calls.point, 2.0, "{path}");
        let e = &span.energy[0];
        let (excl, incl) = (truth.exclusive[path].0, truth.inclusive(path).0);
        let rel = |got: f64, want: f64| (got - want).abs() / want;
        eprintln!(
            "{path}: excl err {:.3}% incl err {:.3}%",
            100.0 * rel(e.exclusive_j.point, excl),
            100.0 * rel(e.inclusive_j.point, incl)
        );
        assert!(
            rel(e.exclusive_j.point, excl) < 0.02,
            "{path} exclusive {} vs truth {excl}",
            e.exclusive_j.point
        );
        assert!(
            rel(e.inclusive_j.point, incl) < 0.02,
            "{path} inclusive {} vs truth {incl}",
            e.inclusive_j.point
        );
    }
    let d = &bench.domains[0];
    assert_eq!(d.provenance, "simulated");
    assert!((d.total_j.point - truth.total.0).abs() / truth.total.0 < 0.01);
}

/// On the real clock, the sampler stamps the simulator's jittered steps (1 ms +/-50 us)
/// within +/-10 us of when they happened wherever it calls a stamp precise, and calls some
/// precise even on a busy 2-core VM (an idle machine gets nearly all; see the sampler_cost
/// bench for the share).
#[test]
fn precise_step_stamps_are_within_ten_microseconds() {
    let _lock = joules_tests::profiler_lock();
    let sim = Sim::new(
        SimScript::new(Watts(10.0)).span("busy", Watts(30.0)).jitter(Nanos(50_000)).unit(Joules(15.3e-6)),
    );
    let truth = sim.truth();
    let profiler = Profiler::builder().source(sim).start().unwrap();
    let until = std::time::Instant::now() + Duration::from_millis(600);
    while std::time::Instant::now() < until {
        let _span = joules::span!("busy");
        pause(1);
    }
    let rec = profiler.stop();
    let steps = truth.lock().unwrap().steps.clone();
    let d = &rec.timeline.domains[0];
    let limit = joules::timeline::Series::precise_limit(d.domain.update_period);
    let mut precise = 0;
    for (t, u) in d.series.times.iter().zip(&d.series.uncertainty) {
        if u64::from(*u) > limit.0 {
            continue;
        }
        precise += 1;
        let off = steps.iter().map(|s| s.0.abs_diff(t.0)).min().unwrap();
        assert!(off <= 10_000, "a stamp called precise is {off} ns from the nearest step");
    }
    eprintln!("{precise} of {} stamps precise", d.series.len());
    assert!(precise >= 20, "only {precise} of {} stamps precise", d.series.len());
}

/// A simulated package whose read panics from its `panic_at`-th read on, and returns NaN
/// from `nan_at` (ns into the profile) on.
#[derive(Debug)]
struct Breaking {
    sim: Sim,
    reads: u64,
    panic_at: u64,
    nan_at: u64,
}

impl Source for Breaking {
    fn kind(&self) -> SourceKind {
        self.sim.kind()
    }
    fn describe(&self) -> String {
        self.sim.describe()
    }
    fn domains(&self) -> &[Domain] {
        self.sim.domains()
    }
    fn set_update_period(&mut self, index: usize, period: Nanos) {
        self.sim.set_update_period(index, period);
    }
    fn read(&mut self, ctx: &ReadCtx, out: &mut [Joules]) -> Result<(), ReadError> {
        self.reads += 1;
        assert!(self.reads < self.panic_at, "driver bug");
        self.sim.read(ctx, out)?;
        if ctx.now.0 >= self.nan_at {
            out[0] = Joules(f64::NAN);
        }
        Ok(())
    }
}

/// A panicking read ends that source's domains with the panic's message; the profile goes on
/// and stops normally, and the next profile can start.
#[test]
fn a_panicking_source_ends_its_domains_and_nothing_else() {
    let _lock = joules_tests::profiler_lock();
    let breaking =
        Breaking { sim: Sim::new(SimScript::new(Watts(5.0))), reads: 0, panic_at: 50, nan_at: u64::MAX };
    let profiler = Profiler::builder().source(breaking).start().unwrap();
    for _ in 0..20 {
        outer_short();
    }
    let rec = profiler.stop();
    assert!(rec.failure.is_none(), "{:?}", rec.failure);
    let ended = rec.timeline.domains[0].ended.as_ref().expect("the domain ended");
    assert!(ended.1.contains("reading panicked: driver bug"), "{ended:?}");
    Profiler::builder()
        .source(Sim::new(SimScript::new(Watts(5.0))))
        .start()
        .expect("a new profile starts")
        .stop();
}

/// A reading of NaN (or infinity) never reaches the timeline: the domain ends there, saying
/// why, as for any broken read.
#[test]
fn a_non_finite_reading_ends_its_domain_and_never_reaches_the_timeline() {
    let _lock = joules_tests::profiler_lock();
    let breaking = Breaking {
        sim: Sim::new(SimScript::new(Watts(5.0))),
        reads: 0,
        panic_at: u64::MAX,
        nan_at: 100_000_000,
    };
    let profiler = Profiler::builder().source(breaking).start().unwrap();
    for _ in 0..100 {
        outer_short();
        std::thread::sleep(Duration::from_millis(3));
    }
    let rec = profiler.stop();
    let d = &rec.timeline.domains[0];
    let ended = d.ended.as_ref().expect("the domain ended");
    assert!(ended.1.contains("non-finite reading (NaN)"), "{ended:?}");
    assert!(d.series.len() >= 2, "readings before the NaN are kept: {}", d.series.len());
    assert!(ended.0.0 >= 100_000_000, "{ended:?}");
    assert!(d.series.energy.iter().all(|e| e.0.is_finite()));
}

#[measure_energy]
fn outer_short() {
    pause(2);
}

type Bench = fn(&mut joules::bench::Bencher<'_>);

/// Runs `benches` under the simulator (5 W) in a child process of test `name`, which calls
/// this first: in the parent it returns the report the harness wrote; in the child it runs
/// the harness, asserts it succeeded, and returns None. `timing` is samples, sample and
/// warm-up milliseconds; `envs` adds to the harness's environment.
fn bench_in_child(
    name: &str,
    timing: (u32, u32, u32),
    envs: &[(&str, &str)],
    benches: &[(&'static str, Bench)],
) -> Option<joules::report::Report> {
    if joules_tests::caps::in_child() {
        let code = joules::bench::run_with(
            Profiler::builder().source(Sim::new(SimScript::new(Watts(5.0)))),
            benches,
        );
        assert_eq!(format!("{code:?}"), format!("{:?}", std::process::ExitCode::SUCCESS));
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.json");
    let (samples, sample_ms, warm_up_ms) = (timing.0.to_string(), timing.1.to_string(), timing.2.to_string());
    let mut all: Vec<(&str, &std::path::Path)> = vec![
        ("JOULES_SAMPLES", samples.as_ref()),
        ("JOULES_SAMPLE_MS", sample_ms.as_ref()),
        ("JOULES_WARM_UP_MS", warm_up_ms.as_ref()),
        ("JOULES_IDLE_MS", "0".as_ref()),
        (joules::bench::OUT_ENV, &out),
    ];
    all.extend(envs.iter().map(|(k, v)| (*k, v.as_ref())));
    joules_tests::caps::run_in_child(name, &all);
    Some(joules::report::Report::read(&out).unwrap())
}

const FAILING_TEST: &str = "sim::a_source_that_fails_stops_the_harness_at_once";
static SECOND_RAN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn first_bench(b: &mut joules::bench::Bencher<'_>) {
    b.iter(|| pause(100));
}

fn second_bench(b: &mut joules::bench::Bencher<'_>) {
    SECOND_RAN.store(true, std::sync::atomic::Ordering::Relaxed);
    b.iter(|| pause(100));
}

/// A source that breaks during the first of two benches ends the run there, with the
/// source-failed code: the second bench never runs (before, every bench ran to the end
/// before the failure was noticed).
#[test]
fn a_source_that_fails_stops_the_harness_at_once() {
    if !joules_tests::caps::in_child() {
        let n = |v: &str| std::path::PathBuf::from(v);
        let out = joules_tests::caps::run_in_child(
            FAILING_TEST,
            &[
                ("JOULES_SAMPLES", &n("5")),
                ("JOULES_SAMPLE_MS", &n("100")),
                ("JOULES_WARM_UP_MS", &n("20")),
                ("JOULES_IDLE_MS", &n("0")),
            ],
        );
        assert!(out.contains("an energy source failed during the run"), "{out}");
        return;
    }
    // The harness takes the test's name as its filter: the benches carry it.
    const FIRST: &str = "sim::a_source_that_fails_stops_the_harness_at_once/first";
    const SECOND: &str = "sim::a_source_that_fails_stops_the_harness_at_once/second";
    let breaking = Breaking {
        sim: Sim::new(SimScript::new(Watts(5.0))),
        reads: 0,
        panic_at: u64::MAX,
        nan_at: 150_000_000,
    };
    let code = joules::bench::run_with(
        Profiler::builder().source(breaking),
        &[(FIRST, first_bench), (SECOND, second_bench)],
    );
    assert_eq!(format!("{code:?}"), format!("{:?}", std::process::ExitCode::from(8)));
    assert!(!SECOND_RAN.load(std::sync::atomic::Ordering::Relaxed), "the second bench ran");
}

/// A recording whose sampler failed says so in its report, rather than reading as a program
/// that drew nothing.
#[test]
fn a_failed_recording_says_so_in_its_report() {
    let _lock = joules_tests::profiler_lock();
    let profiler = Profiler::builder().source(Sim::new(SimScript::new(Watts(5.0)))).start().unwrap();
    let mut rec = profiler.stop();
    assert!(rec.report("fine").benches[0].warnings.iter().all(|w| !w.contains("the profile failed")));
    rec.failure = Some("the sampler thread panicked".into());
    let report = rec.report("failed");
    let warnings = &report.benches[0].warnings;
    assert!(
        warnings.iter().any(|w| w.starts_with("the profile failed (the sampler thread panicked)")),
        "{warnings:?}"
    );
}

const BUDGET_TEST: &str = "sim::each_bench_has_its_share_of_the_span_log_and_no_warm_up_is_kept";
// The harness takes the test's name as its filter: the benches carry it.
const BUDGET_BENCHES: [&str; 3] = [
    "sim::each_bench_has_its_share_of_the_span_log_and_no_warm_up_is_kept/warm",
    "sim::each_bench_has_its_share_of_the_span_log_and_no_warm_up_is_kept/flood",
    "sim::each_bench_has_its_share_of_the_span_log_and_no_warm_up_is_kept/after",
];

#[measure_energy]
fn flood_edge() {}

#[measure_energy]
fn calm_layer() {
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_micros(150) {
        std::hint::spin_loop();
    }
}

/// Floods the span log for the first 30 ms it is called (the warm-up), then runs calm.
fn flood_then_calm(b: &mut joules::bench::Bencher<'_>) {
    let start = std::time::Instant::now();
    b.iter(|| {
        if start.elapsed() < Duration::from_millis(30) {
            for _ in 0..1000 {
                flood_edge();
            }
        }
        calm_layer();
    });
}

fn floods_throughout(b: &mut joules::bench::Bencher<'_>) {
    b.iter(|| {
        for _ in 0..200 {
            flood_edge();
        }
        calm_layer();
    });
}

/// A span log far too small for a bench that floods it: the warm-up's spans are not kept, so
/// the samples after a flooding warm-up keep theirs, and a bench that floods throughout fills
/// only its own share, so the bench after it keeps its spans too.
#[test]
fn each_bench_has_its_share_of_the_span_log_and_no_warm_up_is_kept() {
    if joules_tests::caps::in_child() {
        joules::__private::set_span_log_capacity(30_000);
    }
    let Some(report) = bench_in_child(
        BUDGET_TEST,
        (3, 40, 60),
        &[],
        &[
            (BUDGET_BENCHES[0], flood_then_calm as Bench),
            (BUDGET_BENCHES[1], floods_throughout),
            (BUDGET_BENCHES[2], flood_then_calm),
        ],
    ) else {
        return;
    };
    let names: Vec<&str> = report.benches.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, BUDGET_BENCHES);
    for (bench, flooded) in report.benches.iter().zip([false, true, false]) {
        let calls = |path: &str| bench.spans.iter().find(|s| s.path == path).map_or(0.0, |s| s.calls.point);
        if flooded {
            let flood = calls("flood_edge");
            assert!(flood > 0.0 && flood < 200.0, "{}: the flood fills its share: {flood}", bench.name);
        } else {
            assert_eq!(calls("calm_layer"), 1.0, "{}: every span of the samples is kept", bench.name);
            assert_eq!(calls("flood_edge"), 0.0, "{}: no warm-up span is kept", bench.name);
        }
    }
    // The first bench's warm-up overflowed its share: said, apart from the rest.
    assert!(
        report.benches[0]
            .warnings
            .iter()
            .any(|w| w.contains("span edges were dropped") && w.contains("of them before the samples")),
        "{:?}",
        report.benches[0].warnings
    );
}

const FORGET_TEST: &str = "sim::a_guard_an_iteration_forgets_ends_with_the_iteration";

fn forgets_a_guard(b: &mut joules::bench::Bencher<'_>) {
    b.iter(|| {
        std::mem::forget(joules::span!("forgotten"));
        calm_layer();
    });
}

/// A guard an iteration forgets outside every span (the bench closure's own) cannot be told
/// from a live one by the spans alone: the harness ends it when the iteration returns. Later
/// iterations nest nowhere under it, it is left out of the figures, and the warning says so.
/// (Without the harness's cut, every iteration nested under the last: `forgotten/calm_layer`,
/// `forgotten/forgotten/calm_layer`, ...)
#[test]
fn a_guard_an_iteration_forgets_ends_with_the_iteration() {
    let Some(report) =
        bench_in_child(FORGET_TEST, (3, 20, 20), &[], &[(FORGET_TEST, forgets_a_guard as Bench)])
    else {
        return;
    };
    let bench = &report.benches[0];
    let paths: Vec<(&str, f64)> = bench.spans.iter().map(|s| (s.path.as_str(), s.calls.point)).collect();
    assert_eq!(paths, [("calm_layer", 1.0)], "nothing nests under a forgotten guard");
    let flags = &bench.spans[0].flags;
    assert!(
        !flags.contains(&joules::report::Flag::NotLeft)
            && !flags.contains(&joules::report::Flag::ForgottenInside),
        "{flags:?}"
    );
    let warning = bench
        .warnings
        .iter()
        .find(|w| w.contains("of `forgotten` outside any span") && w.contains("never dropped"))
        .unwrap_or_else(|| panic!("{:?}", bench.warnings));
    // Only the samples' iterations count: the warm-up's spans, each ended by a cut, were
    // dropped with it.
    let counted: u64 = warning
        .split(" of `forgotten` outside any span")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{warning}"));
    let iterations: u64 = bench.samples.iter().map(|s| s.iterations).sum();
    assert!(counted <= iterations + 1 && counted + 3 >= iterations, "{counted} of {iterations}: {warning}");
}

const OPS_TEST: &str = "sim::declared_operations_give_ops_per_call_and_per_joule_in_every_format";

/// A layer whose multiply-adds come from its shape.
#[measure_energy(ops = rows * cols)]
fn matvec(rows: u64, cols: u64) {
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_micros(rows * cols / 1000) {
        std::hint::spin_loop();
    }
}

#[measure_energy]
fn model() {
    matvec(1000, 300);
    matvec(1000, 100);
    // Counted at run time, inside a span of its own; it takes 50 µs, so that its energy (and
    // so its ops/J) is never lost in the attribution's noise, as an empty span's can be.
    let _softmax = joules::span!("softmax");
    joules::add_ops(50_000);
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_micros(50) {
        std::hint::spin_loop();
    }
}

fn runs_a_model(b: &mut joules::bench::Bencher<'_>) {
    b.inferences_per_iter(4);
    // Not an energy: left out, with a warning.
    b.training_energy(Joules(f64::NAN), "a typo");
    // The test's JOULES_TRAINING_J overrides this.
    b.training_energy(Joules(1000.0), "declared in the bench");
    b.iter(model);
}

/// Operations declared by `#[measure_energy(ops = ...)]` and `joules::add_ops`: each path
/// gets its own per call, its descendants' added in `inclusive`, and operations per joule
/// with an interval from the joules', in the JSON, the table, Markdown and CSV.
#[test]
fn declared_operations_give_ops_per_call_and_per_joule_in_every_format() {
    let Some(report) = bench_in_child(
        OPS_TEST,
        (4, 30, 20),
        &[("JOULES_TRAINING_J", "5e3"), ("JOULES_TRAINING_SOURCE", "a model card")],
        &[(OPS_TEST, runs_a_model as Bench)],
    ) else {
        return;
    };
    let bench = &report.benches[0];
    // Four inferences an iteration; the training energy the environment declared (over
    // the bench's own), and when inference overtakes it.
    assert_eq!(bench.inferences_per_iteration, 4);
    let per_inference = bench.domains[0].total_j.point / 4.0;
    let training = bench.training.as_ref().expect("a training energy");
    assert_eq!((training.energy_j, training.source.as_str()), (5e3, "a model card"));
    let n = training.break_even_inferences.as_ref().expect("a break-even");
    assert!(
        (n.point - 5e3 / per_inference).abs() <= 1e-9 * n.point,
        "{} vs {}",
        n.point,
        5e3 / per_inference
    );
    assert!(n.lo.unwrap() < n.point && n.point < n.hi.unwrap(), "{n:?}");
    assert!(
        bench.warnings.iter().any(|w| w.starts_with("Bencher::training_energy(NaN J) ignored")),
        "{:?}",
        bench.warnings
    );
    let span = |path: &str| bench.spans.iter().find(|s| s.path == path).unwrap();
    let ops = |path: &str| span(path).ops.clone().unwrap_or_else(|| panic!("{path} has ops"));
    // Two calls of one site: 300k and 100k multiply-adds, 200k a call.
    assert_eq!(ops("model/matvec").per_call, 200_000.0);
    assert_eq!(ops("model/matvec").exclusive.point, 400_000.0);
    assert_eq!(ops("model/softmax").per_call, 50_000.0);
    assert_eq!(ops("model").exclusive.point, 0.0, "model declares none of its own");
    assert_eq!(ops("model").inclusive.point, 450_000.0, "but holds its layers'");
    for path in ["model", "model/matvec", "model/softmax"] {
        let s = span(path);
        let e = &s.energy[0];
        let rate = e.ops_per_j.as_ref().unwrap_or_else(|| panic!("{path}: ops/J"));
        let want = s.ops.as_ref().unwrap().inclusive.point / e.inclusive_j.point;
        assert!((rate.point - want).abs() <= 1e-9 * want, "{path}: {} vs {want}", rate.point);
        let (lo, hi) = (rate.lo.unwrap(), rate.hi.unwrap_or(f64::INFINITY));
        assert!(lo < rate.point && rate.point < hi, "{path}: an interval around it: {lo} {hi}");
    }
    let table = joules::render::report(&report, joules::render::Format::Table);
    assert!(table.contains("ops/J (incl)") && table.contains("ops/call"), "{table}");
    assert!(table.contains("200.0 k") && table.contains("Mops/J ("), "{table}");
    assert!(
        table.contains("per inference: ") && table.contains("(an iteration does 4 inferences)"),
        "{table}"
    );
    assert!(
        table.contains("training: 5.000 kJ (1.39 Wh), declared: a model card; inference has used more after"),
        "{table}"
    );
    let md = joules::render::report(&report, joules::render::Format::Markdown);
    assert!(md.contains("| ops/J (incl) |") && md.contains("Mops/J ("), "{md}");
    // Rows of the table line up with its header.
    let header = md.lines().find(|l| l.starts_with("| span |")).unwrap();
    for line in md.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| span")) {
        assert_eq!(line.matches('|').count(), header.matches('|').count(), "{line}");
    }
    let csv = joules::render::report(&report, joules::render::Format::Csv);
    assert!(csv.lines().any(|l| l.contains("model/matvec,,,inclusive_ops,ops,4e5")), "{csv}");
    assert!(csv.lines().any(|l| l.contains(",ops_per_j,ops/J,")), "{csv}");
}
