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

/// What chromium made of a page: its DOM after the scripts ran, and every console message
/// (those of frames included).
struct Loaded {
    dom: String,
    console: Vec<String>,
}

/// Runs chromium on `page` with a fresh profile, killed after two minutes.
fn chromium_run(browser: &Path, page: &Path, extra: &[String]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        .args(["--hide-scrollbars", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--enable-logging=stderr", "--v=0", "--window-size=1280,3200"])
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("chromium starts");
    // Read both pipes while waiting, so a full pipe cannot stall it.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut b).ok();
        b
    });
    let err = std::thread::spawn(move || {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut b).ok();
        b
    });
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > std::time::Duration::from_secs(120) {
            child.kill().ok();
            panic!("chromium did not finish within 2 minutes on {}", page.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let output = std::process::Output { status, stdout: out.join().unwrap(), stderr: err.join().unwrap() };
    assert!(output.status.success(), "chromium failed: {}", String::from_utf8_lossy(&output.stderr));
    output
}

fn console(out: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_owned)
        .collect()
}

fn load(browser: &Path, page: &Path, screenshot: Option<&Path>) -> Loaded {
    let out = chromium_run(browser, page, &["--dump-dom".to_owned()]);
    let mut messages = console(&out);
    if let Some(shot) = screenshot {
        // Not a leftover from an earlier run.
        let _ = std::fs::remove_file(shot);
        let taken = chromium_run(browser, page, &[format!("--screenshot={}", shot.display())]);
        messages.extend(console(&taken));
        assert!(
            std::fs::metadata(shot).is_ok_and(|m| m.len() > 10_000),
            "a screenshot at {}",
            shot.display()
        );
    }
    Loaded { dom: String::from_utf8_lossy(&out.stdout).into_owned(), console: messages }
}

/// The SVG documents of the page's `data:` frames of `class`.
fn frames_of(dom: &str, class: &str) -> Vec<String> {
    use base64::Engine as _;
    dom.split(&format!("<iframe class=\"{class}\""))
        .skip(1)
        .map(|f| {
            let data = f.split("base64,").nth(1).unwrap().split('"').next().unwrap();
            let bytes = base64::engine::general_purpose::STANDARD.decode(data).unwrap();
            String::from_utf8(bytes).unwrap()
        })
        .collect()
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
    // Chromium loads both cores in bursts: not while the gate tests time the fixture.
    let _turn = crate::fixture_lock();
    let dir = tempfile::tempdir().unwrap();
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&shots).unwrap();

    // The control: the check does see console errors, of the page and of a `data:` frame.
    use base64::Engine as _;
    let bad = dir.path().join("bad.html");
    let noisy_svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"console.error('frame-boom')\"/>";
    let frame = base64::engine::general_purpose::STANDARD.encode(noisy_svg);
    std::fs::write(
        &bad,
        format!(
            "<!DOCTYPE html><p>x</p><iframe src=\"data:image/svg+xml;base64,{frame}\"></iframe>\
             <script>console.error('boom'); missing();</script>"
        ),
    )
    .unwrap();
    let loaded = load(&browser, &bad, None);
    for needle in ["boom", "missing is not defined", "frame-boom"] {
        assert!(loaded.console.iter().any(|l| l.contains(needle)), "{needle}: {:?}", loaded.console);
    }

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
        let loaded = load(&browser, &page, Some(&shot));
        assert!(loaded.console.is_empty(), "{name}: console messages: {:#?}", loaded.console);
        let dom = &loaded.dom;
        // A bar chart per bench, a bar (a filled rect) per span path, each with its error bar.
        let report = joules::report::Report::read(Path::new(&fixture)).unwrap();
        assert_eq!(count(dom, "class=\"bars\""), report.benches.len(), "{name}: bar charts");
        let charts: Vec<&str> = dom
            .split("class=\"bars\"")
            .skip(1)
            .map(|chart| &chart[..chart.find("</svg>").unwrap()])
            .collect();
        for (chart, bench) in charts.iter().zip(&report.benches) {
            assert_eq!(count(chart, "fill=\"#3B6EA8\""), bench.spans.len(), "{name}: a bar per span path");
        }
        // The flame graphs: a frame per span path (and the root), titled as in the report.
        let graphs = frames_of(dom, "flamegraph");
        assert_eq!(graphs.len(), report.benches.len(), "{name}: a flame graph per bench");
        for (svg, bench) in graphs.iter().zip(&report.benches) {
            assert_eq!(count(svg, "<g><title>"), bench.spans.len() + 1, "{name}: frames of {}", bench.name);
            assert!(
                svg.contains("history.replaceState = function () {};"),
                "zoom and search stay in the frame"
            );
        }
        assert_eq!(count(dom, "class=\"joules-label\""), report.benches.len(), "{name}: a label per bench");
        assert!(dom.contains("ESTIMATED — NOT MEASURED"), "{name}: the estimate says so");
        assert!(dom.contains("class=\"sortable spans\"") && dom.contains("class=\"sortable domains\""));
        let graded = "energy per inference, % of inference";
        if name == "mlp-comparison" {
            assert!(dom.contains("class=\"sortable comparison\""), "the comparison table");
            assert_eq!(frames_of(dom, "flamegraph diff").len(), 1, "the differential flame graph");
            assert!(dom.contains(graded), "the pruned bench is graded against the dense one");
        } else {
            assert!(!dom.contains("class=\"sortable comparison\""));
            assert!(!dom.contains(graded), "no reference, no index grade");
        }
        eprintln!("screenshot: {}", shot.display());
    }

    // A flame graph of the page, clicked and searched as a reader would, in a frame: inferno's
    // script must not throw there.
    let page = dir.path().join("mlp.html");
    let html = std::fs::read_to_string(&page).unwrap();
    let svg = frames_of(&html, "flamegraph").remove(0);
    // After inferno's own `init` (the root's onload), as a reader's first click would be; before
    // the root's end (the last `</svg>`: the frames are an inner svg).
    let poke = "<script><![CDATA[var joules_init = init; init = function (evt) { joules_init(evt); \
                var g = document.querySelector('#frames g'); \
                g.dispatchEvent(new MouseEvent('click', {bubbles: true})); search('dense'); \
                console.log('poked'); };]]></script>";
    let end = svg.rfind("</svg>").unwrap();
    let poked = format!("{}{poke}{}", &svg[..end], &svg[end..]);
    let frame = base64::engine::general_purpose::STANDARD.encode(poked);
    let clicked = dir.path().join("clicked.html");
    std::fs::write(
        &clicked,
        format!("<!DOCTYPE html><iframe src=\"data:image/svg+xml;base64,{frame}\"></iframe>"),
    )
    .unwrap();
    let loaded = load(&browser, &clicked, None);
    // Only the poke's own line: it ran, and nothing threw.
    assert_eq!(loaded.console.len(), 1, "clicking a frame: {:#?}", loaded.console);
    assert!(loaded.console[0].contains("\"poked\""), "{:#?}", loaded.console);
}
