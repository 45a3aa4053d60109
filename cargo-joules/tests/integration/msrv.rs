//! The workspace's `rust-version` is no lower than what its locked dependencies declare: a
//! false MSRV sends users with an older toolchain into a wall of compile errors instead of
//! cargo's one-line "requires rustc X".

use std::collections::{HashMap, HashSet};

use cargo_metadata::{DependencyKind, MetadataCommand, semver::Version};

#[test]
fn rust_version_covers_every_dependency() {
    // cargo metadata loads the cores: not while the gate tests time the fixture.
    let _turn = crate::fixture_lock();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let meta = MetadataCommand::new().manifest_path(root).exec().expect("cargo metadata");
    let resolve = meta.resolve.as_ref().expect("a resolved graph");
    let packages: HashMap<_, _> = meta.packages.iter().map(|p| (&p.id, p)).collect();
    let nodes: HashMap<_, _> = resolve.nodes.iter().map(|n| (&n.id, n)).collect();
    let members: HashSet<_> = meta.workspace_members.iter().collect();
    let declared: Vec<Version> = members.iter().filter_map(|id| packages[id].rust_version.clone()).collect();
    assert_eq!(declared.len(), members.len(), "every member states a rust-version");
    let declared = declared.into_iter().min().unwrap();

    // What building and testing the workspace compiles: members' dependencies of every kind,
    // and their dependencies' normal and build dependencies.
    let mut seen = HashSet::new();
    let mut stack: Vec<_> = members.iter().copied().collect();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in &nodes[id].deps {
            let builds = dep.dep_kinds.iter().any(|k| k.kind != DependencyKind::Development);
            if builds || members.contains(id) {
                stack.push(&dep.pkg);
            }
        }
    }
    let needs = seen
        .iter()
        .filter_map(|id| packages[id].rust_version.as_ref().map(|v| (v, &packages[id].name)))
        .max_by_key(|(v, _)| (*v).clone())
        .expect("some dependency states a rust-version");
    assert!(
        declared >= *needs.0,
        "rust-version = {declared} but {} needs {}: raise `rust-version` in Cargo.toml",
        needs.1,
        needs.0
    );
}
