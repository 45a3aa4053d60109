//! `cargo joules flamegraph`: one frame per span path, each as wide as its joules; and the
//! differential graph colours only the changes that are significant.

use std::path::Path;
use std::time::Duration;

use joules::report::Report;
use joules::source::{Sim, SimScript};
use joules::stats::Estimate;
use joules::{Profiler, Watts};

use crate::{cargo_joules, text};

/// Ten samples around `mean`, spread ±1%.
fn est(mean: f64) -> Estimate {
    Estimate::from_samples((0..10).map(|i| mean * (1.0 + 0.002 * (i as f64 - 4.5))).collect())
}

/// A report of `model/{embed, layer/{attention, ffn}, head}` whose exclusive joules are
/// `exclusive` (in that order of paths), its inclusive figures their sums.
fn report(exclusive: [f64; 6]) -> Report {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let report = {
        let _lock = LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let profiler = Profiler::builder().source(Sim::new(SimScript::new(Watts(5.0)))).start().unwrap();
        {
            let _m = joules::span!("model");
            drop(joules::span!("embed"));
            {
                let _l = joules::span!("layer");
                drop(joules::span!("attention"));
                drop(joules::span!("ffn"));
            }
            drop(joules::span!("head"));
            std::thread::sleep(Duration::from_millis(2));
        }
        profiler.stop().report("model")
    };
    let mut report = report;
    let bench = &mut report.benches[0];
    let paths =
        ["model", "model/embed", "model/layer", "model/layer/attention", "model/layer/ffn", "model/head"];
    let got: Vec<&str> = bench.spans.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(got, paths, "the spans nest as written");
    for (span, j) in bench.spans.iter_mut().zip(exclusive) {
        let below: f64 = paths
            .iter()
            .zip(exclusive)
            .filter(|(p, _)| p.starts_with(&format!("{}/", span.path)))
            .map(|(_, x)| x)
            .sum();
        span.energy[0].exclusive_j = est(j);
        span.energy[0].inclusive_j = est(j + below);
    }
    report
}

fn write(dir: &Path, name: &str, report: &Report) -> String {
    let path = dir.join(name);
    report.write_atomic(&path).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Each frame of an inferno SVG: its title, its rect's width in percent and its fill.
fn frames(svg: &str) -> Vec<(String, f64, String)> {
    frames_with_nj(svg).into_iter().map(|(t, w, f, _)| (t, w, f)).collect()
}

/// Each frame, with its width in nanojoules (inferno's `fg:w`).
fn frames_with_nj(svg: &str) -> Vec<(String, f64, String, u64)> {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        Some(tag[start..][..tag[start..].find('"')?].to_owned())
    };
    svg.split("<g>")
        .skip(1)
        .filter_map(|g| {
            let title = g.split("<title>").nth(1)?.split("</title>").next()?;
            // `name (the tooltip)`: inferno's script labels a frame with its title less the
            // last parenthesis, so the tooltip goes in one, its own parentheses made brackets.
            let title = match title.split_once(" (") {
                _ if title.starts_with("all (") => title.to_owned(),
                Some((name, rest)) if rest.ends_with(')') && !rest[..rest.len() - 1].contains(['(', ')']) => {
                    let rest = &rest[..rest.len() - 1];
                    // Frame names write spaces as no-break spaces; paths keep theirs.
                    let name = name.replace('\u{a0}', " ");
                    assert!(rest.starts_with(&name) || rest.contains(&format!("/{name} · ")), "{title}");
                    rest.to_owned()
                }
                _ => panic!("a tooltip that inferno's script would show as the frame's label: {title}"),
            };
            let rect = g.split("<rect").nth(1)?.split("/>").next()?;
            let width = attr(rect, "width")?.trim_end_matches('%').parse().ok()?;
            Some((title, width, attr(rect, "fill")?, attr(rect, "fg:w")?.parse().ok()?))
        })
        .collect()
}

#[test]
fn a_flame_graph_has_a_frame_per_path_as_wide_as_its_joules() {
    let dir = tempfile::tempdir().unwrap();
    let exclusive = [0.5e-3, 2e-3, 1e-3, 3e-3, 4e-3, 1.5e-3];
    let input = write(dir.path(), "report.json", &report(exclusive));
    let svg_path = dir.path().join("flame.svg");
    let folded_path = dir.path().join("flame.folded");
    let out = cargo_joules(&[
        "flamegraph",
        &input,
        "-o",
        svg_path.to_str().unwrap(),
        "--folded",
        folded_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&svg_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "readable by all: {mode:o}");
    }
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    let with_nj = frames_with_nj(&svg);
    let frames = frames(&svg);
    let total: f64 = exclusive.iter().sum();
    let paths =
        ["model", "model/embed", "model/layer", "model/layer/attention", "model/layer/ffn", "model/head"];
    for (i, path) in paths.iter().enumerate() {
        let mine: Vec<&(String, f64, String)> =
            frames.iter().filter(|(t, _, _)| t.starts_with(&format!("{path} · "))).collect();
        assert_eq!(mine.len(), 1, "one frame for {path}: {frames:?}");
        let (title, width, _) = mine[0];
        // A frame spans its own joules and its descendants'.
        let inclusive: f64 = exclusive[i]
            + paths
                .iter()
                .zip(exclusive)
                .filter(|(p, _)| p.starts_with(&format!("{path}/")))
                .map(|(_, x)| x)
                .sum::<f64>();
        let want = 100.0 * inclusive / total;
        assert!((width - want).abs() < 1e-3, "{path}: {width}% vs {want}%");
        // In nanojoules, exactly: its own and its descendants' exclusive joules.
        let nj = with_nj.iter().find(|f| &f.0 == title).unwrap().3;
        assert_eq!(nj as f64, (inclusive * 1e9).round(), "{path}");
        // The tooltip carries the joules, the interval and the source.
        assert!(title.contains(" exclusive, ") && title.contains(" ± "), "{title}");
        assert!(title.contains("simulated"), "{title}");
    }
    // The whole graph's root ("all") spans everything; nothing else is drawn.
    assert_eq!(frames.len(), paths.len() + 1, "{frames:?}");
    let folded = std::fs::read_to_string(&folded_path).unwrap();
    assert!(folded.lines().any(|l| l == "model;layer;attention 3000000"), "{folded}");
}

