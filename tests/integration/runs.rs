//! Process runs merged (`cargo joules bench --runs N`) and compared by their spread.

use joules::compare::{Basis, CompareConfig, Verdict, compare};
use joules::merge;

use crate::formats::fixture;

/// `fixture` with every energy figure scaled by `k` (a run whose power drifted).
fn drifted(k: f64, dense2: f64) -> joules::report::Report {
    let mut r = fixture(dense2);
    for b in &mut r.benches {
        for d in &mut b.domains {
            d.total_j.point *= k;
            d.total_j.samples.iter_mut().for_each(|x| *x *= k);
        }
        for s in &mut b.spans {
            for e in &mut s.energy {
                e.exclusive_j.point *= k;
                e.exclusive_j.samples.iter_mut().for_each(|x| *x *= k);
            }
        }
    }
    r
}

fn merged(ks: &[f64], dense2: f64) -> joules::report::Report {
    merge::runs(ks.iter().map(|&k| drifted(k, dense2)).collect()).unwrap()
}

#[test]
fn merged_figures_keep_every_run_and_their_mean() {
    let m = merged(&[0.98, 1.0, 1.02], 1.0);
    assert_eq!(m.runs, 3);
    let e = &m.benches[0].spans[1].energy[0].exclusive_j;
    assert_eq!(e.runs.len(), 3);
    assert!((e.point - 0.049).abs() < 1e-12, "{e:?}");
    // The interval is the runs' (sd 0.02 x 0.049, t(2) = 4.30), not the samples'.
    let half = e.half_width().unwrap();
    assert!((half - 4.303 * 0.02 * 0.049 / 3f64.sqrt()).abs() < 1e-5, "{half}");
    assert_eq!(e.samples.len(), 30, "every run's samples are kept");
    assert_eq!(m.benches[0].samples.len(), 3 * fixture(1.0).benches[0].samples.len());
}

#[test]
fn drift_between_runs_is_no_regression_but_a_real_change_is() {
    let cfg = CompareConfig::default();
    let old = merged(&[0.98, 1.01, 0.99, 1.02, 1.0], 1.0);
    // Within one run each, a 3% drift is "significant" and beyond ±2%...
    let one = compare(&drifted(0.98, 1.0), &drifted(1.01, 1.0), &cfg).unwrap();
    assert!(one.regressed(), "{one:#?}");
    assert!(one.single_runs());
    // ...between runs it is what runs do.
    let new = merged(&[1.01, 0.99, 1.02, 1.0, 1.015], 1.0);
    let cmp = compare(&old, &new, &cfg).unwrap();
    assert!(!cmp.regressed(), "{cmp:#?}");
    assert!(cmp.changes.iter().all(|c| c.basis == Basis::BetweenRuns && c.runs == (5, 5)));
    // dense2 10% costlier in every run: named, alone among the spans.
    let worse = merged(&[1.01, 0.99, 1.02, 1.0, 0.98], 1.10);
    let cmp = compare(&old, &worse, &cfg).unwrap();
    let regressed: Vec<&str> = cmp.regressions().map(|c| c.path.as_str()).collect();
    assert_eq!(regressed, ["forward/dense2"], "{cmp:#?}");
    let d2 = cmp.changes.iter().find(|c| c.path == "forward/dense2").unwrap();
    assert!(d2.detectable.unwrap() < 0.10, "{d2:#?}");
    // One new run against five: the spread is borrowed from the five.
    let cmp = compare(&old, &drifted(1.01, 1.0), &cfg).unwrap();
    assert!(!cmp.regressed() && !cmp.single_runs(), "{cmp:#?}");
    assert!(cmp.changes.iter().all(|c| c.runs == (5, 1)));
    assert!(cmp.changes.iter().all(|c| c.verdict != Verdict::Unknown));
}

#[test]
fn runs_that_measured_different_things_are_refused() {
    let mut other = fixture(1.0);
    other.benches[0].name = "something-else".into();
    let err = merge::runs(vec![fixture(1.0), other]).unwrap_err();
    assert!(err.to_string().contains("run 2 differs from run 1: benches"), "{err}");
    // A span seen in some runs only is kept, from those, and said.
    let mut fewer = fixture(1.0);
    fewer.benches[0].spans.retain(|s| s.path != "forward/relu");
    let m = merge::runs(vec![fixture(1.0), fewer]).unwrap();
    let relu = m.benches[0].spans.iter().find(|s| s.path == "forward/relu").unwrap();
    assert!(relu.energy[0].exclusive_j.runs.is_empty(), "one run's figure as it is");
    assert!(
        m.benches[0].warnings.iter().any(|w| w.contains("span `forward/relu` ran in 1 of 2 runs")),
        "{:?}",
        m.benches[0].warnings
    );
}

#[test]
fn merged_runs_work_out_the_break_even_from_their_merged_energy() {
    let m = merged(&[0.9, 1.0, 1.1], 1.0);
    let b = &m.benches[0];
    let t = b.training.as_ref().expect("the first run's training energy is kept");
    assert_eq!(t.energy_j, 3.6e7);
    let n = t.break_even_inferences.as_ref().unwrap();
    let per_inference = b.domains[0].total_j.point / 32.0;
    assert!((n.point - 3.6e7 / per_inference).abs() < 1e-9 * n.point, "{n:?}");
    // Its interval is between runs, as the energy's is: wider than one run's.
    let one = fixture(1.0).benches[0].training.clone().unwrap().break_even_inferences.unwrap();
    assert!(n.hi.unwrap() - n.lo.unwrap() > one.hi.unwrap() - one.lo.unwrap(), "{n:?} vs {one:?}");
}
