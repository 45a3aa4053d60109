//! joules' end-to-end tests: one binary, one module per area.

// RAPL powercap against a fake sysfs tree: wraps, subzones, malformed trees.
mod powercap;
// RAPL through MSR files: Intel and AMD layouts, 32-bit wraps, unit register.
mod msr;
// RAPL through the perf power PMU: sysfs parsing, the opener, diagnoses.
mod perf;
// NVIDIA GPUs through nvml-wrapper and a fake libnvidia-ml.so.
mod nvml;
// `doctor --fix`: energy files readable by a group, applied to a fake tree.
mod access;
// hwmon: AMD and Intel GPUs, amd_energy, Jetson rails, against fake trees.
mod hwmon;
// Choosing sources: trust order, one reader per package, update periods.
mod probe;
// `doctor` golden tests for typical machines.
mod doctor;
// The simulated source: attribution against known ground truth.
mod sim;
// Per-layer accuracy against simulated truth: short layers, threads, slow counters.
mod accuracy;
// Attribution conserves energy on random span trees (proptest).
mod conservation;
// The light crate: no heavy dependency without default features (cargo metadata).
mod features;
// `joules::criterion::Energy` on the simulator.
mod criterion_energy;
// `tracing` spans through joules' Layer, against simulated truth.
mod traced;
// Spans: idle guards, async fns, threads, generic fns and methods.
mod spans;
// Reports: atomic writes, refusing damaged and foreign files.
mod report;
// Span identity: same-named sites under one parent stay apart.
mod identity;
// Every output format of bench and compare, against golden files.
mod formats;
// Process runs merged, and compared by the variation between them.
mod runs;
// Idle power subtracted once per unit of wall time, over the time each domain was read.
mod idle;
// `Window`: a region's joules at once, within its stated bounds.
mod window;
// Live profiles: folded totals against simulated truth, bounded memory.
mod live;
// Prometheus and OpenTelemetry views of a live profile.
mod metrics;

/// Average power of domain `id` over its readings.
pub(crate) fn watts(rec: &joules::Recording, id: &str) -> f64 {
    let d =
        rec.timeline.domains.iter().find(|d| d.domain.id == id).unwrap_or_else(|| panic!("no domain {id}"));
    let s = &d.series;
    assert!(s.len() >= 2, "{id}: fewer than two readings");
    // The least-squares slope of energy over time, not the endpoints' difference: a fake's
    // writer thread preempted between computing a value and writing it (a loaded 2-core CI
    // machine) makes that reading late, and one late endpoint of a 500 ms run moved the
    // endpoint figure by over 1%. Every reading has the same weight in the slope.
    let n = s.len() as f64;
    let t: Vec<f64> = s.times.iter().map(|t| t.as_secs_f64()).collect();
    let (mt, me) = (t.iter().sum::<f64>() / n, s.energy.iter().map(|e| e.0).sum::<f64>() / n);
    let (mut cov, mut var) = (0.0, 0.0);
    for (t, e) in t.iter().zip(&s.energy) {
        cov += (t - mt) * (e.0 - me);
        var += (t - mt) * (t - mt);
    }
    cov / var
}

/// Insta settings for this binary's golden files: in `snapshots/`, no module prefix.
pub(crate) fn golden_base() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings
}

/// For output of a live probe: [`golden_base`], each `(path, marker)` replaced by its marker,
/// and measured update periods (which vary from run to run) masked.
pub(crate) fn golden_settings(paths: &[(&std::path::Path, &str)]) -> insta::Settings {
    let mut settings = golden_base();
    for (path, marker) in paths {
        settings.add_filter(&regex_escape(path.to_str().unwrap()), *marker);
    }
    settings.add_filter(r"[0-9.]+ (ms|µs|ns|s) measured", "[period] measured");
    settings.add_filter(
        r#""update_period_ns": \d+,(\s+)"update_period_measured": true"#,
        r#""update_period_ns": "[period]",$1"update_period_measured": true"#,
    );
    settings
}

fn regex_escape(s: &str) -> String {
    s.chars().fold(String::new(), |mut out, c| {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
        out
    })
}
// The script that fetches the real models' weights: clear one-line failures.
mod fetch;
