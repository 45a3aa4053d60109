//! The HTML report in a real browser: Debian's chromium, headless (`scripts/setup-chromium`
//! installs it; CI sets JOULES_REQUIRE_CHROMIUM=1, so there its absence fails rather than
//! skips). The page must load with no console message at all, hold its bars, flame graphs,
//! label and comparison, and leave a screenshot to look at in
//! `target/tmp/browser/*.png`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{cargo_joules, text};

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("JOULES_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
}

/// The browser, or None (and why) where the test is to be skipped.
fn browser() -> Option<PathBuf> {
    match chromium() {
        Some(p) => Some(p),
        None if std::env::var_os("JOULES_REQUIRE_CHROMIUM").is_some_and(|v| v == "1") => {
            panic!("no chromium on PATH (JOULES_REQUIRE_CHROMIUM=1): run scripts/setup-chromium")
        }
        None => {
            eprintln!("SKIPPED: no chromium on PATH; scripts/setup-chromium installs it");
            None
        }
    }
}

/// What chromium made of a page: its DOM after the scripts ran, and every console message.
struct Loaded {
    dom: String,
    console: Vec<String>,
}

fn load(browser: &Path, page: &Path, profile: &Path, screenshot: Option<&Path>) -> Loaded {
    let url = format!("file://{}", page.display());
    let run = |extra: &[String]| {
        let out = Command::new(browser)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(["--enable-logging=stderr", "--v=0", "--window-size=1280,3200"])
            .args(extra)
            .arg(&url)
            .output()
            .expect("chromium runs");
        assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
        out
    };
    let out = run(&["--dump-dom".to_owned()]);
    let mut console: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_owned)
        .collect();
    if let Some(shot) = screenshot {
        let out = run(&[format!("--screenshot={}", shot.display())]);
        console.extend(
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .filter(|l| l.contains(":CONSOLE"))
                .map(str::to_owned),
        );
        assert!(
            std::fs::metadata(shot).is_ok_and(|m| m.len() > 10_000),
            "a screenshot at {}",
            shot.display()
        );
    }
    Loaded { dom: String::from_utf8_lossy(&out.stdout).into_owned(), console }
}

fn fixture() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mlp-report.json").display().to_string()
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn the_html_report_loads_clean_in_headless_chromium() {
    let Some(browser) = browser() else { return };
    let dir = tempfile::tempdir().unwrap();
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&shots).unwrap();

    // The control: the check does see a page's console errors.
    let bad = dir.path().join("bad.html");
    std::fs::write(&bad, "<!DOCTYPE html><p>x</p><script>console.error('boom'); missing();</script>")
        .unwrap();
    let loaded = load(&browser, &bad, &dir.path().join("profile"), None);
    assert!(loaded.console.iter().any(|l| l.contains("boom")), "{:?}", loaded.console);
    assert!(loaded.console.iter().any(|l| l.contains("missing is not defined")), "{:?}", loaded.console);

    // The MLP's report alone, then with its pruned variant compared.
    let fixture = fixture();
    for (name, extra) in [("mlp", vec![]), ("mlp-comparison", vec!["--benches", "inference", "pruned"])] {
        let page = dir.path().join(format!("{name}.html"));
        let mut args = vec!["report", fixture.as_str(), "--html", "-o", page.to_str().unwrap()];
        args.extend(extra.iter().copied());
        let out = cargo_joules(&args);
        assert!(out.status.success(), "{}", text(&out));
        let html = std::fs::read_to_string(&page).unwrap();
        assert!(!html.contains("src=\"http") && !html.contains("href=\"http"), "{name}: nothing is fetched");

        let shot = shots.join(format!("{name}.png"));
        let loaded = load(&browser, &page, &dir.path().join("profile"), Some(&shot));
        assert!(loaded.console.is_empty(), "{name}: console messages: {:#?}", loaded.console);
        let dom = &loaded.dom;
        // Two benches: a bar chart each, a bar (a filled rect) per span path at least.
        assert_eq!(count(dom, "class=\"bars\""), 2, "{name}: bar charts");
        let spans = 6;
        let bars = dom.split("class=\"bars\"").skip(1).map(|chart| {
            let chart = &chart[..chart.find("</svg>").unwrap()];
            count(chart, "fill=\"#3B6EA8\"") + count(chart, "fill=\"#3b6ea8\"")
        });
        for n in bars {
            assert_eq!(n, spans, "{name}: a bar per span path");
        }
        assert!(count(dom, "<iframe class=\"flamegraph") >= 2, "{name}: flame graphs");
        assert_eq!(count(dom, "class=\"joules-label\""), 2, "{name}: a label per bench");
        assert!(dom.contains("ESTIMATED — NOT MEASURED"), "{name}: the estimate says so");
        assert!(dom.contains("class=\"sortable spans\"") && dom.contains("class=\"sortable domains\""));
        if name == "mlp-comparison" {
            assert!(dom.contains("class=\"sortable comparison\""), "the comparison table");
            assert!(dom.contains("<iframe class=\"flamegraph diff\""), "the differential flame graph");
            assert!(
                dom.contains("index · % of reference")
                    && dom.contains("energy per inference, % of inference")
            );
        } else {
            assert!(!dom.contains("class=\"sortable comparison\""));
        }
        eprintln!("screenshot: {}", shot.display());
    }
}
