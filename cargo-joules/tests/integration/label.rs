//! `cargo joules label` on a fixed report (the bundled MLP and its pruned variant, measured by
//! the CPU-time estimate on a 2-core VM): golden SVG text and JSON, and every figure checked
//! against the report it came from.

use std::path::{Path, PathBuf};

use joules::report::Report;

use crate::{cargo_joules, text};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mlp-report.json")
}

/// The text of every `<text>` element, in order, entities decoded.
fn svg_text(svg: &str) -> Vec<String> {
    svg.split("<text ")
        .skip(1)
        .map(|t| {
            let body = &t[t.find('>').unwrap() + 1..t.find("</text>").unwrap()];
            body.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&amp;", "&")
        })
        .collect()
}

/// Labels the fixture's pruned MLP against its dense one; returns the SVG and the JSON.
fn label(dir: &Path, extra: &[&str]) -> (String, serde_json::Value, String) {
    let svg = dir.join("label.svg");
    let fixture = fixture();
    let mut args = vec![
        "label",
        fixture.to_str().unwrap(),
        "--bench",
        "pruned",
        "--reference-bench",
        "inference",
        "-o",
        svg.to_str().unwrap(),
        "--color",
        "never",
    ];
    args.extend(extra);
    let out = cargo_joules(&args);
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("label.json")).unwrap()).unwrap();
    (std::fs::read_to_string(&svg).unwrap(), json, String::from_utf8(out.stdout).unwrap())
}

fn rounded(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            let x = n.as_f64().unwrap();
            let r: f64 = format!("{x:.8e}").parse().unwrap();
            serde_json::json!(r)
        }
        Value::Array(a) => Value::Array(a.into_iter().map(rounded).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, rounded(v))).collect()),
        other => other,
    }
}

#[test]
fn the_label_of_a_fixed_report_is_golden() {
    let dir = tempfile::tempdir().unwrap();
    let (svg, json, terminal) = label(dir.path(), &[]);
    insta::assert_snapshot!("label_svg_text", svg_text(&svg).join("\n"));
    // Nine significant digits: the last ones of a t quantile may differ between platforms'
    // maths libraries; `the_label_figures_are_the_reports` checks the figures exactly.
    insta::assert_json_snapshot!("label_json", rounded(json));
    insta::assert_snapshot!("label_terminal", terminal);
}

#[test]
fn the_label_figures_are_the_reports() {
    let dir = tempfile::tempdir().unwrap();
    let (_, json, _) = label(dir.path(), &[]);
    let report = Report::read(&fixture()).unwrap();
    let pruned = report.benches.iter().find(|b| b.name.ends_with("pruned")).unwrap();
    let dense = report.benches.iter().find(|b| b.name == "inference").unwrap();
    let close = |got: f64, want: f64, what: &str| {
        assert!((got - want).abs() <= 1e-9 * want.abs(), "{what}: label {got}, report {want}");
    };
    let f = |v: &serde_json::Value| v.as_f64().unwrap();

    // Energy per inference: the top domains' joules per iteration over its 32 inferences.
    let iteration: f64 = pruned.domains.iter().filter(|d| d.part_of.is_none()).map(|d| d.total_j.point).sum();
    let per_inference = iteration / pruned.inferences_per_iteration as f64;
    assert_eq!(pruned.inferences_per_iteration, 32);
    close(f(&json["j_per_inference"]["point"]), per_inference, "J per inference");
    close(f(&json["wh_per_1000"]["point"]), per_inference * 1000.0 / 3600.0, "Wh per 1000");

    // Efficiency: the root span's declared multiply-adds, two operations each, per joule.
    let macs = pruned.spans.iter().find(|s| s.depth == 0).unwrap().ops.as_ref().unwrap().inclusive.point;
    let ops_per_j = 2.0 * macs / pruned.inferences_per_iteration as f64 / per_inference;
    close(f(&json["efficiency"]["value"]["point"]), ops_per_j, "ops per joule");
    let expected =
        ['A', 'B', 'C', 'D', 'E', 'F', 'G'][(13.0 - ops_per_j.log10()).ceil().clamp(0.0, 6.0) as usize];
    assert_eq!(json["efficiency"]["grade"], expected.to_string(), "a grade per decade from 1e13");

    // Index: 100 x pruned over dense energy per inference.
    let dense_iteration: f64 =
        dense.domains.iter().filter(|d| d.part_of.is_none()).map(|d| d.total_j.point).sum();
    let index = 100.0 * iteration / dense_iteration;
    assert!((f(&json["index"]["value"]["point"]) - index).abs() < 1e-6, "index {index}: {}", json["index"]);
    let bands = [41.0, 51.0, 64.0, 80.0, 100.0, 125.0];
    let grade = ['A', 'B', 'C', 'D', 'E', 'F', 'G'][bands.iter().position(|&b| index <= b).unwrap_or(6)];
    assert_eq!(json["index"]["grade"], grade.to_string());
    assert!(f(&json["index"]["value"]["lo"]) < index && index < f(&json["index"]["value"]["hi"]));

    // Carbon at the default grid, and break-even with the declared training energy.
    close(f(&json["carbon"]["g_per_inference"]["point"]), per_inference * 436.0 / 3.6e6, "gCO2e");
    close(f(&json["carbon"]["g_per_million"]["point"]), per_inference * 436.0 / 3.6, "gCO2e per million");
    let training = pruned.training.as_ref().unwrap();
    close(f(&json["training"]["training_j"]), training.energy_j, "training J");
    close(f(&json["training"]["inferences"]["point"]), training.energy_j / per_inference, "break-even");

    // Provenance: an estimate says so, and the hash is the file's.
    assert_eq!(json["provenance"]["measured"], false);
    let sha = json["provenance"]["report_sha256"].as_str().unwrap();
    assert_eq!(sha.len(), 64);
    let other = dir.path().join("copy.json");
    let mut bytes = std::fs::read(fixture()).unwrap();
    bytes.push(b'\n');
    std::fs::write(&other, &bytes).unwrap();
    let out = cargo_joules(&[
        "label",
        other.to_str().unwrap(),
        "-o",
        dir.path().join("b.svg").to_str().unwrap(),
        "--format",
        "json",
    ]);
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(again["provenance"]["report_sha256"].as_str().unwrap(), sha, "another file, another hash");
}

