//! `doctor --fix`: the plan that makes energy counters readable by a group, applied to a
//! fake tree, and the modes it leaves.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use joules::access::{self, AccessError};
use joules_tests::hwmon::{Channel, Device, FakeHwmon};
use joules_tests::machine::{Cpu, FakeMachine};
use joules_tests::powercap::FakePowercap;

use crate::probe::package_zone;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().mode() & 0o777
}

#[test]
fn the_plan_gives_energy_files_to_the_group_and_to_no_one_else() {
    let _lock = joules_tests::profiler_lock();
    let machine = FakeMachine::new(Cpu::Amd(0x19), &[(0, 0), (0, 1)]);
    let roots = machine.roots();
    let _pc = FakePowercap::start_in(&roots.powercap, package_zone(), Duration::from_millis(1));
    let energy = |n, label| Channel::Energy { n, label: Some(label), watts: 5.0, reset_every: None };
    let devices = vec![
        Device { name: "amd_energy", channels: vec![energy(1, "Ecore000"), energy(2, "Esocket0")] },
        Device { name: "k10temp", channels: vec![Channel::Fixed { file: "temp1_input", text: "40000\n" }] },
    ];
    let _hw = FakeHwmon::start_in(&roots.sysfs, 0, devices);
    for cpu in 0..2 {
        std::fs::write(roots.msr.join(format!("{cpu}/msr")), b"").unwrap();
    }
    let rules_dir = tempfile::tempdir().unwrap();
    // Root-only, as the kernel leaves them.
    let plan = access::plan(&roots, rules_dir.path(), "power", true, Path::new("/usr/bin/my-service"));
    for f in &plan.files {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o400)).unwrap();
    }
    let names: Vec<String> =
        plan.files.iter().map(|f| f.strip_prefix(machine.path()).unwrap().display().to_string()).collect();
    assert_eq!(
        names,
        [
            "sys/class/powercap/intel-rapl:0/energy_uj",
            "sys/class/powercap/intel-rapl:0/intel-rapl:0:0/energy_uj",
            "sys/class/powercap/intel-rapl:1/energy_uj",
            "sys/class/hwmon/hwmon0/energy1_input",
            "sys/class/hwmon/hwmon0/energy2_input",
            "dev/cpu/0/msr",
            "dev/cpu/1/msr",
        ],
        "every energy file and MSR device, no temperature"
    );
    // By default a plan: the exact commands, nothing changed.
    let text = plan.render();
    assert!(text.starts_with("A plan: nothing is changed"));
    assert!(
        text.contains("sudo groupadd --system power")
            && text.contains("setcap cap_perfmon=ep /usr/bin/my-service")
    );
    assert!(text.contains("cap_sys_rawio"), "MSR needs its capability too");
    assert!(
        plan.rules.contains("SUBSYSTEM==\"powercap\"")
            && plan.rules.contains("GROUP=\"power\", MODE=\"0640\"")
    );
    assert!(
        !plan.rules.contains("a+r") && !plan.rules.contains("0644"),
        "never world-readable:\n{}",
        plan.rules
    );
    assert!(plan.files.iter().all(|f| mode(f) == 0o400));
    assert!(!plan.rules_file.exists());

    // A group that does not exist: an error, and nothing changed.
    let mut missing = plan.clone();
    missing.group = "joules-no-such-group".into();
    assert!(matches!(access::apply(&missing), Err(AccessError::NoGroup(_))));
    assert!(!plan.rules_file.exists() && plan.files.iter().all(|f| mode(f) == 0o400));

    // Applied with a group this user may give files to (its own): the intended group and
    // modes, the owner and the world's bits untouched.
    // SAFETY: getegid has no preconditions.
    let gid = unsafe { libc::getegid() };
    let group = access::group_name(gid).expect("this user's group has a name");
    let mut mine = access::plan(&roots, rules_dir.path(), &group, true, Path::new("/usr/bin/my-service"));
    mine.files.retain(|f| f.exists());
    let owners: Vec<u32> = mine.files.iter().map(|f| std::fs::metadata(f).unwrap().uid()).collect();
    let done = access::apply(&mine).unwrap();
    assert_eq!(done.files.len(), 7);
    for (f, owner) in mine.files.iter().zip(owners) {
        let m = std::fs::metadata(f).unwrap();
        assert_eq!((m.gid(), m.mode() & 0o777, m.uid()), (gid, 0o440, owner), "{}", f.display());
    }
    let written = std::fs::read_to_string(&mine.rules_file).unwrap();
    assert_eq!(written, mine.rules);
    assert_eq!(mode(&mine.rules_file), 0o644);
    assert!(written.contains(&format!("chgrp {group} /sys%p/energy_uj")));
}

