//! Sparse `<dir>/<cpu>/msr` files with values at the register offsets, advanced by a thread
//! at known powers every millisecond, the way RAPL updates.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use crate::ticker::Ticker;

/// An energy register at a constant power.
#[derive(Clone, Copy, Debug)]
pub struct Counter {
    /// The logical CPU whose file holds it.
    pub cpu: u32,
    /// The register.
    pub reg: u64,
    /// Its power.
    pub watts: f64,
    /// Its first value, in energy units (low 32 bits).
    pub start: u32,
}

/// The running fake.
#[derive(Debug)]
pub struct FakeMsr {
    ticker: Ticker,
    unit: f64,
    counters: Vec<Counter>,
}

/// Junk in the upper 32 bits, which readers must ignore.
const HIGH_BITS: u64 = 0xDEAD_0000_0000_0000;

fn file(dir: &Path, cpu: u32) -> File {
    let p = dir.join(cpu.to_string()).join("msr");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    OpenOptions::new().create(true).truncate(false).read(true).write(true).open(p).unwrap()
}

impl FakeMsr {
    /// Writes `unit_reg` = ESU `esu` on every CPU in `cpus` and starts the counters.
    pub fn start(dir: &Path, cpus: &[u32], unit_reg: u64, esu: u32, counters: Vec<Counter>) -> Self {
        for &cpu in cpus {
            // Power unit 3 (1/8 W) and time unit 10 around the energy unit, as real parts have.
            let units = 0x000A_0003 | (u64::from(esu) << 8);
            file(dir, cpu).write_all_at(&units.to_le_bytes(), unit_reg).unwrap();
        }
        let unit = 1.0 / f64::from(1u32 << esu);
        let files: Vec<File> = counters.iter().map(|c| file(dir, c.cpu)).collect();
        let write = {
            let counters = counters.clone();
            move |t: f64| {
                for (c, f) in counters.iter().zip(&files) {
                    let units = f64::from(c.start) + c.watts * t / unit;
                    let low = (units as u64) & 0xffff_ffff;
                    f.write_all_at(&(HIGH_BITS | low).to_le_bytes(), c.reg).unwrap();
                }
            }
        };
        let ticker = Ticker::every(Duration::from_millis(1), write);
        FakeMsr { ticker, unit, counters }
    }

    /// Wraps of the 32-bit field so far for the counter at `(cpu, reg)`.
    pub fn wraps(&self, cpu: u32, reg: u64) -> u64 {
        let c = self.counters.iter().find(|c| c.cpu == cpu && c.reg == reg).expect("known counter");
        let units = f64::from(c.start) + c.watts * self.ticker.started().elapsed().as_secs_f64() / self.unit;
        (units / 4_294_967_296.0) as u64
    }
}

/// Writes one register once (no thread), e.g. a counter that never moves.
pub fn write_register(dir: &Path, cpu: u32, reg: u64, value: u64) {
    file(dir, cpu).write_all_at(&value.to_le_bytes(), reg).unwrap();
}
