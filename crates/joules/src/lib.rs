/*!
joules tells you how many joules your code, above all an AI model's inference, costs, layer
by layer.

Mark the layers with [`measure_energy`] (or a [`span!`] guard), run them under a
[`Profiler`], and get joules per span path, inclusive and exclusive, per energy domain, each
figure labelled with where it came from: measured by RAPL, or estimated from CPU time where
no counter can be read, or simulated. `cargo joules bench` does this for benchmarks.

```
use joules::source::{Sim, SimScript};
use joules::{Profiler, Watts, measure_energy};

#[measure_energy]
fn layer(n: u64) -> u64 { (0..n).fold(0, |a, x| std::hint::black_box(a ^ x)) }

let sim = Sim::new(SimScript::new(Watts(5.0)).span("layer", Watts(40.0)));
let profiler = Profiler::builder().source(sim).start()?;
layer(2_000_000);
let report = profiler.stop().report("demo");
print!("{}", joules::render::table(&report));
assert_eq!(report.benches[0].spans[0].path, "layer");
# Ok::<(), Box<dyn std::error::Error>>(())
```

# Overview
- [`source`]: ways of reading energy (RAPL powercap, the CPU-time estimate, a simulator),
  behind the [`source::Source`] trait.
- [`Profiler`]: a sampler thread reads the sources into a [`timeline::Timeline`] while spans
  are recorded into per-thread buffers.
- [`attribute`]: the aggregator, from readings and spans to joules per span path.
- [`report`], [`render`]: versioned JSON and tables; [`bench`]: the benchmark harness.
*/
#![deny(missing_docs)]

// The annotation crate: always built.
mod clock;
mod span;
pub mod spanlog;
mod units;

// The profiler (feature `profiler`).
#[cfg(feature = "profiler")]
pub mod attribute;
#[cfg(feature = "profiler")]
pub mod command;
#[cfg(feature = "profiler")]
pub mod counter;
#[cfg(feature = "profiler")]
pub mod host;
#[cfg(feature = "profiler")]
pub mod live;
#[cfg(feature = "profiler")]
pub mod merge;
#[cfg(feature = "profiler")]
mod profiler;
#[cfg(feature = "profiler")]
pub mod report;
#[cfg(feature = "profiler")]
pub mod sampler;
#[cfg(feature = "profiler")]
pub mod source;
#[cfg(feature = "profiler")]
pub mod stats;
#[cfg(feature = "profiler")]
pub mod summary;
#[cfg(feature = "profiler")]
pub mod timeline;
#[cfg(feature = "profiler")]
pub mod window;

// The harness, comparisons, labels and rendering (feature `bench`).
#[cfg(feature = "bench")]
pub mod access;
#[cfg(feature = "bench")]
pub mod bench;
#[cfg(feature = "bench")]
pub mod compare;
#[cfg(feature = "bench")]
pub mod doctor;
#[cfg(feature = "bench")]
pub mod exit;
#[cfg(feature = "bench")]
pub mod label;
#[cfg(feature = "bench")]
pub mod render;

// A criterion measurement of energy (feature `criterion`).
#[cfg(feature = "criterion")]
pub mod criterion;
// A live profile's totals for Prometheus (feature `prometheus`) and OpenTelemetry (`otel`).
#[cfg(feature = "otel")]
pub mod otel;
#[cfg(feature = "prometheus")]
pub mod prometheus;
// `tracing` spans as joules spans (feature `tracing`).
#[cfg(feature = "tracing")]
pub mod tracing;

pub use joules_macros::measure_energy;
#[cfg(feature = "profiler")]
pub use profiler::{
    ProfileError, Profiler, ProfilerBuilder, Recording, SourceInfo, Unavailable, probe_sources,
};
pub use span::{OpsCount, SITE_INDEXES, SpanGuard, SyncedGuard, add_ops, profiling};
pub use units::{Joules, Nanos, Watts};
#[cfg(feature = "profiler")]
pub use window::{Window, WindowEnergy, WindowError};

/// Opens a span for the rest of the enclosing block: `let _span = joules::span!("name");`.
///
/// The name must be a string literal. With no profiler running this costs one relaxed load.
///
/// `span!("layer", i)` opens a span of its own per index (a `usize`): `layer.0`, `layer.1`,
/// ..., so that the layers of a model, which run the same code, are told apart in reports.
/// Indexes from [`SITE_INDEXES`] up share one span, `layer.256+`. The index is evaluated at
/// every entry, with no profiler running too (it is an argument): keep it a variable.
///
/// ```
/// # let profiler = joules::Profiler::builder().source(joules::source::Sim::new(joules::source::SimScript::new(joules::Watts(5.0)))).start()?;
/// for i in 0..2 {
///     let _layer = joules::span!("layer", i);
///     std::hint::black_box((0..100_000u64).sum::<u64>());
/// }
/// let report = profiler.stop().report("layers");
/// let paths: Vec<&str> = report.benches[0].spans.iter().map(|s| s.path.as_str()).collect();
/// assert_eq!(paths, ["layer.0", "layer.1"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[macro_export]
macro_rules! span {
    ($name:literal) => {{
        static __JOULES_SITE: $crate::__private::Site =
            $crate::__private::Site::new($name, ::core::module_path!(), ::core::file!(), ::core::line!());
        $crate::__private::enter(&__JOULES_SITE)
    }};
    ($name:literal, $index:expr) => {{
        static __JOULES_SITE: $crate::__private::IndexedSite = $crate::__private::IndexedSite::new(
            $name,
            ::core::module_path!(),
            ::core::file!(),
            ::core::line!(),
        );
        $crate::__private::enter_indexed(&__JOULES_SITE, $index)
    }};
}

/// Defines `main` for a bench target (`harness = false`) from benchmark functions taking a
/// [`bench::Bencher`].
#[cfg(feature = "bench")]
#[macro_export]
macro_rules! bench_main {
    ($($bench:path),+ $(,)?) => {
        fn main() -> ::std::process::ExitCode {
            $crate::bench::run(&[$((
                ::core::stringify!($bench),
                $bench as fn(&mut $crate::bench::Bencher<'_>),
            )),+])
        }
    };
}

/// What the macros expand to. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::span::{IndexedSite, Instrumented, Site, enter, enter_indexed, enter_synced};
    pub use crate::span::{OpsCount, profiling};
    pub use crate::span::{enter_indexed_synced, set_span_ring_capacity};
    pub use crate::spanlog::set_span_log_capacity;
}
