//! `joules::criterion::Energy` as criterion drives it (start, end, add, formatting), on the
//! simulator's known power.

use std::time::{Duration, Instant};

use criterion::measurement::Measurement;
use joules::Watts;
use joules::criterion::Energy;
use joules::source::{Sim, SimScript};

#[test]
fn a_sample_measures_the_energy_drawn_during_it() {
    // The simulator taps span edges process-wide: one at a time, and gone (its reader thread
    // joined) before the lock is.
    let _lock = joules_tests::profiler_lock();
    let energy = Energy::with_sources(vec![Box::new(Sim::new(SimScript::new(Watts(8.0))))]);
    assert!(energy.provenance().contains("simulated"), "{}", energy.provenance());
    let mut total = energy.zero();
    let mut took = Duration::ZERO;
    for _ in 0..3 {
        let started = Instant::now();
        let i = energy.start();
        std::thread::sleep(Duration::from_millis(100));
        let v = energy.end(i);
        took += started.elapsed();
        total = energy.add(&total, &v);
    }
    // 8 W over the samples' time, within a counter step at each end of each.
    let want = 8.0 * took.as_secs_f64();
    let got = energy.to_f64(&total);
    assert!((got - want).abs() / want < 0.02, "{got} J vs {want} J");

    let f = energy.formatter();
    let mut values = [0.002, 0.004];
    assert_eq!(f.scale_values(0.003, &mut values), "mJ");
    assert_eq!(values, [2.0, 4.0]);
    let mut per = [0.5, 0.25];
    let unit = f.scale_throughputs(0.5, &criterion::Throughput::Elements(1_000), &mut per);
    assert_eq!((unit, per), ("Kelem/J", [2.0, 4.0]), "1000 elements in 0.5 J: 2 Kelem/J");
    let mut per = [1e-6];
    let unit = f.scale_throughputs(1e-6, &criterion::Throughput::Bytes(4096), &mut per);
    assert_eq!(unit, "GB/J");
    assert!((per[0] - 4.096).abs() < 1e-9, "{per:?}");
    let mut machine = [0.5];
    assert_eq!(f.scale_for_machines(&mut machine), "J");
    assert_eq!(machine, [0.5], "machines get joules, unscaled");
}

#[test]
#[should_panic(expected = "no energy domain")]
fn a_measurement_of_nothing_is_refused() {
    let _ = Energy::with_sources(Vec::new());
}
