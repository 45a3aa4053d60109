use std::time::Duration;

use joules::report::{Report, ReportError};
use joules::source::{Sim, SimScript};
use joules::{Profiler, Watts};

fn sample_report() -> Report {
    let _lock = joules_tests::profiler_lock();
    let profiler = Profiler::builder().source(Sim::new(SimScript::new(Watts(3.0)))).start().unwrap();
    {
        let _s = joules::span!("work");
        std::thread::sleep(Duration::from_millis(5));
    }
    profiler.stop().report("sample")
}

#[test]
fn round_trips_through_an_atomic_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/report.json");
    let report = sample_report();
    report.write_atomic(&path).unwrap();
    assert_eq!(Report::read(&path).unwrap(), report);
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(json["schema"], 1);
    assert_eq!(json["benches"][0]["domains"][0]["provenance"], "simulated");
}

#[test]
fn refuses_damaged_and_foreign_reports() {
    let dir = tempfile::tempdir().unwrap();
    let good = serde_json::to_string(&sample_report()).unwrap();
    let cases = [
        ("truncated", good[..good.len() / 2].to_owned()),
        ("newer", good.replacen("\"schema\":1", "\"schema\":99", 1)),
        ("foreign", r#"{"name": "not a joules report"}"#.to_owned()),
    ];
    for (name, text) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, &text).unwrap();
        let err = Report::read(&path).unwrap_err();
        match name {
            "newer" => assert!(matches!(err, ReportError::Schema { found: 99, .. }), "{err}"),
            _ => assert!(matches!(err, ReportError::Corrupt { .. }), "{name}: {err}"),
        }
        assert!(err.to_string().contains(name), "the error names the file: {err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "reading never changes the file");
    }
}

/// A report whose domain stopped being read mid-run is not compared as if whole: its short
/// figures would read as an improvement.
#[test]
fn a_report_with_a_domain_that_stopped_early_is_not_compared() {
    use joules::compare::{CompareConfig, CompareError, compare};
    let old = sample_report();
    let mut broken = old.clone();
    broken.benches[0].domains[0].ended = Some("at 12 ms: reading panicked: driver bug".into());
    let cfg = CompareConfig::default();
    compare(&old, &old, &cfg).expect("whole reports compare");
    for (a, b) in [(&old, &broken), (&broken, &old)] {
        match compare(a, b, &cfg) {
            Err(CompareError::Incomparable(why)) => {
                assert!(
                    why.iter().any(|w| w.contains("stopped early") && w.contains("driver bug")),
                    "{why:?}"
                )
            }
            other => panic!("compared a broken report: {other:?}"),
        }
    }
}

/// A tiny seeded generator for the mutations (proptest's shrinking is no use on 100k blind
/// mutations; what matters is that none panics).
struct Mutator(u64);

impl Mutator {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// One to four edits: flip a byte, drop a range, duplicate a range, insert JSON-ish
    /// bytes, or cut the end.
    fn mutate(&mut self, good: &[u8]) -> Vec<u8> {
        const TOKENS: [&[u8]; 12] = [
            b"null",
            b"-1",
            b"1e308",
            b"-0",
            b"[]",
            b"{}",
            b"\"\"",
            b",",
            b":",
            b"\"x\"",
            b"NaN",
            b"99999999999999999999",
        ];
        let mut v = good.to_vec();
        for _ in 0..1 + self.below(4) {
            let at = self.below(v.len());
            match self.below(5) {
                0 => v[at] = self.next() as u8,
                1 => {
                    let end = (at + 1 + self.below(64)).min(v.len());
                    v.drain(at..end);
                }
                2 => {
                    let end = (at + 1 + self.below(64)).min(v.len());
                    let copy = v[at..end].to_vec();
                    v.splice(at..at, copy);
                }
                3 => {
                    let t = TOKENS[self.below(TOKENS.len())];
                    v.splice(at..at, t.iter().copied());
                }
                _ => v.truncate(at),
            }
            if v.is_empty() {
                break;
            }
        }
        v
    }
}

/// 100k mutated reports: each is refused with an error or parsed, and whatever parses can be
/// rendered in every format and compared, without a panic.
#[test]
fn mutated_reports_never_panic_the_parser_or_what_reads_it() {
    use joules::compare::{CompareConfig, compare};
    use joules::render::{Format, report as render};
    let good_report = sample_report();
    let good = serde_json::to_vec(&good_report).unwrap();
    let path = std::path::Path::new("mutated.json");
    let mut m = Mutator(0x9E37_79B9_7F4A_7C15);
    let (mut parsed, mut refused) = (0, 0);
    for i in 0..100_000 {
        let bytes = m.mutate(&good);
        let outcome = std::panic::catch_unwind(|| match Report::from_slice(path, &bytes) {
            Ok(r) => {
                for f in [Format::Table, Format::Markdown, Format::Json, Format::Bmf] {
                    let _ = render(&r, f);
                }
                let cfg = CompareConfig { allow_mismatch: true, ..CompareConfig::default() };
                let _ = compare(&good_report, &r, &cfg);
                let _ = compare(&r, &good_report, &cfg);
                true
            }
            Err(_) => false,
        });
        match outcome {
            Ok(true) => parsed += 1,
            Ok(false) => refused += 1,
            Err(_) => panic!("mutation {i} panicked:\n{}", String::from_utf8_lossy(&bytes)),
        }
    }
    println!("{parsed} parsed, {refused} refused");
    assert!(parsed > 100 && refused > 50_000, "{parsed} parsed, {refused} refused: the mutations reach both");
}

/// The writer, killed (SIGKILL) at random points 200 times while it rewrites a report in a
/// loop, always leaves a whole report: the old one or a new one, never a torn file.
#[test]
fn a_writer_killed_at_any_point_leaves_a_whole_report() {
    if let Some(path) = std::env::var_os("JOULES_TEST_WRITER") {
        // The child: rewrite the report, each time a little different, until killed.
        let mut report = sample_report();
        for n in 0u64.. {
            report.created_unix_s = n;
            report.write_atomic(std::path::Path::new(&path)).unwrap();
        }
        unreachable!();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    sample_report().write_atomic(&path).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut m = Mutator(0xD1B5_4A32_D192_ED03);
    let mut rewritten = 0;
    for i in 0..200 {
        let mut child = std::process::Command::new(&exe)
            .args(["--exact", "report::a_writer_killed_at_any_point_leaves_a_whole_report", "--nocapture"])
            .env("JOULES_TEST_WRITER", &path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(5_000 + m.below(40_000) as u64));
        child.kill().unwrap();
        child.wait().unwrap();
        let report = Report::read(&path).unwrap_or_else(|e| panic!("kill {i} left a torn report: {e}"));
        rewritten += usize::from(report.created_unix_s < 1_000_000);
    }
    println!("{rewritten} of 200 kills came after the writer had rewritten the report");
    assert!(rewritten > 50, "the writer seldom got to write: the kills tested little");
}
