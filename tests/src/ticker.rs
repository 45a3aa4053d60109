//! The thread that advances a fake counter tree: calls a function with the seconds since it
//! started, at a fixed period, until dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running writer thread; dropping it stops and joins it.
#[derive(Debug)]
pub struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    started: Instant,
}

impl Ticker {
    /// Calls `tick(0.0)` now, then `tick(seconds since start)` every `period` (to absolute
    /// deadlines, so the pace does not drift) on a thread of its own.
    pub fn every(period: Duration, mut tick: impl FnMut(f64) + Send + 'static) -> Self {
        let started = Instant::now();
        tick(0.0);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut next = started;
            while !flag.load(Ordering::Acquire) {
                next += period;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
                tick(started.elapsed().as_secs_f64());
            }
        });
        Ticker { stop, thread: Some(thread), started }
    }

    /// When it started: the fakes' time zero.
    pub fn started(&self) -> Instant {
        self.started
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
