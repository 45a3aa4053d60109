//! The fallback when no energy counter can be read: process CPU time times a power model.
//!
//! Energy = (CPU time of the process, less the sampler thread's own) x watts per busy core.
//! The default, 10 W per busy core, sits in the middle of what current desktop and server
//! cores draw at full load (roughly 5 to 15 W: package TDP over core count); it ignores idle,
//! uncore, memory and frequency. Every figure from this source is labelled "estimated".

use super::{Domain, DomainKind, ProbeError, ReadCtx, ReadError, Source, SourceKind};
use crate::units::{Joules, Nanos, Watts};

/// Overrides the watts per busy core.
pub const WATTS_ENV: &str = "JOULES_ESTIMATE_WATTS_PER_CORE";
/// The default power of one busy core.
pub const DEFAULT_WATTS_PER_CORE: Watts = Watts(10.0);

/// The estimate source.
#[derive(Debug)]
pub struct Estimate {
    watts_per_core: Watts,
    from_env: bool,
    domains: [Domain; 1],
    origin: Option<Nanos>,
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
        Estimate { watts_per_core, from_env, domains: [domain], origin: None }
    }

    /// The power of one busy core in this model.
    pub fn watts_per_core(&self) -> Watts {
        self.watts_per_core
    }
}

fn cpu_time(clock: libc::clockid_t) -> Nanos {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the clock ids used here always exist on Linux.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return Nanos(0);
    }
    Nanos(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

impl Source for Estimate {
    fn kind(&self) -> SourceKind {
        SourceKind::Estimate
    }

    fn describe(&self) -> String {
        let origin = if self.from_env { WATTS_ENV } else { "default; set JOULES_ESTIMATE_WATTS_PER_CORE" };
        format!("process CPU time x {} W per busy core ({origin}); not a measurement", self.watts_per_core.0)
    }

    fn domains(&self) -> &[Domain] {
        &self.domains
    }

    fn set_update_period(&mut self, index: usize, period: Nanos) {
        super::set_period(&mut self.domains, index, period);
    }

    fn read(&mut self, _ctx: &ReadCtx, out: &mut [Joules]) -> Result<(), ReadError> {
        // Runs on the sampler thread: its own CPU time is the profiler's cost, not the
        // program's, so it is taken out.
        let busy = cpu_time(libc::CLOCK_PROCESS_CPUTIME_ID) - cpu_time(libc::CLOCK_THREAD_CPUTIME_ID);
        let origin = *self.origin.get_or_insert(busy);
        out[0] = self.watts_per_core * (busy - origin);
        Ok(())
    }
}
