//! `cargo joules run -- CMD`: a whole command's energy per domain, labelled.

use serde_json::Value;

use crate::{cargo_joules, text};

/// Runs `cargo joules run` with a JSON figure on stderr and a report; both parsed.
fn run(cmd: &[&str]) -> (i32, Value, joules::report::Report) {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("run.json");
    let mut args = vec!["run", "--format", "json", "-o", report.to_str().unwrap(), "--"];
    args.extend_from_slice(cmd);
    let out = cargo_joules(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let json = stderr
        .find('{')
        .map(|i| &stderr[i..])
        .unwrap_or_else(|| panic!("no JSON on stderr:\n{}", text(&out)));
    let figure: Value = serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{e}:\n{stderr}"));
    let report = joules::report::Report::read(&report).expect("the run's report reads back");
    (out.status.code().unwrap(), figure, report)
}

/// The sum over top-level domains of (point, lo, hi), and every domain's provenance.
fn total(figure: &Value) -> ((f64, f64, f64), Vec<String>) {
    let mut sum = (0.0, 0.0, 0.0);
    let mut provenance = Vec::new();
    for d in figure["domains"].as_array().unwrap() {
        provenance.push(d["provenance"].as_str().unwrap().to_owned());
        if d.get("part_of").is_some() {
            continue;
        }
        let e = &d["energy"];
        assert!(e.is_object(), "domain {} has no figure: {d}", d["domain"]);
        sum.0 += e["point"].as_f64().unwrap();
        sum.1 += e["lo"].as_f64().unwrap();
        sum.2 += e["hi"].as_f64().unwrap();
    }
    (sum, provenance)
}

#[test]
fn sleep_and_a_busy_command_are_measured_per_domain_and_the_busy_one_costs_more() {
    let _turn = crate::fixture_lock();
    let (code, sleep, sleep_report) = run(&["sleep", "1"]);
    assert_eq!(code, 0);
    // A loop in a child of the command (timeout runs sh): the whole process tree counts.
    let (busy_code, busy, busy_report) = run(&["timeout", "1", "sh", "-c", "while :; do :; done"]);
    assert_eq!(busy_code, 124, "the command's own exit code (timeout's) is passed on");
    let ((sp, slo, shi), sleep_prov) = total(&sleep);
    let ((bp, blo, bhi), busy_prov) = total(&busy);
    eprintln!(
        "sleep 1: {sp:.4} J [{slo:.4}, {shi:.4}]; busy 1 s: {bp:.4} J [{blo:.4}, {bhi:.4}]; {busy_prov:?}"
    );
    for p in sleep_prov.iter().chain(&busy_prov) {
        assert!(
            p.starts_with("measured")
                || p.starts_with("estimated")
                || p.starts_with("integrated")
                || p.starts_with("modelled"),
            "every figure says where it came from: {p}"
        );
    }
    for (figure, secs) in [(&sleep, 1.0), (&busy, 1.0)] {
        let d = (figure["end"].as_u64().unwrap() - figure["start"].as_u64().unwrap()) as f64 * 1e-9;
        assert!((d - secs).abs() < 0.5, "window of {d} s for a {secs} s command");
    }
    assert!(slo <= sp && sp <= shi && blo <= bp && bp <= bhi);
    // Clearly larger: the busy command's least energy exceeds the sleeping one's most.
    assert!(blo > shi, "busy [{blo}, {bhi}] J is not clearly above sleep [{slo}, {shi}] J");
    // The report is the usual format: one bench named after the command, the command a span.
    assert_eq!(sleep_report.benches[0].name, "sleep 1");
    assert_eq!(busy_report.benches[0].spans[0].path, "command");
    assert!(!busy_report.benches[0].domains.is_empty());
}

#[test]
fn a_command_that_cannot_start_is_a_usage_error_that_names_it() {
    let out = cargo_joules(&["run", "--", "/nonexistent/joules-no-such-program"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("/nonexistent/joules-no-such-program"), "{}", text(&out));
}

#[test]
fn a_domain_no_source_offers_is_a_usage_error_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let touch = format!("touch {}", marker.display());
    let out = cargo_joules(&["run", "--domain", "no-such-domain", "--", "sh", "-c", &touch]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no source offers a domain \"no-such-domain\""), "{}", text(&out));
    assert!(!marker.exists(), "the command must not run when the selection is wrong");
    let out = cargo_joules(&["doctor", "--source", "rapl"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("unknown source \"rapl\""), "{}", text(&out));
}
