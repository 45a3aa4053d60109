//! The fallback when no energy counter can be read: process CPU time times a power model.
//!
//! Energy = (CPU time of the process, less the sampler thread's own) x watts per busy core.
//!
//! The CPU time is summed over the process's threads from their own CPU-time clocks, not
//! read from the process clock: Linux adds a thread's running time to the process clock
//! only at scheduler ticks and context switches, so a busy thread's time reaches it in
//! steps of 1-4 ms at instants the sampler cannot see, while reading a thread's clock brings
//! its running time up to date. The thread list is refreshed every [`REFRESH`] from
//! `/proc/self/task`; a thread first seen counts all its time if it started since the last
//! look, else from then; the time since the last read of a thread that exits is lost.
//! Without `/proc`, the process clock is read instead.
//! The default, 10 W per busy core, sits in the middle of what current desktop and server
//! cores draw at full load (roughly 5 to 15 W: package TDP over core count); it ignores idle,
//! uncore, memory and frequency. Every figure from this source is labelled "estimated".

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use super::{Domain, DomainKind, ProbeError, ReadCtx, ReadError, Source, SourceKind};
use crate::units::{Joules, Nanos, Watts};

/// Overrides the watts per busy core.
pub const WATTS_ENV: &str = "JOULES_ESTIMATE_WATTS_PER_CORE";
/// The default power of one busy core.
pub const DEFAULT_WATTS_PER_CORE: Watts = Watts(10.0);

/// How often the list of threads is read again.
pub const REFRESH: Nanos = Nanos(50_000_000);

/// The estimate source.
#[derive(Debug)]
pub struct Estimate {
    watts_per_core: Watts,
    from_env: bool,
    /// Another process tree to count instead of this process (`cargo joules run`).
    command: Option<Command>,
    domains: [Domain; 1],
    /// CPU time of the threads counted so far.
    busy: Nanos,
    /// Per thread: its id, CPU-time clock and last reading.
    threads: Vec<(i32, libc::clockid_t, Nanos)>,
    refreshed: Option<Nanos>,
    /// The reading thread (the sampler), left out.
    reader: Option<i32>,
    /// Where the process clock stood at the first read, if the thread list cannot be read.
    process_origin: Option<Nanos>,
}

impl Estimate {
    /// With the watts per core from `JOULES_ESTIMATE_WATTS_PER_CORE`, else the default.
    pub fn probe() -> Result<Self, ProbeError> {
        match std::env::var(WATTS_ENV) {
            Ok(text) => {
                let w: f64 = text.trim().parse().map_err(|_| {
                    ProbeError::Config(format!("{WATTS_ENV}={text:?} is not a number of watts"))
                })?;
                if !(w.is_finite() && w > 0.0) {
                    return Err(ProbeError::Config(format!(
                        "{WATTS_ENV}={text:?}: watts per core must be positive"
                    )));
                }
                Ok(Self::new(Watts(w), true))
            }
            Err(_) => Ok(Self::new(DEFAULT_WATTS_PER_CORE, false)),
        }
    }

    /// With an explicit power model.
    pub fn with_watts_per_core(watts: Watts) -> Self {
        Self::new(watts, false)
    }

    fn new(watts_per_core: Watts, from_env: bool) -> Self {
        let domain = Domain {
            id: "cpu".into(),
            kind: DomainKind::Cpu,
            part_of: None,
            resolution: watts_per_core * Nanos(1_000),
            update_period: Nanos(0),
            update_period_measured: false,
        };
        Estimate {
            watts_per_core,
            from_env,
            domains: [domain],
            busy: Nanos(0),
            threads: Vec::new(),
            refreshed: None,
            reader: None,
            process_origin: None,
            command: None,
        }
    }

    /// Read beside energy counters (chosen with `--source ...,estimate`): its `cpu` domain is
    /// marked part of `package`, so that totals over top-level domains leave it out (it
    /// models energy the counters measure).
    pub fn beside(mut self, package: &str) -> Self {
        self.domains[0].part_of = Some(package.to_owned());
        self
    }

    /// Counts the CPU time of another process and its descendants instead of this process's:
    /// the process whose id is put in `pid` (0 until then), read from `/proc/<pid>/stat`.
    ///
    /// The kernel keeps a process's times in clock ticks (10 ms at the usual 100 Hz), so the
    /// figures move in ticks; a tree's sum counts each live process's own time and what its
    /// exited children left it (`cutime`, `cstime`). A descendant orphaned before it exits
    /// (a daemon) leaves the tree, and its time from then on is not counted; the reading
    /// never goes back. Read the process while it is a zombie (`waitid` with `WNOWAIT`) to
    /// get its final times.
    pub fn for_command(mut self, pid: Arc<AtomicI32>) -> Self {
        let tick = Nanos(1_000_000_000 / clock_ticks_per_second());
        // User and system time are each truncated to ticks: one process reads up to two
        // ticks low, which the figure's bounds allow for.
        self.domains[0].resolution = self.watts_per_core * Nanos(2 * tick.0);
        self.command = Some(Command { pid, busy: Nanos(0), tick });
        self
    }

    /// The power of one busy core in this model.
    pub fn watts_per_core(&self) -> Watts {
        self.watts_per_core
    }
}

/// A clock's reading, or None if it is gone (a thread that exited).
fn cpu_time(clock: libc::clockid_t) -> Option<Nanos> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; an invalid clock id only returns an error.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    (rc == 0).then(|| Nanos(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64))
}

/// The CPU-time clock of thread `tid` of this process (the kernel's MAKE_THREAD_CPUCLOCK
/// with CPUCLOCK_SCHED).
fn thread_clock(tid: i32) -> libc::clockid_t {
    (!(tid as libc::clockid_t) << 3) | 6
}

