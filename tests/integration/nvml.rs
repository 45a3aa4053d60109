//! NVIDIA GPUs through the real nvml-wrapper, loading a fake `libnvidia-ml.so` scripted by
//! environment variables; each test runs in a child process that has them set.

use std::path::{Path, PathBuf};
use std::time::Duration;

use joules::doctor::Doctor;
use joules::source::nvml::{self, Nvml};
use joules::source::{Probe, Roots, SourceKind};
use joules::{Profiler, Recording};
use joules_tests::caps::{in_child, run_in_child};
use joules_tests::perf::failing_opener;

use crate::watts;

const LIB: &str = "JOULES_TEST_FAKE_NVML";

fn fake() -> PathBuf {
    joules_tests::nvml::fake_library(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("fake-nvml"))
}

/// Runs test `name` in a child with the fake library and `script` in its environment.
fn in_child_with(name: &str, script: &[(&str, &str)]) {
    let lib = fake();
    let mut envs: Vec<(&str, &Path)> = vec![(LIB, lib.as_path())];
    envs.extend(script.iter().map(|(k, v)| (*k, Path::new(*v))));
    let out = run_in_child(name, &envs);
    out.lines().filter(|l| l.contains("W (truth")).for_each(|l| eprintln!("{l}"));
}

fn probe_fake() -> Vec<Nvml> {
    nvml::probe(Path::new(&std::env::var_os(LIB).unwrap())).expect("the fake NVML probes")
}

fn profile(sources: Vec<Nvml>, time: Duration) -> Recording {
    let _lock = joules_tests::profiler_lock();
    let profiler = sources.into_iter().fold(Profiler::builder(), |b, s| b.source(s)).start().unwrap();
    std::thread::sleep(time);
    profiler.stop()
}

#[test]
fn energy_counter_within_one_percent() {
    if !in_child() {
        return in_child_with("nvml::energy_counter_within_one_percent", &[("FAKE_NVML_WATTS", "250")]);
    }
    let sources = probe_fake();
    assert_eq!(sources.len(), 1);
    assert_eq!(joules::source::Source::kind(&sources[0]), SourceKind::Nvml);
    let rec = profile(sources, Duration::from_millis(1500));
    let w = watts(&rec, "gpu:0");
    eprintln!("gpu:0 energy counter: {w:.3} W (truth 250 W)");
    assert!((w - 250.0).abs() / 250.0 < 0.01, "{w} W");
    assert_eq!(rec.report("gpu").benches[0].domains[0].provenance, "measured (NVML energy counter)");
}

#[test]
fn power_integration_within_three_percent_and_labelled() {
    if !in_child() {
        return in_child_with(
            "nvml::power_integration_within_three_percent_and_labelled",
            &[("FAKE_NVML_WATTS", "250"), ("FAKE_NVML_ENERGY", "0")],
        );
    }
    let sources = probe_fake();
    assert_eq!(joules::source::Source::kind(&sources[0]), SourceKind::NvmlPower);
    assert!(joules::source::Source::describe(&sources[0]).contains("instant power, integrated"));
    let rec = profile(sources, Duration::from_millis(1500));
    let w = watts(&rec, "gpu:0");
    eprintln!("gpu:0 integrated power: {w:.3} W (truth 250 W)");
    assert!((w - 250.0).abs() / 250.0 < 0.03, "{w} W");
    let provenance = &rec.report("gpu").benches[0].domains[0].provenance;
    assert!(
        provenance.starts_with("integrated") && provenance.contains("not an energy counter"),
        "{provenance}"
    );
}

#[test]
fn a_lost_gpu_ends_its_domain_and_the_run_goes_on() {
    if !in_child() {
        return in_child_with(
            "nvml::a_lost_gpu_ends_its_domain_and_the_run_goes_on",
            &[("FAKE_NVML_GPUS", "2"), ("FAKE_NVML_WATTS", "250,100"), ("FAKE_NVML_LOST_AFTER_MS", "1000")],
        );
    }
    let rec = profile(probe_fake(), Duration::from_millis(1600));
    let report = rec.report("lost");
    let bench = &report.benches[0];
    let gpu0 = bench.domains.iter().find(|d| d.domain == "gpu:0").unwrap();
    let gpu1 = bench.domains.iter().find(|d| d.domain == "gpu:1").unwrap();
    let ended = gpu0.ended.as_deref().expect("gpu:0 ended");
    assert!(ended.contains("GPU_IS_LOST"), "{ended}");
    assert!(gpu1.ended.is_none());
    assert!(
        bench.warnings.iter().any(|w| w.contains("gpu:0") && w.contains("partial")),
        "{:?}",
        bench.warnings
    );
    // The partial figures hold: about one second at 250 W before the loss, the whole run at 100 W.
    let lost_at =
        rec.timeline.domains.iter().find(|d| d.domain.id == "gpu:0").unwrap().ended.as_ref().unwrap().0;
    // The fake counts from nvmlInit, a little before the profiler starts.
    assert!((700..1100).contains(&(lost_at.0 / 1_000_000)), "lost at {lost_at:?}");
    let w0 = watts(&rec, "gpu:0");
    assert!((w0 - 250.0).abs() / 250.0 < 0.02, "gpu:0 before the loss: {w0} W");
    assert!((watts(&rec, "gpu:1") - 100.0).abs() < 2.0);
}