#[test]
fn a_differential_flame_graph_colours_only_the_significant_change() {
    let dir = tempfile::tempdir().unwrap();
    let base = [0.5e-3, 2e-3, 1e-3, 3e-3, 4e-3, 1.5e-3];
    let mut worse = base;
    worse[3] *= 1.3; // attention: 30% costlier
    worse[4] *= 1.015; // ffn: 1.5% costlier, inside the 2% noise band: not coloured
    worse[1] *= 0.99; // embed: 1% cheaper, inside the noise band too
    worse[5] *= 0.7; // head: 30% cheaper
    let old = write(dir.path(), "old.json", &report(base));
    let new = write(dir.path(), "new.json", &report(worse));
    let svg_path = dir.path().join("diff.svg");
    let out = cargo_joules(&["flamegraph", "--diff", &old, &new, "-o", svg_path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    let frames = frames(&svg);
    let neutral = "rgb(250,250,250)";
    let paths =
        ["model", "model/embed", "model/layer", "model/layer/attention", "model/layer/ffn", "model/head"];
    for path in paths {
        let n = frames.iter().filter(|(t, _, _)| t.starts_with(&format!("{path} · "))).count();
        assert_eq!(n, 1, "{path}: {frames:?}");
    }
    assert_eq!(frames.len(), paths.len() + 1, "the paths and the root: {frames:?}");
    for (title, _, fill) in &frames {
        if title.starts_with("model/layer/attention · ") {
            assert!(fill.starts_with("rgb(255,"), "attention is red: {fill} ({title})");
            assert!(title.contains("regressed"), "{title}");
        } else if title.starts_with("model/head · ") {
            assert!(fill.ends_with(",255)") && fill != neutral, "head is blue: {fill} ({title})");
            assert!(title.contains("improved"), "{title}");
        } else {
            assert_eq!(fill, neutral, "{title}");
        }
        if title.starts_with("model/layer/ffn · ") {
            assert!(title.contains("within noise") || title.contains("no change"), "{title}");
        }
    }
    assert!(frames.iter().any(|(t, _, _)| t.starts_with("model/layer/attention · ")), "{frames:?}");
}

#[test]
fn a_missing_report_or_domain_is_a_clear_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.json");
    let out = cargo_joules(&["flamegraph", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("does not exist"), "{}", text(&out));
    let input = write(dir.path(), "report.json", &report([1e-3; 6]));
    let svg = dir.path().join("never.svg");
    let out = cargo_joules(&["flamegraph", &input, "--domain", "gpu-7", "-o", svg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no domain `gpu-7`"), "{}", text(&out));
    assert!(!svg.exists(), "nothing written");
}

/// A span named like its sibling plus a suffix that sorts before `;` (`layer` and `layer.0`)
/// must not split the sibling's frame in two; names are escaped in the SVG, and a name ending
/// in a number is not read as a count.
#[test]
fn sibling_names_that_share_a_prefix_keep_one_frame_each() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = report([0.5e-3, 2e-3, 1e-3, 3e-3, 4e-3, 1.5e-3]);
    for span in &mut r.benches[0].spans {
        if span.path == "model/embed" {
            span.path = "model/layer.0".into();
        }
        if span.path == "model/head" {
            span.path = "model/<head & tail> 3".into();
        }
    }
    let input = write(dir.path(), "report.json", &r);
    let svg_path = dir.path().join("flame.svg");
    let out = cargo_joules(&["flamegraph", &input, "-o", svg_path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    let frames = frames(&svg);
    for path in ["model/layer", "model/layer.0", "model/layer/attention", "model/&lt;head &amp; tail&gt; 3"] {
        let n = frames.iter().filter(|(t, _, _)| t.starts_with(&format!("{path} · "))).count();
        assert_eq!(n, 1, "{path}: {frames:?}");
    }
    assert_eq!(frames.len(), 7, "{frames:?}");
}

/// A differential graph whose old report lacks the bench says so, rather than drawing every
/// path as new and white.
#[test]
fn a_diff_against_a_report_without_the_bench_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut other = report([1e-3; 6]);
    other.benches[0].name = "something-else".into();
    let old = write(dir.path(), "old.json", &other);
    let new = write(dir.path(), "new.json", &report([1e-3; 6]));
    let svg = dir.path().join("diff.svg");
    let out = cargo_joules(&["flamegraph", "--diff", &old, &new, "-o", svg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("the old report has no figures for bench `model`"), "{}", text(&out));
    assert!(!svg.exists());
}
