//! A powercap tree in a temp dir, laid out like `/sys/class/powercap`, whose `energy_uj`
//! files a thread advances at known powers, wrapping at `max_energy_range_uj`.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One zone of the fake tree.
#[derive(Clone, Debug)]
pub struct Zone {
    /// Kernel id: `intel-rapl:0` or `intel-rapl:0:1`.
    pub id: &'static str,
    /// Its `name` file.
    pub name: &'static str,
    /// Its constant power.
    pub watts: f64,
    /// Where the counter wraps.
    pub max_energy_range_uj: u64,
    /// The counter's value when the fake starts.
    pub start_uj: u64,
}

/// The running fake.
#[derive(Debug)]
pub struct FakePowercap {
    _dir: Option<tempfile::TempDir>,
    root: PathBuf,
    stop: Arc<AtomicBool>,
    writer: Option<JoinHandle<()>>,
    started: Instant,
    zones: Vec<Zone>,
}

/// The directory of zone `id`: subzones live inside their parent, as in sysfs.
fn zone_dir(root: &Path, id: &str) -> PathBuf {
    match id.rsplit_once(':') {
        Some((parent, _)) if parent.matches(':').count() == 1 => root.join(parent).join(id),
        _ => root.join(id),
    }
}

fn record(value: u64, width: usize) -> String {
    // Fixed width, so each update is one in-place write of the same length.
    format!("{value:0width$}\n")
}

impl FakePowercap {
    /// Writes the tree in a new temp dir and starts a thread that updates every counter
    /// every `update`.
    pub fn start(zones: Vec<Zone>, update: Duration) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut fake = Self::start_in(dir.path(), zones, update);
        fake._dir = Some(dir);
        fake
    }

    /// As [`start`](Self::start), in an existing directory (e.g. a fake machine's powercap root).
    pub fn start_in(root: &Path, zones: Vec<Zone>, update: Duration) -> Self {
        let root = root.to_owned();
        fs::create_dir_all(root.join("intel-rapl")).unwrap(); // the control type, not a zone
        let mut files = Vec::new();
        for z in &zones {
            let d = zone_dir(&root, z.id);
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("name"), format!("{}\n", z.name)).unwrap();
            fs::write(d.join("max_energy_range_uj"), format!("{}\n", z.max_energy_range_uj)).unwrap();
            let width = z.max_energy_range_uj.to_string().len();
            fs::write(d.join("energy_uj"), record(z.start_uj, width)).unwrap();
            if d.parent() != Some(&root) {
                // sysfs also links every subzone at the top of /sys/class/powercap.
                std::os::unix::fs::symlink(&d, root.join(z.id)).unwrap();
            }
            let file = OpenOptions::new().write(true).open(d.join("energy_uj")).unwrap();
            files.push((file, width));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let writer = {
            let stop = stop.clone();
            let zones = zones.clone();
            std::thread::spawn(move || write_loop(&zones, &files, started, update, &stop))
        };
        FakePowercap { _dir: None, root, stop, writer: Some(writer), started, zones }
    }

    /// The root to give the reader.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How many times zone `id`'s counter has wrapped so far.
    pub fn wraps(&self, id: &str) -> u64 {
        let z = self.zones.iter().find(|z| z.id == id).expect("known zone");
        let uj = z.start_uj as f64 + z.watts * self.started.elapsed().as_secs_f64() * 1e6;
        (uj / z.max_energy_range_uj as f64) as u64
    }

    /// Stops updating the counters.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.writer.take() {
            h.join().unwrap();
        }
    }
}

impl Drop for FakePowercap {
    fn drop(&mut self) {
        self.stop();
    }
}

fn write_loop(
    zones: &[Zone],
    files: &[(File, usize)],
    started: Instant,
    update: Duration,
    stop: &AtomicBool,
) {
    let mut next = started;
    while !stop.load(Ordering::Acquire) {
        let t = started.elapsed().as_secs_f64();
        for (z, (file, width)) in zones.iter().zip(files) {
            let uj = z.start_uj + (z.watts * t * 1e6) as u64;
            file.write_at(record(uj % z.max_energy_range_uj, *width).as_bytes(), 0).unwrap();
        }
        next += update;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

/// Writes a static tree from `(relative path, contents)` pairs, for malformed-tree tests.
pub fn static_tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (rel, text) in files {
        let p = dir.path().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    dir
}
