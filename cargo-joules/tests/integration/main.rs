//! Drives the real `cargo-joules` binary.

// The HTML report in headless Chromium.
mod browser;
// `doctor --fix`: a plan by default.
mod fix;
// Flame graphs, plain and differential, parsed back from their SVG.
mod flame;
// The regression gate end to end on the simulated fixture.
mod gate;
// The energy label: golden text and JSON, figures traced to the report.
mod label;
// The stated minimum Rust version against the locked dependencies'.
mod msrv;
// Damaged and foreign reports and baselines.
mod robustness;
// `cargo joules run -- CMD`: a whole command's energy.
mod run;

use std::process::{Command, Output};

use joules::exit::ExitCodes;

/// Tests that build or run the simulated fixture take this in turn: the gate's reruns time
/// counter steps on the real clock, and a fixture build beside them (two cores busy with
/// rustc) leaves the sampler too late, too often, to place steps.
pub(crate) fn fixture_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn cargo_joules(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cargo-joules")).arg("joules").args(args).output().unwrap()
}

pub(crate) fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn help_documents_every_exit_code() {
    let out = cargo_joules(&["bench", "--help"]);
    assert!(out.status.success());
    let help = text(&out);
    for (_, code) in ExitCodes::ALL {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(&format!("{code} "))),
            "code {code} missing:\n{help}"
        );
    }
}

#[test]
fn a_workspace_without_joules_benches_is_a_usage_error() {
    let _turn = fixture_lock();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[package]\nname = \"plain\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/lib.rs"), "").unwrap();
    let manifest = dir.path().join("Cargo.toml");
    let out = cargo_joules(&["bench", "--manifest-path", manifest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(i32::from(ExitCodes::USAGE)), "{}", text(&out));
    assert!(text(&out).contains("no bench target uses joules"), "{}", text(&out));
}

#[test]
fn a_missing_manifest_is_a_metadata_failure() {
    let out = cargo_joules(&["bench", "--manifest-path", "/nonexistent/Cargo.toml"]);
    assert_eq!(out.status.code(), Some(i32::from(ExitCodes::METADATA_FAILED)), "{}", text(&out));
}

#[test]
fn bad_arguments_are_usage_errors() {
    let out = cargo_joules(&["bench", "--samples", "1"]);
    assert_eq!(out.status.code(), Some(i32::from(ExitCodes::USAGE)), "{}", text(&out));
}

/// The real doctor on the machine the tests run on. Without RAPL (a VM, most CI runners) it
/// must say that the estimate is in use, why, and exit with NO_COUNTER.
#[test]
fn doctor_on_this_machine() {
    let out = cargo_joules(&["doctor"]);
    let report = text(&out);
    let json = cargo_joules(&["doctor", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).expect("doctor --format json is JSON");
    if doc["measured"] == true {
        assert_eq!(out.status.code(), Some(0), "{report}");
        assert!(report.contains("energy is measured"), "{report}");
    } else {
        assert_eq!(out.status.code(), Some(i32::from(ExitCodes::NO_COUNTER)), "{report}");
        assert!(report.contains("estimate ┆ in use"), "{report}");
        assert!(report.contains("figures are estimated from CPU time"), "{report}");
        if !std::path::Path::new("/dev/nvidiactl").exists() {
            assert!(report.contains("nvml: no NVML library"), "says why there is no GPU:\n{report}");
        }
        for source in ["perf", "powercap", "msr"] {
            assert!(
                report.lines().any(|l| l.starts_with(&format!("{source}: "))),
                "no reason for {source}:\n{report}"
            );
        }
    }
}
