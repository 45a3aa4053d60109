//! Running a test in a child process, optionally without capabilities, so that a file with
//! mode 000 really is unreadable even when the tests run as root.

use std::process::Command;

/// Set in the child so the test knows it is the child.
pub const CHILD_ENV: &str = "JOULES_TEST_CHILD";

/// True inside the child started by [`run_in_child`].
pub fn in_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Re-runs test `name` (its full path, e.g. `doctor::root_only`) in a child process with
/// `envs` set; returns its combined output, panicking if it failed.
pub fn run_in_child(name: &str, envs: &[(&str, &std::path::Path)]) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"]).env(CHILD_ENV, "1");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child test {name} failed:\n{text}");
    assert!(text.contains("1 passed"), "child did not run {name}:\n{text}");
    text
}

/// Drops every capability of this process (in the child), as for an ordinary user.
pub fn drop_all_capabilities() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let header = Header { version: 0x2008_0522, pid: 0 };
    let data = [Data { effective: 0, permitted: 0, inheritable: 0 }; 2];
    // SAFETY: capset(2) with a version-3 header reads two data structs.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    assert_eq!(rc, 0, "capset: {}", std::io::Error::last_os_error());
}
