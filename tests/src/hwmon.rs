//! hwmon devices in a temp tree, laid out like `/sys/class/hwmon`, whose energy and power
//! files a thread advances every millisecond at known powers, as the drivers would: energy
//! counters in microjoules (reset to 0 now and then, as a driver reload or GPU reset does),
//! power in microwatts, Jetson rails as millivolts and milliamps.
//!
//! Power channels follow a square wave (their power +/- 20% every 10 ms), so an integration
//! that sampled them badly would show; the truth is the wave's mean, exact over whole periods.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::ticker::Ticker;

/// One channel of a fake device.
#[derive(Clone, Debug)]
pub enum Channel {
    /// `energy<n>_input` (and `energy<n>_label` if given) at `watts`, reset to 0 every
    /// `reset_every` if given.
    Energy {
        /// Channel number.
        n: u32,
        /// Its label.
        label: Option<&'static str>,
        /// Its constant power.
        watts: f64,
        /// How often it is reset.
        reset_every: Option<Duration>,
    },
    /// A power file (`power1_input`, `power1_average`) at `watts` on average.
    Power {
        /// The file's name.
        file: &'static str,
        /// Its mean power.
        watts: f64,
    },
    /// `in<n>_input` (mV), `curr<n>_input` (mA) and `in<n>_label`: a rail at `volts` whose
    /// current makes `watts` on average.
    Rail {
        /// Channel number.
        n: u32,
        /// Its label, e.g. `VDD_IN`.
        label: &'static str,
        /// Its voltage.
        volts: f64,
        /// Its mean power.
        watts: f64,
    },
    /// Any other file with fixed contents (`temp1_input`, a label).
    Fixed {
        /// The file's name.
        file: &'static str,
        /// Its contents.
        text: &'static str,
    },
}

/// A fake hwmon device.
#[derive(Clone, Debug)]
pub struct Device {
    /// Its `name` file: the driver.
    pub name: &'static str,
    /// Its channels.
    pub channels: Vec<Channel>,
}

/// The running fake.
#[derive(Debug)]
pub struct FakeHwmon {
    ticker: Ticker,
    devices: Vec<Device>,
    dirs: Vec<PathBuf>,
}

/// The square wave's factor at `t` seconds: 1.2 then 0.8, 10 ms each.
fn wave(t: f64) -> f64 {
    if ((t / 0.010) as u64).is_multiple_of(2) { 1.2 } else { 0.8 }
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
}

/// Opens (creating) a value file once: its mode may change later (`doctor --fix` tests
/// make it root-only), and the writer keeps writing through this handle.
fn open(path: &Path) -> fs::File {
    fs::OpenOptions::new().write(true).create(true).truncate(false).open(path).unwrap()
}

/// Writes a value in place at a fixed width, so a reader's pread never sees a file being
/// rewritten (empty, or half a number): sysfs shows each value whole.
fn put(file: &fs::File, value: u64) {
    use std::os::unix::fs::FileExt;
    file.write_all_at(format!("{value:020}\n").as_bytes(), 0).unwrap();
}

impl FakeHwmon {
    /// Writes `devices` as `<sysfs>/class/hwmon/hwmon<first + i>` and starts the thread.
    pub fn start_in(sysfs: &Path, first: u32, devices: Vec<Device>) -> Self {
        let mut dirs = Vec::new();
        for (i, d) in devices.iter().enumerate() {
            let dir = sysfs.join(format!("class/hwmon/hwmon{}", first + i as u32));
            fs::create_dir_all(&dir).unwrap();
            write(&dir.join("name"), &format!("{}\n", d.name));
            for c in &d.channels {
                match c {
                    Channel::Energy { n, label: Some(l), .. } => {
                        write(&dir.join(format!("energy{n}_label")), &format!("{l}\n"))
                    }
                    Channel::Rail { n, label, .. } => {
                        write(&dir.join(format!("in{n}_label")), &format!("{label}\n"))
                    }
                    Channel::Fixed { file, text } => write(&dir.join(file), text),
                    _ => {}
                }
            }
            dirs.push(dir);
        }
        // Each channel's value files, opened once.
        let mut files: Vec<(Channel, Vec<fs::File>)> = Vec::new();
        for (d, dir) in devices.iter().zip(&dirs) {
            for c in &d.channels {
                let names = match c {
                    Channel::Energy { n, .. } => vec![format!("energy{n}_input")],
                    Channel::Power { file, .. } => vec![(*file).to_owned()],
                    Channel::Rail { n, .. } => vec![format!("in{n}_input"), format!("curr{n}_input")],
                    Channel::Fixed { .. } => continue,
                };
                files.push((c.clone(), names.iter().map(|f| open(&dir.join(f))).collect()));
            }
        }
        let update = move |t: f64| {
            for (c, f) in &files {
                match c {
                    Channel::Energy { watts, reset_every, .. } => {
                        let since = reset_every.map_or(t, |r| t % r.as_secs_f64());
                        put(&f[0], (watts * since * 1e6) as u64);
                    }
                    Channel::Power { watts, .. } => put(&f[0], (watts * wave(t) * 1e6) as u64),
                    Channel::Rail { volts, watts, .. } => {
                        put(&f[0], (volts * 1e3) as u64);
                        put(&f[1], (watts * wave(t) / volts * 1e3) as u64);
                    }
                    Channel::Fixed { .. } => {}
                }
            }
        };
        let ticker = Ticker::every(Duration::from_millis(1), update);
        FakeHwmon { ticker, devices, dirs }
    }

    /// Resets so far of energy channel `n` of device `device`.
    pub fn resets(&self, device: usize, n: u32) -> u64 {
        self.devices[device]
            .channels
            .iter()
            .find_map(|c| match c {
                Channel::Energy { n: m, reset_every: Some(r), .. } if *m == n => {
                    Some((self.ticker.started().elapsed().as_secs_f64() / r.as_secs_f64()) as u64)
                }
                _ => None,
            })
            .unwrap_or(0)
    }

    /// The directory of device `i`.
    pub fn dir(&self, i: usize) -> &Path {
        &self.dirs[i]
    }
}
