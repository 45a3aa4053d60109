//! What profiling costs the profiled process: its CPU time over wall time while a profiler
//! reads a powercap tree (a fake, updated every 1 ms by another process, as the kernel would)
//! and the program sleeps; the sampler thread's share while the program runs spans; and the
//! same on the simulated counter (1 ms steps +/-50 us), whose true steps are known.
//!
//!     cargo bench -p joules-tests --bench sampler_cost
//!
//! Issue 9's target: a sleeping program pays at most 1% of one core.

use std::process::Command;
use std::time::{Duration, Instant};

use joules_tests::powercap::{FakePowercap, Zone};

const CHILD: &str = "JOULES_SAMPLER_COST_CHILD";

fn cpu(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid, writable timespec and clocks that always exist.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// In the child: profile for a few seconds, sleeping or running spans, and print the cost.
fn child(mode: &str) {
    let mut truth = None;
    let profiler = if mode == "sim" {
        let sim = joules::source::Sim::new(
            joules::source::SimScript::new(joules::Watts(10.0))
                .span("layer", joules::Watts(30.0))
                .jitter(joules::Nanos(50_000))
                .unit(joules::Joules(15.3e-6)),
        );
        truth = Some(sim.truth());
        joules::Profiler::builder().source(sim).start().unwrap()
    } else {
        let p = joules::Profiler::start().expect("a profiler on the fake tree");
        let source = &p.sources()[0];
        assert_eq!(source.kind, joules::source::SourceKind::Powercap, "{source:?}");
        p
    };
    let secs = 4.0;
    let (w0, p0, t0) =
        (Instant::now(), cpu(libc::CLOCK_PROCESS_CPUTIME_ID), cpu(libc::CLOCK_THREAD_CPUTIME_ID));
    match mode {
        "sleep" => std::thread::sleep(Duration::from_secs_f64(secs)),
        _ => {
            while w0.elapsed().as_secs_f64() < secs {
                let _outer = joules::span!("layer");
                let until = Instant::now() + Duration::from_micros(300);
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
            }
        }
    }
    let wall = w0.elapsed().as_secs_f64();
    let process = cpu(libc::CLOCK_PROCESS_CPUTIME_ID) - p0;
    let main = cpu(libc::CLOCK_THREAD_CPUTIME_ID) - t0;
    let rec = profiler.stop();
    let series = &rec.timeline.domains[0].series;
    let quality = series
        .stamp_quality(joules::timeline::Series::precise_limit(rec.timeline.domains[0].domain.update_period));
    let steps = truth.map(|t| t.lock().unwrap().steps.clone()).unwrap_or_default();
    let limit = joules::timeline::Series::precise_limit(rec.timeline.domains[0].domain.update_period);
    let worst = series
        .times
        .iter()
        .zip(&series.uncertainty)
        .filter(|(_, u)| u64::from(**u) <= limit.0)
        .filter_map(|(t, _)| steps.iter().map(|s| s.0.abs_diff(t.0)).min())
        .max();
    if let Some(w) = worst {
        println!(
            "{mode}: stamps called precise are within {:.1} us of the simulator's steps",
            w as f64 / 1000.0
        );
    }
    println!(
        "{mode}: profiler {:.2}% of a core (process CPU {:.3} s, program {:.3} s, over {:.2} s); {} readings, median stamp +/-{:.1} us, {:.0}% precise",
        100.0 * (process - main) / wall,
        process,
        main,
        wall,
        series.len(),
        quality.map_or(0.0, |q| q.0.0 as f64 / 1000.0),
        quality.map_or(0.0, |q| 100.0 * q.1)
    );
}

fn main() {
    if let Ok(mode) = std::env::var(CHILD) {
        return child(&mode);
    }
    let fake = FakePowercap::start(
        vec![Zone {
            id: "intel-rapl:0",
            name: "package-0",
            watts: 25.0,
            max_energy_range_uj: 262_143_328_850,
            start_uj: 0,
        }],
        Duration::from_millis(1),
    );
    for mode in ["sleep", "spans", "sim"] {
        let out = Command::new(std::env::current_exe().unwrap())
            .env(CHILD, mode)
            .env("JOULES_POWERCAP_ROOT", fake.root())
            .env("JOULES_MSR_DIR", "/nonexistent")
            .env("JOULES_NVML_LIB", "/nonexistent/libnvidia-ml.so")
            .output()
            .unwrap();
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
            std::process::exit(1);
        }
    }
}
