//! Fake hardware for joules' tests. Fakes are files the real readers read through their
//! injectable roots; nothing in the library is replaced. The one exception is the perf
//! syscall, which the perf reader takes as a parameter (an [`Opener`](joules::source::perf::Opener)).

pub mod caps;
pub mod hwmon;
pub mod machine;
pub mod msr;
pub mod nvml;
pub mod perf;
pub mod powercap;
pub mod ticker;
pub mod trace;

use std::sync::{Mutex, MutexGuard};

/// One profiler runs per process, and spans go to whichever runs: tests that profile or open
/// spans hold this lock. So do tests that time fake counters (update periods measured at
/// probe) and tests that load the cores in bursts (cargo subprocesses): on a 2-core machine
/// the one starves the other.
pub fn profiler_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// A simulated package domain with a 1 µJ step every `period`, for timelines built by hand.
pub fn sim_package(id: &str, period: joules::Nanos, measured: bool) -> joules::timeline::TimelineDomain {
    joules::timeline::TimelineDomain::new(
        joules::source::Domain {
            id: id.into(),
            kind: joules::source::DomainKind::Package,
            part_of: None,
            resolution: joules::Joules(1e-6),
            update_period: period,
            update_period_measured: measured,
        },
        joules::source::SourceKind::Sim,
    )
}
