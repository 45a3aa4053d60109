//! The cost of one read of each source, as the sampler pays it every tick. Hardware paths read
//! fakes through the real readers: a powercap tree and MSR files in a temp dir (page-cache
//! reads, so real sysfs and msr reads cost more: the kernel asks the hardware), and for perf a
//! real perf fd (a software event, read exactly as the power PMU's counters are).

use std::hint::black_box;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use joules::source::msr::intel;
use joules::source::perf::Opener;
use joules::source::{EstimateSource, Msr, Perf, Powercap, ReadCtx, Sim, SimScript, Source};
use joules::{Joules, Nanos, Watts};
use joules_tests::machine::{Cpu, FakeMachine};
use joules_tests::msr::write_register;
use joules_tests::perf::{Event, FakePerf};
use joules_tests::powercap::static_tree;

fn bench_source(c: &mut Criterion, name: &str, mut source: Box<dyn Source>) {
    let mut out = vec![Joules(0.0); source.domains().len()];
    let label = format!("{name} ({} domains)", out.len());
    c.bench_function(&label, |b| {
        b.iter(|| {
            source.read(&ReadCtx { now: Nanos(0) }, &mut out).unwrap();
            black_box(&out);
        })
    });
}

/// A task-clock counter of this process: a real perf fd, read like a power PMU counter.
fn software_counter() -> std::io::Result<std::fs::File> {
    let mut counter = perf_event::Builder::new(perf_event::events::Software::TASK_CLOCK)
        .read_format(perf_event::ReadFormat::empty())
        .build()?;
    counter.enable()?;
    // SAFETY: `into_raw_fd` hands over sole ownership of a valid, open fd.
    Ok(unsafe { std::fs::File::from_raw_fd(counter.into_raw_fd()) })
}

fn reads(c: &mut Criterion) {
    let tree = static_tree(&[
        ("intel-rapl:0/name", "package-0\n"),
        ("intel-rapl:0/max_energy_range_uj", "262143328850\n"),
        ("intel-rapl:0/energy_uj", "123456789\n"),
        ("intel-rapl:0/intel-rapl:0:0/name", "core\n"),
        ("intel-rapl:0/intel-rapl:0:0/max_energy_range_uj", "262143328850\n"),
        ("intel-rapl:0/intel-rapl:0:0/energy_uj", "23456789\n"),
        ("intel-rapl:0/intel-rapl:0:1/name", "dram\n"),
        ("intel-rapl:0/intel-rapl:0:1/max_energy_range_uj", "262143328850\n"),
        ("intel-rapl:0/intel-rapl:0:1/energy_uj", "3456789\n"),
    ]);
    bench_source(c, "powercap", Box::new(Powercap::probe_at(tree.path()).unwrap()));

    let machine = FakeMachine::new(Cpu::Intel(0x9E), &[(0, 0)]);
    let dir = machine.roots().msr;
    write_register(&dir, 0, intel::POWER_UNIT, 0x000A_1003);
    for reg in [intel::PKG, intel::PP0, intel::DRAM] {
        write_register(&dir, 0, reg, 0x1234_5678);
    }
    bench_source(c, "msr", Box::new(Msr::probe_with(&machine.roots()).unwrap()));

    let _pmu = FakePerf::start(
        &machine.roots().sysfs,
        "0",
        &[
            Event { name: "energy-pkg", config: 2, watts: 0.0 },
            Event { name: "energy-cores", config: 1, watts: 0.0 },
        ],
        "2.3283064365386962890625e-10",
    );
    let opener: Opener = Arc::new(|_| software_counter());
    match Perf::probe_with(&machine.roots(), &opener) {
        Ok(perf) => bench_source(c, "perf", Box::new(perf)),
        Err(e) => eprintln!("perf read not benchmarked: {e}"),
    }

    bench_source(c, "estimate", Box::new(EstimateSource::with_watts_per_core(Watts(10.0))));
    bench_source(c, "sim", Box::new(Sim::new(SimScript::new(Watts(10.0)))));
}

criterion_group!(benches, reads);
criterion_main!(benches);
