//! Damaged, newer-schema and foreign reports or baselines are refused with a one-line reason,
//! and never changed.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use joules::exit::ExitCodes;
use joules::report::Report;
use joules::source::{Sim, SimScript};
use joules::{Profiler, Watts};

use crate::text;

fn a_report() -> Report {
    // One profiler per process at a time; tests run on several threads.
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _lock = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let profiler = Profiler::builder().source(Sim::new(SimScript::new(Watts(5.0)))).start().unwrap();
    {
        let _s = joules::span!("layer");
        std::thread::sleep(Duration::from_millis(5));
    }
    profiler.stop().report("tiny")
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/simbench/Cargo.toml")
}

fn cargo_joules(target: &Path, args: &[&str]) -> Output {
    let _turn = crate::fixture_lock();
    std::process::Command::new(env!("CARGO_BIN_EXE_cargo-joules"))
        .arg("joules")
        .args(args)
        .env("CARGO_TARGET_DIR", target)
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .unwrap()
}

/// The error is one line that names the file and says what is wrong with it.
fn assert_refused(out: &Output, code: u8, file: &Path, why: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(i32::from(code)), "{}", text(out));
    let line =
        err.lines().find(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("no error line:\n{err}"));
    assert!(line.contains(&file.display().to_string()), "names the file: {line}");
    assert!(line.contains(why), "says why ({why}): {line}");
}

#[test]
fn damaged_or_newer_baselines_are_refused_and_kept() {
    let good = serde_json::to_string_pretty(&a_report()).unwrap();
    let cases = [
        ("truncated", good[..good.len() / 2].to_owned(), "EOF while parsing"),
        ("newer", good.replacen("\"schema\": 1", "\"schema\": 2", 1), "report schema 2"),
        ("foreign", "{\"benchmarks\": []}".to_owned(), "no `schema` field"),
    ];
    for (name, text_of_baseline, why) in cases {
        let target = tempfile::tempdir().unwrap();
        let path = target.path().join("joules/baselines/main.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text_of_baseline).unwrap();
        let manifest = fixture();
        let manifest = manifest.to_str().unwrap();
        for flag in ["--baseline", "--save-baseline"] {
            let out = cargo_joules(target.path(), &["bench", "--manifest-path", manifest, flag, "main"]);
            assert_refused(&out, ExitCodes::USAGE, &path, why);
            assert_eq!(std::fs::read_to_string(&path).unwrap(), text_of_baseline, "{name} {flag}: untouched");
        }
        let out = cargo_joules(target.path(), &["compare", path.to_str().unwrap(), path.to_str().unwrap()]);
        assert_refused(&out, ExitCodes::USAGE, &path, why);
    }
}

#[test]
fn a_baseline_that_was_never_saved_says_how_to_save_one() {
    let target = tempfile::tempdir().unwrap();
    let out = cargo_joules(
        target.path(),
        &["bench", "--manifest-path", fixture().to_str().unwrap(), "--baseline", "main"],
    );
    assert_eq!(out.status.code(), Some(i32::from(ExitCodes::USAGE)), "{}", text(&out));
    assert!(text(&out).contains("--save-baseline main"), "{}", text(&out));
}

#[test]
fn a_foreign_fingerprint_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let report = a_report();
    let mut foreign = report.clone();
    foreign.host.cpu_model = "Some Other CPU".into();
    let (old, new) = (dir.path().join("old.json"), dir.path().join("new.json"));
    foreign.write_atomic(&old).unwrap();
    report.write_atomic(&new).unwrap();
    let before = std::fs::read(&old).unwrap();
    let args = ["compare", old.to_str().unwrap(), new.to_str().unwrap()];
    let out = cargo_joules(dir.path(), &args);
    assert_eq!(out.status.code(), Some(i32::from(ExitCodes::INCOMPARABLE)), "{}", text(&out));
    assert!(text(&out).contains("CPU model differs (Some Other CPU vs"), "{}", text(&out));
    let allowed = cargo_joules(dir.path(), &[&args[..], &["--allow-mismatch"]].concat());
    assert_eq!(allowed.status.code(), Some(0), "{}", text(&allowed));
    assert!(text(&allowed).contains("compared although CPU model differs"), "{}", text(&allowed));
    assert_eq!(std::fs::read(&old).unwrap(), before);
}

#[test]
fn compare_appends_markdown_to_the_step_summary() {
    let dir = tempfile::tempdir().unwrap();
    let report = a_report();
    let path = dir.path().join("r.json");
    report.write_atomic(&path).unwrap();
    let summary = dir.path().join("summary.md");
    std::fs::write(&summary, "earlier step\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cargo-joules"))
        .args(["joules", "compare", path.to_str().unwrap(), path.to_str().unwrap(), "--format", "json"])
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--format json is JSON");
    assert!(json["changes"].as_array().is_some_and(|c| !c.is_empty()));
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.starts_with("earlier step\n### joules: energy comparison"), "{md}");
}

/// `compare --benches`: two benchmarks of one report (a model and its pruned variant) side by
/// side, with their declared operations and what each said of its quality; a name that is
/// not there is a one-line usage error naming those that are.
#[test]
fn two_benches_of_one_report_compare_as_variants() {
    use joules::report::SpanOps;
    use joules::stats::Estimate;
    let dir = tempfile::tempdir().unwrap();
    let mut report = a_report();
    let variant = |name: &str, ops: f64, accuracy: &str| {
        let mut b = report.benches[0].clone();
        b.name = name.to_owned();
        let exact = Estimate::from_samples(vec![ops, ops]);
        b.spans[0].ops = Some(SpanOps { exclusive: exact.clone(), inclusive: exact, per_call: ops });
        b.notes = vec![format!("accuracy {accuracy}")];
        b
    };
    let (dense, pruned) = (variant("mnist/dense", 1000.0, "98.8%"), variant("mnist/pruned", 600.0, "98.5%"));
    report.benches = vec![dense, pruned];
    let path = dir.path().join("r.json");
    report.write_atomic(&path).unwrap();
    let run = |a: &str, b: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cargo-joules"))
            .args(["joules", "compare", "--benches", a, b, path.to_str().unwrap(), "--color", "never"])
            .env_remove("GITHUB_STEP_SUMMARY")
            .output()
            .unwrap()
    };
    let out = run("dense", "pruned");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = text(&out);
    assert!(shown.contains("mnist/dense → mnist/pruned"), "{shown}");
    assert!(shown.contains("J/ops") && shown.contains("-40.0%"), "the operations saved: {shown}");
    assert!(shown.contains("note: mnist/dense: accuracy 98.8%"), "{shown}");
    assert!(shown.contains("note: mnist/pruned: accuracy 98.5%"), "{shown}");
    let missing = run("dense", "int8");
    assert_eq!(missing.status.code(), Some(i32::from(ExitCodes::USAGE)), "{}", text(&missing));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("no benchmark `int8` in the report (it has: mnist/dense, mnist/pruned)"), "{err}");
}