impl Estimate {
    /// Reads `/proc/self/task` again, dropping threads that are gone. A new thread counts
    /// all its CPU time if it has used no more than has passed since the last look (it
    /// started since), else from now (it ran before the profile). False if the list cannot
    /// be read.
    fn refresh(&mut self, since_last: Nanos) -> bool {
        let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return false };
        let mut seen: Vec<i32> = dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&tid| Some(tid) != self.reader)
            .collect();
        seen.sort_unstable();
        self.threads.retain(|t| seen.binary_search(&t.0).is_ok());
        for tid in seen {
            if !self.threads.iter().any(|t| t.0 == tid) {
                let clock = thread_clock(tid);
                if let Some(now) = cpu_time(clock) {
                    let base = if self.refreshed.is_some() && now <= since_last { Nanos(0) } else { now };
                    self.threads.push((tid, clock, base));
                }
            }
        }
        true
    }
}

impl Source for Estimate {
    fn kind(&self) -> SourceKind {
        SourceKind::Estimate
    }

    fn describe(&self) -> String {
        let origin = if self.from_env { WATTS_ENV } else { "default; set JOULES_ESTIMATE_WATTS_PER_CORE" };
        let whose = match &self.command {
            Some(c) => {
                format!(
                    "the command's CPU time (its process tree, in {} ms ticks; the kernel truncates each \
                     process's times to ticks, bounds allow 2 ticks, a tree of n processes may read up to 2n low)",
                    c.tick.0 / 1_000_000
                )
            }
            None => "process CPU time".to_owned(),
        };
        format!("{whose} x {} W per busy core ({origin}); not a measurement", self.watts_per_core.0)
    }

    fn domains(&self) -> &[Domain] {
        &self.domains
    }

    fn set_update_period(&mut self, index: usize, period: Nanos) {
        super::set_period(&mut self.domains, index, period);
    }

    fn min_interval(&self) -> Nanos {
        // A command's times move in clock ticks: walking its process tree more often than a
        // tick would only cost the sampler.
        self.command.as_ref().map_or(Nanos(0), |c| c.tick)
    }

    fn read(&mut self, ctx: &ReadCtx, out: &mut [Joules]) -> Result<(), ReadError> {
        if let Some(c) = &mut self.command {
            let pid = c.pid.load(Ordering::Acquire);
            if pid > 0
                && let Some(ticks) = tree_ticks(pid, 0)
            {
                c.busy = c.busy.max(Nanos(ticks * c.tick.0));
            }
            out[0] = self.watts_per_core * c.busy;
            return Ok(());
        }
        // Runs on the sampler thread: its own CPU time is the profiler's cost, not the
        // program's, so it is left out.
        // SAFETY: gettid has no preconditions.
        let me = unsafe { libc::gettid() };
        if self.reader != Some(me) {
            self.reader = Some(me);
            self.threads.retain(|t| t.0 != me);
        }
        // No thread list at the first read (no /proc): the process clock for the whole run,
        // which lags busy threads by up to a scheduler tick, less this thread's own time.
        if self.process_origin.is_some() || (self.refreshed.is_none() && !self.refresh(Nanos(0))) {
            let own = cpu_time(libc::CLOCK_THREAD_CPUTIME_ID).unwrap_or_default();
            let all = cpu_time(libc::CLOCK_PROCESS_CPUTIME_ID).unwrap_or_default();
            let busy = all - own;
            let origin = *self.process_origin.get_or_insert(busy);
            out[0] = self.watts_per_core * (busy - origin);
            return Ok(());
        }
        match self.refreshed {
            None => self.refreshed = Some(ctx.now),
            Some(t) if ctx.now - t >= REFRESH => {
                // A list that cannot be read this time (e.g. out of file descriptors) keeps
                // the threads already known.
                let _ = self.refresh(ctx.now - t);
                self.refreshed = Some(ctx.now);
            }
            Some(_) => {}
        }
        for t in &mut self.threads {
            if let Some(now) = cpu_time(t.1) {
                self.busy.0 += now.0.saturating_sub(t.2.0);
                t.2 = now;
            }
        }
        out[0] = self.watts_per_core * self.busy;
        Ok(())
    }
}

/// The process tree [`Estimate::for_command`] counts.
#[derive(Debug)]
struct Command {
    pid: Arc<AtomicI32>,
    /// Its CPU time so far (never less than an earlier reading).
    busy: Nanos,
    tick: Nanos,
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as u64 } else { 100 }
}

/// Processes deeper than this under the command are not walked (a fork bomb must not make
/// the sampler recurse without end).
const MAX_TREE_DEPTH: u32 = 64;

/// The CPU time of `pid` and its live descendants, in clock ticks: each one's user and
/// system time and that of its exited, reaped children. None if `pid` is gone.
fn tree_ticks(pid: i32, depth: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields follow the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime, stime, cutime, cstime are fields 14-17; the state (field 3) is fields[0].
    let own: u64 = fields.get(11..15)?.iter().map(|f| f.parse::<u64>().unwrap_or(0)).sum();
    let mut sum = own;
    if depth < MAX_TREE_DEPTH
        && let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task"))
    {
        for task in tasks.flatten() {
            let Ok(children) = std::fs::read_to_string(task.path().join("children")) else { continue };
            for child in children.split_whitespace().filter_map(|c| c.parse::<i32>().ok()) {
                sum += tree_ticks(child, depth + 1).unwrap_or(0);
            }
        }
    }
    Some(sum)
}
