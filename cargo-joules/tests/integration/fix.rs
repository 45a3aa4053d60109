//! `cargo joules doctor --fix`: a plan by default, nothing changed.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::text;

#[test]
fn doctor_fix_prints_a_plan_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("sys/class/powercap/intel-rapl:0");
    std::fs::create_dir_all(&zone).unwrap();
    std::fs::write(zone.join("name"), "package-0\n").unwrap();
    std::fs::write(zone.join("max_energy_range_uj"), "262143328850\n").unwrap();
    let energy = zone.join("energy_uj");
    std::fs::write(&energy, "1000\n").unwrap();
    std::fs::set_permissions(&energy, std::fs::Permissions::from_mode(0o400)).unwrap();
    let rules = dir.path().join("rules.d");
    let out = Command::new(env!("CARGO_BIN_EXE_cargo-joules"))
        .args(["joules", "doctor", "--fix", "--rules-dir"])
        .arg(&rules)
        .env("JOULES_POWERCAP_ROOT", dir.path().join("sys/class/powercap"))
        .env("JOULES_SYSFS_ROOT", dir.path().join("sys"))
        .env("JOULES_MSR_DIR", dir.path().join("dev/cpu"))
        .output()
        .unwrap();
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.starts_with("A plan: nothing is changed"), "{shown}");
    assert!(
        shown.contains(&format!("sudo chgrp power {0} && sudo chmod g+r {0}", energy.display())),
        "{shown}"
    );
    assert!(shown.contains("70-joules-energy.rules") && shown.contains("udevadm control --reload-rules"));
    // Nothing changed: no rule written, the counter still root-only.
    assert!(!rules.exists());
    assert_eq!(std::fs::metadata(&energy).unwrap().permissions().mode() & 0o777, 0o400);
    // --apply without --fix is refused by the command line.
    let out = Command::new(env!("CARGO_BIN_EXE_cargo-joules"))
        .args(["joules", "doctor", "--apply"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn apply_refuses_roots_moved_by_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cargo-joules"))
        .args(["joules", "doctor", "--fix", "--apply", "--rules-dir"])
        .arg(dir.path())
        .env("JOULES_SYSFS_ROOT", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("unset JOULES_SYSFS_ROOT"), "{}", text(&out));
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "nothing written");
}
