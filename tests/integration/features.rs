//! The light crate: `joules` with `default-features = false` is the annotation crate alone.
//! A crate outside this workspace depends on it both ways, and `cargo metadata` (locked to
//! this workspace's Cargo.lock, for this machine's platform) resolves what each pulls in.

use std::collections::BTreeSet;
use std::path::Path;

use cargo_metadata::MetadataCommand;

/// What a model crate must not pull in just to keep its annotations.
const HEAVY: [&str; 6] = ["comfy-table", "indicatif", "statrs", "nvml-wrapper", "perf-event2", "tempfile"];

/// The packages a crate depending on joules (with `features`) resolves to, itself left out.
fn tree(joules_dep: &str) -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        format!(
            "[package]\nname = \"model\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[dependencies]\n\
             joules = {{ path = {:?}, {joules_dep} }}\n\n[workspace]\n",
            root.join("crates/joules")
        ),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/lib.rs"), "").unwrap();
    // The workspace's lock: the same versions as the workspace builds with.
    std::fs::copy(root.join("Cargo.lock"), dir.path().join("Cargo.lock")).unwrap();
    let meta = MetadataCommand::new()
        .manifest_path(dir.path().join("Cargo.toml"))
        .other_options(vec!["--filter-platform".to_owned(), host()])
        .exec()
        .expect("cargo metadata resolves the model crate");
    let resolve = meta.resolve.expect("a resolve graph");
    let root_id = resolve.root.clone().expect("a root package");
    // Walk the normal dependencies only: what the model crate builds with.
    let nodes: std::collections::HashMap<_, _> = resolve.nodes.iter().map(|n| (n.id.clone(), n)).collect();
    let mut seen = BTreeSet::new();
    let mut stack = vec![root_id.clone()];
    while let Some(id) = stack.pop() {
        for dep in &nodes[&id].deps {
            let normal = dep.dep_kinds.iter().any(|k| k.kind == cargo_metadata::DependencyKind::Normal);
            if normal && seen.insert(dep.pkg.clone()) {
                stack.push(dep.pkg.clone());
            }
        }
    }
    meta.packages.iter().filter(|p| seen.contains(&p.id)).map(|p| p.name.to_string()).collect()
}

/// This machine's target triple, as rustc says.
fn host() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let out = std::process::Command::new(rustc).arg("-vV").output().expect("rustc runs");
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines().find_map(|l| l.strip_prefix("host: ")).expect("rustc -vV names the host").to_owned()
}

#[test]
fn without_default_features_joules_is_the_annotation_crate_alone() {
    let _lock = joules_tests::profiler_lock();
    let light = tree("default-features = false");
    for heavy in HEAVY {
        assert!(!light.contains(heavy), "{heavy} is in the light tree: {light:?}");
    }
    assert!(light.contains("joules") && light.contains("joules-macros"), "{light:?}");
    // The control: the defaults do bring them, so the check above can fail.
    let full = tree("default-features = true");
    for heavy in HEAVY {
        assert!(full.contains(heavy), "{heavy} is missing from the default tree: {full:?}");
    }
    // What the README quotes (dependencies of joules, for this platform).
    eprintln!("light: {} dependencies {light:?}; default: {}", light.len() - 1, full.len() - 1);
}
