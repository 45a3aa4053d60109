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

#[test]
fn the_label_of_a_fixed_report_is_golden() {
    let dir = tempfile::tempdir().unwrap();
    let (svg, json, terminal) = label(dir.path(), &[]);
    insta::assert_snapshot!("label_svg_text", svg_text(&svg).join("\n"));
    insta::assert_json_snapshot!("label_json", json);
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
