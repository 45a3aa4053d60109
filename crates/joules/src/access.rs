//! Access without root: `cargo joules doctor --fix`.
//!
//! Since CVE-2020-8694 (PLATYPUS) the kernel makes RAPL's `energy_uj` readable by root only:
//! energy readings a few microseconds apart let a local user infer what other code computes
//! (keys, in the paper). Running models as root to measure them is worse. The middle way is
//! a group: energy files readable by the members of `power` (the name is a choice), no one
//! else. The plan:
//!
//! 1. create the group and add the user (they log in again);
//! 2. a udev rule that gives every energy file to the group whenever the kernel adds the
//!    device, so it holds after reboots and module reloads;
//! 3. for the running boot, the same change on the files that exist now;
//! 4. perf needs a capability, not a file mode (`cap_perfmon` on the binary, or
//!    `kernel.perf_event_paranoid`); MSR, where chosen, needs `cap_sys_rawio` besides the
//!    device's group.
//!
//! [`plan`] finds the files (under injectable roots, so tests run it on fake trees);
//! [`AccessPlan::render`] prints it; [`apply`] carries out 2 and 3, and only that.

use std::fmt::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::source::Roots;

/// Where udev rules live.
pub const RULES_DIR: &str = "/etc/udev/rules.d";
/// The rule file's name.
pub const RULES_FILE: &str = "70-joules-energy.rules";
/// hwmon drivers whose energy files the rule covers.
pub const HWMON_DRIVERS: &str = "amd_energy|amdgpu|xe|i915";

/// What `doctor --fix` would do.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccessPlan {
    /// The group given read access.
    pub group: String,
    /// Where the rule goes.
    pub rules_file: PathBuf,
    /// The rule file's contents.
    pub rules: String,
    /// Energy files that exist now, to give to the group for this boot.
    pub files: Vec<PathBuf>,
    /// Whether MSR devices are included.
    pub msr: bool,
    /// The program that would need perf's or MSR's capability.
    pub binary: PathBuf,
}

/// Why the plan could not be applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// The group does not exist.
    #[error("group {0:?} does not exist: create it first (`sudo groupadd --system {0}`)")]
    NoGroup(String),
    /// The group's name is not a plain group name (it goes into a udev rule and a shell).
    #[error(
        "{0:?} is not a group name (lower-case letters, digits, `_` and `-`, not starting with a digit or `-`)"
    )]
    BadGroup(String),
    /// A file of the plan is not what an energy file is (a regular file, or the MSR device).
    #[error("{0}: not a regular file or MSR device (a link, or something else): left alone, nothing applied")]
    Unexpected(PathBuf),
    /// A file could not be changed.
    #[error("{path}: {source} (applying needs root: `sudo cargo joules doctor --fix --apply`)")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

/// The plan for `group`: rules into `rules_dir`, the energy files under `roots` (MSR devices
/// too if `msr`), capabilities for `binary`.
pub fn plan(roots: &Roots, rules_dir: &Path, group: &str, msr: bool, binary: &Path) -> AccessPlan {
    let mut files = Vec::new();
    if let Ok(zones) = crate::source::powercap::discover(&roots.powercap) {
        files.extend(zones.into_iter().map(|z| z.path.join("energy_uj")));
    }
    // The energy files of the hwmon devices the rule covers, as the probe lists them.
    let hwmon = crate::source::hwmon::root(&roots.sysfs);
    for d in crate::source::hwmon::devices(&roots.sysfs) {
        if HWMON_DRIVERS.split('|').any(|name| name == d.driver) {
            let energy = d.offers.iter().filter(|f| f.starts_with("energy"));
            files.extend(energy.map(|f| hwmon.join(&d.hwmon).join(f)));
        }
    }
    if msr && let Ok(cpus) = std::fs::read_dir(&roots.msr) {
        let mut devs: Vec<PathBuf> =
            cpus.flatten().map(|e| e.path().join("msr")).filter(|p| p.exists()).collect();
        devs.sort();
        files.extend(devs);
    }
    AccessPlan {
        group: group.to_owned(),
        rules_file: rules_dir.join(RULES_FILE),
        rules: rules(group, msr),
        files,
        msr,
        binary: binary.to_owned(),
    }
}

/// The udev rules giving energy files to `group` as the kernel adds their devices.
pub fn rules(group: &str, msr: bool) -> String {
    let mut r = format!(
        "# Written by `cargo joules doctor --fix --apply`: energy counters readable by group `{group}`.\n\
         # Not by everyone: since CVE-2020-8694 (PLATYPUS), fine-grained energy readings are a side\n\
         # channel on what other code computes, so the kernel keeps them for root; members of\n\
         # `{group}` are trusted with them.\n\
         ACTION==\"add\", SUBSYSTEM==\"powercap\", KERNEL==\"intel-rapl:*\", \
         RUN+=\"/bin/chgrp {group} /sys%p/energy_uj\", RUN+=\"/bin/chmod g+r /sys%p/energy_uj\"\n\
         ACTION==\"add\", SUBSYSTEM==\"hwmon\", ATTR{{name}}==\"{HWMON_DRIVERS}\", \
         RUN+=\"/bin/sh -c 'for f in /sys%p/energy*_input; do [ -e $$f ] && chgrp {group} $$f && chmod g+r $$f; done; true'\"\n"
    );
    if msr {
        r += &format!(
            "ACTION==\"add\", SUBSYSTEM==\"msr\", KERNEL==\"msr[0-9]*\", GROUP=\"{group}\", MODE=\"0640\"\n"
        );
    }
    r
}