#[test]
fn grid_devices_and_op_units_are_the_users() {
    let dir = tempfile::tempdir().unwrap();
    let (svg, json, _) = label(
        dir.path(),
        &[
            "--grid-intensity",
            "56",
            "--grid-source",
            "France 2023, Ember",
            "--device",
            "my NPU=10",
            "--ops-per-declared",
            "1",
        ],
    );
    assert_eq!(json["carbon"]["grid"]["g_per_kwh"], 56.0);
    let j = json["j_per_inference"]["point"].as_f64().unwrap();
    let g = json["carbon"]["g_per_inference"]["point"].as_f64().unwrap();
    assert!((g - j * 56.0 / 3.6e6).abs() <= 1e-9 * g, "carbon at the given grid: {g} g for {j} J");
    assert!(svg_text(&svg).iter().any(|l| l.contains("France 2023, Ember")));
    let npu = json["what_if"].as_array().unwrap().iter().find(|p| p["device"]["name"] == "my NPU").unwrap();
    let ops = json["ops_per_inference"].as_f64().unwrap();
    assert!((npu["j_per_inference_at_peak"].as_f64().unwrap() - ops / 1e13).abs() < 1e-18);
    let (_, doubled, _) = label(dir.path(), &[]);
    assert!((doubled["ops_per_inference"].as_f64().unwrap() - 2.0 * ops).abs() < 1e-6 * ops);

    let bad = cargo_joules(&["label", fixture().to_str().unwrap(), "--device", "nameless"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    let missing = cargo_joules(&["label", "/nonexistent/report.json"]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    assert!(text(&missing).contains("does not exist"), "{}", text(&missing));
}

#[test]
fn a_measured_label_drops_the_estimate_banner_and_an_estimated_one_shouts_it() {
    let dir = tempfile::tempdir().unwrap();
    let (svg, _, terminal) = label(dir.path(), &[]);
    assert!(svg_text(&svg).contains(&"ESTIMATED — NOT MEASURED".to_owned()));
    assert!(terminal.contains("ESTIMATED — NOT MEASURED"));

    let mut report = Report::read(&fixture()).unwrap();
    for b in &mut report.benches {
        for d in &mut b.domains {
            d.source = joules::source::SourceKind::Powercap;
            d.provenance = "measured (RAPL powercap)".into();
        }
    }
    let measured = dir.path().join("measured.json");
    report.write_atomic(&measured).unwrap();
    let svg_path = dir.path().join("m.svg");
    let out = cargo_joules(&["label", measured.to_str().unwrap(), "-o", svg_path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let lines = svg_text(&std::fs::read_to_string(&svg_path).unwrap());
    assert!(!lines.iter().any(|l| l.contains("ESTIMATED")), "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains("measured (RAPL powercap)")), "{lines:#?}");
}

#[test]
fn a_grade_the_interval_can_move_names_the_grades_it_reaches() {
    // The fixture's energy samples spread from 0.2x to 1.8x their mean: the efficiency's
    // interval then reaches past a decade boundary.
    let mut report = Report::read(&fixture()).unwrap();
    let bench = report.benches.iter_mut().find(|b| b.name.ends_with("pruned")).unwrap();
    for d in &mut bench.domains {
        let mean = d.total_j.point;
        let n = d.total_j.samples.len();
        let spread: Vec<f64> = (0..n).map(|i| mean * (0.2 + 1.6 * i as f64 / (n - 1) as f64)).collect();
        d.total_j = joules::stats::Estimate::from_samples(spread);
    }
    let dir = tempfile::tempdir().unwrap();
    let wide = dir.path().join("wide.json");
    report.write_atomic(&wide).unwrap();
    let svg = dir.path().join("w.svg");
    let out = cargo_joules(&[
        "label",
        wide.to_str().unwrap(),
        "--bench",
        "pruned",
        "-o",
        svg.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = &json["efficiency"];
    let grade = |ops_per_j: f64| {
        ['A', 'B', 'C', 'D', 'E', 'F', 'G'][(13.0 - ops_per_j.log10()).ceil().clamp(0.0, 6.0) as usize]
    };
    let (lo, hi) = (e["value"]["lo"].as_f64().unwrap(), e["value"]["hi"].as_f64().unwrap());
    let want = (grade(hi).to_string(), grade(lo).to_string());
    assert_ne!(want.0, want.1, "the fixture's interval straddles a boundary: {e}");
    assert_eq!(
        (e["range"][0].as_str().unwrap(), e["range"][1].as_str().unwrap()),
        (want.0.as_str(), want.1.as_str())
    );
    let lines = svg_text(&std::fs::read_to_string(&svg).unwrap());
    assert!(
        lines.iter().any(|l| l.contains(&format!("{}–{} within the 95% interval", want.0, want.1))),
        "{lines:#?}"
    );
}

#[test]
fn a_reference_from_elsewhere_is_refused_unless_allowed_and_then_said() {
    let dir = tempfile::tempdir().unwrap();
    let mut other = Report::read(&fixture()).unwrap();
    other.host.cpu_model = "Another CPU".into();
    let reference = dir.path().join("other.json");
    other.write_atomic(&reference).unwrap();
    let svg = dir.path().join("l.svg");
    let args = |extra: &[&'static str]| {
        let mut a =
            vec!["label".to_owned(), fixture().display().to_string(), "--bench".into(), "pruned".into()];
        a.extend([
            "--reference".into(),
            reference.display().to_string(),
            "--reference-bench".into(),
            "inference".into(),
        ]);
        a.extend(["-o".into(), svg.display().to_string(), "--format".into(), "json".into()]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let refused = cargo_joules(&args(&[]).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(refused.status.code(), Some(5), "{}", text(&refused));
    assert!(text(&refused).contains("Another CPU"), "{}", text(&refused));
    assert!(!svg.exists(), "nothing written");
    let allowed = cargo_joules(&args(&["--allow-mismatch"]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(allowed.status.success(), "{}", text(&allowed));
    let json: serde_json::Value = serde_json::from_slice(&allowed.stdout).unwrap();
    let warnings = json["warnings"].as_array().unwrap();
    assert!(warnings.iter().any(|w| w.as_str().unwrap().contains("not like for like")), "{warnings:?}");
    assert!(json["index"]["grade"].is_string());
    let lines = svg_text(&std::fs::read_to_string(&svg).unwrap());
    assert!(lines.iter().any(|l| l.contains("not like for like")), "the SVG shows warnings: {lines:#?}");
}

#[test]
fn an_svg_path_ending_in_json_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("label.json");
    let out = cargo_joules(&["label", fixture().to_str().unwrap(), "-o", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains(".svg"), "{}", text(&out));
    assert!(!path.exists());
}
