//! Builds the fake `libnvidia-ml.so` (the `fake-nvml` cdylib in this workspace) for tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Builds the fake library once per process into `target_dir` (a directory of its own, since
/// the outer `cargo test` holds the workspace's) and returns its path.
pub fn fake_library(target_dir: &Path) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("fake-nvml/Cargo.toml");
            let out = Command::new(cargo)
                .args(["build", "--quiet", "--manifest-path"])
                .arg(&manifest)
                .arg("--target-dir")
                .arg(target_dir)
                .output()
                .expect("running cargo");
            assert!(
                out.status.success(),
                "building fake-nvml failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            target_dir.join("debug/libnvidia_ml.so")
        })
        .clone()
}