/// The udev rule's own commands, run as udev would on a fake device (`%p` expanded, `$$` a
/// dollar), give the files to the group, as the plan's commands do; a link in the tree and a
/// group name that is not one are refused before anything changes.
#[test]
fn the_rule_runs_on_a_fake_tree_and_apply_refuses_links_and_bad_names() {
    let _lock = joules_tests::profiler_lock();
    let machine = FakeMachine::new(Cpu::Amd(0x19), &[(0, 0)]);
    let roots = machine.roots();
    let energy = |n, label| Channel::Energy { n, label: Some(label), watts: 5.0, reset_every: None };
    let _hw = FakeHwmon::start_in(
        &roots.sysfs,
        0,
        vec![
            Device { name: "amd_energy", channels: vec![energy(1, "Ecore000"), energy(2, "Esocket0")] },
            // amdgpu has no energy file: its loop must match nothing and still succeed.
            Device { name: "amdgpu", channels: vec![Channel::Power { file: "power1_average", watts: 50.0 }] },
        ],
    );
    // SAFETY: getegid has no preconditions.
    let gid = unsafe { libc::getegid() };
    let group = access::group_name(gid).unwrap();
    let rules = access::rules(&group, false);
    let hwmon_line = rules.lines().find(|l| l.contains("SUBSYSTEM==\"hwmon\"")).unwrap();
    let script = hwmon_line.split_once("-c '").unwrap().1.rsplit_once("'\"").unwrap().0.replace("$$", "$");
    for dev in ["hwmon0", "hwmon1"] {
        let dir = roots.sysfs.join("class/hwmon").join(dev);
        for f in std::fs::read_dir(&dir).unwrap().flatten() {
            std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o400)).unwrap();
        }
        let run = script.replace("/sys%p", dir.to_str().unwrap());
        let out = std::process::Command::new("/bin/sh").args(["-c", &run]).output().unwrap();
        assert!(out.status.success(), "{dev}: {run}: {}", String::from_utf8_lossy(&out.stderr));
    }
    for n in [1, 2] {
        let f = roots.sysfs.join(format!("class/hwmon/hwmon0/energy{n}_input"));
        let m = std::fs::metadata(&f).unwrap();
        assert_eq!((m.gid(), m.mode() & 0o777), (gid, 0o440), "{}", f.display());
    }
    assert_eq!(mode(&roots.sysfs.join("class/hwmon/hwmon1/power1_average")), 0o400, "only energy files");

    let rules_dir = tempfile::tempdir().unwrap();
    let mut plan = access::plan(&roots, rules_dir.path(), &group, false, Path::new("/bin/x"));
    let link = machine.path().join("sneaky");
    std::os::unix::fs::symlink("/etc/passwd", &link).unwrap();
    plan.files.push(link.clone());
    assert!(matches!(access::apply(&plan), Err(AccessError::Unexpected(p)) if p == link));
    assert!(!plan.rules_file.exists(), "nothing written when a file is refused");
    plan.files.pop();
    plan.group = "power; rm -rf /".into();
    assert!(matches!(access::apply(&plan), Err(AccessError::BadGroup(_))));
}