/// Two GPUs lost in the same read: each ends on its own, with its reason, and neither reads
/// on at 0 W; the third goes on.
#[test]
fn two_gpus_lost_in_one_read_each_end() {
    if !in_child() {
        return in_child_with(
            "nvml::two_gpus_lost_in_one_read_each_end",
            &[
                ("FAKE_NVML_GPUS", "3"),
                ("FAKE_NVML_WATTS", "250,200,100"),
                ("FAKE_NVML_LOST_AFTER_MS", "800"),
                ("FAKE_NVML_LOST_GPUS", "2"),
            ],
        );
    }
    let rec = profile(probe_fake(), Duration::from_millis(1400));
    let domain = |id: &str| rec.timeline.domains.iter().find(|d| d.domain.id == id).unwrap();
    for (id, truth) in [("gpu:0", 250.0), ("gpu:1", 200.0)] {
        let d = domain(id);
        let (at, why) = d.ended.as_ref().unwrap_or_else(|| panic!("{id} did not end"));
        assert!(why.contains("GPU_IS_LOST"), "{id}: {why}");
        assert!(d.series.times.iter().all(|t| t <= at), "{id} read on after it was lost");
        let w = watts(&rec, id);
        assert!((w - truth).abs() / truth < 0.03, "{id} before the loss: {w} W, truth {truth} W");
    }
    assert!(domain("gpu:2").ended.is_none());
    assert!((watts(&rec, "gpu:2") - 100.0).abs() < 2.0);
}

#[test]
fn two_gpus_are_two_domains_in_reports_and_doctor() {
    if !in_child() {
        return in_child_with(
            "nvml::two_gpus_are_two_domains_in_reports_and_doctor",
            &[("FAKE_NVML_GPUS", "2")],
        );
    }
    let lib = PathBuf::from(std::env::var_os(LIB).unwrap());
    let machine = joules_tests::machine::FakeMachine::new(joules_tests::machine::Cpu::Amd(25), &[(0, 0)]);
    let roots = Roots { nvml_lib: lib.clone(), ..machine.roots() };
    let probe = Probe::run(&roots, &failing_opener(libc::ENOENT));
    let doctor = Doctor::from_probe(&probe);
    crate::golden_settings(&[(&lib, "[NVML]"), (machine.path(), "[MACHINE]")])
        .bind(|| insta::assert_snapshot!("doctor_two_gpus_table", doctor.render()));
    let gpus: Vec<_> = probe.sources.iter().flat_map(|s| s.domains().iter().map(|d| d.id.clone())).collect();
    assert_eq!(gpus, ["gpu:0", "gpu:1", "cpu"]);
    let sources = probe_fake();
    let report = profile(sources, Duration::from_millis(300)).report("two");
    let ids: Vec<_> = report.benches[0].domains.iter().map(|d| d.domain.as_str()).collect();
    assert_eq!(ids, ["gpu:0", "gpu:1"]);
}

#[test]
fn no_driver_and_no_permission_are_told_apart() {
    if !in_child() {
        for code in ["9", "4"] {
            in_child_with(
                "nvml::no_driver_and_no_permission_are_told_apart",
                &[("FAKE_NVML_INIT_ERROR", code)],
            );
        }
        return;
    }
    let err = nvml::probe(Path::new(&std::env::var_os(LIB).unwrap())).unwrap_err();
    match std::env::var("FAKE_NVML_INIT_ERROR").as_deref() {
        Ok("9") => assert!(err.to_string().contains("driver is not loaded"), "{err}"),
        _ => {
            assert!(matches!(err, joules::source::ProbeError::PermissionDenied { .. }), "{err:?}");
            assert!(err.fix().unwrap().to_string().contains("/dev/nvidia"), "{err}");
        }
    }
}