impl AccessPlan {
    /// The plan as exact commands, for a person to read or run.
    pub fn render(&self) -> String {
        let g = &self.group;
        let bin = self.binary.display();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "A plan: nothing is changed. `sudo cargo joules doctor --fix --apply` carries out steps 2 and 3.\n\n\
             Energy counters are readable by root only since CVE-2020-8694: their readings are a side\n\
             channel on what other code computes. This plan gives them to a group, `{g}`, rather than to\n\
             everyone: only its members can read them.\n"
        );
        let _ = writeln!(
            out,
            "1. Create the group and join it (log in again afterwards):\n   sudo groupadd --system {g}\n   sudo usermod -aG {g} \"$USER\"\n"
        );
        let _ = writeln!(out, "2. Keep access across reboots: {}", self.rules_file.display());
        for line in self.rules.lines() {
            let _ = writeln!(out, "   {line}");
        }
        let _ = writeln!(
            out,
            "   then: sudo udevadm control --reload-rules && sudo udevadm trigger --action=add --subsystem-match=powercap --subsystem-match=hwmon{}\n",
            if self.msr { " --subsystem-match=msr" } else { "" }
        );
        if self.files.is_empty() {
            let _ = writeln!(out, "3. For this boot: no energy file found here (nothing to change now).\n");
        } else {
            let _ = writeln!(out, "3. For this boot, the {} energy file(s) there are now:", self.files.len());
            for f in &self.files {
                let _ = writeln!(out, "   sudo chgrp {g} {0} && sudo chmod g+r {0}", f.display());
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "4. perf's RAPL events need a capability, not a file mode: `sudo setcap cap_perfmon=ep {bin}`\n   \
             (this binary only), or for everyone `sudo sysctl kernel.perf_event_paranoid=0`."
        );
        if self.msr {
            let _ = writeln!(
                out,
                "   MSR reads need `sudo setcap cap_sys_rawio=ep {bin}` besides the device's group: raw MSR\n   \
                 access is powerful; prefer powercap or perf where they work."
            );
        }
        out
    }
}

/// What [`apply`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The rule file written.
    pub rules_file: PathBuf,
    /// The files given to the group.
    pub files: Vec<PathBuf>,
}

/// Writes the rule file (atomically) and gives every energy file of the plan to its group,
/// readable by it (`chgrp`, `chmod g+r`; other bits unchanged, nothing made world-readable).
/// Needs root on a real machine, and the group to exist.
pub fn apply(plan: &AccessPlan) -> Result<Applied, AccessError> {
    if !valid_group(&plan.group) {
        return Err(AccessError::BadGroup(plan.group.clone()));
    }
    let gid = group_id(&plan.group).ok_or_else(|| AccessError::NoGroup(plan.group.clone()))?;
    // Each file opened once without following links, checked, and changed through that
    // handle: what was checked is what is changed. All are checked before anything changes.
    let mut opened = Vec::new();
    for f in &plan.files {
        use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(f)
            .map_err(|source| match source.raw_os_error() {
                Some(libc::ELOOP) => AccessError::Unexpected(f.clone()),
                _ => AccessError::Io { path: f.clone(), source },
            })?;
        let kind = file.metadata().map_err(io(f))?.file_type();
        if !(kind.is_file() || kind.is_char_device()) {
            return Err(AccessError::Unexpected(f.clone()));
        }
        opened.push((f, file));
    }
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AccessError + '_ {
        move |source| AccessError::Io { path: path.to_owned(), source }
    }
    let dir = plan.rules_file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
    std::io::Write::write_all(&mut tmp, plan.rules.as_bytes()).map_err(io(&plan.rules_file))?;
    tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644)).map_err(io(&plan.rules_file))?;
    tmp.persist(&plan.rules_file)
        .map_err(|e| AccessError::Io { path: plan.rules_file.clone(), source: e.error })?;
    for (f, file) in &opened {
        std::os::unix::fs::fchown(file, None, Some(gid)).map_err(io(f))?;
        let mode = file.metadata().map_err(io(f))?.mode();
        file.set_permissions(std::fs::Permissions::from_mode((mode & 0o7777) | 0o040)).map_err(io(f))?;
    }
    Ok(Applied { rules_file: plan.rules_file.clone(), files: plan.files.clone() })
}

/// A plain group name: it goes into a udev rule and a shell command.
fn valid_group(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && name.len() <= 32
}

/// The id of group `name`, if it exists.
pub fn group_id(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: `c` is a valid C string; getgrnam returns null or a pointer to static storage,
    // read at once (this runs on one thread, from the CLI).
    let g = unsafe { libc::getgrnam(c.as_ptr()) };
    // SAFETY: checked non-null; `gr_gid` is a plain integer field.
    (!g.is_null()).then(|| unsafe { (*g).gr_gid })
}

/// The name of group `gid`, if it has one.
pub fn group_name(gid: u32) -> Option<String> {
    // SAFETY: getgrgid returns null or a pointer to static storage, read at once.
    let g = unsafe { libc::getgrgid(gid) };
    if g.is_null() {
        return None;
    }
    // SAFETY: a non-null group entry's `gr_name` is a valid C string.
    let name = unsafe { std::ffi::CStr::from_ptr((*g).gr_name) };
    name.to_str().ok().map(str::to_owned)
}

/// The group id of a file and whether that group may read it.
pub fn group_readable(path: &Path) -> Option<(u32, bool)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.gid(), m.mode() & 0o040 != 0))
}
