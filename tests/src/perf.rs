//! A perf `power` PMU: its sysfs directory, and an opener that hands the reader the read end
//! of a pipe that a thread keeps holding one fresh 8-byte count (the count of a counter that
//! updates every millisecond at a known power). The reader reads it exactly as it reads a perf
//! fd: 8 bytes at the cursor.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::fd::FromRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use joules::source::perf::{EventSpec, Opener};

use crate::machine::write;

/// The scale the kernel reports for RAPL events: 2^-32 J.
pub const SCALE: f64 = 2.328_306_436_538_696_3e-10;

/// The PMU type the fake sysfs declares.
pub const PMU_TYPE: u32 = 23;

/// An event of the fake PMU.
#[derive(Clone, Copy, Debug)]
pub struct Event {
    /// e.g. `energy-pkg`.
    pub name: &'static str,
    /// Its config (`event=`).
    pub config: u64,
    /// Its power on every CPU of the mask.
    pub watts: f64,
}

struct Feed {
    pipe: File,
    /// The read end opened again, non-blocking, to take back a value gone stale.
    drain: File,
    watts: f64,
    written: Instant,
}

/// The running fake.
pub struct FakePerf {
    feeds: Arc<Mutex<Vec<Feed>>>,
    stop: Arc<AtomicBool>,
    feeder: Option<JoinHandle<()>>,
    watts: HashMap<u64, f64>,
    started: Instant,
}

impl std::fmt::Debug for FakePerf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakePerf").finish_non_exhaustive()
    }
}

fn pipe() -> (File, File) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: both descriptors were just created and are owned by nobody else.
    unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
}

fn queued(f: &File) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer.
    unsafe { libc::ioctl(f.as_raw_fd(), libc::FIONREAD, &mut n) };
    n
}

impl FakePerf {
    /// Writes `<sysfs>/bus/event_source/devices/power` with `events` and `cpumask`, and starts
    /// the thread that feeds opened counters. `scale_text` is written to each `.scale` file.
    pub fn start(sysfs: &Path, cpumask: &str, events: &[Event], scale_text: &str) -> Self {
        let pmu = sysfs.join("bus/event_source/devices/power");
        write(&pmu, "type", &format!("{PMU_TYPE}\n"));
        write(&pmu, "cpumask", &format!("{cpumask}\n"));
        for e in events {
            write(&pmu, &format!("events/{}", e.name), &format!("event={:#04x}\n", e.config));
            write(&pmu, &format!("events/{}.scale", e.name), &format!("{scale_text}\n"));
            write(&pmu, &format!("events/{}.unit", e.name), "Joules\n");
        }
        let feeds: Arc<Mutex<Vec<Feed>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let feeder = {
            let (feeds, stop) = (feeds.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    // The counter moves every millisecond, like RAPL's.
                    let t = started.elapsed().as_millis() as f64 * 1e-3;
                    for f in feeds.lock().unwrap().iter_mut() {
                        // A perf fd returns the count as of the read; a queued value must not
                        // sit for long. (If the reader takes it first, the read gets nothing.)
                        if queued(&f.pipe) > 0 && f.written.elapsed() > Duration::from_millis(1) {
                            let _ = (&f.drain).read(&mut [0u8; 8]);
                        }
                        if queued(&f.pipe) == 0 {
                            let count = (f.watts * t / SCALE) as u64;
                            let _ = f.pipe.write_all(&count.to_le_bytes());
                            f.written = Instant::now();
                        }
                    }
                    std::thread::sleep(Duration::from_micros(50));
                }
            })
        };
        FakePerf {
            feeds,
            stop,
            feeder: Some(feeder),
            watts: events.iter().map(|e| (e.config, e.watts)).collect(),
            started,
        }
    }

    /// The opener to give the reader: a pipe per event and CPU.
    pub fn opener(&self) -> Opener {
        let feeds = self.feeds.clone();
        let watts = self.watts.clone();
        Arc::new(move |spec: EventSpec| {
            if spec.pmu_type != PMU_TYPE {
                return Err(std::io::Error::from_raw_os_error(libc::ENOENT));
            }
            let w =
                *watts.get(&spec.config).ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
            let (read, write) = pipe();
            let drain = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(format!("/proc/self/fd/{}", read.as_raw_fd()))?;
            feeds.lock().unwrap().push(Feed { pipe: write, drain, watts: w, written: Instant::now() });
            Ok(read)
        })
    }

    /// Seconds since the fake started.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

impl Drop for FakePerf {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.feeder.take() {
            let _ = h.join();
        }
    }
}

/// An opener that fails as `perf_event_open` does, with `errno`.
pub fn failing_opener(errno: i32) -> Opener {
    Arc::new(move |_| Err(std::io::Error::from_raw_os_error(errno)))
}
