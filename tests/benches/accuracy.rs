//! The accuracy benchmark: on simulated traces with known ground truth, the error of each
//! layer's summed joules by reading the counter at span edges (what pyJoules and Zeus do),
//! by time-share, and by what joules reports (the regression below LONG_SPAN_STEPS steps).
//!
//!     cargo bench -p joules-tests --bench accuracy            # the README table
//!     cargo bench -p joules-tests --bench accuracy -- coverage  # 200 seeded trials
//!
//! Each case is replayed through the real sampler on a virtual clock (reads cost 1.5 us,
//! wake-ups come 3-30 us late) and the real attribution; errors are medians over seeds.

use joules::Nanos;
use joules::stats::Estimate;
use joules_tests::trace::{Layer, Outcome, Trace};

fn layers(prefix: &str) -> Vec<Layer> {
    vec![
        Layer::new(&format!("{prefix}10us"), 10, 15.0, 1),
        Layer::new(&format!("{prefix}50us"), 50, 20.0, 1),
        Layer::new(&format!("{prefix}200us"), 200, 60.0, 1),
        Layer::new(&format!("{prefix}1ms"), 1_000, 35.0, 1),
        Layer::new(&format!("{prefix}10ms"), 10_000, 80.0, 10),
        Layer::new(&format!("{prefix}100ms"), 100_000, 50.0, 50),
    ]
}

fn cases() -> Vec<(&'static str, Trace)> {
    let jittered = Trace::rapl(layers(""), 1000, 50);
    let steady = Trace::rapl(layers(""), 1000, 0);
    let mut two = Trace::rapl(layers("a"), 1000, 50);
    let mut other = layers("b");
    // The second thread's layers draw other powers, so an equal split would be wrong.
    for (l, w) in other.iter_mut().zip([25.0, 45.0, 30.0, 70.0, 40.0, 65.0]) {
        l.watts = joules::Watts(w);
    }
    two.threads.push(other);
    let mut gpu = Trace::rapl(layers(""), 5000, 0);
    gpu.period = Nanos(50_000_000);
    gpu.jitter = Nanos(2_000_000);
    gpu.unit = joules::Joules(1e-3);
    gpu.idle = joules::Watts(60.0);
    gpu.read_cost = Nanos(20_000);
    vec![
        ("RAPL-like, 1 ms +/-50 us", jittered),
        ("RAPL-like, 1 ms, no jitter", steady),
        ("2 threads at once", two),
        ("GPU-like counter, 50 ms +/-2 ms, 1 mJ", gpu),
    ]
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn pct(x: f64) -> String {
    format!("{:+.1}%", 100.0 * x)
}

/// One row per layer duration, one column per case: "edge / time-share / joules" errors,
/// each the median signed error over seeds (so a bias shows with its sign).
fn table(seeds: u64) {
    let cases = cases();
    let mut columns: Vec<(String, Vec<String>)> = Vec::new();
    for (name, trace) in &cases {
        let runs: Vec<Outcome> = (1..=seeds).map(|s| trace.run(s)).collect();
        let threads: Vec<String> = runs[0]
            .layers
            .iter()
            .map(|l| l.name[..l.name.len() - duration_len(&l.name)].to_owned())
            .collect();
        let mut prefixes = threads.clone();
        prefixes.dedup();
        for prefix in prefixes {
            let mut cells = Vec::new();
            for i in (0..runs[0].layers.len()).filter(|&i| threads[i] == prefix) {
                let col = |f: &dyn Fn(&joules_tests::trace::LayerResult) -> f64| {
                    median(runs.iter().map(|r| r.layers[i].err(f(&r.layers[i]))).collect())
                };
                cells.push(format!(
                    "{} / {} / **{}**",
                    pct(col(&|l| l.edge)),
                    pct(col(&|l| l.time_share)),
                    pct(col(&|l| l.chosen))
                ));
            }
            let label = if prefix.is_empty() { name.to_string() } else { format!("{name}, thread {prefix}") };
            columns.push((label, cells));
        }
        let worst = runs.iter().map(|r| r.step_error.0.0).max().unwrap_or(0);
        let share = runs.iter().map(|r| r.step_error.1).sum::<f64>() / runs.len() as f64;
        eprintln!(
            "{name}: step stamps called precise {:.1}%, worst error among them {:.1} us",
            100.0 * share,
            worst as f64 / 1000.0
        );
    }
    println!("| layer | {} |", columns.iter().map(|c| c.0.as_str()).collect::<Vec<_>>().join(" | "));
    println!("|---|{}", "---|".repeat(columns.len()));
    for (r, d) in ["10 µs", "50 µs", "200 µs", "1 ms", "10 ms", "100 ms"].iter().enumerate() {
        let cells: Vec<&str> = columns.iter().map(|c| c.1[r].as_str()).collect();
        println!("| {d} | {} |", cells.join(" | "));
    }
}

/// The length of the duration suffix of a layer's name ("10us", "1ms", ...).
fn duration_len(name: &str) -> usize {
    ["100ms", "10ms", "1ms", "200us", "50us", "10us"]
        .iter()
        .find(|d| name.ends_with(*d))
        .map_or(0, |d| d.len())
}

/// Over seeded trials of the acceptance trace, how often the estimator's 95% interval (as
/// `summary` builds it for one sample: Student's t on its standard error) holds the truth.
fn coverage(trials: u64) {
    let trace = Trace::acceptance();
    let runs: Vec<Outcome> = (1..=trials).map(|s| trace.run(s)).collect();
    println!("| layer | error (median, worst) | 95% interval holds the truth |");
    println!("|---|---|---|");
    for i in 0..runs[0].layers.len() {
        let mut errs = Vec::new();
        let mut inside = 0;
        for r in &runs {
            let l = &r.layers[i];
            errs.push(l.err(l.regression).abs());
            let e = Estimate::from_model(l.regression, l.regression_se, l.dof);
            if e.lo.is_some_and(|lo| lo <= l.truth) && e.hi.is_some_and(|hi| l.truth <= hi) {
                inside += 1;
            }
        }
        let worst = errs.iter().cloned().fold(0.0, f64::max);
        println!(
            "| {} | {:.2}%, {:.2}% | {}/{} ({:.1}%) |",
            runs[0].layers[i].name,
            100.0 * median(errs),
            100.0 * worst,
            inside,
            runs.len(),
            100.0 * inside as f64 / runs.len() as f64
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let started = std::time::Instant::now();
    if args.iter().any(|a| a == "coverage") {
        coverage(std::env::var("ACCURACY_TRIALS").ok().and_then(|n| n.parse().ok()).unwrap_or(200));
    } else {
        table(9);
    }
    eprintln!("({:.1} s)", started.elapsed().as_secs_f64());
}
